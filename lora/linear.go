package lora

import (
	"errors"
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
// until B moves. It is a module.Layer.
type Linear struct {
	module.Base
	Weight *torch.Tensor // W0, out×in, frozen
	Bias   *torch.Tensor // b, out, frozen; nil without bias
	LoraA  *torch.Tensor // A, r×in, trainable
	LoraB  *torch.Tensor // B, out×r, trainable

	r       int64
	in, out int64 // k and d, kept so that the accessors need no tensor
	alpha   float64
	merged  bool
}

// errNilLayer is the error of Merge and Unmerge on a nil layer.
var errNilLayer = errors.New("nil layer")

// NewLinear returns a LoRA linear layer of rank r: the spec's
// Linear(in_features, out_features, bias, r, alpha).
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
	if c.given {
		if err := checkLinearWeights(c.weight, c.bias, inFeatures, outFeatures, bias); err != nil {
			return nil, err
		}
		l, err := linearFrom(c.weight, c.bias, r, alpha)
		if err != nil {
			return nil, fmt.Errorf("lora: NewLinear: %w", err)
		}
		return l, nil
	}
	w := torch.Empty([]int64{outFeatures, inFeatures}, c.opts...)
	var b *torch.Tensor
	if bias {
		b = torch.Empty([]int64{outFeatures}, c.opts...)
	}
	err = w.Err()
	if err == nil {
		err = b.Err()
	}
	if err == nil {
		err = initLinear(w, b, inFeatures)
	}
	var l *Linear
	if err == nil {
		l, err = linearFrom(w, b, r, alpha)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("lora: NewLinear: %w", err)
	}
	return l, nil
}

// initLinear initialises W0 (out×in) and b (out, or nil) in place the way
// nn.Linear.reset_parameters does: kaiming_uniform_(a=√5), which is
// U(±1/√in), then b from U(±1/√in).
func initLinear(w, b *torch.Tensor, in int64) error {
	if err := w.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU); err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	bound := 1 / math.Sqrt(float64(in))
	return b.Uniform_(-bound, bound)
}

func checkLinearWeights(w, b *torch.Tensor, in, out int64, bias bool) error {
	s, err := shapeOf("NewLinear", "weight", w)
	if err != nil {
		return err
	}
	if len(s) != 2 || s[0] != out || s[1] != in {
		return fmt.Errorf("lora: NewLinear: WithWeights: weight shape %v, expected [%d %d] (out_features×in_features)", s, out, in)
	}
	if bias != (b != nil) {
		given := map[bool]string{true: "given", false: "not given"}[b != nil]
		return fmt.Errorf("lora: NewLinear: WithWeights: bias=%v but a bias tensor was %s", bias, given)
	}
	if b != nil {
		s, err := shapeOf("NewLinear", "bias", b)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0] != out {
			return fmt.Errorf("lora: NewLinear: WithWeights: bias shape %v, expected [%d]", s, out)
		}
	}
	return nil
}

// linearFrom freezes w (out×in) and b, creates A and B, and registers
// everything. On error it frees what it created and leaves w and b to the
// caller (their trainability may have changed).
func linearFrom(w, b *torch.Tensor, r int64, alpha float64) (*Linear, error) {
	ws, err := w.Size()
	if err != nil {
		return nil, fmt.Errorf("weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("weight must be 2-D (out×in), got shape %v", ws)
	}
	if err := freeze(w, b); err != nil {
		return nil, err
	}
	out, in := ws[0], ws[1]
	// A (r×in): kaiming-uniform like a linear layer's weight, so x·Aᵀ has
	// a sensible scale. B (out×r): zeros, so ΔW = B·A = 0 at the start.
	a, bm, err := adapterPair([]int64{r, in}, []int64{out, r}, w, func(a *torch.Tensor) error {
		return a.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU)
	})
	if err != nil {
		return nil, err
	}
	l := &Linear{Weight: w, Bias: b, LoraA: a, LoraB: bm, r: r, in: in, out: out, alpha: alpha}
	l.Param("weight", &l.Weight)
	l.Param("bias", &l.Bias)
	l.Param("lora_a", &l.LoraA)
	l.Param("lora_b", &l.LoraB)
	return l, nil
}

// The accessors below describe the layer's configuration. They never
// panic: on a nil layer they return zero values (false for Merged), and
// after module.Close they still return what the layer was built with.

// Rank returns r.
func (l *Linear) Rank() int64 {
	if l == nil {
		return 0
	}
	return l.r
}

// Alpha returns α.
func (l *Linear) Alpha() float64 {
	if l == nil {
		return 0
	}
	return l.alpha
}

// Scaling returns α/r, the factor applied to x·Aᵀ·Bᵀ.
func (l *Linear) Scaling() float64 {
	if l == nil || l.r == 0 {
		return 0
	}
	return l.alpha / float64(l.r)
}

// InFeatures returns k, the input width.
func (l *Linear) InFeatures() int64 {
	if l == nil {
		return 0
	}
	return l.in
}

// OutFeatures returns d, the output width.
func (l *Linear) OutFeatures() int64 {
	if l == nil {
		return 0
	}
	return l.out
}

// Merged reports whether B·A·α/r is currently folded into W0.
func (l *Linear) Merged() bool { return l != nil && l.merged }

// Forward returns F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r for x of shape
// (…, in), computed by one fused call (torch.LoraLinear). When merged it is
// F.linear(x, W0 + B·A·α/r, b), the same value at the cost of a plain
// linear layer. Errors stick to the result: a wrong input width, a failed
// or closed x, a closed or nil layer.
func (l *Linear) Forward(x *torch.Tensor) *torch.Tensor {
	if l == nil {
		// No weight: the op fails naming it (or passes x's error on).
		return torch.Linear(x, nil, nil)
	}
	if l.merged {
		return torch.Linear(x, l.Weight, l.Bias)
	}
	return torch.LoraLinear(x, l.Weight, l.Bias, l.LoraA, l.LoraB, l.Scaling())
}

// Merge folds the update into the frozen weight: W0 ← W0 + B·A·α/r
// (out×r · r×in = out×in). Forward then costs what a plain linear layer
// costs. Merging twice is an error; so is merging a nil or closed layer.
func (l *Linear) Merge() error {
	if l == nil {
		return fmt.Errorf("lora: Linear.Merge: %w", errNilLayer)
	}
	if l.merged {
		return fmt.Errorf("lora: Linear.Merge: already merged")
	}
	if err := addDelta(l.Weight, l.LoraB, l.LoraA, l.Scaling(), false); err != nil {
		return fmt.Errorf("lora: Linear.Merge: %w", err)
	}
	l.merged = true
	return nil
}

// Unmerge takes the update back out: W0 ← W0 − B·A·α/r. It is an error
// unless the layer is merged.
func (l *Linear) Unmerge() error {
	if l == nil {
		return fmt.Errorf("lora: Linear.Unmerge: %w", errNilLayer)
	}
	if !l.merged {
		return fmt.Errorf("lora: Linear.Unmerge: not merged")
	}
	if err := addDelta(l.Weight, l.LoraB, l.LoraA, -l.Scaling(), false); err != nil {
		return fmt.Errorf("lora: Linear.Unmerge: %w", err)
	}
	l.merged = false
	return nil
}
