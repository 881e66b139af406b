package torch

/*
#include "cgotorch.h"
*/
import "C"

// Transpose swaps dims d0 and d1 (a view).
func (t *Tensor) Transpose(d0, d1 int64) *Tensor {
	c := begin("Transpose")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_transpose(h, C.int64_t(d0), C.int64_t(d1), &out))
	}
	return c.result(out)
}

// Permute reorders the dims (a view).
func (t *Tensor) Permute(dims ...int64) *Tensor {
	c := begin("Permute")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_permute(h, shapePtr(dims), C.int(len(dims)), &out))
	}
	return c.result(out)
}

func (t *Tensor) reshape(op string, shape []int64, view bool) *Tensor {
	c := begin(op)
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_reshape(h, shapePtr(shape), C.int(len(shape)), cbool(view), &out))
	}
	return c.result(out)
}

// Reshape returns t with a new shape (one size may be -1), copying only
// when the strides require it.
func (t *Tensor) Reshape(shape ...int64) *Tensor { return t.reshape("Reshape", shape, false) }

// View returns t with a new shape sharing its memory; it fails when the
// strides do not allow it (use Reshape or Contiguous first).
func (t *Tensor) View(shape ...int64) *Tensor { return t.reshape("View", shape, true) }

// Narrow returns length entries of dim starting at start (a view).
func (t *Tensor) Narrow(dim, start, length int64) *Tensor {
	c := begin("Narrow")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_narrow(h, C.int64_t(dim), C.int64_t(start), C.int64_t(length), &out))
	}
	return c.result(out)
}

// Slice returns t[start:end:step] along dim (a view), like Python slicing.
func (t *Tensor) Slice(dim, start, end, step int64) *Tensor {
	c := begin("Slice")
	h := c.in("self", t)
	if step <= 0 {
		c.fail("step", "step must be positive, got %d", step)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_slice(h, C.int64_t(dim), C.int64_t(start), C.int64_t(end), C.int64_t(step), &out))
	}
	return c.result(out)
}

// IndexSelect returns the entries of dim at the int64 or int32 positions
// in index (1-D).
func (t *Tensor) IndexSelect(dim int64, index *Tensor) *Tensor {
	c := begin("IndexSelect")
	h := c.in("self", t)
	hi := c.in("index", index)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_index_select(h, C.int64_t(dim), hi, &out))
	}
	return c.result(out)
}

func catOrStack(op string, ts []*Tensor, dim int64, stack bool) *Tensor {
	c := begin(op)
	if len(ts) == 0 {
		c.fail("tensors", "no tensors given")
	}
	hs := make([]C.cg_tensor, len(ts))
	for i, t := range ts {
		hs[i] = c.in(argIndex("tensors", i), t)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_cat(&hs[0], C.int(len(hs)), C.int64_t(dim), cbool(stack), &out))
	}
	return c.result(out)
}

// Cat joins tensors along an existing dim.
func Cat(ts []*Tensor, dim int64) *Tensor { return catOrStack("Cat", ts, dim, false) }

// Stack joins tensors of equal shape along a new dim.
func Stack(ts []*Tensor, dim int64) *Tensor { return catOrStack("Stack", ts, dim, true) }

// Tril keeps the lower triangle (j <= i + diagonal) of the last two dims
// and zeroes the rest.
func (t *Tensor) Tril(diagonal int64) *Tensor {
	c := begin("Tril")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_tril(h, C.int64_t(diagonal), &out))
	}
	return c.result(out)
}

// MaskedFill returns t with value wherever the bool mask (broadcast) is
// true. A mask of another dtype is an error.
func (t *Tensor) MaskedFill(mask *Tensor, value float64) *Tensor {
	c := begin("MaskedFill")
	h := c.in("self", t)
	hm := c.in("mask", mask)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_masked_fill(h, hm, C.double(value), &out))
	}
	return c.result(out)
}
