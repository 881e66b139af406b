package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Tensor is a handle to a libtorch tensor, or a failed value.
//
// Ops return *Tensor and never an error: a failed op returns a tensor whose
// Err is set, and any op given a failed tensor returns it unchanged (sticky
// errors). A Tensor owns C++ memory; see the package doc for who frees it
// (its Scope, Close, or, as a safety net, the garbage collector).
//
// A Tensor is safe to use from several goroutines; Close waits for the ops
// in flight on it and makes later uses fail.
type Tensor struct {
	mu      sync.RWMutex // read: an op uses h; write: Close, Keep
	h       C.cg_tensor  // nil once closed, and for failed values
	err     error        // set for failed values, never changed
	scope   *Scope       // the owner, or nil
	cleanup runtime.Cleanup
	hasGC   bool // cleanup is registered
}

var live atomic.Int64

// LiveTensors returns how many tensor handles are currently allocated and
// not yet freed. Tests use it to prove that loops do not leak.
func LiveTensors() int { return int(live.Load()) }

// LiveBytes returns the bytes of storage that live handles reference, as
// libcgotorch counts them (a view counts its storage again).
func LiveBytes() int64 { return int64(C.cg_live_bytes()) }

func freeHandle(h C.cg_tensor) {
	C.cg_tensor_free(h)
	live.Add(-1)
}

// freeHandles frees hs in one cgo call.
func freeHandles(hs []C.cg_tensor) {
	if len(hs) == 0 {
		return
	}
	C.cg_tensor_free_n(&hs[0], C.int(len(hs)))
	live.Add(-int64(len(hs)))
}

// failed returns a failed value carrying err.
func failed(err error) *Tensor { return &Tensor{err: err} }

// newTensor takes ownership of a handle returned by C and gives it to
// scope s, or, when s is nil, to the garbage collector's safety net.
func newTensor(h C.cg_tensor, s *Scope) *Tensor {
	live.Add(1)
	t := &Tensor{h: h}
	if s == nil || !s.adopt(t) {
		t.track()
	}
	return t
}

// track registers the GC safety net for an unowned tensor and accounts its
// bytes. t.mu must be held or t unpublished.
func (t *Tensor) track() {
	t.scope = nil
	if !t.hasGC {
		t.cleanup = runtime.AddCleanup(t, freeHandle, t.h)
		t.hasGC = true
	}
	gcPressure()
}

// Err returns the error of a failed tensor, nil otherwise. A nil tensor has
// no error of its own: ops given one fail naming the argument.
func (t *Tensor) Err() error {
	if t == nil {
		return nil
	}
	return t.err
}

// Must returns t, or panics with its error. It suits examples and tests:
// y := x.MatMul(w).Must().
func (t *Tensor) Must() *Tensor {
	if t == nil {
		panic(newError("Must", "", "nil tensor"))
	}
	if t.err != nil {
		panic(t.err)
	}
	return t
}

// Close frees the tensor's memory now, waiting for ops in flight on it. It
// is idempotent and safe on nil and failed tensors; later uses of t fail.
// It returns t's error, if t is a failed value.
func (t *Tensor) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	h := t.h
	t.h = nil
	if h != nil && t.hasGC {
		t.cleanup.Stop()
		t.hasGC = false
	}
	s := t.scope
	t.scope = nil
	t.mu.Unlock()
	if h != nil {
		freeHandle(h)
		if s != nil {
			s.forget(t)
		}
	}
	return t.err
}

// Closed reports whether t holds no memory: closed, failed or nil.
func (t *Tensor) Closed() bool {
	if t == nil {
		return true
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.h == nil
}

// Scope returns the scope that owns t, or nil.
func (t *Tensor) Scope() *Scope {
	if t == nil {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.scope
}

// CloseAll closes every tensor given; nil entries are skipped.
func CloseAll(ts ...*Tensor) {
	for _, t := range ts {
		t.Close()
	}
}

// FirstErr returns the first error among ts (nil tensors are an error).
func FirstErr(ts ...*Tensor) error {
	for i, t := range ts {
		if t == nil {
			return newError("FirstErr", fmt.Sprintf("tensor %d", i), "nil tensor")
		}
		if t.err != nil {
			return t.err
		}
	}
	return nil
}

// gcPressure is the safety net's accounting. libtorch's memory is
// invisible to Go's GC (an unowned tensor is a few dozen bytes of Go heap
// however large its storage), so the package watches the bytes that live
// handles hold (LiveBytes, read every gcCheckEvery unowned tensors: a
// cheap cgo call) and starts a collection in the background, whose
// cleanups free the unreachable tensors, when they exceed gcThreshold and
// twice the baseline. The baseline is the lowest LiveBytes seen since the
// last collection (its result, lowered when Close or a scope frees memory,
// so that a large free leaves no stale, high baseline behind). Like the
// GC's assists, a goroutine that makes unowned tensors faster than a
// running collection frees them waits for it once LiveBytes reaches four
// times the baseline (and twice gcThreshold): memory stays bounded
// whatever the load.
var (
	gcCount     atomic.Int64
	gcBaseline  atomic.Int64
	gcMu        sync.Mutex
	gcDone      chan struct{} // closed when the running collection ends; nil when none runs
	gcThreshold int64         = 64 << 20
)

const gcCheckEvery = 8

func gcPressure() {
	if gcCount.Add(1)%gcCheckEvery != 0 {
		return
	}
	b := LiveBytes()
	base := gcBaseline.Load()
	for b < base && !gcBaseline.CompareAndSwap(base, b) {
		base = gcBaseline.Load()
	}
	if b < gcThreshold || b < 2*base {
		return
	}
	gcMu.Lock()
	done := gcDone
	if done == nil {
		gcDone = make(chan struct{})
		go collect(gcDone)
	}
	gcMu.Unlock()
	if done != nil && b >= max(2*gcThreshold, 4*base) {
		<-done
	}
}

// collect runs a collection for gcPressure, sets the new baseline once the
// cleanups it queued have run, and closes done.
func collect(done chan struct{}) {
	defer func() {
		gcMu.Lock()
		gcDone = nil
		gcMu.Unlock()
		close(done)
	}()
	runtime.GC()
	runtime.GC() // the cleanups of the first collection are queued by now
	// The cleanups run on their own goroutine: wait (briefly) until they
	// stop lowering LiveBytes, so that the baseline is what survived.
	prev := LiveBytes()
	for i := 0; i < 20; i++ {
		time.Sleep(time.Millisecond)
		b := LiveBytes()
		if b >= prev {
			break
		}
		prev = b
	}
	gcBaseline.Store(prev)
}

// Size returns the tensor's shape, or an error if it is closed or failed.
func (t *Tensor) Size() ([]int64, error) {
	c := begin("Size")
	h := c.in("self", t)
	defer c.release()
	if c.err != nil {
		return nil, c.err
	}
	var buf [8]C.int64_t
	var n C.int
	if err := check("Size", C.cg_shape(h, &buf[0], C.int(len(buf)), &n)); err != nil {
		return nil, err
	}
	if int(n) > len(buf) {
		big := make([]C.int64_t, int(n))
		if err := check("Size", C.cg_shape(h, &big[0], n, &n)); err != nil {
			return nil, err
		}
		return toInt64s(big), nil
	}
	return toInt64s(buf[:n]), nil
}

func toInt64s(c []C.int64_t) []int64 {
	out := make([]int64, len(c))
	for i, v := range c {
		out[i] = int64(v)
	}
	return out
}

// Shape returns the tensor's shape; nil for a closed or failed tensor (use
// Size for the error).
func (t *Tensor) Shape() []int64 {
	s, _ := t.Size()
	return s
}

// Dim returns the number of dimensions; -1 for a closed or failed tensor.
func (t *Tensor) Dim() int {
	s, err := t.Size()
	if err != nil {
		return -1
	}
	return len(s)
}

// SizeOf returns the size of dimension dim (negative counts from the end),
// or -1 when t is closed or failed or dim is out of range.
func (t *Tensor) SizeOf(dim int) int64 {
	s, err := t.Size()
	if err != nil {
		return -1
	}
	if dim < 0 {
		dim += len(s)
	}
	if dim < 0 || dim >= len(s) {
		return -1
	}
	return s[dim]
}

// Numel returns the number of elements; 0 for a closed or failed tensor.
func (t *Tensor) Numel() int64 {
	s, err := t.Size()
	if err != nil {
		return 0
	}
	return numel(s)
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// DType returns the element type; Invalid for a closed or failed tensor.
func (t *Tensor) DType() DType {
	c := begin("DType")
	h := c.in("self", t)
	defer c.release()
	if c.err != nil {
		return Invalid
	}
	var v C.int
	if check("DType", C.cg_dtype(h, &v)) != nil {
		return Invalid
	}
	return DType(v)
}

// Device returns where the tensor lives; CPU for a closed or failed tensor.
func (t *Tensor) Device() Device {
	c := begin("Device")
	h := c.in("self", t)
	defer c.release()
	if c.err != nil {
		return CPU
	}
	var typ, idx C.int
	if check("Device", C.cg_device(h, &typ, &idx)) != nil {
		return CPU
	}
	return Device{Type: DeviceType(typ), Index: int(idx)}
}

// String describes the tensor without its values, e.g. "Tensor(float32 [2 3] cpu)".
func (t *Tensor) String() string {
	if t == nil {
		return "Tensor(nil)"
	}
	if t.err != nil {
		return "Tensor(failed: " + t.err.Error() + ")"
	}
	if t.Closed() {
		return "Tensor(closed)"
	}
	return fmt.Sprintf("Tensor(%s %v %s)", t.DType(), t.Shape(), t.Device())
}

// Item returns the value of a one-element tensor as a float64.
func (t *Tensor) Item() (float64, error) {
	c := begin("Item")
	h := c.in("self", t)
	defer c.release()
	if c.err != nil {
		return 0, c.err
	}
	var v C.double
	err := check("Item", C.cg_item_double(h, &v))
	return float64(v), err
}

// ItemInt returns the value of a one-element tensor as an int64.
func (t *Tensor) ItemInt() (int64, error) {
	c := begin("ItemInt")
	h := c.in("self", t)
	defer c.release()
	if c.err != nil {
		return 0, c.err
	}
	var v C.int64_t
	err := check("ItemInt", C.cg_item_int64(h, &v))
	return int64(v), err
}
