package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// created finishes a creation function: the tensor joins the scope of the
// In option, if any, and a failure is recorded there.
func created(c *call, out C.cg_tensor, s *Scope) *Tensor {
	c.scope = s
	return c.result(out)
}

// Option sets the element type or device of a new tensor.
type Option func(*options)

type options struct {
	dtype  DType
	device Device
	scope  *Scope
}

// WithDType makes new tensors of type d (default Float32).
func WithDType(d DType) Option { return func(o *options) { o.dtype = d } }

// WithDevice makes new tensors on device d (default CPU).
func WithDevice(d Device) Option { return func(o *options) { o.device = d } }

// In makes the new tensor in scope s, as if s.Own had adopted it.
func In(s *Scope) Option { return func(o *options) { o.scope = s } }

func makeOptions(opts []Option) options {
	o := options{dtype: Float32, device: CPU}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// checkShape rejects negative sizes before they reach libtorch.
func checkShape(op string, shape []int64) error {
	for _, s := range shape {
		if s < 0 {
			return errorf(op, "negative dimension %d in shape %v", s, shape)
		}
	}
	return nil
}

// shapePtr returns a C pointer to shape's data (nil when empty).
func shapePtr(shape []int64) *C.int64_t {
	if len(shape) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0]))
}

// fromBytes copies raw little-endian row-major bytes into a new CPU tensor.
func fromBytes(op string, data []byte, dtype DType, shape []int64, s *Scope) *Tensor {
	c := begin(op)
	if abiErr != nil {
		c.err = abiErr
	} else if !dtype.Valid() {
		c.fail("dtype", "unsupported dtype %v", dtype)
	} else if err := checkShape(op, shape); err != nil {
		c.err = err
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_from_bytes(p, C.size_t(len(data)), shapePtr(shape), C.int(len(shape)), C.int(dtype), &out))
	}
	runtime.KeepAlive(data)
	return created(&c, out, s)
}

// toBytes copies the tensor's elements (moved to CPU, contiguous) out as
// raw bytes.
func (t *Tensor) toBytes(op string) ([]byte, DType, []int64, error) {
	if t == nil {
		return nil, Invalid, nil, argErrorf(op, "tensor", "nil tensor")
	}
	if t.err == nil && t.Closed() {
		return nil, Invalid, nil, argErrorf(op, "tensor", "use of closed tensor")
	}
	shape, err := t.Size()
	if err != nil {
		return nil, Invalid, nil, err
	}
	dt := t.DType()
	if !dt.Valid() {
		return nil, Invalid, nil, errorf(op, "unsupported dtype")
	}
	buf := make([]byte, numel(shape)*int64(dt.ElemSize()))
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	c := begin(op)
	h := c.in("tensor", t)
	if c.ok() {
		c.check(C.cg_to_bytes(h, p, C.size_t(len(buf))))
	}
	return buf, dt, shape, c.done()
}

// FromSlice copies data into a new CPU tensor of the given shape. Without
// a shape the tensor is 1-D. The element type follows T.
func FromSlice[T Element](data []T, shape ...int64) *Tensor {
	if shape == nil {
		shape = []int64{int64(len(data))}
	}
	if err := checkShape("FromSlice", shape); err != nil {
		return failed(err)
	}
	if n := numel(shape); n != int64(len(data)) {
		return failed(argErrorf("FromSlice", "shape", "shape %v needs %d elements but the slice has %d", shape, n, len(data)))
	}
	var z T
	size := int(unsafe.Sizeof(z))
	var raw []byte
	if len(data) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*size)
	}
	t := fromBytes("FromSlice", raw, DTypeOf[T](), shape, nil)
	runtime.KeepAlive(data)
	return t
}

// ToSlice copies the tensor's elements into a new slice in row-major
// order. T must match the tensor's DType; the tensor may be on any device.
func ToSlice[T Element](t *Tensor) ([]T, error) {
	want := DTypeOf[T]()
	if err := t.Err(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, argErrorf("ToSlice", "tensor", "nil tensor")
	}
	if got := t.DType(); got != want && got != Invalid {
		return nil, errorf("ToSlice", "tensor is %v but the slice type is %v (convert with To(torch.%v) first)", got, want, want)
	}
	n := t.Numel()
	out := make([]T, n)
	var p unsafe.Pointer
	if n > 0 {
		p = unsafe.Pointer(&out[0])
	}
	c := begin("ToSlice")
	h := c.in("tensor", t)
	if c.ok() {
		c.check(C.cg_to_bytes(h, p, C.size_t(n*int64(want.ElemSize()))))
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	return out, nil
}

func newFilled(op string, kind int, shape []int64, value float64, opts []Option) *Tensor {
	o := makeOptions(opts)
	c := begin(op)
	if abiErr != nil {
		c.err = abiErr
	} else if err := checkShape(op, shape); err != nil {
		c.err = err
	} else if !o.dtype.Valid() {
		c.fail("dtype", "unsupported dtype %v", o.dtype)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_new_filled(C.int(kind), shapePtr(shape), C.int(len(shape)), C.int(o.dtype),
			C.int(o.device.Type), C.int(o.device.Index), C.double(value), &out))
	}
	runtime.KeepAlive(shape)
	return created(&c, out, o.scope)
}

// Zeros returns a tensor of zeros (float32 on CPU unless opts say otherwise).
func Zeros(shape []int64, opts ...Option) *Tensor { return newFilled("Zeros", 0, shape, 0, opts) }

// Ones returns a tensor of ones.
func Ones(shape []int64, opts ...Option) *Tensor { return newFilled("Ones", 1, shape, 0, opts) }

// Empty returns a tensor whose values are uninitialised.
func Empty(shape []int64, opts ...Option) *Tensor { return newFilled("Empty", 2, shape, 0, opts) }

// Rand returns values drawn uniformly from [0, 1), like torch.rand.
func Rand(shape []int64, opts ...Option) *Tensor { return newFilled("Rand", 3, shape, 0, opts) }

// Randn returns values drawn from the standard normal, like torch.randn.
func Randn(shape []int64, opts ...Option) *Tensor { return newFilled("Randn", 4, shape, 0, opts) }

// Full returns a tensor filled with value.
func Full(shape []int64, value float64, opts ...Option) *Tensor {
	return newFilled("Full", 5, shape, value, opts)
}

// Arange returns the values start, start+step, … below end, like
// torch.arange. Its default dtype is Float32; pass WithDType(Int64) for
// indices.
func Arange(start, end, step float64, opts ...Option) *Tensor {
	o := makeOptions(opts)
	c := begin("Arange")
	if abiErr != nil {
		c.err = abiErr
	} else if step == 0 {
		c.fail("step", "step must not be zero")
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_arange(C.double(start), C.double(end), C.double(step), C.int(o.dtype),
			C.int(o.device.Type), C.int(o.device.Index), &out))
	}
	return created(&c, out, o.scope)
}

// To returns the tensor converted to a Device or a DType. It returns a new
// handle even when nothing changes. SetData changes a tensor in place.
func (t *Tensor) To(target Target) *Tensor {
	c := begin("To")
	h := c.in("self", t)
	var out C.cg_tensor
	switch v := target.(type) {
	case Device:
		if v.Type != CPUDevice && v.Type != CUDADevice {
			c.fail("device", "unknown device type %d", int(v.Type))
		}
		if v.IsCUDA() && !CUDAIsAvailable() {
			c.fail("device", "%v requested but CUDA is not available (libcgotorch.so is built against a CPU libtorch, or no GPU is visible)", v)
		}
		if c.ok() {
			c.check(C.cg_to_device(h, C.int(v.Type), C.int(v.Index), &out))
		}
	case DType:
		if !v.Valid() {
			c.fail("dtype", "unsupported dtype %v", v)
		}
		if c.ok() {
			c.check(C.cg_to_dtype(h, C.int(v), &out))
		}
	default:
		c.fail("target", "unsupported target %T", target)
	}
	return c.result(out)
}

// Clone returns a copy with its own memory (recorded by autograd).
func (t *Tensor) Clone() *Tensor {
	c := begin("Clone")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_clone(h, &out))
	}
	return c.result(out)
}

// Alias returns a second handle to the same tensor (same memory, same
// autograd identity). Closing one handle leaves the other valid.
func (t *Tensor) Alias() *Tensor {
	c := begin("Alias")
	h := c.in("self", t)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_shallow_clone(h, &out))
	}
	return c.result(out)
}

// Copy_ copies src's values into t in place, without autograd recording;
// src is broadcast and converted to t's dtype and device. It returns t.
func (t *Tensor) Copy_(src *Tensor) *Tensor {
	c := begin("Copy_")
	h, hs := c.in("self", t), c.in("src", src)
	if c.ok() {
		c.check(C.cg_copy_(h, hs))
	}
	return c.self(t)
}

// SetData replaces t's data with src's (dtype, device, values) while t
// keeps its identity, like tch's set_data: every holder of t (an
// optimizer, an adapter, a user pointer) sees the change. src is not
// consumed.
func (t *Tensor) SetData(src *Tensor) error {
	c := begin("SetData")
	h, hs := c.in("self", t), c.in("src", src)
	if c.ok() {
		c.check(C.cg_set_data(h, hs))
	}
	return c.done()
}
