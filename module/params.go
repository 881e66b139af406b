package module

import (
	"fmt"
	"strings"

	"github.com/golora/golora/torch"
)

// NamedParameter is a parameter, its dotted name and whether it is
// trainable (requires grad).
type NamedParameter struct {
	Name      string
	Tensor    *torch.Tensor
	Trainable bool
}

// NamedParameters returns every parameter of m and its descendants with
// dotted names, in PyTorch's named_parameters order: a module's own
// parameters, then each child's. A tensor registered twice (tied weights)
// is listed once, under its first name. Buffers are not parameters. A nil
// module has none.
func NamedParameters(m Module) []NamedParameter {
	var out []NamedParameter
	seen := map[*torch.Tensor]bool{}
	for _, nm := range Modules(m) {
		for _, p := range nm.Module.Registry().params {
			t := *p.p
			if t == nil || seen[t] {
				continue
			}
			seen[t] = true
			out = append(out, NamedParameter{join(nm.Name, p.name), t, t.RequiresGrad()})
		}
	}
	return out
}

// Parameters returns the parameter tensors of m, only the trainable ones
// when trainableOnly is true.
func Parameters(m Module, trainableOnly bool) []*torch.Tensor {
	var out []*torch.Tensor
	for _, p := range NamedParameters(m) {
		if !trainableOnly || p.Trainable {
			out = append(out, p.Tensor)
		}
	}
	return out
}

// NamedBuffer is a buffer, its dotted name and whether it is persistent
// (part of the state dict).
type NamedBuffer struct {
	Name       string
	Tensor     *torch.Tensor
	Persistent bool
}

// NamedBuffers returns every buffer of m and its descendants with dotted
// names, in PyTorch's named_buffers order (a module's own, then each
// child's), each tensor once. A nil module has none.
func NamedBuffers(m Module) []NamedBuffer {
	var out []NamedBuffer
	seen := map[*torch.Tensor]bool{}
	for _, nm := range Modules(m) {
		for _, b := range nm.Module.Registry().buffers {
			t := *b.p
			if t == nil || seen[t] {
				continue
			}
			seen[t] = true
			out = append(out, NamedBuffer{join(nm.Name, b.name), t, b.persistent})
		}
	}
	return out
}

// Freeze makes every parameter of m non-trainable.
func Freeze(m Module) error { return setTrainable("Freeze", m, false) }

// Unfreeze makes every parameter of m trainable.
func Unfreeze(m Module) error { return setTrainable("Unfreeze", m, true) }

func setTrainable(fn string, m Module, on bool) error {
	if isNil(m) {
		return errNil(fn)
	}
	for _, p := range NamedParameters(m) {
		if err := p.Tensor.SetRequiresGrad(on); err != nil {
			return fmt.Errorf("module: %s: %s: %w", fn, p.Name, err)
		}
	}
	return nil
}

// Count returns the number of parameter elements of m, in all and of the
// trainable ones (buffers do not count; a closed parameter counts 0, a
// nil module has none).
func Count(m Module) (total, trainable int64) {
	for _, p := range NamedParameters(m) {
		n := p.Tensor.Numel()
		total += n
		if p.Trainable {
			trainable += n
		}
	}
	return total, trainable
}

// Summary returns a one-line count in the form of PEFT's
// print_trainable_parameters:
// "trainable params: 1,024 || all params: 66,560 || trainable%: 1.5385".
func Summary(m Module) string {
	total, trainable := Count(m)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(trainable) / float64(total)
	}
	return fmt.Sprintf("trainable params: %s || all params: %s || trainable%%: %.4f",
		thousands(trainable), thousands(total), pct)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ZeroGrad drops the gradients of every parameter (set_to_none).
func ZeroGrad(m Module) error {
	if isNil(m) {
		return errNil("ZeroGrad")
	}
	for _, p := range NamedParameters(m) {
		if err := p.Tensor.ClearGrad(); err != nil {
			return fmt.Errorf("module: ZeroGrad: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Close frees every parameter and buffer of m. The module is unusable
// afterwards: its forward passes return failed tensors, its accessors
// still answer. Closing twice, or a nil module, is harmless.
func Close(m Module) {
	for _, p := range NamedParameters(m) {
		p.Tensor.Close()
	}
	for _, b := range NamedBuffers(m) {
		b.Tensor.Close()
	}
}

// markTrainable sets requires_grad on the non-nil tensors given.
func markTrainable(ts ...*torch.Tensor) error {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if err := t.SetRequiresGrad(true); err != nil {
			return err
		}
	}
	return nil
}

// firstErr returns the first error of the non-nil tensors given.
func firstErr(ts ...*torch.Tensor) error {
	for _, t := range ts {
		if err := t.Err(); err != nil {
			return err
		}
	}
	return nil
}
