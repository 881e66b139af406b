package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// Tensor is a handle to a libtorch tensor. The zero value is not usable;
// tensors come from the creation functions and from operations.
//
// A Tensor owns C++ memory: Close frees it at once. A finalizer frees
// tensors that become unreachable, but only as a safety net; programs that
// loop must Close what they create.
type Tensor struct {
	h       C.cg_tensor
	cleanup runtime.Cleanup
}

var live atomic.Int64

// LiveTensors returns how many tensor handles are currently allocated and
// not yet freed. Tests use it to prove that loops do not leak.
func LiveTensors() int { return int(live.Load()) }

func freeHandle(h C.cg_tensor) {
	C.cg_tensor_free(h)
	live.Add(-1)
}

// wrap takes ownership of a handle returned by C. When err is not nil it
// returns (nil, err) and h is ignored (C wrote nothing).
func wrap(h C.cg_tensor, err error) (*Tensor, error) {
	if err != nil {
		return nil, err
	}
	live.Add(1)
	t := &Tensor{h: h}
	t.cleanup = runtime.AddCleanup(t, freeHandle, h)
	return t, nil
}

// Close frees the tensor's memory now. It is idempotent, and safe on a nil
// tensor. Any later use of t returns an error.
func (t *Tensor) Close() error {
	if t == nil || t.h == nil {
		return nil
	}
	t.cleanup.Stop()
	freeHandle(t.h)
	t.h = nil
	return nil
}

// Closed reports whether Close has been called.
func (t *Tensor) Closed() bool { return t == nil || t.h == nil }

// handle returns the C handle, or an error naming op for a nil or closed
// tensor.
func (t *Tensor) handle(op string) (C.cg_tensor, error) {
	if t == nil {
		return nil, errorf(op, "nil tensor")
	}
	if t.h == nil {
		return nil, errorf(op, "use of closed tensor")
	}
	return t.h, nil
}

// optHandle is handle for optional arguments: a nil tensor gives a NULL
// handle, a closed one an error.
func (t *Tensor) optHandle(op string) (C.cg_tensor, error) {
	if t == nil {
		return nil, nil
	}
	return t.handle(op)
}

// CloseAll closes every tensor given; nil entries are skipped.
func CloseAll(ts ...*Tensor) {
	for _, t := range ts {
		t.Close()
	}
}

// Size returns the tensor's shape, or an error if it is closed.
func (t *Tensor) Size() ([]int64, error) {
	h, err := t.handle("Size")
	if err != nil {
		return nil, err
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
		runtime.KeepAlive(t)
		return toInt64s(big), nil
	}
	runtime.KeepAlive(t)
	return toInt64s(buf[:n]), nil
}

func toInt64s(c []C.int64_t) []int64 {
	out := make([]int64, len(c))
	for i, v := range c {
		out[i] = int64(v)
	}
	return out
}

// Shape returns the tensor's shape; nil for a closed tensor (use Size for
// the error).
func (t *Tensor) Shape() []int64 {
	s, _ := t.Size()
	return s
}

// Dim returns the number of dimensions; -1 for a closed tensor.
func (t *Tensor) Dim() int {
	s, err := t.Size()
	if err != nil {
		return -1
	}
	return len(s)
}

// Numel returns the number of elements; 0 for a closed tensor.
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

// DType returns the element type; Invalid for a closed tensor.
func (t *Tensor) DType() DType {
	h, err := t.handle("DType")
	if err != nil {
		return Invalid
	}
	var c C.int
	if check("DType", C.cg_dtype(h, &c)) != nil {
		return Invalid
	}
	runtime.KeepAlive(t)
	return DType(c)
}

// Device returns where the tensor lives; CPU for a closed tensor.
func (t *Tensor) Device() Device {
	h, err := t.handle("Device")
	if err != nil {
		return CPU
	}
	var typ, idx C.int
	if check("Device", C.cg_device(h, &typ, &idx)) != nil {
		return CPU
	}
	runtime.KeepAlive(t)
	return Device{Type: DeviceType(typ), Index: int(idx)}
}

// String describes the tensor without its values, e.g. "Tensor(float32 [2 3] cpu)".
func (t *Tensor) String() string {
	if t.Closed() {
		return "Tensor(closed)"
	}
	return fmt.Sprintf("Tensor(%s %v %s)", t.DType(), t.Shape(), t.Device())
}

// Item returns the value of a one-element tensor as a float64.
func (t *Tensor) Item() (float64, error) {
	h, err := t.handle("Item")
	if err != nil {
		return 0, err
	}
	var v C.double
	err = check("Item", C.cg_item_double(h, &v))
	runtime.KeepAlive(t)
	return float64(v), err
}

// ItemInt returns the value of a one-element tensor as an int64.
func (t *Tensor) ItemInt() (int64, error) {
	h, err := t.handle("ItemInt")
	if err != nil {
		return 0, err
	}
	var v C.int64_t
	err = check("ItemInt", C.cg_item_int64(h, &v))
	runtime.KeepAlive(t)
	return int64(v), err
}
