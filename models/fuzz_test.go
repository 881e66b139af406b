package models_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// Seeds of config.json in each family's styles: transformers ≥ 5's
// rope_parameters, the older rope_theta and rope_scaling (both "type" and
// "rope_type"), Qwen2's layer_types and sliding window, Mistral's null
// window, GPT-2's and BERT's own keys, and configs that claim a model far
// larger than any checkpoint beside them. More seeds, crashers found by
// fuzzing among them, are in testdata/fuzz.
var fuzzConfigs = []string{
	`{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
	  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
	  "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
	  "high_freq_factor": 4.0, "original_max_position_embeddings": 32}}`,
	`{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
	  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
	  "rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.0}, "attention_bias": false, "mlp_bias": false,
	  "torch_dtype": "bfloat16", "eos_token_id": [2, 3], "bos_token_id": null}`,
	`{"model_type": "qwen2", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 3,
	  "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64, "tie_word_embeddings": true,
	  "use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1,
	  "layer_types": ["full_attention", "sliding_attention", "sliding_attention"]}`,
	`{"model_type": "mistral", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
	  "num_attention_heads": 4, "num_key_value_heads": 1, "max_position_embeddings": 64, "sliding_window": 4,
	  "head_dim": 4, "dtype": "float16"}`,
	`{"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 2, "n_head": 4, "n_positions": 32,
	  "n_inner": null, "bos_token_id": 1, "eos_token_id": 2, "activation_function": "gelu_new", "tie_word_embeddings": false, "scale_attn_by_inverse_layer_idx": true}`,
	`{"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
	  "intermediate_size": 24, "max_position_embeddings": 32, "pad_token_id": 0, "classifier_dropout": null,
	  "architectures": ["BertForSequenceClassification"], "id2label": {"0": "NEG", "1": "POS"}}`,
	// A small file that claims a huge model.
	`{"model_type": "llama", "vocab_size": 1000000000, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
	  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}`,
	`{"model_type": "llama", "vocab_size": 40, "hidden_size": 1000000, "intermediate_size": 24, "num_hidden_layers": 2,
	  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}`,
	`{"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 60000,
	  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}`,
	`{"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 2, "n_head": 4, "n_positions": 1000000000, "bos_token_id": 1, "eos_token_id": 2}`,
	`{"model_type": "gpt2", "vocab_size": 40, "n_embd": 16, "n_layer": 2, "n_head": 4, "n_positions": 32, "n_inner": 100000000, "bos_token_id": 1, "eos_token_id": 2}`,
	`{"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
	  "intermediate_size": 24, "max_position_embeddings": 32, "type_vocab_size": 1000000000}`,
	`{"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
	  "intermediate_size": 24, "max_position_embeddings": 32, "num_labels": 1000000000,
	  "architectures": ["BertForSequenceClassification"]}`,
	`{"model_type": "t5"}`,
	`{"model_type": 3}`,
	`[]`,
	``,
}

// fuzzDirs writes a tiny checkpoint of each family (configs in
// load_test.go) under one temporary directory.
func fuzzDirs(tb testing.TB) []string {
	var dirs []string
	root := tb.TempDir()
	for _, typ := range []string{"llama", "gpt2", "bert"} {
		dir := filepath.Join(root, typ)
		require.NoError(tb, os.MkdirAll(dir, 0o755))
		hc, err := hf.ParseConfig(dir, []byte(configs[typ]))
		require.NoError(tb, err)
		var m module.Module
		switch typ {
		case "gpt2":
			cfg, err := gpt2.ConfigFromHF(hc)
			require.NoError(tb, err)
			m, err = gpt2.New(cfg)
			require.NoError(tb, err)
		case "bert":
			cfg, err := bert.ConfigFromHF(hc)
			require.NoError(tb, err)
			m, err = bert.New(cfg)
			require.NoError(tb, err)
		default:
			cfg, err := llama.ConfigFrom(hc)
			require.NoError(tb, err)
			m, err = llama.New(*cfg)
			require.NoError(tb, err)
		}
		require.NoError(tb, module.Save(m, filepath.Join(dir, "model.safetensors"), nil))
		module.Close(m)
		dirs = append(dirs, dir)
	}
	return dirs
}

// peakRSS returns the process's peak resident set size (VmHWM), in bytes.
func peakRSS(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(tb, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(tb, err)
			return kb << 10
		}
	}
	require.FailNow(tb, "no VmHWM in /proc/self/status")
	return 0
}

// maxGrowth bounds how much the peak RSS may grow while a fuzz target
// runs: the checkpoints are a few kilobytes, so anything near it is a
// config.json that made golora allocate what it claims.
const maxGrowth = 1 << 30

// leakSlack is how many tensors over the baseline a fuzz call may leave
// to the finalizers before the leak check settles them.
const leakSlack = 200

// FuzzParseConfig parses config.json and reads it with every family's
// parser (whatever its model_type says): an error or a valid config,
// never a panic or a huge allocation.
func FuzzParseConfig(f *testing.F) {
	for _, c := range fuzzConfigs {
		f.Add([]byte(c))
	}
	for _, c := range configs {
		f.Add([]byte(c))
	}
	for _, p := range []string{"../cmd/train/base/config.json", "../cmd/train/data/init/config.json"} {
		data, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(data)
	}
	base := peakRSS(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		hc, err := hf.ParseConfig("", data)
		if err != nil {
			return
		}
		_, _, _ = hc.DType()
		typ := hc.ModelType
		for _, mt := range append([]string{typ}, llama.ModelTypes...) {
			hc.ModelType = mt
			if cfg, err := llama.ConfigFrom(hc); err == nil {
				require.NoError(t, cfg.Validate(), "ConfigFrom returned a config Validate refuses")
				require.Equal(t, mt, cfg.ModelType)
				if _, err := llama.InvFreq(cfg.Rope, 2); err != nil {
					require.Contains(t, err.Error(), "llama")
				}
			}
		}
		hc.ModelType = "gpt2"
		if cfg, err := gpt2.ConfigFromHF(hc); err == nil {
			require.NoError(t, cfg.Validate(), "ConfigFromHF returned a config Validate refuses")
		}
		hc.ModelType = "bert"
		if cfg, err := bert.ConfigFromHF(hc); err == nil {
			require.NoError(t, cfg.Validate(), "ConfigFromHF returned a config Validate refuses")
		}
		hc.ModelType = typ
		require.Less(t, peakRSS(t)-base, int64(maxGrowth), "parsing a %d-byte config.json", len(data))
	})
}

// FuzzLoad writes a fuzzed config.json beside a tiny checkpoint of the
// family that which picks and loads it with models.Load: a model or an
// error, never a panic; the model has exactly the checkpoint's sizes
// (what the config claims beyond them is refused before it is
// allocated: the peak RSS stays far below the sizes such configs claim);
// nothing leaks.
func FuzzLoad(f *testing.F) {
	for i, c := range fuzzConfigs {
		f.Add(uint8(i), []byte(c))
	}
	for i, typ := range []string{"llama", "gpt2", "bert"} {
		f.Add(uint8(i), []byte(configs[typ]))
	}
	data, err := os.ReadFile("../cmd/train/base/config.json")
	require.NoError(f, err)
	f.Add(uint8(0), data)

	dirs := fuzzDirs(f)
	values := map[string]int64{}
	for _, dir := range dirs {
		r, _, err := torch.LoadSafetensors(filepath.Join(dir, "model.safetensors"))
		require.NoError(f, err)
		for _, t := range r {
			values[dir] += t.Numel()
		}
		torch.CloseMap(r)
	}
	base := peakRSS(f)
	live := reftest.SettledLiveTensors()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dir := dirs[int(which)%len(dirs)]
		require.NoError(t, os.WriteFile(filepath.Join(dir, hf.ConfigFile), data, 0o644))
		m, err := models.Load(dir)
		if err == nil {
			total, _ := module.Count(m)
			require.LessOrEqual(t, total, values[dir], "the model is larger than the checkpoint")
			require.Positive(t, m.VocabSize())
			require.Positive(t, m.NumLayers())
			m.Close()
		} else {
			require.True(t, strings.HasPrefix(err.Error(), "models: "), err.Error())
		}
		require.Less(t, peakRSS(t)-base, int64(maxGrowth), "loading a %d-byte config.json", len(data))
		// Finalizers free what the calls dropped: settle only when many
		// are pending (a leak grows past any slack).
		if torch.LiveTensors() > live+leakSlack {
			require.LessOrEqual(t, reftest.SettledLiveTensors(), live, "tensors leaked")
		}
	})
}

// TestLoadRefusesOversizedConfig: a config.json that claims more than the
// checkpoint holds fails from the headers, naming the key and both shapes
// (or, for the layers, the counts), before the model is built.
func TestLoadRefusesOversizedConfig(t *testing.T) {
	dirs := fuzzDirs(t)
	for _, c := range []struct {
		dir  int
		cfg  string
		want string
	}{
		{0, fuzzConfigs[6], "model.embed_tokens.weight: config.json gives [1000000000 16], checkpoint [40 16]"},
		{0, fuzzConfigs[7], "model.embed_tokens.weight: config.json gives [40 1000000], checkpoint [40 16]"},
		{0, fuzzConfigs[8], "config.json gives a model of at least"},
		{1, fuzzConfigs[9], "transformer.wpe.weight: config.json gives [1000000000 16], checkpoint [32 16]"},
		{1, fuzzConfigs[10], "config.json gives a model of at least"},
		{2, fuzzConfigs[11], "embeddings.token_type_embeddings.weight: config.json gives [1000000000 16], checkpoint [2 16]"},
		{0, `{"model_type": "mistral", "num_hidden_layers": 1000000000000}`, "num_hidden_layers = 1000000000000: more than 65536"},
		{0, `{"model_type": "qwen2", "num_hidden_layers": 1000000000000, "use_sliding_window": true}`, "num_hidden_layers = 1000000000000: more than 65536"},
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dirs[c.dir], hf.ConfigFile), []byte(c.cfg), 0o644))
		_, err := models.Load(dirs[c.dir])
		require.Error(t, err, c.cfg)
		require.Contains(t, err.Error(), c.want)
	}
}
