package gpt2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func tinyConfig() gpt2.Config {
	c := gpt2.DefaultConfig()
	c.VocabSize, c.NPositions, c.NEmbd, c.NLayer, c.NHead = 50, 24, 16, 2, 4
	c.BOSTokenID, c.EOSTokenID = 1, 2
	c.InitializerRange = 0.5 // logits well away from zero
	return c
}

func newTiny(t *testing.T, c gpt2.Config) *gpt2.Model {
	t.Helper()
	require.NoError(t, torch.ManualSeed(7))
	m, err := gpt2.New(c)
	require.NoError(t, err)
	m.Eval()
	t.Cleanup(func() { module.Close(m) })
	return m
}

// hfConfig is config.json for c, as transformers writes it.
func hfConfig(c gpt2.Config) map[string]any {
	return map[string]any{
		"model_type": "gpt2", "architectures": []string{"GPT2LMHeadModel"},
		"vocab_size": c.VocabSize, "n_positions": c.NPositions, "n_embd": c.NEmbd, "n_layer": c.NLayer,
		"n_head": c.NHead, "n_inner": nil, "activation_function": c.ActivationFunction,
		"layer_norm_epsilon": c.LayerNormEpsilon, "tie_word_embeddings": c.TieWordEmbeddings,
		"bos_token_id": c.BOSTokenID, "eos_token_id": c.EOSTokenID, "dtype": "float32",
	}
}

// writeCheckpoint writes config.json and model.safetensors (tensors) to a
// new directory.
func writeCheckpoint(t *testing.T, cfg map[string]any, tensors map[string]*torch.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
	if tensors != nil {
		require.NoError(t, torch.SaveSafetensors(filepath.Join(dir, "model.safetensors"), tensors, nil))
	}
	return dir
}

func without(sd map[string]*torch.Tensor, keys ...string) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for k, v := range sd {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, gpt2.DefaultConfig().Validate())
	for _, tc := range []struct {
		edit func(*gpt2.Config)
		want string
	}{
		{func(c *gpt2.Config) { c.VocabSize = 0 }, "vocab_size must be positive"},
		{func(c *gpt2.Config) { c.NHead = 5 }, "n_embd 768 is not divisible by n_head 5"},
		{func(c *gpt2.Config) { c.NLayer = -1 }, "n_layer must be positive"},
		{func(c *gpt2.Config) { c.NInner = -3 }, "n_inner"},
		{func(c *gpt2.Config) { c.ActivationFunction = "tanh" }, `activation_function "tanh" is not supported (supported: gelu, gelu_new`},
		{func(c *gpt2.Config) { c.LayerNormEpsilon = 0 }, "layer_norm_epsilon must be positive"},
		{func(c *gpt2.Config) { c.AttnPdrop = 1 }, "attn_pdrop must be in [0, 1)"},
		{func(c *gpt2.Config) { c.EOSTokenID = 50257 }, "eos_token_id 50257 is outside the vocabulary"},
	} {
		c := gpt2.DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		require.ErrorContains(t, err, tc.want)
		_, err = gpt2.New(c)
		require.ErrorContains(t, err, tc.want, "New validates")
	}
}

func TestConfigFromHF(t *testing.T) {
	c := tinyConfig()
	cfg := hfConfig(c)
	cfg["n_inner"] = 40
	cfg["eos_token_id"] = []int{2, 3}
	hc, err := hf.ParseConfig("", mustJSON(t, cfg))
	require.NoError(t, err)
	got, err := gpt2.ConfigFromHF(hc)
	require.NoError(t, err)
	require.Equal(t, int64(40), got.NInner)
	require.Equal(t, int64(2), got.EOSTokenID, "the first of a list")
	require.Equal(t, c.NEmbd, got.NEmbd)
	require.True(t, got.ScaleAttnWeights, "default")

	for _, tc := range []struct {
		key  string
		val  any
		want string
	}{
		{"model_type", "llama", `model_type "llama" is not supported by this package (supported: gpt2)`},
		{"n_head", 3, "n_embd 16 is not divisible by n_head 3"},
		{"n_layer", "two", "n_layer"},
		{"add_cross_attention", true, "add_cross_attention is not supported"},
		{"eos_token_id", "x", "eos_token_id"},
	} {
		bad := hfConfig(c)
		bad[tc.key] = tc.val
		hc, err := hf.ParseConfig("", mustJSON(t, bad))
		require.NoError(t, err)
		_, err = gpt2.ConfigFromHF(hc)
		require.ErrorContains(t, err, tc.want, tc.key)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

// The parameters carry transformers' names, lm_head is tied to wte, and
// the projections can be replaced through SetChild (as lora.Apply does).
func TestNamesAndTying(t *testing.T) {
	m := newTiny(t, tinyConfig())
	var names []string
	for _, p := range module.NamedParameters(m) {
		names = append(names, p.Name)
	}
	for _, want := range []string{
		"transformer.wte.weight", "transformer.wpe.weight",
		"transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
		"transformer.h.0.attn.c_proj.weight", "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.bias",
		"transformer.ln_f.bias",
	} {
		require.Contains(t, names, want)
	}
	require.NotContains(t, names, "lm_head.weight", "tied: listed once, under wte")
	require.Len(t, names, 4+2*12)
	require.Equal(t, []int64{16, 48}, m.Transformer.H.At(0).Attn.CAttn.(*module.Conv1D).Weight.Shape(), "Conv1D: in×out")
	head := m.LMHead.(*module.Linear)
	require.Same(t, m.Transformer.WTE.(*module.Embedding).Weight, head.Weight)

	c := tinyConfig()
	c.TieWordEmbeddings = false
	u := newTiny(t, c)
	require.Contains(t, module.StateDict(u), "lm_head.weight")

	repl, err := module.NewConv1D(16, 48)
	require.NoError(t, err)
	require.NoError(t, module.SetChild(m, "transformer.h.0.attn.c_attn", repl))
	require.Same(t, repl, m.Transformer.H.At(0).Attn.CAttn)
}

// logits runs the model on ids (and mask) in a scope and returns the
// logits' values.
func logits(t *testing.T, m *gpt2.Model, ids []int64, mask []int64, B, T int64) []float32 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	in := module.Inputs{IDs: s.Own(torch.FromSlice(ids, B, T))}
	if mask != nil {
		in.AttentionMask = s.Own(torch.FromSlice(mask, B, T))
	}
	out := m.ForwardInputs(in)
	require.NoError(t, s.Err())
	require.Equal(t, []int64{B, T, m.Config.VocabSize}, out.Shape())
	v, err := torch.ToSlice[float32](out)
	require.NoError(t, err)
	return v
}

// A left-padded row gives its tokens the logits they have alone: the
// positions come from the mask and the padding gets no attention.
func TestLeftPaddingInvariance(t *testing.T) {
	m := newTiny(t, tinyConfig())
	alone := logits(t, m, []int64{5, 9, 13, 4}, nil, 1, 4)
	padded := logits(t, m, []int64{0, 0, 5, 9, 13, 4, 7, 8, 9, 10, 11, 12}, []int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2, 6)
	V := int(m.Config.VocabSize)
	got := make([]float64, 4*V)
	want := make([]float64, 4*V)
	for i := range got {
		got[i], want[i] = float64(padded[2*V+i]), float64(alone[i])
	}
	e := reftest.RequireSlicesClose(t, "padded row", got, want, 1e-5)
	t.Logf("left-padded against alone: %.3g", e)
}

// Decoding token by token through a KV cache gives the full forward's
// logits.
func TestCacheEqualsFullForward(t *testing.T) {
	m := newTiny(t, tinyConfig())
	ids := []int64{3, 14, 15, 9, 26, 5, 35}
	full := logits(t, m, ids, nil, 1, 7)
	live := reftest.SettledLiveTensors()
	cache := hf.NewKVCache(2)
	s := torch.NewScope()
	x := s.Own(torch.FromSlice(ids, 1, 7))
	parts := []*torch.Tensor{m.ForwardCached(module.Inputs{IDs: x.Narrow(1, 0, 3)}, cache)}
	for i := int64(3); i < 7; i++ {
		parts = append(parts, m.ForwardCached(module.Inputs{IDs: x.Narrow(1, i, 1)}, cache))
	}
	got, err := torch.ToSlice[float32](torch.Cat(parts, 1))
	require.NoError(t, err)
	require.Equal(t, int64(7), cache.Len())
	e := reftest.RequireSlicesClose(t, "cached", f64(got), f64(full), 1e-5)
	t.Logf("cached decode against the full forward: %.3g", e)
	s.Close()
	cache.Close()
	require.Equal(t, live, reftest.SettledLiveTensors(), "nothing leaks")

	// Greedy picks the argmax of the full forward at every step.
	prompt := torch.FromSlice(ids, 1, 7)
	toks, err := m.Greedy(prompt, nil, 3, -1, 0)
	require.NoError(t, err)
	require.NoError(t, prompt.Close())
	require.Equal(t, live, reftest.SettledLiveTensors(), "Greedy leaves nothing behind")
	require.Len(t, toks[0], 3)
	seq := append([]int64(nil), ids...)
	for i := 0; i < 3; i++ {
		l := logits(t, m, seq, nil, 1, int64(len(seq)))
		V := int(m.Config.VocabSize)
		last := l[(len(seq)-1)*V:]
		best := 0
		for j := range last {
			if last[j] > last[best] {
				best = j
			}
		}
		require.Equal(t, int64(best), toks[0][i], "step %d", i)
		seq = append(seq, int64(best))
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Bad inputs fail with errors that name them; nothing leaks.
func TestForwardErrors(t *testing.T) {
	m := newTiny(t, tinyConfig())
	live := reftest.SettledLiveTensors()
	for _, tc := range []struct {
		name string
		in   func(s *torch.Scope) module.Inputs
		want string
	}{
		{"1-D ids", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.FromSlice([]int64{1, 2, 3}))}
		}, "input_ids must be (batch, seq)"},
		{"too long", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.Zeros([]int64{1, 25}, torch.WithDType(torch.Int64)))}
		}, "exceeds n_positions 24"},
		{"mask shape", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.Zeros([]int64{2, 3}, torch.WithDType(torch.Int64))),
				AttentionMask: s.Own(torch.Ones([]int64{2, 4}, torch.WithDType(torch.Int64)))}
		}, "attention_mask must be (batch 2, past+new 3)"},
		{"no ids", func(s *torch.Scope) module.Inputs { return module.Inputs{} }, "neither input_ids nor inputs_embeds"},
		{"id out of range", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.FromSlice([]int64{1, 50}, 1, 2))}
		}, "index"},
	} {
		s := torch.NewScope()
		_, err := s.Done(m.ForwardInputs(tc.in(s)))
		require.ErrorContains(t, err, tc.want, tc.name)
		require.Equal(t, live, reftest.SettledLiveTensors(), tc.name)
	}
	s := reftest.Scope(t)
	_, err := m.Greedy(s.Own(torch.FromSlice([]int64{1, 2})), nil, 2, -1, 0)
	require.ErrorContains(t, err, "input_ids must be int64 (batch, seq)")
	_, err = m.Greedy(s.Own(torch.FromSlice([]int64{1, 2}, 1, 2)), nil, 30, -1, 0)
	require.ErrorContains(t, err, "exceed n_positions 24")
	_, err = m.Greedy(s.Own(torch.FromSlice([]int64{1, 2}, 1, 2)), s.Own(torch.FromSlice([]int64{1, 1, 1}, 1, 3)), 2, -1, 0)
	require.ErrorContains(t, err, "attention_mask must be (batch 1, seq 2)")
}

// A checkpoint saved in transformers' layout loads back to the same
// model; broken checkpoints are errors that say what is wrong.
func TestLoad(t *testing.T) {
	c := tinyConfig()
	m := newTiny(t, c)
	sd := module.StateDict(m)
	ids := []int64{1, 7, 3, 9, 2}
	want := logits(t, m, ids, nil, 1, 5)

	dir := writeCheckpoint(t, hfConfig(c), sd)
	live := reftest.SettledLiveTensors()
	l, err := gpt2.Load(dir)
	require.NoError(t, err)
	require.False(t, l.Training(), "Load returns the model in eval mode")
	require.Equal(t, want, logits(t, l, ids, nil, 1, 5), "the same weights give the same logits")
	module.Close(l)
	require.Equal(t, live, reftest.SettledLiveTensors(), "Close frees the loaded model")

	// GPT2Model's keys (no "transformer." prefix) with the old attn.bias
	// and attn.masked_bias buffers, as the original gpt2 checkpoint has.
	old := map[string]*torch.Tensor{}
	for k, v := range sd {
		old[strings.TrimPrefix(k, "transformer.")] = v
	}
	ms := torch.NewScope()
	defer ms.Close()
	mask := torch.Ones([]int64{1, 1, 24, 24}, torch.In(ms)).Tril(0)
	old["h.0.attn.bias"], old["h.0.attn.masked_bias"] = mask, mask
	l, err = gpt2.Load(writeCheckpoint(t, hfConfig(c), old))
	require.NoError(t, err)
	require.Equal(t, want, logits(t, l, ids, nil, 1, 5))
	module.Close(l)

	wrong := without(sd)
	wrong["transformer.h.0.attn.c_attn.weight"] = sd["transformer.h.0.attn.c_attn.weight"].T()
	defer wrong["transformer.h.0.attn.c_attn.weight"].Close()
	live = reftest.SettledLiveTensors()

	_, err = gpt2.Load(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "nope")
	_, err = gpt2.Load(t.TempDir())
	require.ErrorContains(t, err, "config.json")
	_, err = gpt2.Load(writeCheckpoint(t, hfConfig(c), nil))
	require.ErrorContains(t, err, "model.safetensors")

	_, err = gpt2.Load(writeCheckpoint(t, hfConfig(c), without(sd, "transformer.h.1.mlp.c_fc.weight")))
	require.ErrorContains(t, err, "transformer.h.1.mlp.c_fc.weight")
	var le *hf.LoadError
	require.ErrorAs(t, err, &le)
	require.Equal(t, []string{"transformer.h.1.mlp.c_fc.weight"}, le.Missing)

	_, err = gpt2.Load(writeCheckpoint(t, hfConfig(c), wrong))
	require.ErrorContains(t, err, "transformer.h.0.attn.c_attn.weight")

	cfg := hfConfig(c)
	cfg["model_type"] = "bert"
	_, err = gpt2.Load(writeCheckpoint(t, cfg, sd))
	require.ErrorContains(t, err, `model_type "bert"`)
	require.Equal(t, live, reftest.SettledLiveTensors(), "failed loads leave nothing behind")
}

// New and Close leave no tensor behind.
func TestNewCloseNoLeak(t *testing.T) {
	live := reftest.SettledLiveTensors()
	m, err := gpt2.New(tinyConfig())
	require.NoError(t, err)
	require.Greater(t, torch.LiveTensors(), live)
	module.Close(m)
	require.Equal(t, live, reftest.SettledLiveTensors())
}

// WithDType loads the weights in bfloat16; the logits stay close to
// float32's (bfloat16 keeps 8 bits of mantissa).
func TestLoadBFloat16(t *testing.T) {
	c := tinyConfig()
	m := newTiny(t, c)
	dir := writeCheckpoint(t, hfConfig(c), module.StateDict(m))
	l, err := gpt2.Load(dir, hf.WithDType(torch.BFloat16))
	require.NoError(t, err)
	defer module.Close(l)
	require.Equal(t, torch.BFloat16, l.Transformer.WTE.(*module.Embedding).Weight.DType())
	ids, mask := []int64{0, 3, 9, 4, 8, 1}, []int64{0, 1, 1, 1, 1, 1}
	want := logits(t, m, ids, mask, 2, 3)
	s := torch.NewScope()
	defer s.Close()
	out := l.ForwardInputs(module.Inputs{IDs: s.Own(torch.FromSlice(ids, 2, 3)), AttentionMask: s.Own(torch.FromSlice(mask, 2, 3))})
	require.Equal(t, torch.BFloat16, out.DType())
	got := reftest.Float64s(t, out.To(torch.Float32))
	// Padding positions aside (row 0, token 0), within bfloat16's rounding.
	V := int(c.VocabSize)
	e := reftest.RelErr(got[V:], f64(want)[V:])
	t.Logf("bfloat16 against float32: %.3g", e)
	require.Less(t, e, 0.1)
}

// lora.Apply wraps the Conv1D projections by transformers' names; the
// adapted model starts as the base model (B = 0) and trains only the
// adapters.
func TestLoRAOnGPT2(t *testing.T) {
	m := newTiny(t, tinyConfig())
	ids := []int64{3, 1, 4, 1, 5, 9}
	before := logits(t, m, ids, nil, 2, 3)
	got, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"c_attn", "c_proj", "c_fc"}})
	require.NoError(t, err)
	require.Equal(t, []string{
		"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj",
		"transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj",
	}, got)
	require.Equal(t, before, logits(t, m, ids, nil, 2, 3), "B starts at zero")

	s := torch.NewScope()
	defer s.Close()
	x := s.Own(torch.FromSlice(ids, 2, 3))
	loss := torch.CrossEntropy(m.Forward(x).View(-1, m.Config.VocabSize), x.View(-1), -100, torch.ReductionMean)
	require.NoError(t, loss.Backward())
	for _, p := range module.NamedParameters(m) {
		g := p.Tensor.Grad()
		require.Equal(t, p.Trainable, g != nil, p.Name)
		if g != nil {
			require.True(t, strings.Contains(p.Name, "lora_"), p.Name)
			g.Close()
		}
	}
}

// A sharded checkpoint (model.safetensors.index.json) loads too.
func TestLoadSharded(t *testing.T) {
	c := tinyConfig()
	m := newTiny(t, c)
	dir := writeCheckpoint(t, hfConfig(c), nil)
	require.NoError(t, torch.SaveSafetensorsSharded(dir, "model", module.StateDict(m), nil, 8<<10))
	shards, err := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	require.NoError(t, err)
	require.Greater(t, len(shards), 1)
	l, err := gpt2.Load(dir)
	require.NoError(t, err)
	defer module.Close(l)
	ids := []int64{4, 8, 15, 16, 23, 42 % 50}
	require.Equal(t, logits(t, m, ids, nil, 1, 6), logits(t, l, ids, nil, 1, 6))
}
