package lora

import (
	"fmt"
	"math"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Linear is a linear layer with a LoRA update:
//
//	y = F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r
//
// W0 (out×in) and b (out) are frozen; A (r×in) starts kaiming-uniform
// (a=√5), B (out×r) starts at zero, so y equals the base layer's output
// until B moves.
type Linear struct {
	module.Base
	Weight *torch.Tensor // W0, out×in, frozen
	Bias   *torch.Tensor // b, out, frozen; nil without bias
	LoraA  *torch.Tensor // A, r×in, trainable
	LoraB  *torch.Tensor // B, out×r, trainable

	r       int64
	in, out int64 // k and d, kept so Forward needs no shape query
	alpha   float64
	merged  bool
}

// NewLinear returns a LoRA linear layer of rank r.
//
// Without WithWeights the frozen weight and bias are initialised like
// nn.Linear. Random draws happen in this order from the default generator
// (torch.ManualSeed), so a seeded PyTorch script reproduces them exactly:
//
//  1. weight: kaiming_uniform_(a=√5)           (skipped with WithWeights)
//  2. bias:   uniform_(-1/√in, 1/√in) if bias  (skipped with WithWeights)
//  3. lora_a: kaiming_uniform_(a=√5)
//
// lora_b is zeros and draws nothing.
func NewLinear(inFeatures, outFeatures int64, bias bool, r int64, opts ...Option) (*Linear, error) {
	c := newConfig(opts)
	alpha, err := c.resolveAlpha("NewLinear", r)
	if err != nil {
		return nil, err
	}
	if inFeatures <= 0 || outFeatures <= 0 {
		return nil, fmt.Errorf("lora: NewLinear: in_features and out_features must be positive, got %d and %d", inFeatures, outFeatures)
	}
	w, b := c.weight, c.bias
	if c.given {
		if err := checkLinearWeights(w, b, inFeatures, outFeatures, bias); err != nil {
			return nil, err
		}
	} else {
		if w, err = torch.Empty([]int64{outFeatures, inFeatures}, c.opts...); err != nil {
			return nil, fmt.Errorf("lora: NewLinear: %w", err)
		}
		if bias {
			if b, err = torch.Empty([]int64{outFeatures}, c.opts...); err != nil {
				w.Close()
				return nil, fmt.Errorf("lora: NewLinear: %w", err)
			}
		}
		if err := module.InitLinear(w, b); err != nil {
			torch.CloseAll(w, b)
			return nil, fmt.Errorf("lora: NewLinear: %w", err)
		}
	}
	l, err := linearFrom(w, b, r, alpha)
	if err != nil && !c.given {
		torch.CloseAll(w, b)
	}
	return l, err
}

func checkLinearWeights(w, b *torch.Tensor, in, out int64, bias bool) error {
	if w == nil {
		return fmt.Errorf("lora: NewLinear: WithWeights: weight is nil")
	}
	if s := w.Shape(); len(s) != 2 || s[0] != out || s[1] != in {
		return fmt.Errorf("lora: NewLinear: WithWeights: weight shape %v, expected [%d %d] (out_features×in_features)", s, out, in)
	}
	if bias != (b != nil) {
		return fmt.Errorf("lora: NewLinear: WithWeights: bias=%v but a bias tensor was %s", bias, map[bool]string{true: "given", false: "not given"}[b != nil])
	}
	if b != nil {
		if s := b.Shape(); len(s) != 1 || s[0] != out {
			return fmt.Errorf("lora: NewLinear: WithWeights: bias shape %v, expected [%d]", s, out)
		}
	}
	return nil
}

// linearFrom freezes w and b, creates A and B, and registers everything.
func linearFrom(w, b *torch.Tensor, r int64, alpha float64) (*Linear, error) {
	for _, t := range []*torch.Tensor{w, b} {
		if t != nil {
			if err := t.SetRequiresGrad(false); err != nil {
				return nil, fmt.Errorf("lora: freezing base weights: %w", err)
			}
		}
	}
	ws := w.Shape()
	out, in := ws[0], ws[1]
	// A (r×in): kaiming-uniform like a linear layer's weight, so x·Aᵀ has
	// a sensible scale. B (out×r): zeros, so ΔW = B·A = 0 at the start.
	a, bm, err := adapterPair([]int64{r, in}, []int64{out, r}, w, func(a *torch.Tensor) error {
		return a.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU)
	})
	if err != nil {
		return nil, fmt.Errorf("lora: creating A and B: %w", err)
	}
	l := &Linear{Weight: w, Bias: b, LoraA: a, LoraB: bm, r: r, in: in, out: out, alpha: alpha}
	l.Param("weight", &l.Weight)
	l.Param("bias", &l.Bias)
	l.Param("lora_a", &l.LoraA)
	l.Param("lora_b", &l.LoraB)
	return l, nil
}

// Rank returns r.
func (l *Linear) Rank() int64 { return l.r }

// Alpha returns α.
func (l *Linear) Alpha() float64 { return l.alpha }

// Scaling returns α/r, the factor applied to x·Aᵀ·Bᵀ.
func (l *Linear) Scaling() float64 { return l.alpha / float64(l.r) }

// InFeatures returns k, the input width.
func (l *Linear) InFeatures() int64 { return l.in }

// OutFeatures returns d, the output width.
func (l *Linear) OutFeatures() int64 { return l.out }

// Merged reports whether B·A·α/r is currently folded into W0.
func (l *Linear) Merged() bool { return l.merged }

// Forward returns F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r for x of shape
// (…, in). When merged it is F.linear(x, W0 + B·A·α/r, b), the same value.
func (l *Linear) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	s, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("lora: Linear.Forward: %w", err)
	}
	if l.LoraA.Closed() {
		return nil, fmt.Errorf("lora: Linear.Forward: lora_a: use of closed tensor (was the layer closed?)")
	}
	if in := l.InFeatures(); len(s) == 0 || s[len(s)-1] != in {
		return nil, fmt.Errorf("lora: Linear.Forward: input shape %v: expected last dim in_features=%d, got %s", s, in, lastDim(s))
	}
	var y *torch.Tensor
	if l.merged {
		y, err = torch.Linear(x, l.Weight, l.Bias)
	} else {
		y, err = torch.LoraLinear(x, l.Weight, l.Bias, l.LoraA, l.LoraB, l.Scaling())
	}
	if err != nil {
		return nil, fmt.Errorf("lora: Linear.Forward: %w", err)
	}
	return y, nil
}

func lastDim(s []int64) string {
	if len(s) == 0 {
		return "a 0-dim tensor"
	}
	return fmt.Sprint(s[len(s)-1])
}

// Merge folds the update into the frozen weight: W0 ← W0 + B·A·α/r
// (out×r · r×in = out×in). Forward then costs what a plain linear layer
// costs. Merging twice is an error.
func (l *Linear) Merge() error {
	if l.merged {
		return fmt.Errorf("lora: Linear.Merge: already merged")
	}
	if err := addDelta(l.Weight, l.LoraB, l.LoraA, l.Scaling(), false); err != nil {
		return fmt.Errorf("lora: Linear.Merge: %w", err)
	}
	l.merged = true
	return nil
}

// Unmerge takes the update back out: W0 ← W0 − B·A·α/r.
func (l *Linear) Unmerge() error {
	if !l.merged {
		return fmt.Errorf("lora: Linear.Unmerge: not merged")
	}
	if err := addDelta(l.Weight, l.LoraB, l.LoraA, -l.Scaling(), false); err != nil {
		return fmt.Errorf("lora: Linear.Unmerge: %w", err)
	}
	l.merged = false
	return nil
}

// addDelta adds scale·(B·A) (transposed if t) into w without autograd.
func addDelta(w, b, a *torch.Tensor, scale float64, t bool) error {
	return torch.NoGrad(func() error {
		delta, err := b.Mm(a)
		if err != nil {
			return err
		}
		defer delta.Close()
		if t {
			dt, err := delta.T()
			if err != nil {
				return err
			}
			defer dt.Close()
			delta = dt
		}
		return w.AddScaled_(delta, scale)
	})
}
