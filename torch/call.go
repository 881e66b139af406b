package torch

/*
#include "cgotorch.h"
*/
import "C"

// call is the bookkeeping of one op: it read-locks the operands while C
// uses their handles, remembers the first failure (a failed, nil or closed
// operand), picks the scope of the result (the first operand's that has
// one) and turns the C result into a *Tensor. It lives on the caller's
// stack:
//
//	c := begin("Softmax")
//	h := c.in("self", t)
//	var out C.cg_tensor
//	if c.ok() {
//		c.check(C.cg_softmax(h, C.int64_t(dim), 0, &out))
//	}
//	return c.result(out)
type call struct {
	op     string
	err    error
	scope  *Scope
	locked [6]*Tensor
	n      int
	more   []*Tensor
}

func begin(op string) call { return call{op: op} }

func (c *call) ok() bool { return c.err == nil }

// in locks a required operand and returns its handle (nil after a failure).
func (c *call) in(arg string, t *Tensor) C.cg_tensor { return c.inAt(arg, -1, t) }

// inAt is in for entry idx of a list argument (idx < 0: not a list); the
// name "arg[idx]" is only formatted for an error.
func (c *call) inAt(arg string, idx int, t *Tensor) C.cg_tensor {
	if c.err != nil {
		return nil
	}
	if t == nil {
		c.err = argErrorf(c.op, listArg(arg, idx), "nil tensor")
		return nil
	}
	if t.err != nil {
		c.err = t.err // sticky: pass the first error on unchanged
		return nil
	}
	if c.holds(t) {
		// Already read-locked by this op (x.Mul(x)): sync.RWMutex forbids
		// taking the read lock twice, which deadlocks when Close queues
		// for the write lock in between. The handle is valid while held.
		return t.h
	}
	t.mu.RLock()
	if t.h == nil {
		t.mu.RUnlock()
		c.err = argErrorf(c.op, listArg(arg, idx), "use of closed tensor")
		return nil
	}
	if c.n < len(c.locked) {
		c.locked[c.n] = t
		c.n++
	} else {
		c.more = append(c.more, t)
	}
	if c.scope == nil && t.scope != nil {
		c.scope = t.scope
	}
	return t.h
}

// holds reports whether the op has read-locked t already.
func (c *call) holds(t *Tensor) bool {
	for _, l := range c.locked[:c.n] {
		if l == t {
			return true
		}
	}
	for _, l := range c.more {
		if l == t {
			return true
		}
	}
	return false
}

func listArg(arg string, idx int) string {
	if idx < 0 {
		return arg
	}
	return argIndex(arg, idx)
}

// opt is in for an optional operand: nil gives a NULL handle.
func (c *call) opt(arg string, t *Tensor) C.cg_tensor {
	if t == nil {
		return nil
	}
	return c.in(arg, t)
}

// check records a C error.
func (c *call) check(e C.cg_err) {
	if e != nil && c.err == nil {
		c.err = check(c.op, e)
	} else if e != nil {
		C.cg_free_error(e)
	}
}

// release unlocks the operands. result calls it; functions that return no
// tensor defer it.
func (c *call) release() {
	for i := 0; i < c.n; i++ {
		c.locked[i].mu.RUnlock()
		c.locked[i] = nil
	}
	c.n = 0
	for _, t := range c.more {
		t.mu.RUnlock()
	}
	c.more = nil
}

// result releases the operands and wraps h, or returns the failure. The
// failure is recorded in the scope the result would have joined.
func (c *call) result(h C.cg_tensor) *Tensor {
	c.release()
	if c.err != nil {
		if c.scope != nil {
			c.scope.fail(c.err)
		}
		return failed(c.err)
	}
	return newTensor(h, c.scope)
}

// results is result for several handles.
func (c *call) results(hs []C.cg_tensor) []*Tensor {
	c.release()
	out := make([]*Tensor, len(hs))
	if c.err != nil {
		if c.scope != nil {
			c.scope.fail(c.err)
		}
		for i := range out {
			out[i] = failed(c.err)
		}
		return out
	}
	for i, h := range hs {
		out[i] = newTensor(h, c.scope)
	}
	return out
}

// done releases the operands and returns the error, for ops that return
// no tensor (in-place ops and readouts).
func (c *call) done() error {
	c.release()
	if c.err != nil && c.scope != nil {
		c.scope.fail(c.err)
	}
	return c.err
}

// self returns t after an in-place op, or the failure.
func (c *call) self(t *Tensor) *Tensor {
	if err := c.done(); err != nil {
		return failed(err)
	}
	return t
}

// fail sets a Go-side validation error (before the C call).
func (c *call) fail(arg, format string, args ...any) {
	if c.err == nil {
		c.err = argErrorf(c.op, arg, format, args...)
	}
}
