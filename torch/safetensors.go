package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"github.com/golora/golora/internal/safetensors"
)

// safetensors dtype names for each DType.
var stNames = map[DType]string{
	Float32: safetensors.F32, Float64: safetensors.F64, Float16: safetensors.F16,
	BFloat16: safetensors.BF16, Int64: safetensors.I64, Int32: safetensors.I32,
	Uint8: safetensors.U8, Bool: safetensors.Bool,
}

func dtypeFromST(name string) (DType, bool) {
	for d, n := range stNames {
		if n == name {
			return d, true
		}
	}
	return Invalid, false
}

// LoadOption configures LoadSafetensors.
type LoadOption func(*loadOptions)

type loadOptions struct {
	dtype  DType // Invalid: keep the file's
	device Device
	only   func(name string) bool
}

// LoadAs converts floating-point tensors to d while loading (integer and
// bool tensors, such as BERT's position_ids, keep their dtype), like
// transformers' torch_dtype.
func LoadAs(d DType) LoadOption { return func(o *loadOptions) { o.dtype = d } }

// LoadTo puts the tensors on dev while loading.
func LoadTo(dev Device) LoadOption { return func(o *loadOptions) { o.device = dev } }

// LoadOnly loads just the tensors whose names keep returns true for.
func LoadOnly(keep func(name string) bool) LoadOption { return func(o *loadOptions) { o.only = keep } }

// LoadSafetensors reads safetensors tensors into new unowned tensors (Close
// them, e.g. with CloseMap). path is a .safetensors file, a sharded
// checkpoint's model.safetensors.index.json, or a directory holding either
// (model.safetensors or model.safetensors.index.json).
//
// The header is read and validated before any data (a header over 100 MB,
// or one that does not fit the file, is refused at once), the data is
// memory-mapped rather than read, and each tensor is made with at most one
// copy, straight into the requested dtype and device. On any error no
// tensor is left allocated.
func LoadSafetensors(path string, opts ...LoadOption) (map[string]*Tensor, map[string]string, error) {
	o := loadOptions{dtype: Invalid, device: CPU}
	for _, f := range opts {
		f(&o)
	}
	if abiErr != nil {
		return nil, nil, abiErr
	}
	if o.dtype != Invalid && !o.dtype.IsFloat() {
		return nil, nil, fmt.Errorf("torch: LoadSafetensors: LoadAs(%v): want a floating-point dtype", o.dtype)
	}
	if o.device.IsCUDA() && !CUDAIsAvailable() {
		return nil, nil, fmt.Errorf("torch: LoadSafetensors: LoadTo(%v): CUDA is not available", o.device)
	}
	r, err := safetensors.OpenAny(path)
	if err != nil {
		return nil, nil, fmt.Errorf("torch: LoadSafetensors: %w", err)
	}
	defer r.Close()
	out := make(map[string]*Tensor)
	for _, name := range r.Names() {
		if o.only != nil && !o.only(name) {
			continue
		}
		t, err := loadOne(r, name, o)
		if err != nil {
			CloseMap(out)
			return nil, nil, fmt.Errorf("torch: LoadSafetensors %s: tensor %q: %w", path, name, err)
		}
		out[name] = t
	}
	return out, r.Metadata(), nil
}

func loadOne(r safetensors.Reader, name string, o loadOptions) (*Tensor, error) {
	info, _ := r.Info(name)
	src, ok := dtypeFromST(info.DType)
	if !ok {
		return nil, fmt.Errorf("dtype %s is not supported by golora", info.DType)
	}
	data, err := r.Bytes(name)
	if err != nil {
		return nil, err
	}
	if p, ok := r.(interface{ Prefetch(string) }); ok {
		p.Prefetch(name) // read ahead: fewer page faults during the copy
	}
	dst := src
	if o.dtype != Invalid && src.IsFloat() {
		dst = o.dtype
	}
	c := begin("LoadSafetensors")
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	// A mapped file is copied in chunks, each chunk's pages dropped from
	// the resident set once copied: the load then peaks near the size of
	// the tensors, not twice it (the pages stay in the page cache).
	evict := 0
	if m, ok := r.(interface{ Mapped() bool }); ok && m.Mapped() {
		evict = 1
	}
	var out C.cg_tensor
	c.check(C.cg_from_mapped_to(p, C.size_t(len(data)), shapePtr(info.Shape), C.int(len(info.Shape)),
		C.int(src), C.int(dst), C.int(o.device.Type), C.int(o.device.Index), C.int(evict), &out))
	runtime.KeepAlive(data)
	t := c.result(out)
	return t, t.Err()
}

// SaveSafetensors writes tensors and string metadata to path in the
// safetensors format (https://github.com/huggingface/safetensors), so that
// Python's safetensors.torch.load_file reads it. Tensors on any device are
// copied to the host first. The file is replaced atomically: a failed save
// leaves no partial file.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	entries, err := toEntries("SaveSafetensors "+path, tensors)
	if err != nil {
		return err
	}
	if err := safetensors.WriteFile(path, entries, metadata); err != nil {
		return fmt.Errorf("torch: SaveSafetensors: %w", err)
	}
	return nil
}

// SaveSafetensorsSharded writes tensors as a sharded checkpoint in dir, in
// transformers' layout: prefix-00001-of-0000N.safetensors files of at most
// maxShardBytes each (a larger tensor gets a shard of its own) and
// prefix.safetensors.index.json ("model" gives model.safetensors.index.json).
// Each file is written atomically, the index last.
func SaveSafetensorsSharded(dir, prefix string, tensors map[string]*Tensor, metadata map[string]string, maxShardBytes int64) error {
	entries, err := toEntries("SaveSafetensorsSharded "+dir, tensors)
	if err != nil {
		return err
	}
	if err := safetensors.WriteSharded(dir, prefix, entries, metadata, maxShardBytes); err != nil {
		return fmt.Errorf("torch: SaveSafetensorsSharded: %w", err)
	}
	return nil
}

func toEntries(what string, tensors map[string]*Tensor) (map[string]safetensors.Entry, error) {
	entries := make(map[string]safetensors.Entry, len(tensors))
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		op, _, _ := strings.Cut(what, " ")
		data, dt, shape, err := tensors[name].toBytes(op)
		if err != nil {
			return nil, fmt.Errorf("torch: %s: tensor %q: %w", what, name, err)
		}
		entries[name] = safetensors.Entry{DType: stNames[dt], Shape: shape, Data: data}
	}
	return entries, nil
}

// CloseMap closes every tensor in m, such as the result of LoadSafetensors.
func CloseMap(m map[string]*Tensor) {
	for _, t := range m {
		t.Close()
	}
}
