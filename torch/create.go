package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Option sets the element type or device of a new tensor.
type Option func(*options)

type options struct {
	dtype  DType
	device Device
}

// WithDType makes new tensors of type d (default Float32).
func WithDType(d DType) Option { return func(o *options) { o.dtype = d } }

// WithDevice makes new tensors on device d (default CPU).
func WithDevice(d Device) Option { return func(o *options) { o.device = d } }

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
func fromBytes(op string, data []byte, dtype DType, shape []int64) (*Tensor, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if !dtype.Valid() {
		return nil, errorf(op, "unsupported dtype %v", dtype)
	}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var out C.cg_tensor
	err := check(op, C.cg_from_bytes(p, C.size_t(len(data)), shapePtr(shape), C.int(len(shape)), C.int(dtype), &out))
	runtime.KeepAlive(data)
	runtime.KeepAlive(shape)
	return wrap(out, err)
}

// toBytes copies the tensor's elements (moved to CPU, contiguous) out as
// raw bytes.
func (t *Tensor) toBytes(op string) ([]byte, DType, []int64, error) {
	if _, err := t.handle(op); err != nil {
		return nil, Invalid, nil, err
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
	err = check(op, C.cg_to_bytes(t.h, p, C.size_t(len(buf))))
	runtime.KeepAlive(t)
	return buf, dt, shape, err
}

// FromSlice copies data into a new CPU tensor of the given shape. Without
// a shape the tensor is 1-D. The element type follows T.
func FromSlice[T Element](data []T, shape ...int64) (*Tensor, error) {
	if shape == nil {
		shape = []int64{int64(len(data))}
	}
	if err := checkShape("FromSlice", shape); err != nil {
		return nil, err
	}
	if n := numel(shape); n != int64(len(data)) {
		return nil, errorf("FromSlice", "shape %v needs %d elements but the slice has %d", shape, n, len(data))
	}
	var z T
	size := int(unsafe.Sizeof(z))
	var raw []byte
	if len(data) > 0 {
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*size)
	}
	t, err := fromBytes("FromSlice", raw, DTypeOf[T](), shape)
	runtime.KeepAlive(data)
	return t, err
}

// ToSlice copies the tensor's elements into a new slice in row-major
// order. T must match the tensor's DType; the tensor may be on any device.
func ToSlice[T Element](t *Tensor) ([]T, error) {
	h, err := t.handle("ToSlice")
	if err != nil {
		return nil, err
	}
	want := DTypeOf[T]()
	if got := t.DType(); got != want {
		return nil, errorf("ToSlice", "tensor is %v but the slice type is %v (convert with To(torch.%v) first)", got, want, want)
	}
	n := t.Numel()
	out := make([]T, n)
	var p unsafe.Pointer
	if n > 0 {
		p = unsafe.Pointer(&out[0])
	}
	err = check("ToSlice", C.cg_to_bytes(h, p, C.size_t(n*int64(want.ElemSize()))))
	runtime.KeepAlive(t)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func newFilled(op string, kind int, shape []int64, value float64, opts []Option) (*Tensor, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if err := checkShape(op, shape); err != nil {
		return nil, err
	}
	o := makeOptions(opts)
	if !o.dtype.Valid() {
		return nil, errorf(op, "unsupported dtype %v", o.dtype)
	}
	var out C.cg_tensor
	err := check(op, C.cg_new_filled(C.int(kind), shapePtr(shape), C.int(len(shape)), C.int(o.dtype),
		C.int(o.device.Type), C.int(o.device.Index), C.double(value), &out))
	runtime.KeepAlive(shape)
	return wrap(out, err)
}

// Zeros returns a tensor of zeros (float32 on CPU unless opts say otherwise).
func Zeros(shape []int64, opts ...Option) (*Tensor, error) {
	return newFilled("Zeros", 0, shape, 0, opts)
}

// Ones returns a tensor of ones.
func Ones(shape []int64, opts ...Option) (*Tensor, error) {
	return newFilled("Ones", 1, shape, 0, opts)
}

// Empty returns a tensor whose values are uninitialised.
func Empty(shape []int64, opts ...Option) (*Tensor, error) {
	return newFilled("Empty", 2, shape, 0, opts)
}

// Rand returns values drawn uniformly from [0, 1), like torch.rand.
func Rand(shape []int64, opts ...Option) (*Tensor, error) {
	return newFilled("Rand", 3, shape, 0, opts)
}

// Randn returns values drawn from the standard normal, like torch.randn.
func Randn(shape []int64, opts ...Option) (*Tensor, error) {
	return newFilled("Randn", 4, shape, 0, opts)
}

// Full returns a tensor filled with value.
func Full(shape []int64, value float64, opts ...Option) (*Tensor, error) {
	return newFilled("Full", 5, shape, value, opts)
}

// Arange returns the values start, start+step, … below end, like
// torch.arange. Its default dtype is Float32; pass WithDType(Int64) for
// indices.
func Arange(start, end, step float64, opts ...Option) (*Tensor, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if step == 0 {
		return nil, errorf("Arange", "step must not be zero")
	}
	o := makeOptions(opts)
	var out C.cg_tensor
	err := check("Arange", C.cg_arange(C.double(start), C.double(end), C.double(step), C.int(o.dtype),
		C.int(o.device.Type), C.int(o.device.Index), &out))
	return wrap(out, err)
}

// To returns the tensor converted to a Device or a DType. It returns a new
// handle even when nothing changes (close both).
func (t *Tensor) To(target Target) (*Tensor, error) {
	h, err := t.handle("To")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	switch v := target.(type) {
	case Device:
		if v.IsCUDA() && !CUDAIsAvailable() {
			return nil, errorf("To", "%v requested but CUDA is not available (libcgotorch.so is built against a CPU libtorch, or no GPU is visible)", v)
		}
		err = check("To", C.cg_to_device(h, C.int(v.Type), C.int(v.Index), &out))
	case DType:
		if !v.Valid() {
			return nil, errorf("To", "unsupported dtype %v", v)
		}
		err = check("To", C.cg_to_dtype(h, C.int(v), &out))
	default:
		return nil, errorf("To", "unsupported target %T", target)
	}
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Clone returns a copy with its own memory (recorded by autograd).
func (t *Tensor) Clone() (*Tensor, error) {
	h, err := t.handle("Clone")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Clone", C.cg_clone(h, &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Alias returns a second handle to the same tensor (same memory, same
// autograd identity). Closing one handle leaves the other valid.
func (t *Tensor) Alias() (*Tensor, error) {
	h, err := t.handle("Alias")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Alias", C.cg_shallow_clone(h, &out))
	runtime.KeepAlive(t)
	return wrap(out, err)
}

// Copy_ copies src's values into t in place, without autograd recording;
// src is broadcast and converted to t's dtype and device.
func (t *Tensor) Copy_(src *Tensor) error {
	h, err := t.handle("Copy_")
	if err != nil {
		return err
	}
	hs, err := src.handle("Copy_")
	if err != nil {
		return err
	}
	err = check("Copy_", C.cg_copy_(h, hs))
	runtime.KeepAlive(t)
	runtime.KeepAlive(src)
	return err
}
