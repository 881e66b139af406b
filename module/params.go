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
// parameters, then each child's. A tensor shared by two slots is listed
// once, under its first name.
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

// Freeze makes every parameter of m non-trainable.
func Freeze(m Module) error { return setTrainable(m, false) }

// Unfreeze makes every parameter of m trainable.
func Unfreeze(m Module) error { return setTrainable(m, true) }

func setTrainable(m Module, on bool) error {
	for _, p := range NamedParameters(m) {
		if err := p.Tensor.SetRequiresGrad(on); err != nil {
			return fmt.Errorf("module: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Count returns the number of parameter elements of m, in all and of the
// trainable ones.
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
	for _, p := range NamedParameters(m) {
		if err := p.Tensor.ClearGrad(); err != nil {
			return fmt.Errorf("module: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Close frees every parameter of m. The module is unusable afterwards.
func Close(m Module) {
	for _, p := range NamedParameters(m) {
		p.Tensor.Close()
	}
}

// To moves (a Device) or converts (a DType; floating parameters only)
// every parameter of m in place, keeping trainability. Do it before
// creating an optimizer: optimizers hold the old tensors.
func To(m Module, target torch.Target) error {
	_, isDType := target.(torch.DType)
	done := map[*torch.Tensor]*torch.Tensor{} // tied parameters move once
	for _, nm := range Modules(m) {
		for _, slot := range nm.Module.Registry().params {
			old := *slot.p
			if old == nil {
				continue
			}
			if moved, ok := done[old]; ok {
				*slot.p = moved
				continue
			}
			if isDType && !old.DType().IsFloat() {
				continue
			}
			trainable := old.RequiresGrad()
			var moved *torch.Tensor
			err := torch.NoGrad(func() error {
				var err error
				moved, err = old.To(target)
				return err
			})
			if err == nil {
				err = moved.SetRequiresGrad(trainable)
			}
			if err != nil {
				moved.Close()
				return fmt.Errorf("module: To: %s: %w", join(nm.Name, slot.name), err)
			}
			*slot.p = moved
			done[old] = moved
			old.Close()
		}
	}
	return nil
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
