package hf_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.json"), `{
		"model_type": "llama", "hidden_size": 64, "rms_norm_eps": 1e-5, "big": 4.0,
		"frac": 2.5, "name": "x", "tie_word_embeddings": true, "sliding_window": null,
		"rope_scaling": {"rope_type": "linear", "factor": 2.0}, "torch_dtype": "bfloat16"}`)
	c, err := hf.ReadConfig(dir)
	require.NoError(t, err)
	require.Equal(t, "llama", c.ModelType)
	require.Equal(t, dir, c.Dir)

	n, err := c.Int("hidden_size", 0)
	require.NoError(t, err)
	require.EqualValues(t, 64, n)
	n, err = c.Int("big", 0) // 4.0 is an integer in JSON's number space
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	n, err = c.Int("absent", 7)
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	n, err = c.Int("sliding_window", -1) // null is absent
	require.NoError(t, err)
	require.EqualValues(t, -1, n)
	require.False(t, c.Has("sliding_window"))
	require.True(t, c.Has("hidden_size"))

	_, err = c.Int("frac", 0)
	require.ErrorContains(t, err, `"frac"`)
	require.ErrorContains(t, err, "config.json")
	_, err = c.Int("name", 0)
	require.ErrorContains(t, err, `field "name": want an integer`)

	f, err := c.Float("rms_norm_eps", 0)
	require.NoError(t, err)
	require.Equal(t, 1e-5, f)
	_, err = c.Float("name", 0)
	require.ErrorContains(t, err, `"name"`)

	s, err := c.String("name", "")
	require.NoError(t, err)
	require.Equal(t, "x", s)
	_, err = c.String("hidden_size", "")
	require.ErrorContains(t, err, `field "hidden_size": want a string`)

	b, err := c.Bool("tie_word_embeddings", false)
	require.NoError(t, err)
	require.True(t, b)
	_, err = c.Bool("name", false)
	require.ErrorContains(t, err, `"name"`)

	var rs struct {
		RopeType string  `json:"rope_type"`
		Factor   float64 `json:"factor"`
	}
	require.NoError(t, c.Decode("rope_scaling", &rs))
	require.Equal(t, "linear", rs.RopeType)
	require.Equal(t, 2.0, rs.Factor)
	require.ErrorContains(t, c.Decode("name", &rs), `"name"`)

	d, ok, err := c.DType()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, torch.BFloat16, d)
}

func TestReadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := hf.ReadConfig(filepath.Join(dir, "nope"))
	require.ErrorContains(t, err, "nope")

	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	_, err = hf.ReadConfig(file)
	require.ErrorContains(t, err, "not a directory")

	_, err = hf.ReadConfig(dir)
	require.ErrorContains(t, err, "not a Hugging Face checkpoint")
	require.ErrorContains(t, err, "config.json")

	writeFile(t, filepath.Join(dir, "config.json"), `{"model_type": `)
	_, err = hf.ReadConfig(dir)
	require.ErrorContains(t, err, "malformed JSON")

	writeFile(t, filepath.Join(dir, "config.json"), `[1, 2]`)
	_, err = hf.ReadConfig(dir)
	require.Error(t, err)

	writeFile(t, filepath.Join(dir, "config.json"), `{"hidden_size": 4}`)
	_, err = hf.ReadConfig(dir)
	require.ErrorContains(t, err, "no model_type")

	writeFile(t, filepath.Join(dir, "config.json"), `{"model_type": 3}`)
	_, err = hf.ReadConfig(dir)
	require.ErrorContains(t, err, `"model_type"`)
}

func TestParseDType(t *testing.T) {
	for name, want := range map[string]torch.DType{
		"float32": torch.Float32, "torch.float32": torch.Float32, "float": torch.Float32,
		"bfloat16": torch.BFloat16, "BF16": torch.BFloat16, "float16": torch.Float16, "half": torch.Float16,
	} {
		got, err := hf.ParseDType(name)
		require.NoError(t, err, name)
		require.Equal(t, want, got, name)
	}
	_, err := hf.ParseDType("int8")
	require.ErrorContains(t, err, `"int8"`)
	require.ErrorContains(t, err, "float32, bfloat16, float16")

	c, err := hf.ParseConfig("", []byte(`{"model_type": "x", "dtype": "float16", "torch_dtype": "float32"}`))
	require.NoError(t, err)
	d, ok, err := c.DType()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, torch.Float16, d, "dtype (transformers ≥ 5) wins over torch_dtype")
	c, err = hf.ParseConfig("", []byte(`{"model_type": "x", "torch_dtype": "int4"}`))
	require.NoError(t, err)
	_, _, err = c.DType()
	require.ErrorContains(t, err, "torch_dtype")
	c, err = hf.ParseConfig("", []byte(`{"model_type": "x"}`))
	require.NoError(t, err)
	_, ok, err = c.DType()
	require.NoError(t, err)
	require.False(t, ok)
}

func TestOptions(t *testing.T) {
	o := hf.NewOptions()
	require.Equal(t, torch.Float32, o.DType)
	require.Equal(t, torch.CPU, o.Device)
	o = hf.NewOptions(hf.WithDType(torch.BFloat16), nil, hf.WithDevice(torch.CPU))
	require.Equal(t, torch.BFloat16, o.DType)
	require.NoError(t, o.Validate())
	require.ErrorContains(t, hf.NewOptions(hf.WithDType(torch.Int64)).Validate(), "unsupported")
}

// tinyLM has a tied head, a non-persistent buffer and an integer buffer,
// named as a transformers causal LM is.
type tinyLM struct {
	module.Base
	Model *tinyBase
	Head  *module.Linear
}

type tinyBase struct {
	module.Base
	Embed *module.Embedding
	Proj  module.Layer
	Pos   *torch.Tensor // persistent int64 buffer
	Freq  *torch.Tensor // non-persistent buffer
}

func newTinyLM(t *testing.T) *tinyLM {
	t.Helper()
	emb := torch.Must(module.NewEmbedding(5, 3))
	head := torch.Must(module.LinearFrom(emb.Weight, nil))
	b := &tinyBase{
		Embed: emb,
		Proj:  torch.Must(module.NewLinear(3, 3, true)),
		Pos:   torch.FromSlice([]int64{0, 1, 2, 3}),
		Freq:  torch.FromSlice([]float32{1, 2}),
	}
	module.Child(&b.Base, "embed_tokens", &b.Embed)
	module.Child(&b.Base, "proj", &b.Proj)
	b.Buffer("position_ids", &b.Pos, true)
	b.Buffer("inv_freq", &b.Freq, false)
	m := &tinyLM{Model: b, Head: head}
	module.Child(&m.Base, "model", &m.Model)
	module.Child(&m.Base, "lm_head", &m.Head)
	return m
}

func values(t *testing.T, x *torch.Tensor) []float32 {
	t.Helper()
	c := x.To(torch.Float32)
	defer c.Close()
	return torch.Must(torch.ToSlice[float32](c))
}

func saveCheckpoint(t *testing.T, tensors map[string]*torch.Tensor, sharded bool) string {
	t.Helper()
	dir := t.TempDir()
	if sharded {
		require.NoError(t, torch.SaveSafetensorsSharded(dir, "model", tensors, nil, 40))
	} else {
		require.NoError(t, torch.SaveSafetensors(filepath.Join(dir, "model.safetensors"), tensors, nil))
	}
	return dir
}

func ckpt(withHead bool) map[string]*torch.Tensor {
	m := map[string]*torch.Tensor{
		"model.embed_tokens.weight": torch.Arange(0, 15, 1).View(5, 3),
		"model.proj.weight":         torch.Arange(0, 9, 1).View(3, 3).MulScalar(0.5),
		"model.proj.bias":           torch.FromSlice([]float32{1, 2, 3}),
		"model.position_ids":        torch.FromSlice([]int64{3, 2, 1, 0}),
	}
	if withHead {
		m["lm_head.weight"] = torch.Full([]int64{5, 3}, 9)
	}
	return m
}

func TestLoadWeights(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		for _, withHead := range []bool{false, true} {
			src := ckpt(withHead)
			dir := saveCheckpoint(t, src, sharded)
			if sharded {
				_, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json"))
				require.NoError(t, err)
			}
			m := newTinyLM(t)
			p := m.Model.Embed.Weight
			live := reftest.SettledLiveTensors()
			require.NoError(t, hf.LoadWeights(dir, m, hf.NewOptions()))
			require.Equal(t, live, reftest.SettledLiveTensors(), "the load keeps no extra handle")
			require.Same(t, p, m.Model.Embed.Weight, "tensors keep their identity")
			require.Same(t, m.Head.Weight, m.Model.Embed.Weight)
			// A tied name in the checkpoint is skipped: the state dict's
			// name (the embedding) is what loads.
			require.Equal(t, values(t, src["model.embed_tokens.weight"]), values(t, m.Head.Weight))
			require.Equal(t, values(t, src["model.proj.weight"]), values(t, m.Model.Proj.(*module.Linear).Weight))
			require.Equal(t, []int64{3, 2, 1, 0}, torch.Must(torch.ToSlice[int64](m.Model.Pos)))
			require.True(t, p.RequiresGrad(), "parameters stay trainable")
			module.Close(m)
			torch.CloseMap(src)
		}
	}
}

func TestLoadWeightsDType(t *testing.T) {
	src := ckpt(false)
	defer torch.CloseMap(src)
	dir := saveCheckpoint(t, src, false)
	m := newTinyLM(t)
	defer module.Close(m)
	require.NoError(t, hf.LoadWeights(dir, m, hf.NewOptions(hf.WithDType(torch.BFloat16))))
	require.Equal(t, torch.BFloat16, m.Model.Embed.Weight.DType())
	require.Equal(t, torch.BFloat16, m.Model.Proj.(*module.Linear).Bias.DType())
	require.Equal(t, torch.Int64, m.Model.Pos.DType(), "integer buffers keep their dtype")
	require.Equal(t, torch.Float32, m.Model.Freq.DType(), "non-persistent buffers keep their dtype")
	require.Equal(t, values(t, src["model.proj.bias"]), values(t, m.Model.Proj.(*module.Linear).Bias))
}

func TestLoadWeightsErrors(t *testing.T) {
	m := newTinyLM(t)
	defer module.Close(m)
	before := values(t, m.Model.Proj.(*module.Linear).Weight)

	// Not a checkpoint.
	err := hf.LoadWeights(t.TempDir(), m, hf.NewOptions())
	require.ErrorContains(t, err, "not a Hugging Face checkpoint")
	require.ErrorContains(t, err, "model.safetensors")
	pt := t.TempDir()
	writeFile(t, filepath.Join(pt, "pytorch_model.bin"), "x")
	require.ErrorContains(t, hf.LoadWeights(pt, m, hf.NewOptions()), "pytorch_model.bin")
	require.ErrorContains(t, hf.LoadWeights(filepath.Join(pt, "nope"), m, hf.NewOptions()), "nope")
	require.ErrorContains(t, hf.LoadWeights(pt, nil, hf.NewOptions()), "nil module")
	require.ErrorContains(t, hf.LoadWeights(pt, (*tinyLM)(nil), hf.NewOptions()), "nil module")

	// Missing, unexpected and misshaped, all in one error; nothing loaded.
	src := ckpt(false)
	defer torch.CloseMap(src)
	src["model.proj.bias"].Close()
	delete(src, "model.proj.bias")
	src["model.extra.weight"] = torch.Zeros([]int64{2})
	src["model.proj.weight"].Close()
	src["model.proj.weight"] = torch.Zeros([]int64{3, 4})
	src["model.position_ids"].Close()
	src["model.position_ids"] = torch.Zeros([]int64{4})
	dir := saveCheckpoint(t, src, false)
	err = hf.LoadWeights(dir, m, hf.NewOptions())
	var le *hf.LoadError
	require.True(t, errors.As(err, &le), "%v", err)
	require.Equal(t, []string{"model.proj.bias"}, le.Missing)
	require.Equal(t, []string{"model.extra.weight"}, le.Unexpected)
	require.Len(t, le.Misshaped, 1)
	require.Contains(t, le.Misshaped[0], "model.proj.weight: model [3 3], checkpoint [3 4]")
	require.Len(t, le.Mistyped, 1)
	require.Contains(t, le.Mistyped[0], "model.position_ids")
	require.Contains(t, err.Error(), "missing weights: model.proj.bias")
	require.Equal(t, before, values(t, m.Model.Proj.(*module.Linear).Weight), "nothing loaded")

	// Ignored keys are fine; a bad pattern is an error.
	require.ErrorContains(t, hf.LoadWeights(dir, m, hf.NewOptions(), `(`), "ignore pattern")
	err = hf.LoadWeights(dir, m, hf.NewOptions(), `\.extra\.`)
	require.True(t, errors.As(err, &le))
	require.Empty(t, le.Unexpected)
}

func TestLoadWeightsSpec(t *testing.T) {
	// A base-model checkpoint (keys without "model.") into the LM, with a
	// non-persistent buffer's key, and a transform.
	src := map[string]*torch.Tensor{
		"embed_tokens.weight": torch.Arange(0, 15, 1).View(5, 3),
		"proj.weight":         torch.Arange(0, 9, 1).View(3, 3),
		"proj.bias":           torch.FromSlice([]float32{1, 2, 3}),
		"position_ids":        torch.FromSlice([]int64{3, 2, 1, 0}),
		"inv_freq":            torch.FromSlice([]float32{5, 5}),
	}
	defer torch.CloseMap(src)
	dir := saveCheckpoint(t, src, false)
	m := newTinyLM(t)
	defer module.Close(m)
	err := hf.LoadWeights(dir, m, hf.NewOptions())
	require.ErrorContains(t, err, "unexpected weights")
	var seen []string
	require.NoError(t, hf.LoadWeightsWith(dir, m, hf.NewOptions(), hf.LoadSpec{
		BasePrefix: "model",
		Transform: func(name string, t *torch.Tensor) *torch.Tensor {
			seen = append(seen, name)
			if name == "model.proj.weight" {
				return t.T()
			}
			return t
		},
	}))
	require.Contains(t, seen, "model.proj.weight")
	require.Equal(t, []float32{0, 3, 6, 1, 4, 7, 2, 5, 8}, values(t, m.Model.Proj.(*module.Linear).Weight))
	require.Equal(t, []float32{1, 2}, values(t, m.Model.Freq), "a non-persistent buffer's key is skipped")

	// And the base model alone from a full checkpoint.
	full := ckpt(true)
	defer torch.CloseMap(full)
	dir = saveCheckpoint(t, full, true)
	base := newTinyLM(t)
	defer module.Close(base)
	require.NoError(t, hf.LoadWeightsWith(dir, base.Model, hf.NewOptions(), hf.LoadSpec{BasePrefix: "model", Ignore: []string{`^lm_head\.`}}))
	require.Equal(t, values(t, full["model.proj.bias"]), values(t, base.Model.Proj.(*module.Linear).Bias))
}

func TestKVCache(t *testing.T) {
	live := reftest.SettledLiveTensors()
	c := hf.NewKVCache(2)
	require.Equal(t, 2, c.Layers())
	require.EqualValues(t, 0, c.Len())
	s := torch.NewScope()
	k1 := torch.Arange(0, 12, 1, torch.In(s)).View(1, 2, 3, 2)
	v1 := k1.MulScalar(-1)
	k, v := c.Update(0, k1, v1)
	require.NoError(t, torch.FirstErr(k, v))
	require.Equal(t, []int64{1, 2, 3, 2}, k.Shape())
	require.EqualValues(t, 3, c.Len())
	s.Close() // the cache keeps its own references

	s = torch.NewScope()
	k2 := torch.Arange(100, 104, 1, torch.In(s)).View(1, 2, 1, 2)
	k, v = c.Update(0, k2, k2.MulScalar(-1))
	require.NoError(t, torch.FirstErr(k, v))
	require.Same(t, s, k.Scope(), "the result joins the caller's scope")
	require.Equal(t, []int64{1, 2, 4, 2}, k.Shape())
	require.Equal(t, []float32{0, 1, 2, 3, 4, 5, 100, 101, 6, 7, 8, 9, 10, 11, 102, 103}, values(t, k))
	require.Equal(t, []float32{0, -1, -2, -3, -4, -5, -100, -101, -6, -7, -8, -9, -10, -11, -102, -103}, values(t, v))
	require.EqualValues(t, 4, c.Len())

	_, err := s.Done(func() *torch.Tensor { k, _ := c.Update(2, k2, k2); return k }())
	require.ErrorContains(t, err, "layer 2 out of range")
	s = torch.NewScope()
	bad := torch.Zeros([]int64{1, 3, 1, 2}, torch.In(s))
	k, _ = c.Update(0, bad, bad)
	require.ErrorContains(t, k.Err(), "cannot append")
	require.EqualValues(t, 4, c.Len(), "unchanged")
	s.Close()

	ck, cv := c.Layer(0)
	require.Equal(t, []int64{1, 2, 4, 2}, ck.Shape())
	torch.CloseAll(ck, cv)
	c.Close()
	c.Close()
	require.Equal(t, live, reftest.SettledLiveTensors(), "no leak")
	k, _ = c.Update(0, k2, k2)
	require.ErrorContains(t, k.Err(), "closed")
	var nilCache *hf.KVCache
	require.EqualValues(t, 0, nilCache.Len())
}

func TestPositionIDs(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	am := s.Own(torch.FromSlice([]int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 2, 5))
	p, err := torch.ToSlice[int64](hf.PositionIDs(am))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0, 0, 1, 2, 0, 1, 2, 3, 4}, p)
	require.Error(t, hf.PositionIDs(nil).Err())
	require.Error(t, hf.PositionIDs(s.Own(torch.Zeros([]int64{3}))).Err())
}

func TestCausalMask(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	neg := float32(-math.MaxFloat32)
	// No padding, past 1, 2 queries over 3 keys.
	m := hf.CausalMask(s, hf.MaskSpec{Batch: 1, Query: 2, Past: 1, DType: torch.Float32})
	require.NoError(t, m.Err())
	require.Equal(t, []int64{1, 1, 2, 3}, m.Shape())
	require.Equal(t, []float32{0, 0, neg, 0, 0, 0}, values(t, m))

	// Left padding in row 0, window 2.
	am := s.Own(torch.FromSlice([]int64{0, 1, 1, 1, 1, 1}, 2, 3))
	m = hf.CausalMask(nil, hf.MaskSpec{Batch: 2, Query: 3, Window: 2, AttentionMask: am, DType: torch.Float32})
	require.NoError(t, m.Err())
	require.Same(t, s, m.Scope())
	require.Equal(t, []int64{2, 1, 3, 3}, m.Shape())
	require.Equal(t, []float32{
		neg, neg, neg, // the pad query sees nothing
		neg, 0, neg,
		neg, 0, 0,
		0, neg, neg,
		0, 0, neg,
		neg, 0, 0, // the window drops key 0
	}, values(t, m))

	live := reftest.SettledLiveTensors()
	u := hf.CausalMask(nil, hf.MaskSpec{Batch: 1, Query: 2, DType: torch.BFloat16})
	require.NoError(t, u.Err())
	require.Nil(t, u.Scope())
	require.Equal(t, live+1, reftest.SettledLiveTensors(), "only the result is left")
	require.Equal(t, float32(hf.MinValue(torch.BFloat16)), values(t, u)[1])
	u.Close()

	require.ErrorContains(t, hf.CausalMask(s, hf.MaskSpec{Batch: 2, Query: 2, Past: 2, AttentionMask: am, DType: torch.Float32}).Err(), "attention mask")
	require.Error(t, hf.CausalMask(s, hf.MaskSpec{Batch: 1, Query: 0, DType: torch.Float32}).Err())
	require.True(t, strings.Contains(hf.CausalMask(s, hf.MaskSpec{Batch: 1, Query: 1, DType: torch.Int64}).Err().Error(), "floating"))
}
