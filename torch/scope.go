package torch

/*
#include "cgotorch.h"
*/
import "C"

import "sync"

// Scope owns tensors and frees them together, like an arena. A tensor made
// by an op joins the scope of its first operand that has one; Own adopts
// tensors made elsewhere (creation functions, loaded data). Close frees
// every tensor the scope still owns; Done frees all but one result, which
// moves to the parent scope (or, without one, to the caller).
//
// A Scope also remembers the first error of the ops whose results joined
// it, so one check covers a whole forward pass. Its methods are safe for
// concurrent use.
type Scope struct {
	mu     sync.Mutex
	owned  []*Tensor
	err    error
	parent *Scope
	closed bool
}

// NewScope returns an empty scope with no parent.
func NewScope() *Scope { return &Scope{} }

// Child returns a scope whose Done and Keep hand tensors to s.
func (s *Scope) Child() *Scope { return &Scope{parent: s} }

// WithScope runs f in a new scope and returns f's result, moved out of the
// scope, with the scope's first error. Every other tensor f made through
// the scope is freed, also when f panics (the panic goes on).
func WithScope(f func(s *Scope) *Tensor) (*Tensor, error) {
	s := NewScope()
	defer s.Close()
	return s.Done(f(s))
}

// adopt adds an unpublished tensor to s; false when s is closed.
func (s *Scope) adopt(t *Tensor) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	t.scope = s
	s.owned = append(s.owned, t)
	s.mu.Unlock()
	return true
}

// forgetWindow is how many of a scope's newest entries forget searches.
const forgetWindow = 4

// forget drops t from the bookkeeping after t was closed on its own (or
// moved to another scope). It looks among the newest entries only, so it
// costs next to nothing: the last-in-first-out case pops t, a tensor
// closed a little out of order (y := x.A(); z := y.B(); y.Close();
// z.Close()) leaves a nil that goes when the entries after it do. Older
// entries stay listed, and Close skips them.
func (s *Scope) forget(t *Tensor) {
	s.mu.Lock()
	n := len(s.owned)
	for i := n - 1; i >= 0 && i >= n-forgetWindow; i-- {
		if s.owned[i] == t {
			s.owned[i] = nil
			break
		}
	}
	for n > 0 && s.owned[n-1] == nil {
		n--
	}
	s.owned = s.owned[:n]
	s.mu.Unlock()
}

// fail records err as the scope's error if it is the first.
func (s *Scope) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// Own moves t into s and returns it, so that ops on it put their results
// in s too. A failed t records its error in s. t may come from no scope,
// from another scope, or from a parent: it changes owner.
func (s *Scope) Own(t *Tensor) *Tensor {
	if t == nil {
		err := newError("Own", "t", "nil tensor")
		s.fail(err)
		return failed(err)
	}
	if t.err != nil {
		s.fail(t.err)
		return t
	}
	t.mu.Lock()
	if t.h == nil {
		t.mu.Unlock()
		err := newError("Own", "t", "use of closed tensor")
		s.fail(err)
		return failed(err)
	}
	old := t.scope
	if old == s {
		t.mu.Unlock()
		return t
	}
	if t.hasGC {
		t.cleanup.Stop()
		t.hasGC = false
	}
	ok := s.adopt(t)
	if !ok {
		t.track()
	}
	t.mu.Unlock()
	if old != nil {
		old.forget(t)
	}
	if !ok {
		err := newError("Own", "", "scope is closed")
		return failed(err)
	}
	return t
}

// Keep moves ts out of s: to s's parent when it has one, else to the
// caller, who frees them with Close (or leaves them to the GC's safety
// net). Tensors that s does not own are left as they are.
func (s *Scope) Keep(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || t.err != nil {
			continue
		}
		t.mu.Lock()
		if t.scope != s || t.h == nil {
			t.mu.Unlock()
			continue
		}
		t.scope = nil
		if s.parent == nil || !s.parent.adopt(t) {
			t.track()
		}
		t.mu.Unlock()
	}
}

// Err returns the first error of an op whose result joined s.
func (s *Scope) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done ends the scope: it returns out, moved out of s as by Keep, and the
// scope's first error, and frees every other tensor s owns. On error out is
// freed too and Done returns (nil, err).
func (s *Scope) Done(out *Tensor) (*Tensor, error) {
	err := s.Err()
	if err == nil && out == nil {
		err = newError("Done", "out", "nil result")
	}
	if err == nil && out.err != nil {
		err = out.err
	}
	if err == nil && out.Closed() {
		err = newError("Done", "out", "use of closed tensor")
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Keep(out)
	s.Close()
	return out, nil
}

// Close frees every tensor s still owns. It is idempotent; results of ops
// on s's tensors made after Close belong to no scope.
func (s *Scope) Close() {
	s.mu.Lock()
	owned := s.owned
	s.owned = nil
	s.closed = true
	s.mu.Unlock()
	// The handles go to C in batches, one cgo call per len(batch).
	var batch [64]C.cg_tensor
	n := 0
	for i := len(owned) - 1; i >= 0; i-- {
		t := owned[i]
		if t == nil {
			continue
		}
		t.mu.Lock()
		h := t.h
		if t.scope != s || h == nil {
			t.mu.Unlock()
			continue
		}
		t.h = nil
		t.scope = nil
		t.mu.Unlock()
		if n == len(batch) {
			freeHandles(batch[:n])
			n = 0
		}
		batch[n] = h
		n++
	}
	freeHandles(batch[:n])
}

// Len returns how many tensors s owns (closed ones that could not be
// dropped from its list count until Close).
func (s *Scope) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.owned)
}

// Borrow returns a second handle to t (same memory, same autograd
// identity, like Alias) owned by s, so that ops on a long-lived tensor such
// as a parameter or a buffer put their results in s:
//
//	mask := s.Borrow(m.causalMask).Narrow(2, 0, T) // freed with s
//
// t itself is not moved: closing s closes only the borrowed handle.
func (s *Scope) Borrow(t *Tensor) *Tensor {
	var a *Tensor
	switch {
	case t == nil:
		a = failed(newError("Borrow", "t", "nil tensor"))
	case t.err == nil && t.Closed():
		a = failed(newError("Borrow", "t", "use of closed tensor"))
	default:
		a = t.Alias()
	}
	if a.err != nil {
		s.fail(a.err)
		return a
	}
	return s.Own(a)
}

// Failed returns a failed tensor carrying err, for code outside this
// package (a module's own checks) that returns tensors the sticky way. A
// nil err gives a failed tensor too, with a generic message.
func Failed(err error) *Tensor {
	if err == nil {
		err = newError("Failed", "", "failed without an error")
	}
	return failed(err)
}
