package module

import (
	"fmt"
	"sort"
	"strings"

	"github.com/golora/golora/torch"
)

// StateDict returns m's parameters by dotted name. The tensors are m's
// own (not copies): do not close them.
func StateDict(m Module) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for _, p := range NamedParameters(m) {
		out[p.Name] = p.Tensor
	}
	return out
}

// StateDictError lists what did not match in LoadStateDict.
type StateDictError struct {
	Missing    []string // in the module, not in the state dict
	Unexpected []string // in the state dict, not in the module
	Misshaped  []string // "name: model [4 3], state dict [3 4]"
}

// Error lists the missing, unexpected and misshaped keys.
func (e *StateDictError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing keys: "+strings.Join(e.Missing, ", "))
	}
	if len(e.Unexpected) > 0 {
		parts = append(parts, "unexpected keys: "+strings.Join(e.Unexpected, ", "))
	}
	if len(e.Misshaped) > 0 {
		parts = append(parts, "shape mismatch: "+strings.Join(e.Misshaped, "; "))
	}
	return "module: LoadStateDict: " + strings.Join(parts, "; ")
}

// LoadStateDict copies sd's tensors into m's parameters in place
// (converting dtype and device as needed). Every parameter must be
// present with the same shape and every key must be used; otherwise a
// *StateDictError lists missing, unexpected and misshaped keys and nothing
// is copied.
func LoadStateDict(m Module, sd map[string]*torch.Tensor) error {
	return load(m, sd, true)
}

// LoadStateDictPartial is LoadStateDict that ignores missing keys, for
// loading a pre-trained base into a model that also has adapters.
// Unexpected and misshaped keys are still errors.
func LoadStateDictPartial(m Module, sd map[string]*torch.Tensor) error {
	return load(m, sd, false)
}

func load(m Module, sd map[string]*torch.Tensor, strict bool) error {
	params := NamedParameters(m)
	e := &StateDictError{}
	used := map[string]bool{}
	for _, p := range params {
		src, ok := sd[p.Name]
		if !ok {
			if strict {
				e.Missing = append(e.Missing, p.Name)
			}
			continue
		}
		used[p.Name] = true
		want, got := p.Tensor.Shape(), src.Shape()
		if !equalShape(want, got) {
			e.Misshaped = append(e.Misshaped, fmt.Sprintf("%s: model %v, state dict %v", p.Name, want, got))
		}
	}
	for name := range sd {
		if !used[name] {
			e.Unexpected = append(e.Unexpected, name)
		}
	}
	sort.Strings(e.Unexpected)
	if len(e.Missing)+len(e.Unexpected)+len(e.Misshaped) > 0 {
		return e
	}
	for _, p := range params {
		if src, ok := sd[p.Name]; ok {
			if err := p.Tensor.Copy_(src); err != nil {
				return fmt.Errorf("module: LoadStateDict: %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) || a == nil || b == nil {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Save writes m's parameters to a safetensors file.
func Save(m Module, path string, metadata map[string]string) error {
	return torch.SaveSafetensors(path, StateDict(m), metadata)
}

// Load reads a safetensors file written by Save (or by PyTorch's
// safetensors.torch.save_file of a matching state dict) into m, strictly.
func Load(m Module, path string) error {
	sd, _, err := torch.LoadSafetensors(path)
	if err != nil {
		return err
	}
	defer torch.CloseMap(sd)
	if err := LoadStateDict(m, sd); err != nil {
		return fmt.Errorf("%w (file %s)", err, path)
	}
	return nil
}
