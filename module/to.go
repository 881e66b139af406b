package module

import (
	"fmt"

	"github.com/golora/golora/torch"
)

// stateTensor is one distinct tensor of a module: a parameter or a buffer.
type stateTensor struct {
	name       string
	t          *torch.Tensor
	param      bool
	persistent bool // buffers only
}

// tensorsOf returns m's parameters, then its buffers, each tensor once
// (a buffer that is also registered as a parameter counts as the
// parameter).
func tensorsOf(m Module) []stateTensor {
	var out []stateTensor
	seen := map[*torch.Tensor]bool{}
	for _, p := range NamedParameters(m) {
		seen[p.Tensor] = true
		out = append(out, stateTensor{name: p.Name, t: p.Tensor, param: true})
	}
	for _, b := range NamedBuffers(m) {
		if !seen[b.Tensor] {
			out = append(out, stateTensor{name: b.Name, t: b.Tensor, persistent: b.Persistent})
		}
	}
	return out
}

// To moves every parameter and buffer of m to a Device, or converts them
// to a DType, in place: each tensor keeps its identity (torch's SetData,
// PyTorch's param.data = ...), so optimizers, LoRA adapters and user
// pointers that hold the *torch.Tensor see the change, and trainability is
// kept. A DType target converts floating-point tensors only (integer and
// bool buffers such as position ids keep their type, as with PyTorch's
// module.to). A tensor registered twice (tied weights) is converted once.
//
// Gradients move with their parameter: an existing .grad is converted to
// the same target, in place too.
//
// To is atomic: every converted tensor is computed first; if any
// conversion fails (CUDA unavailable, out of memory, or a trainable
// parameter asked to become an integer type, which libtorch refuses) the
// new tensors are freed and nothing changes. Peak memory is the old and
// the new tensors together.
func To(m Module, target torch.Target) error {
	if isNil(m) {
		return errNil("To")
	}
	if target == nil {
		return fmt.Errorf("module: To: nil target")
	}
	_, isDType := target.(torch.DType)
	s := torch.NewScope()
	defer s.Close()

	type move struct {
		name            string
		dst, src        *torch.Tensor
		grad, gradSrc   *torch.Tensor
		old, oldGradDst *torch.Tensor
	}
	var moves []move
	for _, st := range tensorsOf(m) {
		if st.t.Closed() {
			return fmt.Errorf("module: To: %s: the tensor is closed", st.name)
		}
		if isDType && !st.t.DType().IsFloat() {
			continue
		}
		mv := move{name: st.name, dst: st.t}
		mv.src = s.Own(st.t.Detach()).To(target)
		if err := mv.src.Err(); err != nil {
			return fmt.Errorf("module: To: %s: %w", st.name, err)
		}
		if st.param && st.t.RequiresGrad() {
			// The converted data must be able to carry requires_grad
			// (libtorch refuses it for integer types). The check runs on
			// a detached copy, never on the parameter itself.
			if err := mv.src.SetRequiresGrad(true); err != nil {
				return fmt.Errorf("module: To: %s: a trainable parameter cannot become %v: %w", st.name, target, err)
			}
			if err := mv.src.SetRequiresGrad(false); err != nil {
				return fmt.Errorf("module: To: %s: %w", st.name, err)
			}
		}
		if st.param {
			if g := st.t.Grad(); g != nil {
				mv.grad = s.Own(g)
				mv.gradSrc = mv.grad.Detach().To(target)
				if err := mv.gradSrc.Err(); err != nil {
					return fmt.Errorf("module: To: gradient of %s: %w", st.name, err)
				}
			}
		}
		moves = append(moves, mv)
	}

	// Commit. SetData refuses only a change of layout (dense to sparse),
	// which conversions do not make; should it fail anyway, the tensors
	// already changed get their old data back.
	for i := range moves {
		mv := &moves[i]
		mv.old = s.Own(mv.dst.Detach()) // keeps the old storage for a rollback
		err := mv.dst.SetData(mv.src)
		if err == nil && mv.grad != nil {
			mv.oldGradDst = s.Own(mv.grad.Detach())
			if err = mv.grad.SetData(mv.gradSrc); err != nil {
				_ = mv.dst.SetData(mv.old)
			}
		}
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = moves[j].dst.SetData(moves[j].old)
				if moves[j].grad != nil {
					_ = moves[j].grad.SetData(moves[j].oldGradDst)
				}
			}
			return fmt.Errorf("module: To: %s: %w", mv.name, err)
		}
	}
	return nil
}
