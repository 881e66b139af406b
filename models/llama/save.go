package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// ConfigJSON returns c as a config.json in transformers ≥ 5's style
// (rope_parameters, dtype), for model_type c.ModelType. dtype is the
// weights' dtype to declare.
func (c Config) ConfigJSON(dtype torch.DType) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rope := map[string]any{"rope_type": c.Rope.Type, "rope_theta": c.Rope.Theta}
	switch c.Rope.Type {
	case "linear":
		rope["factor"] = c.Rope.Factor
	case "llama3":
		rope["factor"] = c.Rope.Factor
		rope["low_freq_factor"] = c.Rope.LowFreqFactor
		rope["high_freq_factor"] = c.Rope.HighFreqFactor
		rope["original_max_position_embeddings"] = c.Rope.OriginalMaxPositionEmbeddings
	}
	arch := map[string]string{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[c.ModelType]
	m := map[string]any{
		"architectures":           []string{arch},
		"model_type":              c.ModelType,
		"vocab_size":              c.VocabSize,
		"hidden_size":             c.HiddenSize,
		"intermediate_size":       c.IntermediateSize,
		"num_hidden_layers":       c.NumHiddenLayers,
		"num_attention_heads":     c.NumAttentionHeads,
		"num_key_value_heads":     c.kvHeads(),
		"head_dim":                c.headDim(),
		"max_position_embeddings": c.MaxPositionEmbeddings,
		"rms_norm_eps":            c.RMSNormEps,
		"hidden_act":              c.HiddenAct,
		"tie_word_embeddings":     c.TieWordEmbeddings,
		"rope_parameters":         rope,
		"attention_dropout":       c.AttentionDropout,
		"initializer_range":       c.InitializerRange,
		"dtype":                   dtype.String(),
	}
	ids := func(key string, v int64) {
		if v >= 0 {
			m[key] = v
		} else {
			m[key] = nil
		}
	}
	ids("bos_token_id", c.BOSTokenID)
	ids("pad_token_id", c.PadTokenID)
	switch len(c.EOSTokenIDs) {
	case 0:
		m["eos_token_id"] = nil
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	switch c.ModelType {
	case "llama":
		if c.QKVBias != c.OBias {
			return nil, fmt.Errorf("llama: ConfigJSON: model_type llama has one attention_bias for q/k/v and o")
		}
		m["attention_bias"] = c.QKVBias
		m["mlp_bias"] = c.MLPBias
	case "qwen2":
		if !c.QKVBias || c.OBias || c.MLPBias {
			return nil, fmt.Errorf("llama: ConfigJSON: model_type qwen2 has q/k/v biases only")
		}
		types := make([]string, c.NumHiddenLayers)
		for i := range types {
			types[i] = "full_attention"
			if c.SlidingWindow > 0 && i < len(c.Sliding) && c.Sliding[i] {
				types[i] = "sliding_attention"
			}
		}
		m["layer_types"] = types
		m["use_sliding_window"] = c.SlidingWindow > 0
		if c.SlidingWindow > 0 {
			m["sliding_window"] = c.SlidingWindow
		} else {
			m["sliding_window"] = nil
		}
	case "mistral":
		if c.QKVBias || c.OBias || c.MLPBias {
			return nil, fmt.Errorf("llama: ConfigJSON: model_type mistral has no biases")
		}
		if c.SlidingWindow > 0 {
			m["sliding_window"] = c.SlidingWindow
		} else {
			m["sliding_window"] = nil
		}
	}
	return json.MarshalIndent(m, "", "  ")
}

// Save writes the model as a Hugging Face checkpoint in dir (created if
// needed): config.json and model.safetensors with transformers' names
// (a tied lm_head.weight is not written, as transformers does), which
// Load and transformers' from_pretrained read. Adapters that lora.Apply
// installed are saved too, under their own names: merge them first for a
// plain checkpoint.
//
// Each file is written atomically (internal/atomicfile), model.safetensors
// first and config.json last: a failed or interrupted Save leaves each
// file either as it was or whole and new; a crash between the two leaves
// the new weights beside the previous config.json (or none, in a new
// directory), which Load refuses when the shapes disagree.
func (m *Model) Save(dir string) error {
	cfg, err := m.Cfg.ConfigJSON(m.DType())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("llama: Save: %w", err)
	}
	if err := module.Save(m, filepath.Join(dir, "model.safetensors"), map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("llama: Save: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, hf.ConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("llama: Save: %w", err)
	}
	return nil
}
