package torch

import (
	"fmt"
	"sort"

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

// SaveSafetensors writes tensors and string metadata to path in the
// safetensors format (https://github.com/huggingface/safetensors), so that
// Python's safetensors.torch.load_file reads it. Tensors on any device are
// copied to the host first. The file is replaced atomically: a failed save
// leaves no partial file.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	entries := make(map[string]safetensors.Entry, len(tensors))
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data, dt, shape, err := tensors[name].toBytes("SaveSafetensors")
		if err != nil {
			return fmt.Errorf("torch: SaveSafetensors %s: tensor %q: %w", path, name, err)
		}
		entries[name] = safetensors.Entry{DType: stNames[dt], Shape: shape, Data: data}
	}
	if err := safetensors.WriteFile(path, entries, metadata); err != nil {
		return fmt.Errorf("torch: SaveSafetensors: %w", err)
	}
	return nil
}

// LoadSafetensors reads a safetensors file into CPU tensors. The file is
// validated first (header bounds, dtype/shape/offset agreement, contiguous
// non-overlapping data covering the buffer, unique names); on any error no
// tensor is left allocated.
func LoadSafetensors(path string) (map[string]*Tensor, map[string]string, error) {
	entries, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("torch: LoadSafetensors: %w", err)
	}
	out := make(map[string]*Tensor, len(entries))
	for name, e := range entries {
		dt, ok := dtypeFromST(e.DType)
		if !ok {
			CloseMap(out)
			return nil, nil, fmt.Errorf("torch: LoadSafetensors %s: tensor %q: dtype %s is not supported by golora", path, name, e.DType)
		}
		t := fromBytes("LoadSafetensors", e.Data, dt, e.Shape, nil)
		if err := t.Err(); err != nil {
			CloseMap(out)
			return nil, nil, fmt.Errorf("torch: LoadSafetensors %s: tensor %q: %w", path, name, err)
		}
		out[name] = t
	}
	return out, meta, nil
}

// CloseMap closes every tensor in m, such as the result of LoadSafetensors.
func CloseMap(m map[string]*Tensor) {
	for _, t := range m {
		t.Close()
	}
}
