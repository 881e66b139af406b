// Package gpt2 is GPT-2 (transformers' GPT2LMHeadModel) built from golora's
// layers: learned positions, Conv1D projections whose weights are stored
// in×out (c_attn with q|k|v fused, c_proj, c_fc), the tanh GELU (gelu_new)
// and a language-model head tied to the token embeddings.
//
// Parameter names are transformers' state-dict names
// ("transformer.h.0.attn.c_attn.weight", "transformer.wte.weight"), so a
// Hugging Face checkpoint loads without renaming (Load) and PEFT adapter
// keys map one to one. The projections are module.Layer fields registered
// with module.Child, so lora.Apply can wrap c_attn, c_proj and c_fc.
//
// Forward passes follow golora's v2 style: they return a *torch.Tensor,
// possibly failed (errors stick), and every intermediate joins the scope of
// the input ids:
//
//	s := torch.NewScope()
//	defer s.Close()
//	logits, err := s.Done(model.Forward(s.Own(ids)))
package gpt2

import (
	"fmt"
	"math"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Model is GPT2LMHeadModel: the transformer and its language-model head.
type Model struct {
	module.Base
	Config      Config
	Transformer *Transformer // "transformer"
	// LMHead (lm_head) maps hidden states to logits; with
	// Config.TieWordEmbeddings its weight is transformer.wte.weight itself.
	LMHead module.Layer
}

// Transformer is GPT2Model: embeddings, blocks and the final LayerNorm.
type Transformer struct {
	module.Base
	WTE module.Layer               // "wte": token embeddings (vocab, n_embd): a *module.Embedding, or an adapter around it
	WPE module.Layer               // "wpe": learned positions (n_positions, n_embd): a *module.Embedding, or an adapter
	H   *module.ModuleList[*Block] // "h": the blocks
	LnF *module.LayerNorm          // "ln_f"
	cfg *Config

	// GradientCheckpointing runs each block as a torch.Checkpoint region
	// in training forwards (grad on, no cache), like transformers'
	// gradient_checkpointing_enable(): activations are recomputed in the
	// backward instead of kept (see Model.SetGradientCheckpointing).
	GradientCheckpointing bool
}

// Block is GPT2Block: pre-LayerNorm attention and MLP, each with a residual.
type Block struct {
	module.Base
	Ln1  *module.LayerNorm // "ln_1"
	Attn *Attention        // "attn"
	Ln2  *module.LayerNorm // "ln_2"
	MLP  *MLP              // "mlp"
}

// Attention is GPT2Attention: causal multi-head self-attention with the
// q, k and v projections fused in CAttn.
type Attention struct {
	module.Base
	CAttn module.Layer // "c_attn": n_embd → 3·n_embd (Conv1D, weight in×out)
	CProj module.Layer // "c_proj": n_embd → n_embd (Conv1D)
	layer int
	cfg   *Config
}

// MLP is GPT2MLP: c_fc, the activation, c_proj.
type MLP struct {
	module.Base
	CFc   module.Layer // "c_fc": n_embd → n_inner (Conv1D)
	CProj module.Layer // "c_proj": n_inner → n_embd (Conv1D)
	cfg   *Config
}

// New builds a model from cfg with transformers' initialisation: weights
// from N(0, initializer_range²) (the blocks' c_proj with std
// initializer_range/√(2·n_layer)), biases zero, LayerNorms one and zero.
// Options choose the dtype and device (float32 on the CPU by default).
func New(cfg Config, opts ...hf.Option) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("gpt2: New: %w", err)
	}
	m, err := build(cfg, []torch.Option{torch.WithDType(o.DType), torch.WithDevice(o.Device)})
	if err != nil {
		return nil, fmt.Errorf("gpt2: New: %w", err)
	}
	return m, nil
}

// build makes the model's layers and registers them. On error nothing is
// left allocated.
func build(cfg Config, opts []torch.Option) (m *Model, err error) {
	m = &Model{Config: cfg}
	defer func() {
		if err != nil {
			module.Close(m)
			m = nil
		}
	}()
	c := &m.Config
	std := c.InitializerRange
	projStd := std / math.Sqrt(2*float64(c.NLayer))
	tr := &Transformer{cfg: c, H: module.NewModuleList[*Block]()}
	m.Transformer = tr
	module.Child(&m.Base, "transformer", &m.Transformer)
	wte, err := embedding(c.VocabSize, c.NEmbd, std, opts)
	if err != nil {
		return m, err
	}
	tr.WTE = wte
	if tr.WPE, err = embedding(c.NPositions, c.NEmbd, std, opts); err != nil {
		return m, err
	}
	module.Child(&tr.Base, "wte", &tr.WTE)
	module.Child(&tr.Base, "wpe", &tr.WPE)
	module.Child(&tr.Base, "h", &tr.H)
	for i := 0; i < int(c.NLayer); i++ {
		b := &Block{Attn: &Attention{layer: i, cfg: c}, MLP: &MLP{cfg: c}}
		tr.H.Append(b)
		module.Child(&b.Base, "ln_1", &b.Ln1)
		module.Child(&b.Base, "attn", &b.Attn)
		module.Child(&b.Base, "ln_2", &b.Ln2)
		module.Child(&b.Base, "mlp", &b.MLP)
		if b.Ln1, err = layerNorm(c.NEmbd, c.LayerNormEpsilon, opts); err != nil {
			return m, err
		}
		if b.Ln2, err = layerNorm(c.NEmbd, c.LayerNormEpsilon, opts); err != nil {
			return m, err
		}
		for _, p := range []struct {
			owner   *module.Base
			name    string
			field   *module.Layer
			in, out int64
			std     float64
		}{
			{&b.Attn.Base, "c_attn", &b.Attn.CAttn, c.NEmbd, 3 * c.NEmbd, std},
			{&b.Attn.Base, "c_proj", &b.Attn.CProj, c.NEmbd, c.NEmbd, projStd},
			{&b.MLP.Base, "c_fc", &b.MLP.CFc, c.NEmbd, c.inner(), std},
			{&b.MLP.Base, "c_proj", &b.MLP.CProj, c.inner(), c.NEmbd, projStd},
		} {
			l, err := conv1D(p.in, p.out, p.std, opts)
			if err != nil {
				return m, err
			}
			*p.field = l
			module.Child(p.owner, p.name, p.field)
		}
	}
	if tr.LnF, err = layerNorm(c.NEmbd, c.LayerNormEpsilon, opts); err != nil {
		return m, err
	}
	module.Child(&tr.Base, "ln_f", &tr.LnF)
	var head *module.Linear
	if c.TieWordEmbeddings {
		head, err = module.LinearFrom(wte.Weight, nil) // the same tensor: tied
	} else {
		w := torch.Empty([]int64{c.VocabSize, c.NEmbd}, opts...)
		if err = w.Normal_(0, std); err == nil {
			head, err = module.LinearFrom(w, nil)
		}
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		return m, fmt.Errorf("lm_head: %w", err)
	}
	m.LMHead = head
	module.Child(&m.Base, "lm_head", &m.LMHead)
	return m, nil
}

func embedding(num, dim int64, std float64, opts []torch.Option) (*module.Embedding, error) {
	w := torch.Empty([]int64{num, dim}, opts...)
	err := w.Normal_(0, std)
	var e *module.Embedding
	if err == nil {
		e, err = module.EmbeddingFrom(w)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	return e, nil
}

func conv1D(in, out int64, std float64, opts []torch.Option) (*module.Conv1D, error) {
	l, err := module.NewConv1D(in, out, opts...)
	if err == nil && std != 0.02 {
		err = l.Weight.Normal_(0, std)
		if err != nil {
			module.Close(l)
		}
	}
	return l, err
}

func layerNorm(d int64, eps float64, opts []torch.Option) (*module.LayerNorm, error) {
	n, err := module.NewLayerNorm([]int64{d}, opts...)
	if err != nil {
		return nil, err
	}
	n.Eps = eps
	return n, nil
}

// Forward returns the logits (B, T, vocab) of int64 token ids (B, T), with
// positions 0…T−1 and no padding. It makes Model a module.Layer.
func (m *Model) Forward(ids *torch.Tensor) *torch.Tensor {
	return m.ForwardCached(module.Inputs{IDs: ids}, nil)
}

// ForwardInputs returns the logits for in's IDs with its AttentionMask and
// Positions (see Hidden). It makes Model a module.MultiLayer.
func (m *Model) ForwardInputs(in module.Inputs) *torch.Tensor {
	return m.ForwardCached(in, nil)
}

// ForwardCached returns the logits (B, T, vocab) of the T new tokens in
// in.IDs, reading and extending cache (nil: none); see Hidden.
// NewCache makes a cache for the model.
func (m *Model) ForwardCached(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
	return m.LMHead.Forward(m.Hidden(in, cache))
}

// Logits is ForwardCached(Inputs{IDs: ids, AttentionMask: mask}, cache):
// the logits of the new tokens ids (B, T) given the padding mask (B,
// past+T) or nil, positions from the mask. With NumLayers and Device it is
// the causal-LM interface that models/generate drives.
func (m *Model) Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	return m.ForwardCached(module.Inputs{IDs: ids, AttentionMask: mask}, cache)
}

// NumLayers returns the number of blocks, the layers a KV cache needs.
func (m *Model) NumLayers() int { return int(m.Config.NLayer) }

// NewCache returns an empty KV cache for the model; Close it after use.
func (m *Model) NewCache() *hf.KVCache { return hf.NewKVCache(m.NumLayers()) }

// Device returns where the model's parameters are.
func (m *Model) Device() torch.Device { return m.Transformer.LnF.Weight.Device() }

// DType returns the dtype of the model's floating-point parameters.
func (m *Model) DType() torch.DType { return m.Transformer.LnF.Weight.DType() }

// Hidden returns the hidden states (B, T, n_embd) after ln_f, before the
// head, for the inputs:
//
//   - IDs: int64 token ids (B, T), the new tokens when cache holds earlier
//     ones; or Embeds (B, T, n_embd) instead.
//   - AttentionMask (optional): (B, past+T), 1 for tokens and 0 for padding
//     (left padding for batched generation), covering the cached positions
//     too, as transformers' generate passes it. Padded keys get no attention.
//   - Positions (optional): (B, T) or (1, T). When absent they come from the
//     mask as transformers' generate makes them, cumsum(mask)−1 with 0 at the
//     padding, or are past…past+T−1 without a mask.
//
// cache (nil: none) holds the keys and values of earlier passes; Hidden
// appends this pass's. The result joins the scope of the ids.
func (m *Model) Hidden(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
	return m.Transformer.hidden(in, cache)
}

func (tr *Transformer) hidden(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
	var h *torch.Tensor
	switch {
	case in.Embeds != nil:
		h = in.Embeds
	case in.IDs != nil:
		if in.IDs.Err() == nil && in.IDs.Dim() != 2 {
			return torch.Failed(fmt.Errorf("gpt2: input_ids must be (batch, seq), got shape %v", in.IDs.Shape()))
		}
		h = tr.WTE.Forward(in.IDs)
	default:
		return torch.Failed(fmt.Errorf("gpt2: neither input_ids nor inputs_embeds given"))
	}
	if err := h.Err(); err != nil {
		return h
	}
	if h.Dim() != 3 {
		return torch.Failed(fmt.Errorf("gpt2: inputs_embeds must be (batch, seq, n_embd), got shape %v", h.Shape()))
	}
	B, T := h.SizeOf(0), h.SizeOf(1)
	var past int64
	if cache != nil {
		past = cache.Len()
	}
	if past+T > tr.cfg.NPositions {
		return torch.Failed(fmt.Errorf("gpt2: sequence of %d positions (%d cached + %d new) exceeds n_positions %d",
			past+T, past, T, tr.cfg.NPositions))
	}
	mask := in.AttentionMask
	if mask != nil {
		if err := mask.Err(); err != nil {
			return mask
		}
		if s := mask.Shape(); len(s) != 2 || s[0] != B || s[1] != past+T {
			return torch.Failed(fmt.Errorf("gpt2: attention_mask must be (batch %d, past+new %d), got shape %v", B, past+T, s))
		}
	}
	pos := in.Positions
	if pos == nil {
		pos = positions(h, mask, past, T)
	}
	h = h.Add(tr.WPE.Forward(pos))
	h = torch.Dropout(h, tr.cfg.EmbdPdrop, tr.Training())
	bias, causal := attentionBias(h, mask, past, T)
	ckpt := tr.GradientCheckpointing && cache == nil && torch.GradEnabled()
	for i, b := range tr.H.All() {
		if ckpt {
			h = b.checkpointed(h, bias, causal)
		} else {
			h = b.forward(h, bias, causal, cache, i)
		}
	}
	return tr.LnF.Forward(h)
}

// positions returns the position ids (B or 1, T) of the new tokens.
func positions(like, mask *torch.Tensor, past, T int64) *torch.Tensor {
	if mask == nil {
		return torch.Arange(float64(past), float64(past+T), 1,
			torch.WithDType(torch.Int64), torch.WithDevice(like.Device()), torch.In(like.Scope())).Unsqueeze(0)
	}
	return hf.PositionIDs(mask).Narrow(1, past, T)
}

// attentionBias returns transformers' eager additive mask (B, 1, T,
// past+T) in h's dtype (see hf.CausalMask). Without a padding mask and a
// cache it returns nil and true: SDPA's is_causal does the same.
func attentionBias(h, mask *torch.Tensor, past, T int64) (*torch.Tensor, bool) {
	if mask == nil && past == 0 {
		return nil, true
	}
	return hf.CausalMask(h.Scope(), hf.MaskSpec{
		Batch: h.SizeOf(0), Query: T, Past: past, AttentionMask: mask,
		DType: h.DType(), Device: h.Device(),
	}), false
}

func (b *Block) forward(x, bias *torch.Tensor, causal bool, cache *hf.KVCache, layer int) *torch.Tensor {
	// In a scope of its own: the intermediates autograd does not keep are
	// freed when the block returns (hf.Block).
	return hf.Block(x, func(x *torch.Tensor) *torch.Tensor {
		x = x.Add(b.Attn.forward(b.Ln1.Forward(x), bias, causal, cache, layer))
		return x.Add(b.MLP.Forward(b.Ln2.Forward(x)))
	})
}

// checkpointed runs the block as a torch.Checkpoint region (no cache);
// the mask goes in as an input so that the backward's recomputation reads
// it after the forward's scope has closed.
func (b *Block) checkpointed(x, bias *torch.Tensor, causal bool) *torch.Tensor {
	in := []*torch.Tensor{x}
	if bias != nil {
		in = append(in, bias)
	}
	return torch.Checkpoint(func(t []*torch.Tensor) []*torch.Tensor {
		var bb *torch.Tensor
		if len(t) > 1 {
			bb = t[1]
		}
		return []*torch.Tensor{b.forward(t[0], bb, causal, nil, 0)}
	}, in...)[0]
}

// Forward is the block without cache or mask: causal attention over x
// (B, T, n_embd). It makes Block a module.Layer.
func (b *Block) Forward(x *torch.Tensor) *torch.Tensor { return b.forward(x, nil, true, nil, 0) }

// Forward is causal self-attention over x (B, T, n_embd), without cache or
// mask. It makes Attention a module.Layer.
func (a *Attention) Forward(x *torch.Tensor) *torch.Tensor { return a.forward(x, nil, true, nil, 0) }

func (a *Attention) forward(x, bias *torch.Tensor, causal bool, cache *hf.KVCache, layer int) *torch.Tensor {
	B, T, C, H := x.SizeOf(0), x.SizeOf(1), x.SizeOf(2), a.cfg.NHead
	qkv := a.CAttn.Forward(x)
	q := qkv.Narrow(2, 0, C).View(B, T, H, C/H).Transpose(1, 2)
	k := qkv.Narrow(2, C, C).View(B, T, H, C/H).Transpose(1, 2)
	v := qkv.Narrow(2, 2*C, C).View(B, T, H, C/H).Transpose(1, 2)
	if cache != nil {
		k, v = cache.Update(layer, k, v)
	}
	if s := a.qScale(C / H); s != 1 {
		q = q.MulScalar(s)
	}
	p := 0.0
	if a.Training() {
		p = a.cfg.AttnPdrop
	}
	y := torch.ScaledDotProductAttention(q, k, v, bias, p, causal).Transpose(1, 2).Reshape(B, T, C)
	return torch.Dropout(a.CProj.Forward(y), a.cfg.ResidPdrop, a.Training())
}

// qScale returns the factor on q that turns SDPA's 1/√head_dim into
// GPT-2's scaling of the scores.
func (a *Attention) qScale(headDim int64) float64 {
	s := 1.0
	if !a.cfg.ScaleAttnWeights {
		s = math.Sqrt(float64(headDim))
	}
	if a.cfg.ScaleAttnByInverseLayerIdx {
		s /= float64(a.layer + 1)
	}
	return s
}

// Forward is c_proj(act(c_fc(x))) with dropout in training mode.
func (m *MLP) Forward(x *torch.Tensor) *torch.Tensor {
	h := activate(m.CFc.Forward(x), m.cfg.ActivationFunction)
	return torch.Dropout(m.CProj.Forward(h), m.cfg.ResidPdrop, m.Training())
}

func activate(x *torch.Tensor, name string) *torch.Tensor {
	switch name {
	case "gelu_new", "gelu_pytorch_tanh":
		return x.GeluTanh()
	case "gelu":
		return x.Gelu()
	case "relu":
		return x.Relu()
	case "silu", "swish":
		return x.Silu()
	}
	return torch.Failed(fmt.Errorf("gpt2: activation_function %q is not supported", name))
}

// SetGradientCheckpointing turns activation checkpointing of the blocks on
// or off (Transformer.GradientCheckpointing).
func (m *Model) SetGradientCheckpointing(on bool) { m.Transformer.GradientCheckpointing = on }
