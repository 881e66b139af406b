package torch

/*
#include "cgotorch.h"
*/
import "C"

import "math"

// namedFloat is a float argument that must be finite, with its name for
// the error.
type namedFloat struct {
	name string
	v    float64
}

// FanMode selects which fan Kaiming initialisation preserves.
type FanMode int

// Fan modes.
const (
	FanIn  FanMode = 0
	FanOut FanMode = 1
)

// Nonlinearity selects the gain of Kaiming initialisation.
type Nonlinearity int

// Nonlinearities, as torch.nn.init.calculate_gain names them.
const (
	LeakyReLU   Nonlinearity = 0
	ReLU        Nonlinearity = 1
	LinearGain  Nonlinearity = 2
	TanhGain    Nonlinearity = 3
	SigmoidGain Nonlinearity = 4
)

// The initialisers run without autograd recording and draw from the
// default generator in the same order as torch.nn.init, so a seeded run
// reproduces PyTorch's values bit for bit on CPU. They change t in place
// and return its error, if any.

func (t *Tensor) initOp(op string, f func(C.cg_tensor) C.cg_err, finite ...namedFloat) error {
	c := begin(op)
	h := c.in("tensor", t)
	for _, a := range finite {
		if math.IsNaN(a.v) || math.IsInf(a.v, 0) {
			c.fail(a.name, "must be finite, got %v", a.v)
		}
	}
	if c.ok() {
		c.check(f(h))
	}
	return c.done()
}

// Uniform_ fills t with draws from U(lo, hi), like nn.init.uniform_.
func (t *Tensor) Uniform_(lo, hi float64) error {
	return t.initOp("Uniform_", func(h C.cg_tensor) C.cg_err { return C.cg_uniform_(h, C.double(lo), C.double(hi)) },
		namedFloat{"lo", lo}, namedFloat{"hi", hi})
}

// Normal_ fills t with draws from N(mean, std²), like nn.init.normal_.
func (t *Tensor) Normal_(mean, std float64) error {
	return t.initOp("Normal_", func(h C.cg_tensor) C.cg_err { return C.cg_normal_(h, C.double(mean), C.double(std)) },
		namedFloat{"mean", mean}, namedFloat{"std", std})
}

// Fill_ sets every element of t to v.
func (t *Tensor) Fill_(v float64) error {
	return t.initOp("Fill_", func(h C.cg_tensor) C.cg_err { return C.cg_fill_(h, C.double(v)) })
}

// Zeros_ sets t to zero.
func (t *Tensor) Zeros_() error { return t.Fill_(0) }

// Ones_ sets t to one.
func (t *Tensor) Ones_() error { return t.Fill_(1) }

// KaimingUniform_ is nn.init.kaiming_uniform_(t, a, mode, nonlinearity).
func (t *Tensor) KaimingUniform_(a float64, mode FanMode, nl Nonlinearity) error {
	return t.initOp("KaimingUniform_", func(h C.cg_tensor) C.cg_err {
		return C.cg_kaiming_(h, 0, C.double(a), C.int(mode), C.int(nl))
	}, namedFloat{"a", a})
}

// KaimingNormal_ is nn.init.kaiming_normal_(t, a, mode, nonlinearity).
func (t *Tensor) KaimingNormal_(a float64, mode FanMode, nl Nonlinearity) error {
	return t.initOp("KaimingNormal_", func(h C.cg_tensor) C.cg_err {
		return C.cg_kaiming_(h, 1, C.double(a), C.int(mode), C.int(nl))
	}, namedFloat{"a", a})
}

// XavierUniform_ is nn.init.xavier_uniform_(t, gain).
func (t *Tensor) XavierUniform_(gain float64) error {
	return t.initOp("XavierUniform_", func(h C.cg_tensor) C.cg_err { return C.cg_xavier_(h, 0, C.double(gain)) },
		namedFloat{"gain", gain})
}

// XavierNormal_ is nn.init.xavier_normal_(t, gain).
func (t *Tensor) XavierNormal_(gain float64) error {
	return t.initOp("XavierNormal_", func(h C.cg_tensor) C.cg_err { return C.cg_xavier_(h, 1, C.double(gain)) },
		namedFloat{"gain", gain})
}
