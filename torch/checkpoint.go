package torch

/*
#include <stdlib.h>
#include "cgotorch.h"
extern cg_err goloraRecompute(uintptr_t ctx, cg_tensor *inputs, int n_in, cg_tensor *outputs, int n_out);
extern void goloraReleaseRegion(uintptr_t ctx);
static cg_err install_checkpoint_fns(void) {
	return cg_set_checkpoint_fns((cg_recompute_fn)goloraRecompute, (cg_release_fn)goloraReleaseRegion);
}
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"
)

// liveRegions counts checkpointed regions not yet released.
var liveRegions atomic.Int64

// Checkpoint runs fn(inputs) as a checkpointed region, like
// torch.utils.checkpoint: the forward runs without keeping the
// activations autograd would save (so a transformer block's intermediates
// are freed at once), and the backward runs fn again, with grad on, then
// backward through it. Peak memory then holds one region's activations
// instead of all of them, for the cost of a second forward.
//
// fn must be deterministic given its inputs and the random state: the
// random generators are put back to their state at the first call when fn
// runs again (dropout draws the same masks), as with PyTorch's
// preserve_rng_state. Parameters fn reads (a LoRA adapter's A and B, say)
// get their gradients from the recomputation; inputs get theirs through
// the region's node. fn's outputs must be floating-point tensors. fn runs
// twice, so it must not change state outside its results (no in-place
// update of a parameter or buffer).
//
// With grad off (NoGrad, or nothing in the region needs it) fn just runs
// once. The results join the scope of the first input that has one, like
// an op's; a failure of fn fails every result.
func Checkpoint(fn func(inputs []*Tensor) []*Tensor, inputs ...*Tensor) []*Tensor {
	c := begin("Checkpoint")
	for i, t := range inputs {
		c.inAt("inputs", i, t)
	}
	c.release()
	if c.err != nil || fn == nil {
		if c.err == nil {
			c.err = argErrorf("Checkpoint", "fn", "nil function")
		}
		return c.results(nil1(len(inputs)))
	}
	if !GradEnabled() {
		return fn(inputs)
	}
	r := &region{fn: fn}
	liveRegions.Add(1)
	// The random states to replay: the CPU's, and the CUDA devices' that
	// the inputs live on.
	r.rng = append(r.rng, rngSnap{dev: CPU, state: RNGState(CPU)})
	seen := map[Device]bool{}
	for _, t := range inputs {
		if d := t.Device(); d.IsCUDA() && !seen[d] {
			seen[d] = true
			r.rng = append(r.rng, rngSnap{dev: d, state: RNGState(d)})
		}
	}
	for _, s := range r.rng {
		if err := s.state.Err(); err != nil {
			r.close()
			return failAll(c.scope, "Checkpoint", err, 1)
		}
	}

	// The forward, without grad, in a private scope: its intermediates go
	// when the scope closes below.
	priv := NewScope()
	defer priv.Close()
	var outs []*Tensor
	err := NoGrad(func() error {
		in := make([]*Tensor, len(inputs))
		for i, t := range inputs {
			in[i] = priv.Borrow(t)
		}
		outs = callRegion(fn, in)
		for _, o := range outs {
			if o == nil {
				return argErrorf("Checkpoint", "fn", "returned a nil tensor")
			}
			if err := o.Err(); err != nil {
				return err
			}
		}
		if len(outs) == 0 {
			return argErrorf("Checkpoint", "fn", "returned no tensors")
		}
		return priv.Err()
	})
	if err != nil {
		r.close()
		return failAll(c.scope, "Checkpoint", err, max(len(outs), 1))
	}

	c = begin("Checkpoint")
	hin := make([]C.cg_tensor, len(inputs)+1) // +1: never a zero-length array
	for i, t := range inputs {
		hin[i] = c.inAt("inputs", i, t)
	}
	hout := make([]C.cg_tensor, len(outs))
	for j, o := range outs {
		hout[j] = c.inAt("outputs", j, o)
	}
	res := make([]C.cg_tensor, len(outs))
	h := cgo.NewHandle(r)
	if c.ok() {
		c.check(C.cg_checkpoint(C.uintptr_t(h), &hin[0], C.int(len(inputs)), &hout[0], C.int(len(outs)), &res[0]))
	}
	if c.err != nil {
		h.Delete()
		r.close()
	}
	return c.results(res)
}

// nil1 is n (at least 1) nil handles, for a failed multi-result call.
func nil1(n int) []C.cg_tensor { return make([]C.cg_tensor, max(n, 1)) }

// failAll returns n failed tensors carrying err, recording it in s.
func failAll(s *Scope, op string, err error, n int) []*Tensor {
	if s != nil {
		s.fail(err)
	}
	out := make([]*Tensor, n)
	for i := range out {
		out[i] = failed(err)
	}
	return out
}

// region is a checkpointed region's Go side, reached from C through a
// cgo.Handle that the region's graph node owns.
type region struct {
	fn  func([]*Tensor) []*Tensor
	rng []rngSnap
}

type rngSnap struct {
	dev   Device
	state *Tensor
}

func (r *region) close() {
	if r.rng != nil {
		liveRegions.Add(-1)
	}
	for _, s := range r.rng {
		s.state.Close()
	}
	r.rng = nil
}

// callRegion runs fn, turning a panic into failed results.
func callRegion(fn func([]*Tensor) []*Tensor, in []*Tensor) (outs []*Tensor) {
	defer func() {
		if p := recover(); p != nil {
			outs = []*Tensor{failed(newError("Checkpoint", "fn", fmt.Sprintf("panic: %v", p)))}
		}
	}()
	return fn(in)
}

//export goloraRecompute
func goloraRecompute(ctx C.uintptr_t, inputs *C.cg_tensor, nIn C.int, outputs *C.cg_tensor, nOut C.int) C.cg_err {
	r, ok := cgo.Handle(ctx).Value().(*region)
	s := NewScope()
	defer s.Close()
	in := make([]*Tensor, int(nIn))
	for i, h := range unsafe.Slice(inputs, int(nIn)) {
		in[i] = newTensor(h, s) // ours to free
	}
	if !ok || r == nil || r.rng == nil {
		return cErr("checkpoint: region already released")
	}
	if err := recompute(r, s, in, unsafe.Slice(outputs, int(nOut))); err != nil {
		return cErr(err.Error())
	}
	return nil
}

// cErr is a message on the C heap, for cgotorch to free.
func cErr(msg string) C.cg_err { return C.cg_err(unsafe.Pointer(C.CString(msg))) }

func recompute(r *region, s *Scope, in []*Tensor, out []C.cg_tensor) error {
	// Replay the random state of the first forward, then restore the
	// current one.
	for _, snap := range r.rng {
		cur := RNGState(snap.dev)
		if err := cur.Err(); err != nil {
			return err
		}
		defer func(d Device, st *Tensor) {
			_ = SetRNGState(d, st)
			st.Close()
		}(snap.dev, cur)
		if err := SetRNGState(snap.dev, snap.state); err != nil {
			return err
		}
	}
	outs := callRegion(r.fn, in)
	if len(outs) != len(out) {
		return fmt.Errorf("fn returned %d tensors when recomputed, %d the first time", len(outs), len(out))
	}
	for _, o := range outs {
		if o == nil {
			return fmt.Errorf("fn returned a nil tensor when recomputed")
		}
		if err := o.Err(); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	for j, o := range outs {
		c := begin("Checkpoint")
		h := c.in("output", o)
		if c.ok() {
			c.check(C.cg_shallow_clone(h, &out[j])) // cgotorch owns and frees it
		}
		if err := c.done(); err != nil {
			return err
		}
	}
	return nil
}

//export goloraReleaseRegion
func goloraReleaseRegion(ctx C.uintptr_t) {
	if ctx == 0 {
		return
	}
	h := cgo.Handle(ctx)
	if r, ok := h.Value().(*region); ok {
		r.close()
	}
	h.Delete()
}

func init() {
	if abiErr == nil {
		if e := C.install_checkpoint_fns(); e != nil {
			C.cg_free_error(e)
		}
	}
}
