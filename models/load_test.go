package models_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/bert"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Small configs of each family in config.json's form.
var configs = map[string]string{
	"llama": `{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}`,
	"mistral": `{"model_type": "mistral", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
		"num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 1, "max_position_embeddings": 64,
		"sliding_window": null}`,
	"qwen2": `{"model_type": "qwen2", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
		"num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64,
		"tie_word_embeddings": true, "use_sliding_window": false}`,
	"gpt2": `{"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 2, "n_head": 4, "n_positions": 32,
		"bos_token_id": 1, "eos_token_id": 2}`,
	"bert": `{"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2,
		"num_attention_heads": 4, "intermediate_size": 24, "max_position_embeddings": 32, "pad_token_id": 0}`,
}

// writeCheckpoint writes config.json and a model.safetensors of random
// weights, built by the family's own constructor from that config.
func writeCheckpoint(t *testing.T, typ string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), typ)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	data := []byte(configs[typ])
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644))
	hc, err := hf.ParseConfig(dir, data)
	require.NoError(t, err)
	var m module.Module
	switch typ {
	case "gpt2":
		cfg, err := gpt2.ConfigFromHF(hc)
		require.NoError(t, err)
		m, err = gpt2.New(cfg)
		require.NoError(t, err)
	case "bert":
		cfg, err := bert.ConfigFromHF(hc)
		require.NoError(t, err)
		m, err = bert.New(cfg)
		require.NoError(t, err)
	default:
		cfg, err := llama.ConfigFrom(hc)
		require.NoError(t, err)
		m, err = llama.New(*cfg)
		require.NoError(t, err)
	}
	defer module.Close(m)
	require.NoError(t, module.Save(m, filepath.Join(dir, "model.safetensors"), nil))
	return dir
}

func TestLoadDispatches(t *testing.T) {
	for _, c := range []struct {
		typ    string
		kind   models.Kind
		layers int
		unwrap any
	}{
		{"llama", models.CausalLM, 2, (*llama.Model)(nil)},
		{"mistral", models.CausalLM, 1, (*llama.Model)(nil)},
		{"qwen2", models.CausalLM, 3, (*llama.Model)(nil)},
		{"gpt2", models.CausalLM, 2, (*gpt2.Model)(nil)},
		{"bert", models.Encoder, 2, (*bert.Model)(nil)},
	} {
		t.Run(c.typ, func(t *testing.T) {
			dir := writeCheckpoint(t, c.typ)
			before := reftest.SettledLiveTensors()
			m, err := models.Load(dir)
			require.NoError(t, err)
			require.Equal(t, c.typ, m.Type())
			require.Equal(t, c.kind, m.Kind())
			require.Equal(t, c.layers, m.NumLayers())
			require.Equal(t, int64(40), m.VocabSize())
			require.Equal(t, torch.CPU, m.Device())
			require.IsType(t, c.unwrap, m.Unwrap())
			// The wrapper exposes the family's parameter names.
			require.Equal(t, module.StateDict(m.Unwrap()), module.StateDict(m))

			s := torch.NewScope()
			ids := s.Own(torch.FromSlice([]int64{3, 4, 5, 6, 0, 7, 8, 9}, 2, 4))
			mask := s.Own(torch.FromSlice([]int64{1, 1, 1, 1, 0, 1, 1, 1}, 2, 4))
			out := m.Score(module.Inputs{IDs: ids, AttentionMask: mask})
			require.NoError(t, out.Err())
			if c.kind == models.Encoder {
				require.Equal(t, []int64{2, 4, 16}, out.Shape())
				require.ErrorContains(t, m.Logits(ids, mask, nil).Err(), "encoder")
				require.ErrorContains(t, m.LastLogits(ids, mask, nil).Err(), "encoder")
			} else {
				require.Equal(t, []int64{2, 4, 40}, out.Shape())
				// The cached pass over the same tokens in two pieces gives
				// the same logits at the real positions.
				cache := hf.NewKVCache(m.NumLayers())
				a := m.Logits(ids.Narrow(1, 0, 3), mask.Narrow(1, 0, 3), cache)
				b := m.Logits(ids.Narrow(1, 3, 1), mask, cache)
				whole := torch.Cat([]*torch.Tensor{a, b}, 1)
				ok, err := whole.Narrow(1, 1, 3).AllClose(out.Narrow(1, 1, 3), 1e-4, 1e-5)
				require.NoError(t, err)
				require.True(t, ok)
				cache.Close()
				// LastLogits is the last position of Logits.
				cache = hf.NewKVCache(m.NumLayers())
				last := m.LastLogits(ids, mask, cache)
				require.Equal(t, []int64{2, 1, 40}, last.Shape())
				ok, err = last.AllClose(out.Narrow(1, 3, 1), 1e-5, 1e-6)
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, int64(4), cache.Len())
				cache.Close()
			}
			require.NoError(t, s.Err())
			s.Close()
			m.Close()
			require.Equal(t, before, reftest.SettledLiveTensors())
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := models.Load(filepath.Join(dir, "nope"))
	require.ErrorContains(t, err, "nope")

	_, err = models.Load(dir)
	require.ErrorContains(t, err, "not a Hugging Face checkpoint")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "t5"}`), 0o644))
	_, err = models.Load(dir)
	require.EqualError(t, err, `models: `+dir+`: unsupported model_type "t5" (supported: bert, gpt2, llama, mistral, qwen2)`)
	require.Equal(t, []string{"bert", "gpt2", "llama", "mistral", "qwen2"}, models.SupportedTypes())

	// A config without weights.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(configs["gpt2"]), 0o644))
	_, err = models.Load(dir)
	require.ErrorContains(t, err, "model.safetensors")

	require.Equal(t, "causal-lm", models.CausalLM.String())
	require.Equal(t, "encoder", models.Encoder.String())
}
