package torch

/*
#include "cgotorch.h"
*/
import "C"

import "math"

// Reduction says how a loss combines its per-element values.
type Reduction int

// Reductions, as PyTorch's reduction argument.
const (
	ReductionNone Reduction = 0
	ReductionMean Reduction = 1
	ReductionSum  Reduction = 2
)

// Linear returns x·wᵀ + b like F.linear; x is (…, in), w (out, in), b
// (out) or nil.
func Linear(x, w, b *Tensor) *Tensor {
	c := begin("Linear")
	hx, hw, hb := c.in("input", x), c.in("weight", w), c.opt("bias", b)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_linear(hx, hw, hb, &out))
	}
	return c.result(out)
}

// Linear is the method form of Linear: x.Linear(w, b).
func (t *Tensor) Linear(w, b *Tensor) *Tensor { return Linear(t, w, b) }

// Embedding looks up rows of weight (num, dim) at int64 or int32 indices
// of any shape, like F.embedding(indices, weight).
func Embedding(indices, weight *Tensor) *Tensor {
	c := begin("Embedding")
	hi, hw := c.in("indices", indices), c.in("weight", weight)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_embedding(hw, hi, &out))
	}
	return c.result(out)
}

// LoraLinear computes F.linear(x, w, b) + (x·aᵀ·bmᵀ)·scaling in one call:
// w (out, in), b (out) or nil, a (r, in), bm (out, r).
func LoraLinear(x, w, b, a, bm *Tensor, scaling float64) *Tensor {
	c := begin("LoraLinear")
	hx, hw, hb := c.in("input", x), c.in("weight", w), c.opt("bias", b)
	ha, hbm := c.in("lora_a", a), c.in("lora_b", bm)
	if math.IsNaN(scaling) || math.IsInf(scaling, 0) {
		c.fail("scaling", "must be finite, got %v", scaling)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_lora_linear(hx, hw, hb, ha, hbm, C.double(scaling), &out))
	}
	return c.result(out)
}

// LoraEmbedding computes F.embedding(x, w) + F.embedding(x, aᵀ)·bmᵀ·scaling
// in one call: w (num, dim), a (r, num), bm (dim, r).
func LoraEmbedding(x, w, a, bm *Tensor, scaling float64) *Tensor {
	c := begin("LoraEmbedding")
	hx, hw := c.in("indices", x), c.in("weight", w)
	ha, hbm := c.in("lora_a", a), c.in("lora_b", bm)
	if math.IsNaN(scaling) || math.IsInf(scaling, 0) {
		c.fail("scaling", "must be finite, got %v", scaling)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_lora_embedding(hx, hw, ha, hbm, C.double(scaling), &out))
	}
	return c.result(out)
}

// LayerNorm normalises over the trailing dims given by shape, then scales
// by w and shifts by b (either may be nil), like F.layer_norm.
func LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	c := begin("LayerNorm")
	hx, hw, hb := c.in("input", x), c.opt("weight", w), c.opt("bias", b)
	if math.IsNaN(eps) || math.IsInf(eps, 0) {
		c.fail("eps", "must be finite, got %v", eps)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_layer_norm(hx, shapePtr(shape), C.int(len(shape)), hw, hb, C.double(eps), &out))
	}
	return c.result(out)
}

// Dropout zeroes elements with probability p and scales the rest by
// 1/(1-p) when train is true; otherwise it returns x unchanged (as a new
// handle).
func Dropout(x *Tensor, p float64, train bool) *Tensor {
	c := begin("Dropout")
	h := c.in("input", x)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_dropout(h, C.double(p), cbool(train), &out))
	}
	return c.result(out)
}

// Conv2dOptions are F.conv2d's stride, padding, dilation and groups. The
// zero value means stride 1, padding 0, dilation 1, groups 1.
type Conv2dOptions struct {
	Stride, Padding, Dilation [2]int64
	Groups                    int64
}

// Conv2d applies a 2-D convolution: x (N, C, H, W), w (O, C/groups, kH,
// kW), b (O) or nil.
func Conv2d(x, w, b *Tensor, o Conv2dOptions) *Tensor {
	wd := w.Dim() // -1 when nil, closed or failed: c.in reports it
	c := begin("Conv2d")
	hx, hw, hb := c.in("input", x), c.in("weight", w), c.opt("bias", b)
	if wd >= 0 && wd != 4 {
		c.fail("weight", "must be 4-D (out, in/groups, kH, kW), got %d-D", wd)
	}
	if o.Stride == [2]int64{} {
		o.Stride = [2]int64{1, 1}
	}
	if o.Dilation == [2]int64{} {
		o.Dilation = [2]int64{1, 1}
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_conv2d(hx, hw, hb, shapePtr(o.Stride[:]), shapePtr(o.Padding[:]),
			shapePtr(o.Dilation[:]), C.int64_t(o.Groups), &out))
	}
	return c.result(out)
}

// ScaledDotProductAttention returns softmax(q·kᵀ/√E + mask)·v, like
// F.scaled_dot_product_attention. mask may be nil, a bool tensor (true
// takes part) or a float tensor added to the scores. isCausal masks the
// future; dropout applies to the attention weights. libtorch 2.x runs its
// fused kernels; 1.13 runs the composed form.
func ScaledDotProductAttention(q, k, v, mask *Tensor, dropout float64, isCausal bool) *Tensor {
	c := begin("ScaledDotProductAttention")
	hq, hk, hv, hm := c.in("query", q), c.in("key", k), c.in("value", v), c.opt("attn_mask", mask)
	if !(dropout >= 0 && dropout <= 1) { // NaN too
		c.fail("dropout_p", "must be in [0, 1], got %v", dropout)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_sdpa(hq, hk, hv, hm, C.double(dropout), cbool(isCausal), &out))
	}
	return c.result(out)
}

// CrossEntropy is F.cross_entropy: logits (N, C) or (N, C, …), int64
// class targets; targets equal to ignoreIndex add nothing (PyTorch's
// default is -100).
func CrossEntropy(logits, target *Tensor, ignoreIndex int64, r Reduction) *Tensor {
	if err := cudaTargetsError("CrossEntropy", logits, target, ignoreIndex); err != nil {
		return failed(err)
	}
	c := begin("CrossEntropy")
	hl, ht := c.in("input", logits), c.in("target", target)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_cross_entropy(hl, ht, C.int64_t(ignoreIndex), C.int(r), &out))
	}
	return c.result(out)
}

// MSELoss is F.mse_loss; the shapes must be equal.
func MSELoss(input, target *Tensor, r Reduction) *Tensor {
	c := begin("MSELoss")
	hi, ht := c.in("input", input), c.in("target", target)
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_mse_loss(hi, ht, C.int(r), &out))
	}
	return c.result(out)
}
