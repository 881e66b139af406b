package lora

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// The built-in kinds, in PEFT's dispatch order (Embedding, Conv2d, Linear,
// Conv1D). A later RegisterDispatcher goes before them.
func init() {
	dispatchers = []Dispatcher{
		func(m module.Module) (Kind, bool) {
			e, ok := m.(*module.Embedding)
			if !ok || e == nil {
				return nil, false
			}
			return &embeddingKind{e}, true
		},
		func(m module.Module) (Kind, bool) {
			c, ok := m.(*module.Conv2d)
			if !ok || c == nil {
				return nil, false
			}
			return &conv2dKind{c}, true
		},
		func(m module.Module) (Kind, bool) {
			l, ok := m.(*module.Linear)
			if !ok || l == nil {
				return nil, false
			}
			return &linearKind{l}, true
		},
		func(m module.Module) (Kind, bool) {
			c, ok := m.(*module.Conv1D)
			if !ok || c == nil {
				return nil, false
			}
			return &conv1DKind{c}, true
		},
	}
}

// outputOwner: ops on a parameter alone (A.T(), a view of the bias) make
// unscoped handles; they are adopted into the scope of the input.

// linearKind: W out×in, A r×in, B out×r; y = x·Wᵀ + b.
type linearKind struct{ m *module.Linear }

func (k *linearKind) Name() string          { return "Linear" }
func (k *linearKind) Base() module.Layer    { return k.m }
func (k *linearKind) Weight() *torch.Tensor { return k.m.Weight }
func (k *linearKind) Bias() *torch.Tensor   { return k.m.Bias }
func (k *linearKind) Shapes(r int64) (a, b []int64) {
	return []int64{r, k.m.Weight.SizeOf(1)}, []int64{k.m.Weight.SizeOf(0), r}
}

// Update: x·Aᵀ·Bᵀ, as PEFT's lora_B(lora_A(x)).
func (k *linearKind) Update(x, a, b *torch.Tensor) *torch.Tensor {
	return torch.Linear(torch.Linear(x, a, nil), b, nil)
}

// Delta: B·A (out×r · r×in = out×in).
func (k *linearKind) Delta(a, b *torch.Tensor) *torch.Tensor { return b.Mm(a) }

// WeightNorm: ‖W[o,:]‖₂ per output row, [out].
func (k *linearKind) WeightNorm(w *torch.Tensor) *torch.Tensor {
	return w.Norm(2, []int64{1}, false)
}
func (k *linearKind) WeightView(v *torch.Tensor) *torch.Tensor { return v.View(-1, 1) }
func (k *linearKind) OutputView(v *torch.Tensor) *torch.Tensor { return v.View(-1) }
func (k *linearKind) wrapper() (AdapterLayer, *Layer) {
	l := &Linear{}
	return l, &l.Layer
}

// conv1DKind: GPT-2's Conv1D, W in×out (fan_in_fan_out), A r×in, B out×r
// as for Linear; ΔW = (B·A)ᵀ.
type conv1DKind struct{ m *module.Conv1D }

func (k *conv1DKind) Name() string          { return "Conv1D" }
func (k *conv1DKind) Base() module.Layer    { return k.m }
func (k *conv1DKind) Weight() *torch.Tensor { return k.m.Weight }
func (k *conv1DKind) Bias() *torch.Tensor   { return k.m.Bias }
func (k *conv1DKind) Shapes(r int64) (a, b []int64) {
	return []int64{r, k.m.Weight.SizeOf(0)}, []int64{k.m.Weight.SizeOf(1), r}
}
func (k *conv1DKind) Update(x, a, b *torch.Tensor) *torch.Tensor {
	return torch.Linear(torch.Linear(x, a, nil), b, nil)
}

// Delta: (B·A)ᵀ, in×out like W.
func (k *conv1DKind) Delta(a, b *torch.Tensor) *torch.Tensor { return b.Mm(a).T() }

// WeightNorm: the norm of each output column of W (in×out), [out].
func (k *conv1DKind) WeightNorm(w *torch.Tensor) *torch.Tensor {
	return w.Norm(2, []int64{0}, false)
}
func (k *conv1DKind) WeightView(v *torch.Tensor) *torch.Tensor { return v.View(1, -1) }
func (k *conv1DKind) OutputView(v *torch.Tensor) *torch.Tensor { return v.View(-1) }
func (k *conv1DKind) wrapper() (AdapterLayer, *Layer) {
	l := &Conv1D{}
	return l, &l.Layer
}

// embeddingKind: W num×dim, A r×num (PEFT's lora_embedding_A), B dim×r
// (lora_embedding_B); row i of Aᵀ·Bᵀ is token i's update.
type embeddingKind struct{ m *module.Embedding }

func (k *embeddingKind) Name() string          { return "Embedding" }
func (k *embeddingKind) Base() module.Layer    { return k.m }
func (k *embeddingKind) Weight() *torch.Tensor { return k.m.Weight }
func (k *embeddingKind) Bias() *torch.Tensor   { return nil }
func (k *embeddingKind) Shapes(r int64) (a, b []int64) {
	return []int64{r, k.m.Weight.SizeOf(0)}, []int64{k.m.Weight.SizeOf(1), r}
}

// Update: F.embedding(x, Aᵀ)·Bᵀ.
func (k *embeddingKind) Update(x, a, b *torch.Tensor) *torch.Tensor {
	return torch.Linear(torch.Embedding(x, adopt(x, a.T())), b, nil)
}

// Delta: (B·A)ᵀ, num×dim like W.
func (k *embeddingKind) Delta(a, b *torch.Tensor) *torch.Tensor { return b.Mm(a).T() }
func (k *embeddingKind) WeightNorm(w *torch.Tensor) *torch.Tensor {
	return w.Norm(2, []int64{0}, false)
}
func (k *embeddingKind) WeightView(v *torch.Tensor) *torch.Tensor { return v.View(1, -1) }
func (k *embeddingKind) OutputView(v *torch.Tensor) *torch.Tensor { return v.View(-1) }
func (k *embeddingKind) wrapper() (AdapterLayer, *Layer) {
	l := &Embedding{}
	return l, &l.Layer
}

// conv2dKind: W out×(in/g)×kh×kw for g groups; A is a conv with the
// base's kernel, stride and padding over all in channels (r×in×kh×kw), B a
// 1×1 conv with the base's groups (out×(r/g)×1×1), as PEFT builds them
// (r must be a multiple of g). For g > 1, ΔW has no form in the base's
// layout, so merging, DoRA and the weighted combinations refuse, as in
// PEFT.
type conv2dKind struct{ m *module.Conv2d }

func (k *conv2dKind) Name() string          { return "Conv2d" }
func (k *conv2dKind) Base() module.Layer    { return k.m }
func (k *conv2dKind) Weight() *torch.Tensor { return k.m.Weight }
func (k *conv2dKind) Bias() *torch.Tensor   { return k.m.Bias }

// groups returns the base's groups (at least 1).
func (k *conv2dKind) groups() int64 { return max(k.m.Opts.Groups, 1) }

func (k *conv2dKind) Shapes(r int64) (a, b []int64) {
	s := k.m.Weight.Shape()
	if len(s) != 4 {
		return []int64{r, -1}, []int64{-1, r}
	}
	g := k.groups()
	return []int64{r, s[1] * g, s[2], s[3]}, []int64{s[0], r / g, 1, 1}
}

// Update: conv2d(conv2d(x, A, stride, padding), B, groups), as PEFT builds
// A (the base's kernel, stride and padding; no dilation) and B (the base's
// groups).
func (k *conv2dKind) Update(x, a, b *torch.Tensor) *torch.Tensor {
	o := torch.Conv2dOptions{Stride: k.m.Opts.Stride, Padding: k.m.Opts.Padding}
	return torch.Conv2d(torch.Conv2d(x, a, nil, o), b, nil, torch.Conv2dOptions{Groups: k.groups()})
}

// Delta: B (out×r) · A (r × in·kh·kw), reshaped to out×in×kh×kw. A grouped
// conv's update has no ΔW in the base's layout: an error.
func (k *conv2dKind) Delta(a, b *torch.Tensor) *torch.Tensor {
	if g := k.groups(); g > 1 {
		return torch.Failed(fmt.Errorf("a Conv2d with groups=%d has no merged form of its LoRA update (ΔW); PEFT cannot merge it either", g))
	}
	s := a.Shape()
	r := b.SizeOf(1)
	return b.View(-1, r).Mm(a.View(r, -1)).View(-1, s[1], s[2], s[3])
}

// WeightNorm: the norm over (in, kh, kw) per output channel, [1,out,1,1]
// as PEFT's _DoraConvNdLayer.
func (k *conv2dKind) WeightNorm(w *torch.Tensor) *torch.Tensor {
	return w.Norm(2, []int64{1, 2, 3}, true).Transpose(1, 0)
}
func (k *conv2dKind) WeightView(v *torch.Tensor) *torch.Tensor { return v.View(-1, 1, 1, 1) }
func (k *conv2dKind) OutputView(v *torch.Tensor) *torch.Tensor { return v.View(1, -1, 1, 1) }
func (k *conv2dKind) wrapper() (AdapterLayer, *Layer) {
	l := &Conv2d{}
	return l, &l.Layer
}

// Conv1D is GPT-2's Conv1D (module.Conv1D, weight in×out) with LoRA
// adapters: y = x·W + b + Σ x·Aᵀ·Bᵀ·s. A is r×in and B out×r as for
// Linear (PEFT's fan_in_fan_out: ΔW = (B·A)ᵀ when merging).
type Conv1D struct{ Layer }

// Conv2d is a module.Conv2d with LoRA adapters, as PEFT's: A is a
// convolution with the base's kernel, stride, padding and dilation
// (r×in×kh×kw), B a 1×1 convolution (out×r×1×1).
type Conv2d struct{ Layer }

// Forward returns x·W + b plus every active adapter's x·Aᵀ·Bᵀ·s (see
// Layer.Forward); a nil layer gives a failed tensor.
func (c *Conv1D) Forward(x *torch.Tensor) *torch.Tensor {
	if c == nil {
		return torch.Linear(x, nil, nil)
	}
	return c.Layer.Forward(x)
}

// Forward returns conv2d(x, W, b) plus every active adapter's
// conv2d(conv2d(x, A), B)·s (see Layer.Forward); a nil layer gives a
// failed tensor.
func (c *Conv2d) Forward(x *torch.Tensor) *torch.Tensor {
	if c == nil {
		return torch.Conv2d(x, nil, nil, torch.Conv2dOptions{})
	}
	return c.Layer.Forward(x)
}
