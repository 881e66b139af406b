package bert_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/bert"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func tinyConfig() bert.Config {
	c := bert.DefaultConfig()
	c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads = 40, 16, 2, 4
	c.IntermediateSize, c.MaxPositionEmbeddings = 24, 20
	c.InitializerRange = 0.3
	return c
}

func newTiny(t *testing.T, c bert.Config) *bert.Model {
	t.Helper()
	require.NoError(t, torch.ManualSeed(3))
	m, err := bert.New(c)
	require.NoError(t, err)
	m.Eval()
	t.Cleanup(func() { module.Close(m) })
	return m
}

// hfConfig is config.json for c, as transformers writes it.
func hfConfig(c bert.Config) map[string]any {
	arch := "BertModel"
	if c.SequenceClassification {
		arch = "BertForSequenceClassification"
	}
	return map[string]any{
		"model_type": "bert", "architectures": []string{arch},
		"vocab_size": c.VocabSize, "hidden_size": c.HiddenSize, "num_hidden_layers": c.NumHiddenLayers,
		"num_attention_heads": c.NumAttentionHeads, "intermediate_size": c.IntermediateSize,
		"max_position_embeddings": c.MaxPositionEmbeddings, "type_vocab_size": c.TypeVocabSize,
		"hidden_act": c.HiddenAct, "layer_norm_eps": c.LayerNormEps, "pad_token_id": c.PadTokenID,
		"position_embedding_type": "absolute", "classifier_dropout": nil,
	}
}

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

func TestConfigValidate(t *testing.T) {
	require.NoError(t, bert.DefaultConfig().Validate())
	for _, tc := range []struct {
		edit func(*bert.Config)
		want string
	}{
		{func(c *bert.Config) { c.HiddenSize = 0 }, "hidden_size must be positive"},
		{func(c *bert.Config) { c.NumAttentionHeads = 5 }, "hidden_size 768 is not a multiple of num_attention_heads 5"},
		{func(c *bert.Config) { c.HiddenAct = "tanh" }, `hidden_act "tanh" is not supported`},
		{func(c *bert.Config) { c.LayerNormEps = -1 }, "layer_norm_eps must be positive"},
		{func(c *bert.Config) { c.PadTokenID = 30522 }, "pad_token_id 30522 is outside the vocabulary"},
		{func(c *bert.Config) { c.HiddenDropoutProb = 1.5 }, "hidden_dropout_prob must be in [0, 1)"},
		{func(c *bert.Config) { c.SequenceClassification, c.NumLabels = true, 0 }, "num_labels must be positive"},
		{func(c *bert.Config) { c.SequenceClassification, c.AddPoolingLayer = true, false }, "needs the pooler"},
		{func(c *bert.Config) { c.SequenceClassification, c.ID2Label = true, map[int64]string{5: "x"} }, "id2label has id 5"},
	} {
		c := bert.DefaultConfig()
		tc.edit(&c)
		require.ErrorContains(t, c.Validate(), tc.want)
		_, err := bert.New(c)
		require.ErrorContains(t, err, tc.want, "New validates")
	}
}

func TestConfigFromHF(t *testing.T) {
	cfg := hfConfig(tinyConfig())
	cfg["id2label"] = map[string]string{"0": "no", "1": "yes", "2": "maybe"}
	cfg["architectures"] = []string{"BertForSequenceClassification"}
	hc, err := hf.ParseConfig("", mustJSON(t, cfg))
	require.NoError(t, err)
	c, err := bert.ConfigFromHF(hc)
	require.NoError(t, err)
	require.Equal(t, int64(3), c.NumLabels, "num_labels from id2label")
	require.Equal(t, "maybe", c.ID2Label[2])
	require.True(t, c.SequenceClassification)
	require.Equal(t, 1e-12, c.LayerNormEps)

	for _, tc := range []struct {
		key  string
		val  any
		want string
	}{
		{"model_type", "gpt2", `model_type "gpt2" is not supported by this package (supported: bert)`},
		{"position_embedding_type", "relative_key", `position_embedding_type "relative_key" is not supported`},
		{"is_decoder", true, "is_decoder is not supported"},
		{"id2label", map[string]string{"first": "a"}, `id2label key "first" is not an integer`},
		{"num_attention_heads", 3, "not a multiple of num_attention_heads 3"},
		{"hidden_size", 1.5, "hidden_size"},
	} {
		bad := hfConfig(tinyConfig())
		bad[tc.key] = tc.val
		hc, err := hf.ParseConfig("", mustJSON(t, bad))
		require.NoError(t, err)
		_, err = bert.ConfigFromHF(hc)
		require.ErrorContains(t, err, tc.want, tc.key)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return raw
}

func names(m module.Module) []string {
	var out []string
	for _, p := range module.NamedParameters(m) {
		out = append(out, p.Name)
	}
	return out
}

func TestNames(t *testing.T) {
	m := newTiny(t, tinyConfig())
	n := names(m)
	for _, want := range []string{
		"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
		"embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
		"encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.bias",
		"encoder.layer.0.attention.self.value.weight", "encoder.layer.0.attention.output.dense.weight",
		"encoder.layer.0.attention.output.LayerNorm.bias", "encoder.layer.1.intermediate.dense.weight",
		"encoder.layer.1.output.dense.bias", "encoder.layer.1.output.LayerNorm.weight", "pooler.dense.weight",
	} {
		require.Contains(t, n, want)
	}
	require.Len(t, n, 5+2*16+2)
	bufs := module.NamedBuffers(m)
	require.Len(t, bufs, 1)
	require.Equal(t, "embeddings.position_ids", bufs[0].Name)
	require.False(t, bufs[0].Persistent)
	require.Equal(t, torch.Int64, bufs[0].Tensor.DType())

	c := tinyConfig()
	c.SequenceClassification, c.NumLabels = true, 3
	cls := newTiny(t, c)
	n = names(cls)
	require.Contains(t, n, "bert.encoder.layer.0.attention.self.query.weight")
	require.Contains(t, n, "bert.pooler.dense.bias")
	require.Contains(t, n, "classifier.weight")
	require.NotContains(t, n, "encoder.layer.0.attention.self.query.weight")

	// The projections are Layers that SetChild (lora.Apply) can replace.
	repl, err := module.NewLinear(16, 16, true)
	require.NoError(t, err)
	require.NoError(t, module.SetChild(cls, "bert.encoder.layer.1.attention.self.value", repl))
	require.Same(t, repl, cls.Encoder.Layer.At(1).Attention.Self.Value)
}

// hidden runs the model and returns the last hidden state's values.
func hidden(t *testing.T, m *bert.Model, ids, mask, types []int64, B, T int64) []float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	in := module.Inputs{IDs: s.Own(torch.FromSlice(ids, B, T))}
	if mask != nil {
		in.AttentionMask = s.Own(torch.FromSlice(mask, B, T))
	}
	if types != nil {
		in.TokenTypes = s.Own(torch.FromSlice(types, B, T))
	}
	out := m.ForwardInputs(in)
	require.NoError(t, s.Err())
	require.Equal(t, []int64{B, T, m.Config.HiddenSize}, out.Shape())
	return reftest.Float64s(t, out)
}

// A right-padded row's tokens get the states they have alone (the padding
// keys get no attention), and token types change the result.
func TestPaddingAndTokenTypes(t *testing.T) {
	m := newTiny(t, tinyConfig())
	alone := hidden(t, m, []int64{2, 9, 13, 4}, nil, []int64{0, 0, 1, 1}, 1, 4)
	batch := hidden(t, m, []int64{2, 9, 13, 4, 0, 0, 5, 6, 7, 8, 9, 10},
		[]int64{1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, []int64{0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 2, 6)
	H := int(m.Config.HiddenSize)
	e := reftest.RequireSlicesClose(t, "padded row", batch[:4*H], alone, 1e-5)
	t.Logf("right-padded against alone: %.3g", e)
	noTypes := hidden(t, m, []int64{2, 9, 13, 4}, nil, nil, 1, 4)
	require.Greater(t, reftest.RelErr(noTypes, alone), 1e-3, "token_type_ids are used")
	zeros := hidden(t, m, []int64{2, 9, 13, 4}, nil, []int64{0, 0, 0, 0}, 1, 4)
	require.Equal(t, zeros, noTypes, "absent token types are zeros")
}

// MeanPool and Normalize by their formulas, computed by hand.
func TestMeanPoolNormalize(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	// hidden (2, 3, 2); row 0 keeps tokens 0 and 1, row 1 only token 2.
	h := s.Own(torch.FromSlice([]float32{1, 2, 3, 4, 100, 100, 5, 6, 7, 8, 3, 4}, 2, 3, 2))
	mask := s.Own(torch.FromSlice([]int64{1, 1, 0, 0, 0, 1}, 2, 3))
	pooled := bert.MeanPool(h, mask)
	require.Equal(t, []float64{2, 3, 3, 4}, reftest.Float64s(t, pooled))
	norm := bert.Normalize(pooled)
	r := math.Sqrt(13)
	reftest.RequireSlicesClose(t, "normalize", reftest.Float64s(t, norm), []float64{2 / r, 3 / r, 3.0 / 5, 4.0 / 5}, 1e-7)
	// An all-padding row divides by 1e-9, not 0; a zero vector stays zero.
	empty := bert.MeanPool(h.Narrow(0, 0, 1), s.Own(torch.Zeros([]int64{1, 3}, torch.WithDType(torch.Int64))))
	require.Equal(t, []float64{0, 0}, reftest.Float64s(t, bert.Normalize(empty)))
	reftest.RequireSlicesClose(t, "no mask", reftest.Float64s(t, bert.MeanPool(h.Narrow(0, 0, 1), nil)),
		[]float64{(1 + 3 + 100) / 3.0, (2 + 4 + 100) / 3.0}, 1e-7)
	require.NoError(t, s.Err())
}

func TestForwardErrors(t *testing.T) {
	m := newTiny(t, tinyConfig())
	live := reftest.SettledLiveTensors()
	i64 := torch.WithDType(torch.Int64)
	for _, tc := range []struct {
		name string
		in   func(s *torch.Scope) module.Inputs
		want string
	}{
		{"1-D ids", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.FromSlice([]int64{1, 2}))}
		}, "input_ids must be (batch, seq)"},
		{"too long", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.Zeros([]int64{1, 21}, i64))}
		}, "exceeds max_position_embeddings 20"},
		{"mask shape", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.Zeros([]int64{2, 3}, i64)), AttentionMask: s.Own(torch.Ones([]int64{3, 2}, i64))}
		}, "attention_mask must be (batch 2, seq 3)"},
		{"types shape", func(s *torch.Scope) module.Inputs {
			return module.Inputs{IDs: s.Own(torch.Zeros([]int64{2, 3}, i64)), TokenTypes: s.Own(torch.Zeros([]int64{2, 4}, i64))}
		}, "token_type_ids must be (batch 2, seq 3)"},
		{"no ids", func(s *torch.Scope) module.Inputs { return module.Inputs{} }, "neither input_ids nor inputs_embeds"},
	} {
		s := torch.NewScope()
		_, err := s.Done(m.ForwardInputs(tc.in(s)))
		require.ErrorContains(t, err, tc.want, tc.name)
		require.Equal(t, live, reftest.SettledLiveTensors(), tc.name)
	}
	s := torch.NewScope()
	_, err := s.Done(m.Classify(module.Inputs{IDs: s.Own(torch.Zeros([]int64{1, 2}, i64))}))
	require.ErrorContains(t, err, "no classifier")
	require.Equal(t, live, reftest.SettledLiveTensors())
}

// Checkpoints in transformers' layouts load; broken ones are errors that
// say what is wrong.
func TestLoad(t *testing.T) {
	c := tinyConfig()
	m := newTiny(t, c)
	sd := module.StateDict(m)
	ids, mask := []int64{1, 7, 3, 9, 2, 5}, []int64{1, 1, 1, 1, 1, 0}
	want := hidden(t, m, ids, mask, nil, 1, 6)
	pos := torch.Arange(0, 20, 1, torch.WithDType(torch.Int64)).View(1, 20)
	defer pos.Close()
	live := reftest.SettledLiveTensors()

	// BertModel's keys with the int64 position_ids buffer of older files.
	withPos := map[string]*torch.Tensor{"embeddings.position_ids": pos}
	for k, v := range sd {
		withPos[k] = v
	}
	l, err := bert.Load(writeCheckpoint(t, hfConfig(c), withPos))
	require.NoError(t, err)
	require.False(t, l.Training())
	require.Equal(t, want, hidden(t, l, ids, mask, nil, 1, 6))
	module.Close(l)

	// The "bert." prefix and the MLM head of a BertForMaskedLM checkpoint.
	prefixed := map[string]*torch.Tensor{"cls.predictions.bias": sd["pooler.dense.bias"]}
	for k, v := range sd {
		prefixed["bert."+k] = v
	}
	l, err = bert.Load(writeCheckpoint(t, hfConfig(c), prefixed))
	require.NoError(t, err)
	require.False(t, l.Config.SequenceClassification)
	require.Equal(t, want, hidden(t, l, ids, mask, nil, 1, 6))
	module.Close(l)

	// Without the pooler: none is built.
	l, err = bert.Load(writeCheckpoint(t, hfConfig(c), without(sd, "pooler.dense.weight", "pooler.dense.bias")))
	require.NoError(t, err)
	require.Nil(t, l.Pooler)
	module.Close(l)

	_, err = bert.Load(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "nope")
	_, err = bert.Load(writeCheckpoint(t, hfConfig(c), nil))
	require.ErrorContains(t, err, "model.safetensors")
	_, err = bert.Load(writeCheckpoint(t, hfConfig(c), without(sd, "encoder.layer.1.attention.self.key.weight")))
	require.ErrorContains(t, err, "encoder.layer.1.attention.self.key.weight")
	cfg := hfConfig(c)
	cfg["hidden_size"] = 32
	_, err = bert.Load(writeCheckpoint(t, cfg, sd))
	require.ErrorContains(t, err, "embeddings.word_embeddings.weight")
	require.Equal(t, live, reftest.SettledLiveTensors(), "loads and failed loads leave nothing behind")
}

// A BertForSequenceClassification checkpoint: bert.-prefixed keys and a
// classifier; logits are the classifier on the pooled first token.
func TestLoadSequenceClassification(t *testing.T) {
	c := tinyConfig()
	c.SequenceClassification, c.NumLabels = true, 2
	m := newTiny(t, c)
	cfg := hfConfig(c)
	cfg["id2label"] = map[string]string{"0": "NEG", "1": "POS"}
	l, err := bert.Load(writeCheckpoint(t, cfg, module.StateDict(m)))
	require.NoError(t, err)
	defer module.Close(l)
	require.True(t, l.Config.SequenceClassification)
	require.Equal(t, "POS", l.Label(1))

	s := torch.NewScope()
	defer s.Close()
	in := module.Inputs{IDs: s.Own(torch.FromSlice([]int64{2, 5, 7, 0, 3, 4, 5, 6}, 2, 4)),
		AttentionMask: s.Own(torch.FromSlice([]int64{1, 1, 1, 0, 1, 1, 1, 1}, 2, 4))}
	logits := l.Classify(in)
	require.Equal(t, []int64{2, 2}, logits.Shape())
	// By hand: classifier(tanh(pooler.dense(h[:, 0]))).
	h0 := m.ForwardInputs(in).Narrow(1, 0, 1).SqueezeDim(1)
	p := m.Pooler.Dense.(*module.Linear)
	cl := m.Classifier.(*module.Linear)
	byHand := h0.Linear(p.Weight, p.Bias).Tanh().Linear(cl.Weight, cl.Bias)
	reftest.RequireClose(t, "logits", logits, byHand, 1e-6)
	require.NoError(t, s.Err())
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

func TestNewCloseNoLeak(t *testing.T) {
	live := reftest.SettledLiveTensors()
	c := tinyConfig()
	c.SequenceClassification = true
	m, err := bert.New(c)
	require.NoError(t, err)
	module.Close(m)
	require.Equal(t, live, reftest.SettledLiveTensors())
}

// lora.Apply wraps query and value by transformers' names, under the
// "bert." prefix of a classification model; the classifier's logits start
// unchanged.
func TestLoRAOnBERT(t *testing.T) {
	c := tinyConfig()
	c.SequenceClassification, c.NumLabels = true, 2
	m := newTiny(t, c)
	s := reftest.Scope(t)
	in := module.Inputs{IDs: s.Own(torch.FromSlice([]int64{2, 5, 7, 1}, 1, 4))}
	before := reftest.Float64s(t, m.Classify(in))
	got, err := lora.Apply(m, lora.Config{R: 2, TargetModules: []string{"query", "value"}})
	require.NoError(t, err)
	require.Equal(t, []string{
		"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value",
		"bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value",
	}, got)
	require.Equal(t, before, reftest.Float64s(t, m.Classify(in)))
	require.NoError(t, s.Err())
}
