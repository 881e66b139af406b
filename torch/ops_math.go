package torch

/*
#include "cgotorch.h"
*/
import "C"

import "unsafe"

// The hot ops (arithmetic, matmul, the common activations) have dedicated
// C entry points: they are the dispatch benchmark's subject. The rest go
// through the dispatcher by schema name (ops_aten.go).

// The hot entry points take handles as integers and return a struct (see
// cgotorch.h): no pointer argument for cgo to check, no out slot on the
// heap. A C pointer converted to uintptr is not a Go pointer: the garbage
// collector has nothing to track, and the operands stay read-locked (so
// alive) until c.result.

func ref(h C.cg_tensor) C.cg_ref { return C.cg_ref(uintptr(unsafe.Pointer(h))) }

func unary(op string, code C.int, t *Tensor) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		r := C.cg_unary(code, ref(h))
		out = r.out
		c.check(r.err)
	}
	return c.result(out)
}

func binary(op string, code C.int, a, b *Tensor) *Tensor {
	c := begin(op)
	ha := c.in("self", a)
	hb := c.in("other", b)
	var out C.cg_tensor
	if c.ok() {
		r := C.cg_binary(code, ref(ha), ref(hb))
		out = r.out
		c.check(r.err)
	}
	return c.result(out)
}

func scalarOp(op string, code C.int, t *Tensor, s float64) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		r := C.cg_binary_scalar(code, ref(h), C.double(s))
		out = r.out
		c.check(r.err)
	}
	return c.result(out)
}

// Add returns t + b (broadcasting).
func (t *Tensor) Add(b *Tensor) *Tensor { return binary("Add", C.CG_B_ADD, t, b) }

// Sub returns t - b (broadcasting).
func (t *Tensor) Sub(b *Tensor) *Tensor { return binary("Sub", C.CG_B_SUB, t, b) }

// Mul returns t * b elementwise (broadcasting).
func (t *Tensor) Mul(b *Tensor) *Tensor { return binary("Mul", C.CG_B_MUL, t, b) }

// Div returns t / b elementwise (broadcasting).
func (t *Tensor) Div(b *Tensor) *Tensor { return binary("Div", C.CG_B_DIV, t, b) }

// Pow returns t ** b elementwise (broadcasting).
func (t *Tensor) Pow(b *Tensor) *Tensor { return binary("Pow", C.CG_B_POW, t, b) }

// Eq returns a bool tensor, true where t == b.
func (t *Tensor) Eq(b *Tensor) *Tensor { return binary("Eq", C.CG_B_EQ, t, b) }

// Maximum returns the elementwise maximum of t and b.
func (t *Tensor) Maximum(b *Tensor) *Tensor { return binary("Maximum", C.CG_B_MAXIMUM, t, b) }

// MatMul returns the matrix product t @ b with torch.matmul's batching and
// broadcasting rules.
func (t *Tensor) MatMul(b *Tensor) *Tensor { return binary("MatMul", C.CG_B_MATMUL, t, b) }

// Mm returns the product of two 2-D matrices.
func (t *Tensor) Mm(b *Tensor) *Tensor { return binary("Mm", C.CG_B_MM, t, b) }

// AddScalar returns t + s.
func (t *Tensor) AddScalar(s float64) *Tensor { return scalarOp("AddScalar", C.CG_B_ADD, t, s) }

// SubScalar returns t - s.
func (t *Tensor) SubScalar(s float64) *Tensor { return scalarOp("SubScalar", C.CG_B_SUB, t, s) }

// MulScalar returns t * s.
func (t *Tensor) MulScalar(s float64) *Tensor { return scalarOp("MulScalar", C.CG_B_MUL, t, s) }

// DivScalar returns t / s.
func (t *Tensor) DivScalar(s float64) *Tensor { return scalarOp("DivScalar", C.CG_B_DIV, t, s) }

// PowScalar returns t ** s.
func (t *Tensor) PowScalar(s float64) *Tensor { return scalarOp("PowScalar", C.CG_B_POW, t, s) }

// Neg returns -t.
func (t *Tensor) Neg() *Tensor { return unary("Neg", C.CG_U_NEG, t) }

// Abs returns |t|.
func (t *Tensor) Abs() *Tensor { return unary("Abs", C.CG_U_ABS, t) }

// Sqrt returns √t.
func (t *Tensor) Sqrt() *Tensor { return unary("Sqrt", C.CG_U_SQRT, t) }

// Exp returns eᵗ.
func (t *Tensor) Exp() *Tensor { return unary("Exp", C.CG_U_EXP, t) }

// Log returns the natural logarithm of t.
func (t *Tensor) Log() *Tensor { return unary("Log", C.CG_U_LOG, t) }

// Tanh returns tanh(t).
func (t *Tensor) Tanh() *Tensor { return unary("Tanh", C.CG_U_TANH, t) }

// Sigmoid returns 1/(1+e⁻ᵗ).
func (t *Tensor) Sigmoid() *Tensor { return unary("Sigmoid", C.CG_U_SIGMOID, t) }

// Relu returns max(t, 0).
func (t *Tensor) Relu() *Tensor { return unary("Relu", C.CG_U_RELU, t) }

// Gelu returns the exact (erf) GELU of t, like F.gelu.
func (t *Tensor) Gelu() *Tensor { return unary("Gelu", C.CG_U_GELU, t) }

// GeluTanh returns GELU with the tanh approximation, like
// F.gelu(x, approximate="tanh") (GPT-2's gelu_new).
func (t *Tensor) GeluTanh() *Tensor { return unary("GeluTanh", C.CG_U_GELU_TANH, t) }

// Silu returns t·sigmoid(t).
func (t *Tensor) Silu() *Tensor { return unary("Silu", C.CG_U_SILU, t) }

// Contiguous returns t laid out contiguously (t itself, as a new handle,
// when it already is).
func (t *Tensor) Contiguous() *Tensor { return unary("Contiguous", C.CG_U_CONTIGUOUS, t) }

// T returns the transpose of a tensor with at most 2 dims.
func (t *Tensor) T() *Tensor { return unary("T", C.CG_U_T, t) }

// Sum returns the sum of all elements.
func (t *Tensor) Sum() *Tensor { return unary("Sum", C.CG_U_SUM, t) }

// Mean returns the mean of all elements.
func (t *Tensor) Mean() *Tensor { return unary("Mean", C.CG_U_MEAN, t) }

// Max returns the maximum of all elements.
func (t *Tensor) Max() *Tensor { return unary("Max", C.CG_U_MAX, t) }

func reduceDims(op string, code C.int, t *Tensor, dims []int64, keepdim bool) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_reduce_dims(code, h, shapePtr(dims), C.int(len(dims)), cbool(keepdim), &out))
	}
	return c.result(out)
}

// SumDims sums over dims, keeping them as size 1 when keepdim is true.
func (t *Tensor) SumDims(dims []int64, keepdim bool) *Tensor {
	return reduceDims("SumDims", C.CG_U_SUM, t, dims, keepdim)
}

// MeanDims averages over dims, keeping them as size 1 when keepdim is true.
func (t *Tensor) MeanDims(dims []int64, keepdim bool) *Tensor {
	return reduceDims("MeanDims", C.CG_U_MEAN, t, dims, keepdim)
}

// MaxDim returns the maximum along dim and its indices (int64).
func (t *Tensor) MaxDim(dim int64, keepdim bool) (values, indices *Tensor) {
	c := begin("MaxDim")
	h := c.in("self", t)
	var v, i C.cg_tensor
	if c.ok() {
		c.check(C.cg_max_dim(h, C.int64_t(dim), cbool(keepdim), &v, &i))
	}
	r := c.results([]C.cg_tensor{v, i})
	return r[0], r[1]
}

// Argmax returns the index of the maximum of the flattened tensor.
func (t *Tensor) Argmax() *Tensor { return t.argmax("Argmax", false, 0, false) }

// ArgmaxDim returns the indices of the maxima along dim.
func (t *Tensor) ArgmaxDim(dim int64, keepdim bool) *Tensor {
	return t.argmax("ArgmaxDim", true, dim, keepdim)
}

func (t *Tensor) argmax(op string, hasDim bool, dim int64, keepdim bool) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_argmax(h, cbool(hasDim), C.int64_t(dim), cbool(keepdim), &out))
	}
	return c.result(out)
}

// Softmax returns softmax along dim.
func (t *Tensor) Softmax(dim int64) *Tensor { return t.softmax("Softmax", dim, false) }

// LogSoftmax returns log(softmax) along dim, computed stably.
func (t *Tensor) LogSoftmax(dim int64) *Tensor { return t.softmax("LogSoftmax", dim, true) }

func (t *Tensor) softmax(op string, dim int64, log bool) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_softmax(h, C.int64_t(dim), cbool(log), &out))
	}
	return c.result(out)
}

// AllClose reports whether |t - b| ≤ atol + rtol·|b| everywhere.
func (t *Tensor) AllClose(b *Tensor, rtol, atol float64) (bool, error) {
	c := begin("AllClose")
	ha := c.in("self", t)
	hb := c.in("other", b)
	var v C.int
	if c.ok() {
		c.check(C.cg_allclose(ha, hb, C.double(rtol), C.double(atol), &v))
	}
	return v != 0, c.done()
}

// AddScaled_ adds alpha·b into t in place, without autograd recording
// (an SGD step is p.AddScaled_(grad, -lr)).
func (t *Tensor) AddScaled_(b *Tensor, alpha float64) error {
	c := begin("AddScaled_")
	ha := c.in("self", t)
	hb := c.in("other", b)
	if c.ok() {
		c.check(C.cg_add_scaled_(ha, hb, C.double(alpha)))
	}
	return c.done()
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
