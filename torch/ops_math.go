package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

func unary(op string, code C.int, t *Tensor) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_unary(code, h, &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

func binary(op string, code C.int, a, b *Tensor) (*Tensor, error) {
	ha, err := a.handle(op)
	if err != nil {
		return nil, err
	}
	hb, err := b.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_binary(code, ha, hb, &out))
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	return wrap(out, err)
}

func scalarOp(op string, code C.int, t *Tensor, s float64) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_binary_scalar(code, h, C.double(s), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Add returns t + b (broadcasting).
func (t *Tensor) Add(b *Tensor) (*Tensor, error) { return binary("Add", C.CG_B_ADD, t, b) }

// Sub returns t - b (broadcasting).
func (t *Tensor) Sub(b *Tensor) (*Tensor, error) { return binary("Sub", C.CG_B_SUB, t, b) }

// Mul returns t * b elementwise (broadcasting).
func (t *Tensor) Mul(b *Tensor) (*Tensor, error) { return binary("Mul", C.CG_B_MUL, t, b) }

// Div returns t / b elementwise (broadcasting).
func (t *Tensor) Div(b *Tensor) (*Tensor, error) { return binary("Div", C.CG_B_DIV, t, b) }

// Pow returns t ** b elementwise (broadcasting).
func (t *Tensor) Pow(b *Tensor) (*Tensor, error) { return binary("Pow", C.CG_B_POW, t, b) }

// Eq returns a bool tensor, true where t == b.
func (t *Tensor) Eq(b *Tensor) (*Tensor, error) { return binary("Eq", C.CG_B_EQ, t, b) }

// Maximum returns the elementwise maximum of t and b.
func (t *Tensor) Maximum(b *Tensor) (*Tensor, error) { return binary("Maximum", C.CG_B_MAXIMUM, t, b) }

// MatMul returns the matrix product t @ b with torch.matmul's batching and
// broadcasting rules.
func (t *Tensor) MatMul(b *Tensor) (*Tensor, error) { return binary("MatMul", C.CG_B_MATMUL, t, b) }

// Mm returns the product of two 2-D matrices.
func (t *Tensor) Mm(b *Tensor) (*Tensor, error) { return binary("Mm", C.CG_B_MM, t, b) }

// AddScalar returns t + s.
func (t *Tensor) AddScalar(s float64) (*Tensor, error) {
	return scalarOp("AddScalar", C.CG_B_ADD, t, s)
}

// SubScalar returns t - s.
func (t *Tensor) SubScalar(s float64) (*Tensor, error) {
	return scalarOp("SubScalar", C.CG_B_SUB, t, s)
}

// MulScalar returns t * s.
func (t *Tensor) MulScalar(s float64) (*Tensor, error) {
	return scalarOp("MulScalar", C.CG_B_MUL, t, s)
}

// DivScalar returns t / s.
func (t *Tensor) DivScalar(s float64) (*Tensor, error) {
	return scalarOp("DivScalar", C.CG_B_DIV, t, s)
}

// PowScalar returns t ** s.
func (t *Tensor) PowScalar(s float64) (*Tensor, error) {
	return scalarOp("PowScalar", C.CG_B_POW, t, s)
}

// Neg returns -t.
func (t *Tensor) Neg() (*Tensor, error) { return unary("Neg", C.CG_U_NEG, t) }

// Abs returns |t|.
func (t *Tensor) Abs() (*Tensor, error) { return unary("Abs", C.CG_U_ABS, t) }

// Sqrt returns √t elementwise.
func (t *Tensor) Sqrt() (*Tensor, error) { return unary("Sqrt", C.CG_U_SQRT, t) }

// Exp returns eᵗ elementwise.
func (t *Tensor) Exp() (*Tensor, error) { return unary("Exp", C.CG_U_EXP, t) }

// Log returns the natural logarithm elementwise.
func (t *Tensor) Log() (*Tensor, error) { return unary("Log", C.CG_U_LOG, t) }

// Tanh returns tanh(t) elementwise.
func (t *Tensor) Tanh() (*Tensor, error) { return unary("Tanh", C.CG_U_TANH, t) }

// Sigmoid returns 1/(1+e⁻ᵗ) elementwise.
func (t *Tensor) Sigmoid() (*Tensor, error) { return unary("Sigmoid", C.CG_U_SIGMOID, t) }

// Relu returns max(t, 0) elementwise.
func (t *Tensor) Relu() (*Tensor, error) { return unary("Relu", C.CG_U_RELU, t) }

// Gelu returns the exact (erf) GELU, like F.gelu.
func (t *Tensor) Gelu() (*Tensor, error) { return unary("Gelu", C.CG_U_GELU, t) }

// GeluTanh returns the tanh approximation of GELU, like
// F.gelu(approximate="tanh").
func (t *Tensor) GeluTanh() (*Tensor, error) { return unary("GeluTanh", C.CG_U_GELU_TANH, t) }

// Silu returns t·sigmoid(t) elementwise.
func (t *Tensor) Silu() (*Tensor, error) { return unary("Silu", C.CG_U_SILU, t) }

// Contiguous returns t laid out contiguously (t itself, as a new handle,
// when it already is).
func (t *Tensor) Contiguous() (*Tensor, error) { return unary("Contiguous", C.CG_U_CONTIGUOUS, t) }

// T returns the transpose of a tensor with at most 2 dims.
func (t *Tensor) T() (*Tensor, error) { return unary("T", C.CG_U_T, t) }

// Sum returns the sum of all elements as a 0-dim tensor.
func (t *Tensor) Sum() (*Tensor, error) { return unary("Sum", C.CG_U_SUM, t) }

// Mean returns the mean of all elements as a 0-dim tensor.
func (t *Tensor) Mean() (*Tensor, error) { return unary("Mean", C.CG_U_MEAN, t) }

// Max returns the largest element as a 0-dim tensor.
func (t *Tensor) Max() (*Tensor, error) { return unary("Max", C.CG_U_MAX, t) }

func reduceDims(op string, code C.int, t *Tensor, dims []int64, keepdim bool) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_reduce_dims(code, h, shapePtr(dims), C.int(len(dims)), cbool(keepdim), &out))
	runtime.KeepAlive(t)
	runtime.KeepAlive(dims)
	return wrap(out, err)
}

// SumDims sums over dims (negative dims count from the end).
func (t *Tensor) SumDims(dims []int64, keepdim bool) (*Tensor, error) {
	return reduceDims("SumDims", C.CG_U_SUM, t, dims, keepdim)
}

// MeanDims averages over dims (negative dims count from the end).
func (t *Tensor) MeanDims(dims []int64, keepdim bool) (*Tensor, error) {
	return reduceDims("MeanDims", C.CG_U_MEAN, t, dims, keepdim)
}

// MaxDim returns the maximum values over dim and their int64 indices.
func (t *Tensor) MaxDim(dim int64, keepdim bool) (values, indices *Tensor, err error) {
	h, err := t.handle("MaxDim")
	if err != nil {
		return nil, nil, err
	}
	var v, i C.cg_tensor
	err = check("MaxDim", C.cg_max_dim(h, C.int64_t(dim), cbool(keepdim), &v, &i))
	runtime.KeepAlive(t)
	if err != nil {
		return nil, nil, err
	}
	values, _ = wrap(v, nil)
	indices, _ = wrap(i, nil)
	return values, indices, nil
}

// Argmax returns the flat index of the largest element.
func (t *Tensor) Argmax() (*Tensor, error) { return t.argmax("Argmax", false, 0, false) }

// ArgmaxDim returns the indices of the largest values over dim.
func (t *Tensor) ArgmaxDim(dim int64, keepdim bool) (*Tensor, error) {
	return t.argmax("ArgmaxDim", true, dim, keepdim)
}

func (t *Tensor) argmax(op string, hasDim bool, dim int64, keepdim bool) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_argmax(h, cbool(hasDim), C.int64_t(dim), cbool(keepdim), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Softmax returns softmax over dim.
func (t *Tensor) Softmax(dim int64) (*Tensor, error) { return t.softmax("Softmax", dim, false) }

// LogSoftmax returns log(softmax) over dim, computed stably.
func (t *Tensor) LogSoftmax(dim int64) (*Tensor, error) { return t.softmax("LogSoftmax", dim, true) }

func (t *Tensor) softmax(op string, dim int64, log bool) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_softmax(h, C.int64_t(dim), cbool(log), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// AllClose reports whether |t-b| <= atol + rtol·|b| everywhere.
func (t *Tensor) AllClose(b *Tensor, rtol, atol float64) (bool, error) {
	ha, err := t.handle("AllClose")
	if err != nil {
		return false, err
	}
	hb, err := b.handle("AllClose")
	if err != nil {
		return false, err
	}
	var v C.int
	err = check("AllClose", C.cg_allclose(ha, hb, C.double(rtol), C.double(atol), &v))
	runtime.KeepAlive(t)
	runtime.KeepAlive(b)
	return v != 0, err
}

// AddScaled_ adds alpha·b into t in place, without autograd recording
// (the update step of optimizers and of LoRA merging).
func (t *Tensor) AddScaled_(b *Tensor, alpha float64) error {
	ha, err := t.handle("AddScaled_")
	if err != nil {
		return err
	}
	hb, err := b.handle("AddScaled_")
	if err != nil {
		return err
	}
	err = check("AddScaled_", C.cg_add_scaled_(ha, hb, C.double(alpha)))
	runtime.KeepAlive(t)
	runtime.KeepAlive(b)
	return err
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
