package models

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golora/golora/models/bert"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Kind says what a model's forward pass returns.
type Kind int

const (
	// CausalLM models (Llama family, GPT-2) return next-token logits
	// (B, T, vocab) and can generate.
	CausalLM Kind = iota
	// Encoder models (BERT) return the last hidden state (B, T, hidden).
	Encoder
)

// String returns "causal-lm" or "encoder".
func (k Kind) String() string {
	switch k {
	case CausalLM:
		return "causal-lm"
	case Encoder:
		return "encoder"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Model is a checkpoint loaded by Load: the family's model (its
// parameters under transformers' state-dict names, so lora.Apply and PEFT
// adapters address it as they would the family's own type) with a
// uniform forward pass. A CausalLM model implements generate.LM.
type Model interface {
	module.Module
	// Unwrap returns the family's model: *llama.Model, *gpt2.Model or
	// *bert.Model.
	Unwrap() module.Module
	// Type is config.json's model_type ("llama", "qwen2", "gpt2", ...).
	Type() string
	// Kind says whether Score returns logits or hidden states.
	Kind() Kind
	// Score runs the model over in.IDs (B, T) with in.AttentionMask (B, T)
	// when set: logits (B, T, vocab) for a CausalLM, the last hidden state
	// (B, T, hidden) for an Encoder. The result joins the ids' scope.
	Score(in module.Inputs) *torch.Tensor
	// Logits is the cached forward pass of generate.LM: logits (B, T, V)
	// of the new ids (B, T), the mask covering the cached and the new
	// positions. It fails for an Encoder.
	Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor
	// LastLogits is Logits at the last new position only, (B, 1, V), as
	// transformers' logits_to_keep=1: generate.Generate uses it, which
	// spares the logits of a long prompt. It fails for an Encoder.
	LastLogits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor
	// NumLayers is the number of transformer blocks.
	NumLayers() int
	// VocabSize is the size of the input vocabulary: valid ids are
	// 0 ≤ id < VocabSize.
	VocabSize() int64
	// Device is where the parameters are.
	Device() torch.Device
	// Close frees the model's tensors (module.Close).
	Close()
}

// loader builds one family's Model.
type loader func(dir string, modelType string, opts []hf.Option) (Model, error)

// loaders maps config.json's model_type to its family's loader.
var loaders = map[string]loader{
	"gpt2": loadGPT2,
	"bert": loadBERT,
}

func init() {
	for _, t := range llama.ModelTypes { // llama, mistral, qwen2
		loaders[t] = loadLlama
	}
}

// SupportedTypes returns the model_type values Load accepts, sorted.
func SupportedTypes() []string {
	out := make([]string, 0, len(loaders))
	for t := range loaders {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Load reads the Hugging Face checkpoint in dir (config.json and
// model.safetensors or a sharded index) with the family loader that its
// model_type names: llama, mistral and qwen2 with models/llama, gpt2 with
// models/gpt2, bert with models/bert. Options choose the dtype and the
// device. An unsupported model_type is an error that lists the supported
// ones; a directory that is not a checkpoint is an error that says so.
func Load(dir string, opts ...hf.Option) (Model, error) {
	hc, err := hf.ReadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	l, ok := loaders[hc.ModelType]
	if !ok {
		return nil, fmt.Errorf("models: %s: unsupported model_type %q (supported: %s)",
			dir, hc.ModelType, strings.Join(SupportedTypes(), ", "))
	}
	m, err := l(dir, hc.ModelType, opts)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	return m, nil
}

// wrapped is a Model over a family's model.
type wrapped struct {
	module.Module
	typ    string
	kind   Kind
	layers int
	vocab  int64
	score  func(in module.Inputs) *torch.Tensor
	cached func(in module.Inputs, cache *hf.KVCache) *torch.Tensor // nil for encoders
	last   func(in module.Inputs, cache *hf.KVCache) *torch.Tensor // nil for encoders
}

func (w *wrapped) Unwrap() module.Module { return w.Module }
func (w *wrapped) Type() string          { return w.typ }
func (w *wrapped) Kind() Kind            { return w.kind }
func (w *wrapped) NumLayers() int        { return w.layers }
func (w *wrapped) VocabSize() int64      { return w.vocab }

func (w *wrapped) Close() { module.Close(w.Module) }

func (w *wrapped) Device() torch.Device {
	if ps := module.Parameters(w.Module, false); len(ps) > 0 {
		return ps[0].Device()
	}
	return torch.CPU
}

func (w *wrapped) Score(in module.Inputs) *torch.Tensor {
	if in.IDs == nil {
		return torch.Failed(errors.New("models: Score: nil input_ids"))
	}
	return w.score(in)
}

func (w *wrapped) Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	if w.cached == nil {
		return torch.Failed(fmt.Errorf("models: %s is an encoder: it has no next-token logits", w.typ))
	}
	if ids == nil {
		return torch.Failed(errors.New("models: Logits: nil input_ids"))
	}
	return w.cached(module.Inputs{IDs: ids, AttentionMask: mask}, cache)
}

func (w *wrapped) LastLogits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	if w.last == nil {
		return torch.Failed(fmt.Errorf("models: %s is an encoder: it has no next-token logits", w.typ))
	}
	if ids == nil {
		return torch.Failed(errors.New("models: LastLogits: nil input_ids"))
	}
	return w.last(module.Inputs{IDs: ids, AttentionMask: mask}, cache)
}

func loadLlama(dir, typ string, opts []hf.Option) (Model, error) {
	m, err := llama.Load(dir, opts...)
	if err != nil {
		return nil, err
	}
	return &wrapped{
		Module: m, typ: typ, kind: CausalLM,
		layers: m.NumLayers(), vocab: m.Cfg.VocabSize,
		score: m.ForwardInputs,
		cached: func(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
			return m.Logits(in.IDs, in.AttentionMask, cache)
		},
		last: func(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
			return m.Run(llama.Inputs{IDs: in.IDs, AttentionMask: in.AttentionMask, Cache: cache, LogitsToKeep: 1})
		},
	}, nil
}

func loadGPT2(dir, typ string, opts []hf.Option) (Model, error) {
	m, err := gpt2.Load(dir, opts...)
	if err != nil {
		return nil, err
	}
	return &wrapped{
		Module: m, typ: typ, kind: CausalLM,
		layers: int(m.Config.NLayer), vocab: m.Config.VocabSize,
		score:  m.ForwardInputs,
		cached: m.ForwardCached,
		last: func(in module.Inputs, cache *hf.KVCache) *torch.Tensor {
			h := m.Hidden(in, cache)
			return m.LMHead.Forward(h.Narrow(1, h.SizeOf(1)-1, 1))
		},
	}, nil
}

func loadBERT(dir, typ string, opts []hf.Option) (Model, error) {
	m, err := bert.Load(dir, opts...)
	if err != nil {
		return nil, err
	}
	return &wrapped{
		Module: m, typ: typ, kind: Encoder,
		layers: int(m.Config.NumHiddenLayers), vocab: m.Config.VocabSize,
		score: m.ForwardInputs,
	}, nil
}
