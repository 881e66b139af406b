package llama

import (
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Model is a Llama-family causal language model: transformers'
// LlamaForCausalLM (MistralForCausalLM, Qwen2ForCausalLM), with the same
// parameter names: model.embed_tokens.weight,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight (and biases),
// model.layers.N.mlp.{gate,up,down}_proj.weight,
// model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight
// and lm_head.weight (absent from the state dict when tied to the
// embedding).
//
// Forward passes run transformers' eager attention op for op (the softmax
// in float32, masks added as torch.finfo(dtype).min), so float32 logits
// match transformers' to rounding.
type Model struct {
	module.Base
	Cfg    Config
	Model  *Decoder     // "model"
	LMHead module.Layer // "lm_head": a *module.Linear, or an adapter around it

	// GradientCheckpointing runs each block as a torch.Checkpoint region
	// in training forwards (grad on, no cache), like transformers'
	// gradient_checkpointing_enable(): a block's activations are not kept
	// but recomputed in the backward, so memory holds one block's
	// activations instead of all of them, for a second forward's time.
	GradientCheckpointing bool
}

// Decoder is LlamaModel: the embedding, the blocks and the final norm.
type Decoder struct {
	module.Base
	EmbedTokens module.Layer               // "embed_tokens": a *module.Embedding, or an adapter
	Layers      *module.ModuleList[*Block] // "layers"
	Norm        *RMSNorm                   // "norm"
	RotaryEmb   *Rotary                    // "rotary_emb" (a non-persistent buffer only)
}

// Block is LlamaDecoderLayer: pre-norm attention and MLP, each added to
// the residual stream.
type Block struct {
	module.Base
	SelfAttn               *Attention // "self_attn"
	MLP                    *MLP       // "mlp"
	InputLayernorm         *RMSNorm   // "input_layernorm"
	PostAttentionLayernorm *RMSNorm   // "post_attention_layernorm"

	// Index is the layer's position (its KV cache slot); Sliding says
	// whether it uses the sliding-window mask.
	Index   int
	Sliding bool
}

// Attention is grouped-query self-attention with rotary embeddings. The
// projections are Layers so that lora.Apply can wrap them.
type Attention struct {
	module.Base
	QProj, KProj, VProj, OProj module.Layer // "q_proj", "k_proj", "v_proj", "o_proj"

	NumHeads, NumKVHeads, HeadDim int64
	Dropout                       float64 // attention_dropout, in training mode
}

// MLP is the SwiGLU feed-forward block: down(silu(gate(x)) * up(x)).
type MLP struct {
	module.Base
	GateProj, UpProj, DownProj module.Layer // "gate_proj", "up_proj", "down_proj"
}

// Load reads a Llama, Mistral or Qwen2 checkpoint from dir: config.json
// (either style) and model.safetensors or its shards, strictly (a missing,
// unexpected or misshaped weight is an error naming it). Options choose
// the dtype (float32 by default) and the device.
func Load(dir string, opts ...hf.Option) (*Model, error) {
	c, err := hf.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFrom(c)
	if err != nil {
		return nil, err
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := checkSize(dir, cfg); err != nil {
		return nil, err
	}
	// Built on the CPU with uninitialised memory (never touched: the load
	// replaces every tensor's data), then filled on o.Device.
	m, err := build(*cfg, hf.Options{DType: o.DType, Device: torch.CPU}, false)
	if err != nil {
		return nil, err
	}
	spec := hf.LoadSpec{
		BasePrefix: "model",
		// Old checkpoints carry each layer's RoPE buffer.
		Ignore: []string{`(^|\.)rotary_emb\.inv_freq$`},
	}
	if err := hf.LoadWeightsWith(dir, m, o, spec); err != nil {
		module.Close(m)
		return nil, err
	}
	return m, nil
}

// checkSize compares the sizes cfg gives with the checkpoint's headers
// before anything is allocated (hf.CheckSize).
func checkSize(dir string, cfg *Config) error {
	V, H, I, L := float64(cfg.VocabSize), float64(cfg.HiddenSize), float64(cfg.IntermediateSize), float64(cfg.NumHiddenLayers)
	HD, KD := float64(cfg.NumAttentionHeads)*float64(cfg.headDim()), float64(cfg.kvHeads())*float64(cfg.headDim())
	// Weights only: biases and norms are smaller than the weights beside them.
	n := V*H + L*(2*H*HD+2*H*KD+3*H*I) + H
	expect := []hf.Expect{{Name: "model.embed_tokens.weight", Shape: []int64{cfg.VocabSize, cfg.HiddenSize}}}
	if !cfg.TieWordEmbeddings {
		n += V * H
		expect = append(expect, hf.Expect{Name: "lm_head.weight", Shape: []int64{cfg.VocabSize, cfg.HiddenSize}})
	}
	expect = append(expect,
		hf.Expect{Name: "model.layers.0.mlp.gate_proj.weight", Shape: []int64{cfg.IntermediateSize, cfg.HiddenSize}},
		hf.Expect{Name: "model.norm.weight", Shape: []int64{cfg.HiddenSize}})
	return hf.CheckSize(dir, hf.LoadSpec{BasePrefix: "model"}, n, expect...)
}

// New builds a model from cfg with random weights drawn like transformers'
// _init_weights (linear and embedding weights from N(0,
// InitializerRange²), biases zero, norms one; not the same draws). Options
// choose the dtype (float32 by default) and the device.
func New(cfg Config, opts ...hf.Option) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return build(cfg, o, true)
}

// build makes the model; with init false the weights are uninitialised.
func build(cfg Config, o hf.Options, init bool) (m *Model, err error) {
	if cfg.NumKeyValueHeads == 0 {
		cfg.NumKeyValueHeads = cfg.NumAttentionHeads
	}
	if cfg.HeadDim == 0 {
		cfg.HeadDim = cfg.HiddenSize / cfg.NumAttentionHeads
	}
	cfg.Sliding = append([]bool(nil), cfg.Sliding...)
	cfg.EOSTokenIDs = append([]int64(nil), cfg.EOSTokenIDs...)
	topts := []torch.Option{torch.WithDType(o.DType), torch.WithDevice(o.Device)}
	var made []*torch.Tensor // closed on failure
	defer func() {
		if err != nil {
			torch.CloseAll(made...)
		}
	}()
	weight := func(shape ...int64) (*torch.Tensor, error) {
		w := torch.Empty(shape, topts...)
		if err := w.Err(); err != nil {
			return nil, err
		}
		made = append(made, w)
		if init {
			if err := w.Normal_(0, cfg.InitializerRange); err != nil {
				return nil, err
			}
		}
		return w, nil
	}
	linear := func(in, out int64, bias bool) (module.Layer, error) {
		w, err := weight(out, in)
		if err != nil {
			return nil, err
		}
		var b *torch.Tensor
		if bias {
			b = torch.Zeros([]int64{out}, topts...)
			if err := b.Err(); err != nil {
				return nil, err
			}
			made = append(made, b)
		}
		return module.LinearFrom(w, b)
	}
	norm := func() (*RMSNorm, error) {
		n, err := NewRMSNorm(cfg.HiddenSize, cfg.RMSNormEps, topts...)
		if err == nil {
			made = append(made, n.Weight)
		}
		return n, err
	}
	H, Hkv, D := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim

	d := &Decoder{}
	embW, err := weight(cfg.VocabSize, cfg.HiddenSize)
	if err != nil {
		return nil, err
	}
	emb, err := module.EmbeddingFrom(embW)
	if err != nil {
		return nil, err
	}
	d.EmbedTokens = emb
	blocks := make([]*Block, cfg.NumHiddenLayers)
	for i := range blocks {
		b := &Block{Index: i, Sliding: cfg.SlidingWindow > 0 && i < len(cfg.Sliding) && cfg.Sliding[i]}
		a := &Attention{NumHeads: H, NumKVHeads: Hkv, HeadDim: D, Dropout: cfg.AttentionDropout}
		if a.QProj, err = linear(cfg.HiddenSize, H*D, cfg.QKVBias); err != nil {
			return nil, err
		}
		if a.KProj, err = linear(cfg.HiddenSize, Hkv*D, cfg.QKVBias); err != nil {
			return nil, err
		}
		if a.VProj, err = linear(cfg.HiddenSize, Hkv*D, cfg.QKVBias); err != nil {
			return nil, err
		}
		if a.OProj, err = linear(H*D, cfg.HiddenSize, cfg.OBias); err != nil {
			return nil, err
		}
		module.Child(&a.Base, "q_proj", &a.QProj)
		module.Child(&a.Base, "k_proj", &a.KProj)
		module.Child(&a.Base, "v_proj", &a.VProj)
		module.Child(&a.Base, "o_proj", &a.OProj)
		mlp := &MLP{}
		if mlp.GateProj, err = linear(cfg.HiddenSize, cfg.IntermediateSize, cfg.MLPBias); err != nil {
			return nil, err
		}
		if mlp.UpProj, err = linear(cfg.HiddenSize, cfg.IntermediateSize, cfg.MLPBias); err != nil {
			return nil, err
		}
		if mlp.DownProj, err = linear(cfg.IntermediateSize, cfg.HiddenSize, cfg.MLPBias); err != nil {
			return nil, err
		}
		module.Child(&mlp.Base, "gate_proj", &mlp.GateProj)
		module.Child(&mlp.Base, "up_proj", &mlp.UpProj)
		module.Child(&mlp.Base, "down_proj", &mlp.DownProj)
		b.SelfAttn, b.MLP = a, mlp
		if b.InputLayernorm, err = norm(); err != nil {
			return nil, err
		}
		if b.PostAttentionLayernorm, err = norm(); err != nil {
			return nil, err
		}
		module.Child(&b.Base, "self_attn", &b.SelfAttn)
		module.Child(&b.Base, "mlp", &b.MLP)
		module.Child(&b.Base, "input_layernorm", &b.InputLayernorm)
		module.Child(&b.Base, "post_attention_layernorm", &b.PostAttentionLayernorm)
		blocks[i] = b
	}
	d.Layers = module.NewModuleList(blocks...)
	if d.Norm, err = norm(); err != nil {
		return nil, err
	}
	if d.RotaryEmb, err = newRotary(cfg.Rope, D, o.Device); err != nil {
		return nil, err
	}
	made = append(made, d.RotaryEmb.InvFreq)
	module.Child(&d.Base, "embed_tokens", &d.EmbedTokens)
	module.Child(&d.Base, "layers", &d.Layers)
	module.Child(&d.Base, "norm", &d.Norm)
	module.Child(&d.Base, "rotary_emb", &d.RotaryEmb)

	m = &Model{Cfg: cfg, Model: d}
	if cfg.TieWordEmbeddings {
		if m.LMHead, err = module.LinearFrom(embW, nil); err != nil {
			return nil, err
		}
	} else {
		w, err := weight(cfg.VocabSize, cfg.HiddenSize)
		if err != nil {
			return nil, err
		}
		if m.LMHead, err = module.LinearFrom(w, nil); err != nil {
			return nil, err
		}
	}
	module.Child(&m.Base, "model", &m.Model)
	module.Child(&m.Base, "lm_head", &m.LMHead)
	return m, nil
}

// Close frees the model's tensors.
func (m *Model) Close() { module.Close(m) }

// Config returns the model's architecture.
func (m *Model) Config() Config { return m.Cfg }

// DType returns the dtype of the model's weights (its final norm's).
func (m *Model) DType() torch.DType { return m.Model.Norm.Weight.DType() }

// Device returns the device of the model's weights.
func (m *Model) Device() torch.Device { return m.Model.Norm.Weight.Device() }

// NewCache returns an empty KV cache sized for the model.
func (m *Model) NewCache() *hf.KVCache { return hf.NewKVCache(int(m.Cfg.NumHiddenLayers)) }

// Inputs are a forward pass's inputs. Only IDs is required.
type Inputs struct {
	// IDs are the new tokens, int64 [B, T].
	IDs *torch.Tensor
	// AttentionMask is [B, past+T] (past: the tokens in Cache), 1 for a
	// token and 0 for padding (left padding for batched generation), or
	// nil for none.
	AttentionMask *torch.Tensor
	// PositionIDs are the new tokens' positions, int64 [B or 1, T]. When
	// nil they are derived as transformers' generate does: from the
	// attention mask when there is one (cumsum(mask) - 1, 0 at padding),
	// else past, past+1, …
	PositionIDs *torch.Tensor
	// Cache, when not nil, holds the keys and values of earlier tokens;
	// the pass appends the new ones.
	Cache *hf.KVCache
	// LogitsToKeep, when positive, computes the head for the last
	// LogitsToKeep positions only (transformers' logits_to_keep).
	LogitsToKeep int64
}

// Forward returns the logits [B, T, vocab] of token ids [B, T], without
// padding or cache: a module.Layer's forward pass. The result joins the
// ids' scope (with none, it belongs to the caller and every intermediate
// is freed).
func (m *Model) Forward(ids *torch.Tensor) *torch.Tensor {
	return m.Run(Inputs{IDs: ids})
}

// ForwardCache returns the logits [B, T, vocab] of the new tokens ids
// [B, T], given the attention mask [B, past+T] (or nil), the position ids
// (or nil: derived from the mask) and a KV cache (or nil) that the pass
// extends. See Inputs.
func (m *Model) ForwardCache(ids, attentionMask, positionIDs *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	return m.Run(Inputs{IDs: ids, AttentionMask: attentionMask, PositionIDs: positionIDs, Cache: cache})
}

// Logits is ForwardCache with positions derived from the mask: the
// cached forward pass that models/generate drives (its LM interface,
// with NumLayers and Device).
func (m *Model) Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	return m.Run(Inputs{IDs: ids, AttentionMask: mask, Cache: cache})
}

// NumLayers returns the number of blocks (the KV cache's layers).
func (m *Model) NumLayers() int { return int(m.Cfg.NumHiddenLayers) }

// ForwardInputs makes the model a module.MultiLayer: it reads input_ids,
// attention_mask and position_ids, and returns the logits. Without
// position_ids, a left-padded row's positions start at its first token
// (as in generate; transformers' forward would count the padding, which
// RoPE makes no difference to, up to rounding, on the unpadded tokens).
func (m *Model) ForwardInputs(in module.Inputs) *torch.Tensor {
	return m.Run(Inputs{IDs: in.IDs, AttentionMask: in.AttentionMask, PositionIDs: in.Positions})
}

// Run returns the logits [B, T, vocab] (or [B, LogitsToKeep, vocab]) of
// a forward pass with every option. The result joins the ids' scope (with
// none, it belongs to the caller and every intermediate is freed).
func (m *Model) Run(in Inputs) *torch.Tensor {
	return m.run(in, true)
}

// Hidden returns the final hidden states [B, T, hidden] (after the last
// norm, before the head), for losses on chosen positions.
func (m *Model) Hidden(in Inputs) *torch.Tensor {
	return m.run(in, false)
}

// run owns the inputs in a scope: the ids' one, or a new one whose result
// goes to the caller.
func (m *Model) run(in Inputs, head bool) *torch.Tensor {
	if in.IDs == nil {
		return torch.Failed(errors.New("llama: forward: nil input ids"))
	}
	if s := in.IDs.Scope(); s != nil {
		return m.forward(s, in, head)
	}
	out, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		in.IDs = s.Borrow(in.IDs)
		return m.forward(s, in, head)
	})
	if err != nil {
		return torch.Failed(err)
	}
	return out
}

// Step is what every block needs for one forward pass: the rotary tables,
// the additive masks and the cache. It is the seam for running blocks
// one at a time (activation checkpointing recomputes Block.Forward with
// the same Step).
type Step struct {
	Cos, Sin    *torch.Tensor // [B or 1, 1, T, head_dim] (the 1 broadcasts over heads)
	Mask        *torch.Tensor // additive [B or 1, 1, T, past+T], or nil (attend to everything)
	SlidingMask *torch.Tensor // the same with the sliding window, for sliding layers
	Cache       *hf.KVCache   // nil: no cache
}

func (m *Model) forward(s *torch.Scope, in Inputs, head bool) *torch.Tensor {
	cfg := &m.Cfg
	ids := in.IDs
	if err := ids.Err(); err != nil {
		return ids
	}
	if ids.Dim() != 2 || (ids.DType() != torch.Int64 && ids.DType() != torch.Int32) {
		return torch.Failed(fmt.Errorf("llama: forward: input ids: want int64 [batch, seq], got %v", ids))
	}
	B, T := ids.SizeOf(0), ids.SizeOf(1)
	if B == 0 || T == 0 {
		return torch.Failed(fmt.Errorf("llama: forward: input ids: empty shape %v", ids.Shape()))
	}
	if in.Cache != nil && in.Cache.Layers() != int(cfg.NumHiddenLayers) {
		return torch.Failed(fmt.Errorf("llama: forward: the cache has %d layers, the model %d", in.Cache.Layers(), cfg.NumHiddenLayers))
	}
	past := in.Cache.Len()
	dev, dt := m.Device(), m.DType()
	if ids.Device() != dev {
		ids = ids.To(dev)
	}
	// Out-of-range ids are refused by the embedding itself (golora's
	// embedding checks the range with one aminmax before the lookup, which
	// on CUDA would otherwise be a fatal device-side assert): "index out of
	// range: indices span [lo, hi] but there are N embeddings".

	am := in.AttentionMask
	if am != nil {
		if err := am.Err(); err != nil {
			return am
		}
		if am.Dim() != 2 || am.SizeOf(0) != B || am.SizeOf(1) != past+T {
			return torch.Failed(fmt.Errorf("llama: forward: attention mask: want [%d, %d] (batch, cached+new tokens), got %v", B, past+T, am.Shape()))
		}
		am = s.Own(am.To(dev))
	}
	pos := in.PositionIDs
	switch {
	case pos != nil:
		if err := pos.Err(); err != nil {
			return pos
		}
		if pos.Dim() != 2 || pos.SizeOf(1) != T || (pos.SizeOf(0) != B && pos.SizeOf(0) != 1) {
			return torch.Failed(fmt.Errorf("llama: forward: position ids: want [%d or 1, %d], got %v", B, T, pos.Shape()))
		}
		pos = s.Own(pos.To(dev).To(torch.Int64))
	case am != nil:
		pos = hf.PositionIDs(am).Narrow(1, past, T)
	default:
		pos = torch.Arange(float64(past), float64(past+T), 1, torch.WithDType(torch.Int64), torch.WithDevice(dev), torch.In(s)).View(1, T)
	}

	st := &Step{Cache: in.Cache}
	st.Cos, st.Sin = m.Model.RotaryEmb.cosSin(s, pos, dt)
	if am != nil || T > 1 {
		st.Mask = hf.CausalMask(s, hf.MaskSpec{Batch: B, Query: T, Past: past, AttentionMask: am, DType: dt, Device: dev})
	}
	if w := cfg.SlidingWindow; w > 0 && past+T > w {
		st.SlidingMask = hf.CausalMask(s, hf.MaskSpec{Batch: B, Query: T, Past: past, Window: w, AttentionMask: am, DType: dt, Device: dev})
	} else {
		st.SlidingMask = st.Mask
	}

	h := m.Model.EmbedTokens.Forward(ids)
	ckpt := m.GradientCheckpointing && in.Cache == nil && torch.GradEnabled()
	for _, b := range m.Model.Layers.All() {
		if ckpt {
			h = b.checkpointed(h, st)
		} else {
			h = b.Forward(h, st)
		}
	}
	h = m.Model.Norm.Forward(h)
	if !head {
		return h
	}
	if k := in.LogitsToKeep; k > 0 && k < T {
		h = h.Narrow(1, T-k, k)
	}
	return m.LMHead.Forward(h)
}

// checkpointed runs Forward as a torch.Checkpoint region. The step's
// tables and masks go in as the region's inputs, so that the recomputation
// in the backward reads them even after the forward's scope has closed.
func (b *Block) checkpointed(h *torch.Tensor, st *Step) *torch.Tensor {
	in := []*torch.Tensor{h, st.Cos, st.Sin}
	hasMask, hasSliding := st.Mask != nil, st.SlidingMask != nil
	if hasMask {
		in = append(in, st.Mask)
	}
	if hasSliding {
		in = append(in, st.SlidingMask)
	}
	return torch.Checkpoint(func(x []*torch.Tensor) []*torch.Tensor {
		re := &Step{Cos: x[1], Sin: x[2]}
		i := 3
		if hasMask {
			re.Mask, i = x[i], i+1
		}
		if hasSliding {
			re.SlidingMask = x[i]
		}
		return []*torch.Tensor{b.Forward(x[0], re)}
	}, in...)[0]
}

// Forward runs the block on hidden states h [B, T, hidden]:
// h + attn(input_layernorm(h)), then + mlp(post_attention_layernorm(·)).
// A nil st means no mask, no cache and no rotation tables (which fails).
func (b *Block) Forward(h *torch.Tensor, st *Step) *torch.Tensor {
	if st == nil {
		st = &Step{}
	}
	if st.Cos == nil || st.Sin == nil {
		return torch.Failed(errors.New("llama: Block.Forward: the step has no cos/sin tables"))
	}
	mask := st.Mask
	if b.Sliding {
		mask = st.SlidingMask
	}
	// In a scope of its own: the intermediates autograd does not keep are
	// freed when the block returns (hf.Block).
	return hf.Block(h, func(x *torch.Tensor) *torch.Tensor {
		x = x.Add(b.SelfAttn.Forward(b.InputLayernorm.Forward(x), st.Cos, st.Sin, mask, st.Cache, b.Index))
		return x.Add(b.MLP.Forward(b.PostAttentionLayernorm.Forward(x)))
	})
}

// Forward is transformers' LlamaAttention with eager attention over x
// [B, T, hidden]: the projections, RoPE by cos and sin [B or 1, 1, T,
// head_dim], the cache update (when cache is not nil, in its slot layer),
// repeat_kv, softmax(q·kᵀ·D^-½ + mask) in float32, and o_proj.
func (a *Attention) Forward(x, cos, sin, mask *torch.Tensor, cache *hf.KVCache, layer int) *torch.Tensor {
	B, T, D := x.SizeOf(0), x.SizeOf(1), a.HeadDim
	q := a.QProj.Forward(x).View(B, T, -1, D).Transpose(1, 2)
	k := a.KProj.Forward(x).View(B, T, -1, D).Transpose(1, 2)
	v := a.VProj.Forward(x).View(B, T, -1, D).Transpose(1, 2)
	q, k = rotate(q, cos, sin), rotate(k, cos, sin)
	if cache != nil {
		k, v = cache.Update(layer, k, v)
	}
	k, v = repeatKV(k, a.NumHeads/a.NumKVHeads), repeatKV(v, a.NumHeads/a.NumKVHeads)
	scores := q.MatMul(k.Transpose(2, 3)).MulScalar(math.Pow(float64(D), -0.5))
	if mask != nil {
		scores = scores.Add(mask)
	}
	w := opSoftmaxDType.Call1("Softmax", scores, int64(-1), torch.Float32)
	if dt := q.DType(); dt != torch.Float32 {
		w = w.To(dt)
	}
	if a.Dropout > 0 && a.Training() {
		w = torch.Dropout(w, a.Dropout, true)
	}
	y := w.MatMul(v).Transpose(1, 2).Reshape(B, T, -1) // Reshape copies, as contiguous() does
	return a.OProj.Forward(y)
}

// repeatKV repeats each key/value head n times, [B, Hkv, L, D] to
// [B, Hkv·n, L, D], as transformers' repeat_kv.
func repeatKV(x *torch.Tensor, n int64) *torch.Tensor {
	if n == 1 {
		return x
	}
	B, Hkv, L, D := x.SizeOf(0), x.SizeOf(1), x.SizeOf(2), x.SizeOf(3)
	return x.Unsqueeze(2).Expand(B, Hkv, n, L, D).Reshape(B, Hkv*n, L, D)
}

// Forward is down_proj(silu(gate_proj(x)) * up_proj(x)).
func (m *MLP) Forward(x *torch.Tensor) *torch.Tensor {
	return m.DownProj.Forward(m.GateProj.Forward(x).Silu().Mul(m.UpProj.Forward(x)))
}

// SetGradientCheckpointing turns activation checkpointing of the blocks on
// or off (Model.GradientCheckpointing).
func (m *Model) SetGradientCheckpointing(on bool) { m.GradientCheckpointing = on }
