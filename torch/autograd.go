package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

// SetRequiresGrad turns gradient tracking of a leaf tensor on or off.
func (t *Tensor) SetRequiresGrad(on bool) error {
	h, err := t.handle("SetRequiresGrad")
	if err != nil {
		return err
	}
	err = check("SetRequiresGrad", C.cg_set_requires_grad(h, cbool(on)))
	runtime.KeepAlive(t)
	return err
}

// RequiresGrad reports whether autograd tracks t (false when closed).
func (t *Tensor) RequiresGrad() bool {
	h, err := t.handle("RequiresGrad")
	if err != nil {
		return false
	}
	var v C.int
	err = check("RequiresGrad", C.cg_requires_grad(h, &v))
	runtime.KeepAlive(t)
	return err == nil && v != 0
}

// Backward computes the gradients of a scalar t with respect to the leaves
// that require grad, accumulating them into their Grad.
func (t *Tensor) Backward() error { return t.BackwardWith(nil, false) }

// BackwardWith is Backward for non-scalar outputs: grad (nil for scalars)
// is ∂L/∂t; retainGraph keeps the graph for another backward.
func (t *Tensor) BackwardWith(grad *Tensor, retainGraph bool) error {
	hs, err := handles("Backward", arg{"tensor", t, false}, arg{"gradient", grad, true})
	if err != nil {
		return err
	}
	err = check("Backward", C.cg_backward(hs[0], hs[1], cbool(retainGraph)))
	runtime.KeepAlive(t)
	runtime.KeepAlive(grad)
	return err
}

// Grad returns a new handle to t's accumulated gradient, or nil (and no
// error) when t has none. Close the handle when done; the gradient itself
// stays attached to t.
func (t *Tensor) Grad() (*Tensor, error) {
	h, err := t.handle("Grad")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	var defined C.int
	err = check("Grad", C.cg_grad(h, &out, &defined))
	runtime.KeepAlive(t)
	if err != nil || defined == 0 {
		return nil, err
	}
	return wrap(out, nil)
}

// ZeroGrad zeroes t's gradient in place, keeping its memory.
func (t *Tensor) ZeroGrad() error { return t.zeroGrad("ZeroGrad", false) }

// ClearGrad drops t's gradient (PyTorch's set_to_none).
func (t *Tensor) ClearGrad() error { return t.zeroGrad("ClearGrad", true) }

func (t *Tensor) zeroGrad(op string, none bool) error {
	h, err := t.handle(op)
	if err != nil {
		return err
	}
	err = check(op, C.cg_zero_grad(h, cbool(none)))
	runtime.KeepAlive(t)
	return err
}

// Detach returns a tensor sharing t's memory but cut from the graph.
func (t *Tensor) Detach() (*Tensor, error) {
	h, err := t.handle("Detach")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Detach", C.cg_detach(h, &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
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
