package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

// Reduction says how a loss combines its per-element values.
type Reduction int

// Reductions, as PyTorch's reduction argument.
const (
	ReductionNone Reduction = 0
	ReductionMean Reduction = 1
	ReductionSum  Reduction = 2
)

// handles resolves the handles of op's tensor arguments. Optional ones may
// be nil; required ones give an error naming the argument.
type arg struct {
	name     string
	t        *Tensor
	optional bool
}

func handles(op string, args ...arg) ([]C.cg_tensor, error) {
	hs := make([]C.cg_tensor, len(args))
	for i, a := range args {
		if a.t == nil && a.optional {
			continue
		}
		h, err := a.t.handle(op)
		if err != nil {
			return nil, errorf(op, "%s: %s", a.name, err.(*Error).Msg)
		}
		hs[i] = h
	}
	return hs, nil
}

// Linear returns x·wᵀ + b like F.linear; x is (…, in), w (out, in), b
// (out) or nil.
func Linear(x, w, b *Tensor) (*Tensor, error) {
	hs, err := handles("Linear", arg{"input", x, false}, arg{"weight", w, false}, arg{"bias", b, true})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Linear", C.cg_linear(hs[0], hs[1], hs[2], &out))
	runtime.KeepAlive(x)
	runtime.KeepAlive(w)
	runtime.KeepAlive(b)
	return wrap(out, err)
}

// Embedding looks up rows of weight (num, dim) at int64 or int32 indices
// of any shape, like F.embedding(indices, weight).
func Embedding(indices, weight *Tensor) (*Tensor, error) {
	hs, err := handles("Embedding", arg{"indices", indices, false}, arg{"weight", weight, false})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Embedding", C.cg_embedding(hs[1], hs[0], &out))
	runtime.KeepAlive(indices)
	runtime.KeepAlive(weight)
	return wrap(out, err)
}

// LoraLinear computes F.linear(x, w, b) + (x·aᵀ·bmᵀ)·scaling in one call:
// w (out, in), b (out) or nil, a (r, in), bm (out, r).
func LoraLinear(x, w, b, a, bm *Tensor, scaling float64) (*Tensor, error) {
	hs, err := handles("LoraLinear", arg{"input", x, false}, arg{"weight", w, false}, arg{"bias", b, true},
		arg{"lora_a", a, false}, arg{"lora_b", bm, false})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("LoraLinear", C.cg_lora_linear(hs[0], hs[1], hs[2], hs[3], hs[4], C.double(scaling), &out))
	runtime.KeepAlive(x)
	runtime.KeepAlive(w)
	runtime.KeepAlive(b)
	runtime.KeepAlive(a)
	runtime.KeepAlive(bm)
	return wrap(out, err)
}

// LoraEmbedding computes F.embedding(x, w) + F.embedding(x, aᵀ)·bmᵀ·scaling
// in one call: w (num, dim), a (r, num), bm (dim, r).
func LoraEmbedding(x, w, a, bm *Tensor, scaling float64) (*Tensor, error) {
	hs, err := handles("LoraEmbedding", arg{"indices", x, false}, arg{"weight", w, false},
		arg{"lora_a", a, false}, arg{"lora_b", bm, false})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("LoraEmbedding", C.cg_lora_embedding(hs[0], hs[1], hs[2], hs[3], C.double(scaling), &out))
	runtime.KeepAlive(x)
	runtime.KeepAlive(w)
	runtime.KeepAlive(a)
	runtime.KeepAlive(bm)
	return wrap(out, err)
}

// LayerNorm normalises over the trailing dims given by shape, then scales
// by w and shifts by b (either may be nil), like F.layer_norm.
func LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) (*Tensor, error) {
	hs, err := handles("LayerNorm", arg{"input", x, false}, arg{"weight", w, true}, arg{"bias", b, true})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("LayerNorm", C.cg_layer_norm(hs[0], shapePtr(shape), C.int(len(shape)), hs[1], hs[2], C.double(eps), &out))
	runtime.KeepAlive(x)
	runtime.KeepAlive(w)
	runtime.KeepAlive(b)
	runtime.KeepAlive(shape)
	return wrap(out, err)
}

// Dropout zeroes elements with probability p and scales the rest by
// 1/(1-p) when train is true; otherwise it returns x unchanged.
func Dropout(x *Tensor, p float64, train bool) (*Tensor, error) {
	h, err := x.handle("Dropout")
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("Dropout", C.cg_dropout(h, C.double(p), cbool(train), &out))
	runtime.KeepAlive(x)
	return wrap(out, err)
}

// Conv2dOptions are F.conv2d's stride, padding, dilation and groups. The
// zero value means stride 1, padding 0, dilation 1, groups 1.
type Conv2dOptions struct {
	Stride, Padding, Dilation [2]int64
	Groups                    int64
}

// Conv2d applies a 2-D convolution: x (N, C, H, W), w (O, C/groups, kH,
// kW), b (O) or nil.
func Conv2d(x, w, b *Tensor, o Conv2dOptions) (*Tensor, error) {
	hs, err := handles("Conv2d", arg{"input", x, false}, arg{"weight", w, false}, arg{"bias", b, true})
	if err != nil {
		return nil, err
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
	err = check("Conv2d", C.cg_conv2d(hs[0], hs[1], hs[2], shapePtr(o.Stride[:]), shapePtr(o.Padding[:]),
		shapePtr(o.Dilation[:]), C.int64_t(o.Groups), &out))
	runtime.KeepAlive(x)
	runtime.KeepAlive(w)
	runtime.KeepAlive(b)
	return wrap(out, err)
}

// ScaledDotProductAttention returns softmax(q·kᵀ/√E + mask)·v, like
// F.scaled_dot_product_attention. mask may be nil, a bool tensor (true
// takes part) or a float tensor added to the scores. isCausal masks the
// future; dropout applies to the attention weights. libtorch 2.x runs its
// fused kernels; 1.13 runs the composed form.
func ScaledDotProductAttention(q, k, v, mask *Tensor, dropout float64, isCausal bool) (*Tensor, error) {
	hs, err := handles("ScaledDotProductAttention", arg{"query", q, false}, arg{"key", k, false},
		arg{"value", v, false}, arg{"mask", mask, true})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("ScaledDotProductAttention", C.cg_sdpa(hs[0], hs[1], hs[2], hs[3], C.double(dropout), cbool(isCausal), &out))
	runtime.KeepAlive(q)
	runtime.KeepAlive(k)
	runtime.KeepAlive(v)
	runtime.KeepAlive(mask)
	return wrap(out, err)
}

// CrossEntropy is F.cross_entropy: logits (N, C) or (N, C, …), int64
// class targets; targets equal to ignoreIndex add nothing (PyTorch's
// default is -100).
func CrossEntropy(logits, target *Tensor, ignoreIndex int64, r Reduction) (*Tensor, error) {
	hs, err := handles("CrossEntropy", arg{"logits", logits, false}, arg{"target", target, false})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("CrossEntropy", C.cg_cross_entropy(hs[0], hs[1], C.int64_t(ignoreIndex), C.int(r), &out))
	runtime.KeepAlive(logits)
	runtime.KeepAlive(target)
	return wrap(out, err)
}

// MSELoss is F.mse_loss; the shapes must be equal.
func MSELoss(input, target *Tensor, r Reduction) (*Tensor, error) {
	hs, err := handles("MSELoss", arg{"input", input, false}, arg{"target", target, false})
	if err != nil {
		return nil, err
	}
	var out C.cg_tensor
	err = check("MSELoss", C.cg_mse_loss(hs[0], hs[1], C.int(r), &out))
	runtime.KeepAlive(input)
	runtime.KeepAlive(target)
	return wrap(out, err)
}
