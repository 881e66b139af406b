package llama_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// tinyConfig is a 2-layer GQA model small enough for every test.
func tinyConfig() llama.Config {
	return llama.Config{
		ModelType: "llama", VocabSize: 50, HiddenSize: 32, IntermediateSize: 48,
		NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		MaxPositionEmbeddings: 128, RMSNormEps: 1e-5, HiddenAct: "silu",
		Rope:             llama.Rope{Type: "default", Theta: 10000},
		InitializerRange: 0.3, BOSTokenID: 1, PadTokenID: 0, EOSTokenIDs: []int64{2},
	}
}

func newTiny(t *testing.T, cfg llama.Config, opts ...hf.Option) *llama.Model {
	t.Helper()
	require.NoError(t, torch.ManualSeed(7))
	m, err := llama.New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

func floats(t *testing.T, x *torch.Tensor) []float64 {
	t.Helper()
	c, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return s.Borrow(x).To(torch.Float64) })
	require.NoError(t, err)
	defer c.Close()
	v, err := torch.ToSlice[float64](c)
	require.NoError(t, err)
	return v
}

func maxDiff(t *testing.T, a, b *torch.Tensor) (diff, scale float64) {
	t.Helper()
	require.Equal(t, a.Shape(), b.Shape())
	x, y := floats(t, a), floats(t, b)
	for i := range x {
		diff = max(diff, math.Abs(x[i]-y[i]))
		scale = max(scale, math.Abs(y[i]))
	}
	return diff, scale
}

func TestConfigValidate(t *testing.T) {
	good := tinyConfig()
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		field string
		edit  func(c *llama.Config)
	}{
		{"model_type", func(c *llama.Config) { c.ModelType = "gpt2" }},
		{"vocab_size", func(c *llama.Config) { c.VocabSize = 0 }},
		{"hidden_size", func(c *llama.Config) { c.HiddenSize = -4 }},
		{"intermediate_size", func(c *llama.Config) { c.IntermediateSize = 0 }},
		{"num_hidden_layers", func(c *llama.Config) { c.NumHiddenLayers = 0 }},
		{"num_attention_heads", func(c *llama.Config) { c.NumAttentionHeads = 0 }},
		{"num_attention_heads = 5 must divide hidden_size", func(c *llama.Config) { c.NumAttentionHeads, c.NumKeyValueHeads = 5, 5 }},
		{"num_key_value_heads = 3 must divide num_attention_heads", func(c *llama.Config) { c.NumKeyValueHeads = 3 }},
		{"num_key_value_heads", func(c *llama.Config) { c.NumKeyValueHeads = -1 }},
		{"head_dim", func(c *llama.Config) { c.HeadDim = 7 }},
		{"rms_norm_eps", func(c *llama.Config) { c.RMSNormEps = 0 }},
		{"hidden_act", func(c *llama.Config) { c.HiddenAct = "relu" }},
		{"rope_theta", func(c *llama.Config) { c.Rope.Theta = 0 }},
		{`rope_scaling type "yarn" is not supported (supported: default, linear, llama3)`, func(c *llama.Config) { c.Rope.Type = "yarn" }},
		{"rope_scaling factor", func(c *llama.Config) { c.Rope.Type = "linear" }},
		{"low_freq_factor", func(c *llama.Config) {
			c.Rope = llama.Rope{Type: "llama3", Theta: 1e4, Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositionEmbeddings: 64}
		}},
		{"original_max_position_embeddings", func(c *llama.Config) {
			c.Rope = llama.Rope{Type: "llama3", Theta: 1e4, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4}
		}},
		{"layer_types", func(c *llama.Config) { c.SlidingWindow, c.Sliding = 4, []bool{true} }},
		{"attention_dropout", func(c *llama.Config) { c.AttentionDropout = 1 }},
	} {
		cfg := tinyConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		require.ErrorContains(t, err, c.field)
		_, err = llama.New(cfg)
		require.ErrorContains(t, err, c.field, "New validates")
	}
	var nilCfg *llama.Config
	require.Error(t, nilCfg.Validate())
}

func parse(t *testing.T, text string) (*llama.Config, error) {
	t.Helper()
	c, err := hf.ParseConfig("", []byte(text))
	require.NoError(t, err)
	return llama.ConfigFrom(c)
}

func TestConfigFrom(t *testing.T) {
	const sizes = `"vocab_size": 50, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "max_position_embeddings": 128`
	// transformers ≥ 5 and the old style read to the same Rope.
	v5, err := parse(t, `{"model_type": "llama", `+sizes+`, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
		"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, "dtype": "bfloat16"}`)
	require.NoError(t, err)
	old, err := parse(t, `{"model_type": "llama", `+sizes+`, "rope_theta": 500000.0, "rope_scaling": {"type": "llama3",
		"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, "torch_dtype": "bfloat16"}`)
	require.NoError(t, err)
	require.Equal(t, v5.Rope, old.Rope)
	require.Equal(t, llama.Rope{Type: "llama3", Theta: 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}, v5.Rope)

	// Defaults: rope "default" with theta 10000; rope_theta inside
	// rope_parameters wins; null scaling is none.
	c, err := parse(t, `{"model_type": "llama", `+sizes+`, "rope_scaling": null}`)
	require.NoError(t, err)
	require.Equal(t, llama.Rope{Type: "default", Theta: 10000}, c.Rope)
	require.EqualValues(t, 2, c.NumKeyValueHeads)
	require.Equal(t, []int64{2}, c.EOSTokenIDs)
	c, err = parse(t, `{"model_type": "llama", `+sizes+`, "rope_theta": 1.0, "rope_parameters": {"rope_type": "linear", "factor": 2, "rope_theta": 20.0}, "eos_token_id": [5, 6]}`)
	require.NoError(t, err)
	require.Equal(t, "linear", c.Rope.Type)
	require.Equal(t, 20.0, c.Rope.Theta)
	require.Equal(t, []int64{5, 6}, c.EOSTokenIDs)

	// Qwen2: q/k/v biases; a sliding window only with use_sliding_window,
	// from max_window_layers on.
	c, err = parse(t, `{"model_type": "qwen2", `+sizes+`, "sliding_window": 8, "use_sliding_window": false}`)
	require.NoError(t, err)
	require.True(t, c.QKVBias)
	require.False(t, c.OBias || c.MLPBias)
	require.Zero(t, c.SlidingWindow)
	c, err = parse(t, `{"model_type": "qwen2", `+sizes+`, "sliding_window": 8, "use_sliding_window": true, "max_window_layers": 1}`)
	require.NoError(t, err)
	require.EqualValues(t, 8, c.SlidingWindow)
	require.Equal(t, []bool{false, true}, c.Sliding)
	// Mistral: every layer slides, unless the window is null.
	c, err = parse(t, `{"model_type": "mistral", `+sizes+`, "sliding_window": 6, "head_dim": 16}`)
	require.NoError(t, err)
	require.Equal(t, []bool{true, true}, c.Sliding)
	require.EqualValues(t, 16, c.HeadDim)
	c, err = parse(t, `{"model_type": "mistral", `+sizes+`, "sliding_window": null}`)
	require.NoError(t, err)
	require.Zero(t, c.SlidingWindow)

	for text, want := range map[string]string{
		`{"model_type": "gpt2"}`: `model_type "gpt2" is not supported (supported: llama, mistral, qwen2)`,
		`{"model_type": "llama", ` + sizes + `, "rope_scaling": {"type": "yarn", "factor": 2}}`:         `rope_scaling type "yarn" is not supported (supported: default, linear, llama3)`,
		`{"model_type": "llama", ` + sizes + `, "rope_scaling": {"type": "dynamic", "factor": 2}}`:      `"dynamic"`,
		`{"model_type": "llama", ` + sizes + `, "hidden_size": "big"}`:                                  `"hidden_size"`,
		`{"model_type": "llama", ` + sizes + `, "num_key_value_heads": 3}`:                              "num_key_value_heads = 3 must divide num_attention_heads = 4",
		`{"model_type": "llama", ` + sizes + `, "rms_norm_eps": -1}`:                                    "rms_norm_eps",
		`{"model_type": "llama", ` + sizes + `, "rope_parameters": {"rope_type": "linear"}}`:            "factor",
		`{"model_type": "llama", ` + sizes + `, "rope_parameters": {"rope_type": 3}}`:                   `"rope_type"`,
		`{"model_type": "llama", ` + sizes + `, "rope_parameters": {"partial_rotary_factor": 0.5}}`:     "partial_rotary_factor",
		`{"model_type": "llama", ` + sizes + `, "eos_token_id": "x"}`:                                   `"eos_token_id"`,
		`{"model_type": "qwen2", ` + sizes + `, "use_sliding_window": true, "layer_types": ["x", "y"]}`: "layer_types[0]",
	} {
		_, err := parse(t, text)
		require.ErrorContains(t, err, want, text)
	}
}

// The parameter names are transformers' LlamaForCausalLM's, in its order.
func TestParameterNames(t *testing.T) {
	cfg := tinyConfig()
	cfg.NumHiddenLayers = 1
	m := newTiny(t, cfg)
	var names []string
	for _, p := range module.NamedParameters(m) {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{
		"model.embed_tokens.weight",
		"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
		"model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
		"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
		"model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
		"model.norm.weight", "lm_head.weight",
	}, names)
	require.Equal(t, []int64{2 * 8, 32}, m.Model.Layers.At(0).SelfAttn.KProj.(*module.Linear).Weight.Shape(), "GQA: 2 kv heads of 8")
	require.Empty(t, module.StateDict(m)["model.rotary_emb.inv_freq"], "inv_freq is not persistent")

	// Qwen2's biases and a tied head.
	cfg.ModelType, cfg.QKVBias, cfg.TieWordEmbeddings = "qwen2", true, true
	q := newTiny(t, cfg)
	sd := module.StateDict(q)
	require.Contains(t, sd, "model.layers.0.self_attn.q_proj.bias")
	require.Contains(t, sd, "model.layers.0.self_attn.v_proj.bias")
	require.NotContains(t, sd, "model.layers.0.self_attn.o_proj.bias")
	require.NotContains(t, sd, "lm_head.weight", "tied: saved under the embedding's name only")
	require.Same(t, q.LMHead.(*module.Linear).Weight, q.Model.EmbedTokens.(*module.Embedding).Weight)

	// The projections are Layers that SetChild (and so lora.Apply) can replace.
	lin, err := module.NewLinear(32, 32, false)
	require.NoError(t, err)
	require.NoError(t, module.SetChild(m, "model.layers.0.self_attn.q_proj", lin))
	require.Same(t, lin, m.Model.Layers.At(0).SelfAttn.QProj)
}

// RMSNorm against its formula, x / sqrt(mean(x²) + eps) * w, in float64.
func TestRMSNorm(t *testing.T) {
	n, err := llama.NewRMSNorm(4, 1e-5)
	require.NoError(t, err)
	defer module.Close(n)
	w := []float32{0.5, -1, 2, 3}
	src := torch.FromSlice(w, 4)
	require.NoError(t, n.Weight.Copy_(src).Err())
	require.NoError(t, src.Close())
	x := []float32{1, -2, 3, 0.25, 10, 20, -30, 40}
	s := torch.NewScope()
	defer s.Close()
	y := floats(t, n.Forward(s.Own(torch.FromSlice(x, 2, 4))))
	for r := 0; r < 2; r++ {
		var ms float64
		for j := 0; j < 4; j++ {
			ms += float64(x[4*r+j]) * float64(x[4*r+j]) / 4
		}
		for j := 0; j < 4; j++ {
			want := float64(x[4*r+j]) / math.Sqrt(ms+1e-5) * float64(w[j])
			require.InDelta(t, want, y[4*r+j], 1e-6*math.Abs(want)+1e-7, "row %d col %d", r, j)
		}
	}
	// bfloat16 in, bfloat16 out (computed in float32 inside).
	yb := n.Forward(s.Own(torch.FromSlice(x, 2, 4)).To(torch.BFloat16))
	require.Equal(t, torch.Float32, yb.DType(), "a float32 weight times a bfloat16 input promotes, as in PyTorch")
	_, err = llama.NewRMSNorm(0, 1e-5)
	require.ErrorContains(t, err, "dim")
	_, err = llama.NewRMSNorm(4, 0)
	require.ErrorContains(t, err, "eps")
}

// InvFreq against the formulas of transformers' modeling_rope_utils, in
// float64.
func TestInvFreq(t *testing.T) {
	const dim = 16
	base := func(theta float64) []float64 {
		out := make([]float64, dim/2)
		for i := range out {
			out[i] = 1 / math.Pow(theta, float64(2*i)/dim)
		}
		return out
	}
	check := func(r llama.Rope, want []float64) {
		t.Helper()
		got, err := llama.InvFreq(r, dim)
		require.NoError(t, err)
		defer got.Close()
		require.Equal(t, torch.Float32, got.DType())
		g := floats(t, got)
		for i := range want {
			require.InDelta(t, want[i], g[i], 1e-6*want[i], "%s inv_freq[%d]", r.Type, i)
		}
	}
	check(llama.Rope{Type: "default", Theta: 10000}, base(10000))
	lin := base(10000)
	for i := range lin {
		lin[i] /= 4
	}
	check(llama.Rope{Type: "linear", Theta: 10000, Factor: 4}, lin)

	// llama3 with factor 8, low 1, high 4, original context 1024, theta
	// 500000: wavelengths 2π/f split into high (< 256: kept), low (> 1024:
	// divided by 8) and a middle band, interpolated.
	l3 := base(500000)
	bands := map[string]int{}
	for i, f := range l3 {
		wl := 2 * math.Pi / f
		switch {
		case wl < 256:
			bands["high"]++
		case wl > 1024:
			l3[i] = f / 8
			bands["low"]++
		default:
			sm := (1024/wl - 1) / (4 - 1)
			l3[i] = (1-sm)*f/8 + sm*f
			bands["medium"]++
		}
	}
	require.Len(t, bands, 3, "the test covers the three bands")
	check(llama.Rope{Type: "llama3", Theta: 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 1024}, l3)

	_, err := llama.InvFreq(llama.Rope{Type: "yarn", Theta: 10000}, dim)
	require.ErrorContains(t, err, "yarn")
	_, err = llama.InvFreq(llama.Rope{Type: "default", Theta: 10000}, 3)
	require.ErrorContains(t, err, "even")
}

// ApplyRotary rotates the pairs (x_i, x_{i+D/2}) by the angle of cos/sin:
// (x_i c - x_{i+D/2} s, x_{i+D/2} c + x_i s).
func TestApplyRotary(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x := []float32{1, 2, 3, 4}                // [1, 1, 1, 4]
	angles := []float64{0.3, -1.2, 0.3, -1.2} // cat(freqs, freqs)
	c, sn := make([]float32, 4), make([]float32, 4)
	for i, a := range angles {
		c[i], sn[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	y := floats(t, llama.ApplyRotary(s.Own(torch.FromSlice(x, 1, 1, 1, 4)), s.Own(torch.FromSlice(c, 1, 1, 4)), s.Own(torch.FromSlice(sn, 1, 1, 4))))
	want := []float64{
		1*math.Cos(0.3) - 3*math.Sin(0.3), 2*math.Cos(-1.2) - 4*math.Sin(-1.2),
		3*math.Cos(0.3) + 1*math.Sin(0.3), 4*math.Cos(-1.2) + 2*math.Sin(-1.2),
	}
	for i := range want {
		require.InDelta(t, want[i], y[i], 1e-6)
	}
}

// Go's own consistency: decoding through the cache equals the full pass;
// a left-padded row equals the same tokens alone; batch rows are
// independent; no tensor outlives its scope.
func TestForwardCacheAndPadding(t *testing.T) {
	for _, typ := range []string{"llama", "mistral"} {
		cfg := tinyConfig()
		if typ == "mistral" {
			cfg.ModelType, cfg.SlidingWindow, cfg.Sliding = "mistral", 3, []bool{true, true}
		}
		m := newTiny(t, cfg)
		live := reftest.SettledLiveTensors()
		s := torch.NewScope()
		ids := []int64{5, 9, 13, 2, 44, 7, 21}
		x := s.Own(torch.FromSlice(ids, 1, 7))
		full := m.Forward(x)

		cache := m.NewCache()
		var parts []*torch.Tensor
		parts = append(parts, m.ForwardCache(x.Narrow(1, 0, 4), nil, nil, cache))
		for i := int64(4); i < 7; i++ {
			parts = append(parts, m.ForwardCache(x.Narrow(1, i, 1), nil, nil, cache))
		}
		d, scale := maxDiff(t, torch.Cat(parts, 1), full)
		require.Less(t, d, 1e-5*scale, "%s: cache vs full", typ)
		cache.Close()

		// Row 1 is the sequence left-padded by 3; row 0 has 3 more tokens.
		twoRows := s.Own(torch.FromSlice(append(append(append([]int64{}, ids...), 3, 3, 3), append([]int64{0, 0, 0}, ids...)...), 2, 10))
		mask := s.Own(torch.FromSlice([]int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}, 2, 10))
		out := m.ForwardCache(twoRows, mask, nil, nil)
		d, scale = maxDiff(t, out.Narrow(0, 1, 1).Narrow(1, 3, 7), full)
		require.Less(t, d, 1e-5*scale, "%s: the padded row", typ)
		d, scale = maxDiff(t, out.Narrow(0, 0, 1).Narrow(1, 0, 7), full)
		require.Less(t, d, 1e-5*scale, "%s: the unpadded row", typ)
		require.NoError(t, s.Err())
		s.Close()
		require.Equal(t, live, reftest.SettledLiveTensors(), "%s: no leak", typ)
	}
}

// Unscoped inputs: the result belongs to the caller, nothing else stays.
func TestForwardUnscoped(t *testing.T) {
	m := newTiny(t, tinyConfig())
	ids := torch.FromSlice([]int64{1, 2, 3}, 1, 3)
	defer ids.Close()
	live := reftest.SettledLiveTensors()
	out := m.Forward(ids)
	require.NoError(t, out.Err())
	require.Equal(t, []int64{1, 3, 50}, out.Shape())
	require.Nil(t, out.Scope())
	require.Equal(t, live+1, reftest.SettledLiveTensors())
	out.Close()
	// Hidden states and LogitsToKeep.
	s := torch.NewScope()
	defer s.Close()
	h := m.Hidden(llama.Inputs{IDs: s.Own(ids.Alias())})
	require.Equal(t, []int64{1, 3, 32}, h.Shape())
	last := m.Run(llama.Inputs{IDs: s.Own(ids.Alias()), LogitsToKeep: 1})
	require.Equal(t, []int64{1, 1, 50}, last.Shape())
	all := m.ForwardInputs(module.Inputs{IDs: s.Own(ids.Alias())})
	d, scale := maxDiff(t, last, all.Narrow(1, 2, 1))
	require.LessOrEqual(t, d, 1e-6*scale)
}

func TestForwardErrors(t *testing.T) {
	m := newTiny(t, tinyConfig())
	live := reftest.SettledLiveTensors()
	s := torch.NewScope()
	cases := map[string]*torch.Tensor{
		"nil input ids":               m.Forward(nil),
		"want int64 [batch, seq]":     m.Forward(s.Own(torch.Zeros([]int64{1, 3}))),
		"index out of range":          m.Forward(s.Own(torch.FromSlice([]int64{1, 50}, 1, 2))),
		"attention mask: want [1, 2]": m.ForwardCache(s.Own(torch.FromSlice([]int64{1, 5}, 1, 2)), s.Own(torch.FromSlice([]int64{1, 1, 1}, 1, 3)), nil, nil),
		"position ids: want":          m.ForwardCache(s.Own(torch.FromSlice([]int64{1, 5}, 1, 2)), nil, s.Own(torch.FromSlice([]int64{0}, 1, 1)), nil),
		"the cache has 3 layers":      m.ForwardCache(s.Own(torch.FromSlice([]int64{1, 5}, 1, 2)), nil, nil, hf.NewKVCache(3)),
	}
	for want, out := range cases {
		require.ErrorContains(t, out.Err(), want)
	}
	s.Close()
	require.Equal(t, live, reftest.SettledLiveTensors(), "the failed passes leak nothing")
	// A block without rotation tables, or with a wrong hidden width.
	_, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		return m.Model.Layers.At(0).Forward(s.Own(torch.Zeros([]int64{1, 2, 32})), nil)
	})
	require.ErrorContains(t, err, "cos/sin")
	_, err = torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		ones := torch.Ones([]int64{1, 1, 2, 8}, torch.In(s))
		return m.Model.Layers.At(0).Forward(s.Own(torch.Zeros([]int64{1, 2, 7})), &llama.Step{Cos: ones, Sin: ones})
	})
	require.Error(t, err)
	require.Equal(t, live, reftest.SettledLiveTensors())

	// A closed model fails, it does not panic.
	c := newTiny(t, tinyConfig())
	c.Close()
	_, err = torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		return c.Forward(s.Own(torch.FromSlice([]int64{1, 2}, 1, 2)))
	})
	require.Error(t, err)
}

// Gradients reach the weights through the whole forward pass (LoRA
// training backpropagates through frozen ones the same way).
func TestBackward(t *testing.T) {
	m := newTiny(t, tinyConfig())
	s := torch.NewScope()
	defer s.Close()
	h := m.Hidden(llama.Inputs{IDs: s.Own(torch.FromSlice([]int64{4, 8, 15, 16, 23, 42}, 2, 3))})
	require.NoError(t, h.Sum().Backward())
	for _, name := range []string{"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"} {
		var p *torch.Tensor
		for _, np := range module.NamedParameters(m) {
			if np.Name == name {
				p = np.Tensor
			}
		}
		require.NotNil(t, p, name)
		g := s.Own(p.Grad())
		require.NotNil(t, g, name)
		n, err := g.Abs().Sum().Item()
		require.NoError(t, err)
		require.Greater(t, n, 0.0, name)
	}
	require.NoError(t, module.ZeroGrad(m))
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func TestSaveLoad(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := tinyConfig()
		cfg.TieWordEmbeddings = tied
		m := newTiny(t, cfg)
		dir := t.TempDir()
		require.NoError(t, m.Save(dir))
		got, err := llama.Load(dir)
		require.NoError(t, err)
		require.Equal(t, m.Cfg, got.Cfg)
		s := torch.NewScope()
		x := s.Own(torch.FromSlice([]int64{3, 1, 4, 1, 5}, 1, 5))
		d, _ := maxDiff(t, got.Forward(x), m.Forward(x))
		require.Zero(t, d)
		s.Close()
		got.Close()
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := llama.Load(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "nope")
	empty := t.TempDir()
	_, err = llama.Load(empty)
	require.ErrorContains(t, err, "not a Hugging Face checkpoint")

	// A config without weights.
	m := newTiny(t, tinyConfig())
	dir := t.TempDir()
	require.NoError(t, m.Save(dir))
	require.NoError(t, os.Remove(filepath.Join(dir, "model.safetensors")))
	_, err = llama.Load(dir)
	require.ErrorContains(t, err, "no model.safetensors")

	// A missing and a misshaped weight, named.
	require.NoError(t, m.Save(dir))
	sd, _, err := torch.LoadSafetensors(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	defer torch.CloseMap(sd)
	sd["model.layers.1.mlp.up_proj.weight"].Close()
	delete(sd, "model.layers.1.mlp.up_proj.weight")
	sd["model.norm.weight"].Close()
	sd["model.norm.weight"] = torch.Ones([]int64{31})
	sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.Ones([]int64{4}) // old checkpoints: ignored
	require.NoError(t, torch.SaveSafetensors(filepath.Join(dir, "model.safetensors"), sd, nil))
	live := reftest.SettledLiveTensors()
	_, err = llama.Load(dir)
	require.Equal(t, live, reftest.SettledLiveTensors(), "a failed load frees the model")
	var le *hf.LoadError
	require.True(t, errors.As(err, &le), "%v", err)
	require.Equal(t, []string{"model.layers.1.mlp.up_proj.weight"}, le.Missing)
	require.Len(t, le.Misshaped, 1)
	require.True(t, strings.HasPrefix(le.Misshaped[0], "model.norm.weight: model [32], checkpoint [31]"), le.Misshaped[0])
	require.Empty(t, le.Unexpected)

	// An unsupported model_type and a bad field.
	writeJSON(t, filepath.Join(dir, "config.json"), map[string]any{"model_type": "falcon"})
	_, err = llama.Load(dir)
	require.ErrorContains(t, err, "supported: llama, mistral, qwen2")
	writeJSON(t, filepath.Join(dir, "config.json"), map[string]any{"model_type": "llama", "hidden_size": 30, "num_attention_heads": 4})
	_, err = llama.Load(dir)
	require.ErrorContains(t, err, "num_attention_heads = 4 must divide hidden_size = 30")
	_, err = llama.Load(empty, hf.WithDType(torch.Int64))
	require.Error(t, err)
}

// bfloat16 weights run, and stay within 5% of max|logit| of the float32
// model they were converted from (bfloat16 keeps 8 bits of mantissa).
func TestBFloat16(t *testing.T) {
	m := newTiny(t, tinyConfig())
	dir := t.TempDir()
	require.NoError(t, m.Save(dir))
	b, err := llama.Load(dir, hf.WithDType(torch.BFloat16))
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, torch.BFloat16, b.DType())
	for _, p := range module.NamedParameters(b) {
		require.Equal(t, torch.BFloat16, p.Tensor.DType(), p.Name)
	}
	s := torch.NewScope()
	defer s.Close()
	x := s.Own(torch.FromSlice([]int64{3, 1, 4, 1, 5, 9, 2, 6}, 2, 4))
	got := b.Forward(x)
	require.Equal(t, torch.BFloat16, got.DType())
	d, scale := maxDiff(t, got, m.Forward(x))
	require.Less(t, d, 0.05*scale)
	t.Logf("bfloat16 vs float32: %.3g of max|logit|", d/scale)
	bn, err := llama.New(tinyConfig(), hf.WithDType(torch.BFloat16))
	require.NoError(t, err)
	defer bn.Close()
	require.NoError(t, bn.Forward(x).Err())
	require.True(t, slices.Equal([]int64{2, 4, 50}, got.Shape()))
}
