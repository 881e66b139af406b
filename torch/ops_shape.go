package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

// Transpose swaps dims d0 and d1 (a view).
func (t *Tensor) Transpose(d0, d1 int64) (*Tensor, error) {
	h, err := t.handle("Transpose")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Transpose", C.cg_transpose(h, C.int64_t(d0), C.int64_t(d1), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Permute reorders dims (a view).
func (t *Tensor) Permute(dims ...int64) (*Tensor, error) {
	h, err := t.handle("Permute")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Permute", C.cg_permute(h, shapePtr(dims), C.int(len(dims)), &out))
	runtime.KeepAlive(t)
	runtime.KeepAlive(dims)
	return wrap(out, err)
}

func (t *Tensor) reshape(op string, shape []int64, view bool) (*Tensor, error) {
	h, err := t.handle(op)
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check(op, C.cg_reshape(h, shapePtr(shape), C.int(len(shape)), cbool(view), &out))
	runtime.KeepAlive(t)
	runtime.KeepAlive(shape)
	return wrap(out, err)
}

// Reshape returns t with a new shape (one dim may be -1), copying only when
// the strides require it.
func (t *Tensor) Reshape(shape ...int64) (*Tensor, error) { return t.reshape("Reshape", shape, false) }

// View returns t with a new shape sharing its memory; it fails when the
// strides do not allow it.
func (t *Tensor) View(shape ...int64) (*Tensor, error) { return t.reshape("View", shape, true) }

// Narrow returns length entries of dim starting at start (a view).
func (t *Tensor) Narrow(dim, start, length int64) (*Tensor, error) {
	h, err := t.handle("Narrow")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Narrow", C.cg_narrow(h, C.int64_t(dim), C.int64_t(start), C.int64_t(length), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Slice returns t[start:end:step] along dim (a view), like Python slicing.
func (t *Tensor) Slice(dim, start, end, step int64) (*Tensor, error) {
	h, err := t.handle("Slice")
	if err != nil {
		return nil, err
	}
	if step <= 0 {
		return nil, errorf("Slice", "step must be positive, got %d", step)
	}
	var out C.cg_tensor
	err = check("Slice", C.cg_slice(h, C.int64_t(dim), C.int64_t(start), C.int64_t(end), C.int64_t(step), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// IndexSelect picks the entries of dim listed in index (int64 or int32).
func (t *Tensor) IndexSelect(dim int64, index *Tensor) (*Tensor, error) {
	h, err := t.handle("IndexSelect")
	if err != nil {
		return nil, err
	}
	hi, err := index.handle("IndexSelect")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("IndexSelect", C.cg_index_select(h, C.int64_t(dim), hi, &out))
	runtime.KeepAlive(t)
	runtime.KeepAlive(index)
	return wrap(out, err)
}

func catOrStack(op string, ts []*Tensor, dim int64, stack bool) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, errorf(op, "no tensors given")
	}
	hs := make([]C.cg_tensor, len(ts))
	for i, t := range ts {
		h, err := t.handle(op)
		if err != nil {
			return nil, errorf(op, "tensor %d: %s", i, err.(*Error).Msg)
		}
		hs[i] = h
	}
	var out C.cg_tensor
	err := check(op, C.cg_cat(&hs[0], C.int(len(hs)), C.int64_t(dim), cbool(stack), &out))
	runtime.KeepAlive(ts)
	return wrap(out, err)
}

// Cat joins tensors along an existing dim.
func Cat(ts []*Tensor, dim int64) (*Tensor, error) { return catOrStack("Cat", ts, dim, false) }

// Stack joins tensors of equal shape along a new dim.
func Stack(ts []*Tensor, dim int64) (*Tensor, error) { return catOrStack("Stack", ts, dim, true) }

// Tril keeps the lower triangle (j <= i + diagonal) of the last two dims
// and zeroes the rest.
func (t *Tensor) Tril(diagonal int64) (*Tensor, error) {
	h, err := t.handle("Tril")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Tril", C.cg_tril(h, C.int64_t(diagonal), &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// MaskedFill returns t with value wherever the bool mask (broadcast) is
// true.
func (t *Tensor) MaskedFill(mask *Tensor, value float64) (*Tensor, error) {
	h, err := t.handle("MaskedFill")
	if err != nil {
		return nil, err
	}
	hm, err := mask.handle("MaskedFill")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("MaskedFill", C.cg_masked_fill(h, hm, C.double(value), &out))
	runtime.KeepAlive(t)
	runtime.KeepAlive(mask)
	return wrap(out, err)
}
