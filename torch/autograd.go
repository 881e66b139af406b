package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

// SetRequiresGrad turns gradient tracking of a leaf tensor on or off.
func (t *Tensor) SetRequiresGrad(on bool) error {
	c := begin("SetRequiresGrad")
	h := c.in("self", t)
	if c.ok() {
		c.check(C.cg_set_requires_grad(h, cbool(on)))
	}
	return c.done()
}

// RequiresGrad reports whether autograd tracks t (false when closed or
// failed).
func (t *Tensor) RequiresGrad() bool {
	c := begin("RequiresGrad")
	h := c.in("self", t)
	var v C.int
	if c.ok() {
		c.check(C.cg_requires_grad(h, &v))
	}
	return c.done() == nil && v != 0
}

// Backward computes the gradients of a scalar t with respect to the leaves
// that require grad, accumulating them into their Grad. A failed t returns
// its error.
func (t *Tensor) Backward() error { return t.BackwardWith(nil, false) }

// BackwardWith is Backward for non-scalar outputs: grad (nil for scalars)
// is ∂L/∂t; retainGraph keeps the graph for another backward.
func (t *Tensor) BackwardWith(grad *Tensor, retainGraph bool) error {
	c := begin("Backward")
	h, hg := c.in("tensor", t), c.opt("gradient", grad)
	if c.ok() {
		c.check(C.cg_backward(h, hg, cbool(retainGraph)))
	}
	return c.done()
}

// Grad returns a new handle to t's accumulated gradient, or nil when t has
// none. The handle joins t's scope (none for a parameter: Close it, or let
// the GC's safety net do so); the gradient itself stays attached to t.
func (t *Tensor) Grad() *Tensor {
	c := begin("Grad")
	h := c.in("self", t)
	var out C.cg_tensor
	var defined C.int
	if c.ok() {
		c.check(C.cg_grad(h, &out, &defined))
	}
	if c.ok() && defined == 0 {
		c.release()
		return nil
	}
	return c.result(out)
}

// ZeroGrad zeroes t's gradient in place, keeping its memory.
func (t *Tensor) ZeroGrad() error { return t.zeroGrad("ZeroGrad", false) }

// ClearGrad drops t's gradient (PyTorch's set_to_none).
func (t *Tensor) ClearGrad() error { return t.zeroGrad("ClearGrad", true) }

func (t *Tensor) zeroGrad(op string, none bool) error {
	c := begin(op)
	h := c.in("self", t)
	if c.ok() {
		c.check(C.cg_zero_grad(h, cbool(none)))
	}
	return c.done()
}

// Detach returns a tensor sharing t's memory but cut from the graph.
func (t *Tensor) Detach() *Tensor {
	c := begin("Detach")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_detach(h, &out))
	}
	return c.result(out)
}

// GradEnabled reports whether autograd records operations on the calling
// OS thread. Grad mode is per OS thread in libtorch; goroutines move
// between threads, so only a goroutine that has called
// runtime.LockOSThread gets a stable answer.
func GradEnabled() bool {
	var v C.int
	return check("GradEnabled", C.cg_grad_enabled(&v)) == nil && v != 0
}

// NoGrad runs f with autograd recording off, like `with torch.no_grad()`.
// It pins the goroutine to its OS thread for the duration (grad mode is
// per thread) and restores the previous mode, even if f panics.
// Goroutines that f starts run with their own threads' mode.
func NoGrad(f func() error) error {
	return withGradMode("NoGrad", false, f)
}

// EnableGrad runs f with autograd recording on, like
// `with torch.enable_grad()`.
func EnableGrad(f func() error) error {
	return withGradMode("EnableGrad", true, f)
}

func withGradMode(op string, on bool, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := GradEnabled()
	if err := check(op, C.cg_set_grad_enabled(cbool(on))); err != nil {
		return err
	}
	defer C.cg_set_grad_enabled(cbool(prev))
	return f()
}
