package lora

import (
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Linear is a linear layer with LoRA adapters, PEFT's lora.Linear: it
// wraps a module.Linear and holds adapters by name (see Layer). With the
// one "default" adapter NewLinear creates it is the spec's layer:
//
//	y = F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r
//
// W0 (out×in) and b (out) are frozen; A (r×in) starts kaiming-uniform
// (a=√5), B (out×r) starts at zero, so y equals the base layer's output
// until B moves. Its state dict names are the spec's: weight, bias,
// lora_a, lora_b (see SpecKeyMap). It is a module.Layer.
type Linear struct {
	Layer
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

// linearFrom wraps w (out×in) and b in a module.Linear, freezes them and
// adds the "default" adapter of rank r (A kaiming-uniform, B zero). On
// error it frees what it created and leaves w and b to the caller (their
// trainability may have changed).
func linearFrom(w, b *torch.Tensor, r int64, alpha float64) (*Linear, error) {
	ws, err := w.Size()
	if err != nil {
		return nil, fmt.Errorf("weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("weight must be 2-D (out×in), got shape %v", ws)
	}
	base, err := module.LinearFrom(w, b)
	if err != nil {
		return nil, err
	}
	l := &Linear{}
	if err := newLayer(&l.Layer, &linearKind{base}); err != nil {
		return nil, err
	}
	if err := l.addAdapter(DefaultAdapter, adapterSpec{r: r, alpha: alpha}); err != nil {
		return nil, fmt.Errorf("creating lora_a and lora_b: %w", err)
	}
	return l, nil
}

// The accessors below describe the layer's configuration. They never
// panic: on a nil layer they return zero values (false for Merged), and
// after module.Close they still return what the layer was built with.

// Rank returns r of the "default" adapter (of the first adapter if there
// is no default).
func (l *Linear) Rank() int64 {
	if l == nil {
		return 0
	}
	return l.first().Rank()
}

// Alpha returns α of the "default" adapter.
func (l *Linear) Alpha() float64 {
	if l == nil {
		return 0
	}
	return l.first().Alpha()
}

// Scaling returns the "default" adapter's factor on x·Aᵀ·Bᵀ: α/r (α/√r
// with rsLoRA).
func (l *Linear) Scaling() float64 {
	if l == nil {
		return 0
	}
	return l.first().Scaling()
}

// InFeatures returns k, the input width.
func (l *Linear) InFeatures() int64 {
	if l == nil || l.kind == nil {
		return 0
	}
	return l.kind.(*linearKind).m.InFeatures()
}

// OutFeatures returns d, the output width.
func (l *Linear) OutFeatures() int64 {
	if l == nil || l.kind == nil {
		return 0
	}
	return l.kind.(*linearKind).m.OutFeatures()
}

// Merged reports whether an adapter is currently folded into W0.
func (l *Linear) Merged() bool { return l != nil && len(l.merged) > 0 }

// Forward returns F.linear(x, W0, b) plus every active adapter's update.
// With one plain adapter (no DoRA, no dropout in training) it is one fused
// call (torch.LoraLinear): F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r. When merged
// it is F.linear(x, W0 + B·A·α/r, b), the same value at the cost of a
// plain linear layer. Errors stick to the result: a wrong input width, a
// failed or closed x, a closed or nil layer.
func (l *Linear) Forward(x *torch.Tensor) *torch.Tensor {
	if l == nil {
		// No weight: the op fails naming it (or passes x's error on).
		return torch.Linear(x, nil, nil)
	}
	return l.Layer.Forward(x)
}

// Merge folds the active adapters into the frozen weight: W0 ← W0 +
// B·A·α/r (out×r · r×in = out×in), computed in float32 (see
// Layer.MergeAdapters). Forward then costs what a plain linear layer
// costs. Merging twice is an error; so is merging a nil or closed layer.
func (l *Linear) Merge() error {
	if l == nil {
		return fmt.Errorf("lora: Linear.Merge: %w", errNilLayer)
	}
	if len(l.merged) > 0 {
		return fmt.Errorf("lora: Linear.Merge: already merged")
	}
	if err := l.MergeAdapters(false); err != nil {
		return fmt.Errorf("lora: Linear.Merge: %w", err)
	}
	return nil
}

// Unmerge takes the merged adapters back out: W0 ← W0 − B·A·α/r. It is an
// error unless the layer is merged.
func (l *Linear) Unmerge() error {
	if l == nil {
		return fmt.Errorf("lora: Linear.Unmerge: %w", errNilLayer)
	}
	if len(l.merged) == 0 {
		return fmt.Errorf("lora: Linear.Unmerge: not merged")
	}
	if err := l.UnmergeAdapters(); err != nil {
		return fmt.Errorf("lora: Linear.Unmerge: %w", err)
	}
	return nil
}
