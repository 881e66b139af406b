package lora_test

// PEFT's file format, without PEFT (the interop tests load the files in
// PEFT itself): the layout SaveAdapter writes (keys, shapes, metadata,
// config fields), a round trip through LoadAdapter, strict loading (one
// error listing every missing, unexpected and misshaped key, nothing
// modified), the lenient mode, untrusted names and configs.

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// savedNet returns a net with adapters "default" (every kind, DoRA off)
// and "tenant" (DoRA on q_proj), saved under dir.
func savedNet(t *testing.T, dir string) *peftNet {
	n := newPeftNet(t, 11)
	adaptNet(t, n, "default", lora.Config{R: 4, Alpha: 8, TargetModules: allKinds, ModulesToSave: []string{"classifier"}})
	adaptNet(t, n, "tenant", lora.Config{R: 2, Alpha: 2, UseDoRA: true, TargetModules: []string{"q_proj", "conv"}})
	require.NoError(t, lora.SaveAdapter(n, dir, "default"))
	require.NoError(t, lora.SaveAdapter(n, dir, "tenant"))
	return n
}

func TestSaveAdapterLayout(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	ts, md, err := torch.LoadSafetensors(filepath.Join(dir, "adapter_model.safetensors"))
	require.NoError(t, err)
	defer torch.CloseMap(ts)
	require.Equal(t, map[string]string{"format": "pt"}, md)
	shapes := map[string][]int64{}
	for k, v := range ts {
		shapes[k] = v.Shape()
	}
	p := "base_model.model."
	want := map[string][]int64{
		p + "model.embed_tokens.lora_embedding_A":       {4, pnVocab},
		p + "model.embed_tokens.lora_embedding_B":       {pnDim, 4},
		p + "transformer.h.0.attn.c_attn.lora_A.weight": {4, pnDim},
		p + "transformer.h.0.attn.c_attn.lora_B.weight": {3 * pnDim, 4},
		p + "conv.lora_A.weight":                        {4, 3, 3, 3},
		p + "conv.lora_B.weight":                        {4, 4, 1, 1},
		p + "classifier.weight":                         {pnCls, pnDim},
		p + "classifier.bias":                           {pnCls},
	}
	for i := 0; i < 2; i++ {
		for _, proj := range []string{"q_proj", "v_proj"} {
			k := p + "model.layers." + itoa(int64(i)) + ".self_attn." + proj
			want[k+".lora_A.weight"] = []int64{4, pnDim}
			want[k+".lora_B.weight"] = []int64{pnDim, 4}
		}
	}
	require.Equal(t, want, shapes)

	// The second adapter: in dir/tenant, DoRA's magnitude vectors.
	ts2, _, err := torch.LoadSafetensors(filepath.Join(dir, "tenant", "adapter_model.safetensors"))
	require.NoError(t, err)
	defer torch.CloseMap(ts2)
	require.Equal(t, []int64{pnDim}, ts2[p+"model.layers.0.self_attn.q_proj.lora_magnitude_vector"].Shape())
	require.Equal(t, []int64{1, 4, 1, 1}, ts2[p+"conv.lora_magnitude_vector"].Shape())
	require.Len(t, ts2, 3*3)

	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "tenant", "adapter_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.Len(t, cfg, 41, "the 41 keys PEFT 0.21.2 writes (the interop test compares the names with PEFT's file)")
	for k, v := range map[string]any{"peft_type": "LORA", "r": 2.0, "lora_alpha": 2.0, "use_dora": true, "use_rslora": false,
		"bias": "none", "init_lora_weights": false, "lora_dropout": 0.0, "fan_in_fan_out": false, "modules_to_save": nil,
		"layers_to_transform": nil, "base_model_name_or_path": nil, "task_type": nil} {
		require.Equal(t, v, cfg[k], k)
	}
	require.Equal(t, []any{"conv", "q_proj"}, cfg["target_modules"])
	require.Equal(t, map[string]any{}, cfg["rank_pattern"])
}

func TestLoadAdapterRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := savedNet(t, dir)
	ids, img := pnInputs(t)
	require.NoError(t, lora.SetAdapter(src, "default"))
	yd := src.run(t, ids, img)
	require.NoError(t, lora.SetAdapter(src, "tenant"))
	yt := src.run(t, ids, img)

	dst := newPeftNet(t, 11) // the same base, no adapter
	require.NoError(t, lora.LoadAdapter(dst, dir, "default"))
	require.NoError(t, lora.LoadAdapter(dst, dir, "tenant"))
	require.NoError(t, lora.SetAdapter(dst, "default"))
	reftest.RequireSlicesClose(t, "default after the round trip", dst.run(t, ids, img), yd, 0)
	require.NoError(t, lora.SetAdapter(dst, "tenant"))
	reftest.RequireSlicesClose(t, "tenant after the round trip", dst.run(t, ids, img), yt, 0)
	requireErr(t, func() error { return lora.LoadAdapter(dst, dir, "tenant") }, `already has a LoRA adapter`, `named "tenant"`)
}

// rewrite copies the adapter in dir/sub to a new directory, changing its
// tensors and config.
func rewrite(t *testing.T, dir string, edit func(ts map[string]*torch.Tensor, cfg map[string]any)) string {
	t.Helper()
	ts, md, err := torch.LoadSafetensors(filepath.Join(dir, "adapter_model.safetensors"))
	require.NoError(t, err)
	defer func() { torch.CloseMap(ts) }()
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	edit(ts, cfg)
	out := t.TempDir()
	require.NoError(t, torch.SaveSafetensors(filepath.Join(out, "adapter_model.safetensors"), ts, md))
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(out, "adapter_config.json"), js, 0o644))
	return out
}

func TestLoadAdapterStrict(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	p := "base_model.model."
	q0 := p + "model.layers.0.self_attn.q_proj."
	bad := rewrite(t, dir, func(ts map[string]*torch.Tensor, cfg map[string]any) {
		ts[q0+"lora_A.weight"].Close()
		delete(ts, q0+"lora_A.weight")                                                         // missing
		ts[p+"model.layers.0.self_attn.k_proj.lora_A.weight"] = torch.Zeros([]int64{4, pnDim}) // unexpected
		ts[p+"conv.lora_B.weight"].Close()
		ts[p+"conv.lora_B.weight"] = torch.Zeros([]int64{4, 4}) // misshaped
	})
	n := newPeftNet(t, 11)
	before := paramNames(n)
	snap := snapshot(t, n)
	requireErr(t, func() error { return lora.LoadAdapter(n, bad, "default") },
		"nothing loaded",
		"missing keys: "+q0+"lora_A.weight",
		"unexpected keys: "+p+"model.layers.0.self_attn.k_proj.lora_A.weight",
		"misshaped: "+p+"conv.lora_B.weight: model [4 4 1 1], file [4 4]")
	require.Equal(t, before, paramNames(n), "nothing added")
	require.Empty(t, lora.Layers(n))
	require.Equal(t, snap, snapshot(t, n), "nothing modified")

	// Lenient: the missing key keeps its init, the unexpected one is
	// ignored (both logged); a misshaped key is still an error.
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	requireErr(t, func() error { return lora.LoadAdapter(n, bad, "default", lora.Lenient()) }, "misshaped")
	require.Empty(t, lora.Layers(n))
	lenient := rewrite(t, dir, func(ts map[string]*torch.Tensor, cfg map[string]any) {
		ts[q0+"lora_A.weight"].Close()
		delete(ts, q0+"lora_A.weight")
		ts[p+"extra"] = torch.Zeros([]int64{2})
	})
	require.NoError(t, lora.LoadAdapter(n, lenient, "default", lora.Lenient()))
	require.Contains(t, logs.String(), "missing key")
	require.Contains(t, logs.String(), "unexpected key ignored")
	require.Len(t, lora.Layers(n), 7)
}

// A config r that disagrees with the tensors is named by key.
func TestLoadAdapterRankMismatch(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	bad := rewrite(t, dir, func(ts map[string]*torch.Tensor, cfg map[string]any) { cfg["r"] = 8 })
	requireErr(t, func() error { return lora.LoadAdapter(newPeftNet(t, 11), bad, "default") },
		"base_model.model.conv.lora_A.weight: model [8 3 3 3], file [4 3 3 3] (adapter_config.json's r gives 8, the file's tensor has 4)")
}

func TestLoadAdapterConfigFields(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	for _, tc := range []struct {
		field string
		value any
		text  string
	}{
		{"lora_bias", true, "lora_bias: true is not supported"},
		{"layer_replication", []any{[]any{0, 1}}, "layer_replication: [[0,1]] is not supported"},
		{"use_qalora", true, "use_qalora: true is not supported"},
		{"trainable_token_indices", []any{1, 2}, "trainable_token_indices"},
		{"alora_invocation_tokens", []any{1}, "alora_invocation_tokens"},
		{"peft_type", "IA3", `peft_type is "IA3"`},
		{"bias", "some", `Bias must be "none", "all" or "lora_only"`},
		{"r", -1, "R must be positive"},
	} {
		bad := rewrite(t, dir, func(ts map[string]*torch.Tensor, cfg map[string]any) { cfg[tc.field] = tc.value })
		requireErr(t, func() error { return lora.LoadAdapter(newPeftNet(t, 11), bad, "default") }, tc.text)
	}
	// An unknown field is logged, never dropped in silence.
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	odd := rewrite(t, dir, func(ts map[string]*torch.Tensor, cfg map[string]any) { cfg["future_field"] = 3 })
	require.NoError(t, lora.LoadAdapter(newPeftNet(t, 11), odd, "default"))
	require.Contains(t, logs.String(), "unknown adapter_config.json field ignored")
	require.Contains(t, logs.String(), "future_field")
}

// Names that would leave the directory are refused before any file is
// touched.
func TestAdapterNamesUntrusted(t *testing.T) {
	dir := t.TempDir()
	n := savedNet(t, filepath.Join(dir, "in"))
	for _, name := range []string{"..", "../x", "/etc", "a/b", `a\b`, "", "."} {
		requireErr(t, func() error { return lora.SaveAdapter(n, dir, name) }, "adapter name")
		requireErr(t, func() error { return lora.LoadAdapter(n, dir, name) }, "adapter name")
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only dir/in")
	requireErr(t, func() error { return lora.SaveAdapter(n, dir, "nope") }, `no adapter "nope"`)
}

// The spec's PyTorch classes' state dicts (weight, bias, lora_a, lora_b)
// load into NewLinear's layer under the same names (parity_test.go loads
// the generator's); the model-level names after Apply are
// "<path>.lora_a" and so on, and other adapters sit under
// "<path>.adapters.<name>.".
func TestStateDictNames(t *testing.T) {
	n := newPeftNet(t, 12)
	adaptNet(t, n, "default", lora.Config{R: 2, TargetModules: []string{"conv"}, UseDoRA: true})
	adaptNet(t, n, "x", lora.Config{R: 2, TargetModules: []string{"conv"}})
	var got []string
	for k := range module.StateDict(n.Conv) {
		got = append(got, k)
	}
	sort.Strings(got)
	require.Equal(t, []string{"adapters.x.lora_a", "adapters.x.lora_b", "bias", "lora_a", "lora_b", "lora_magnitude", "weight"}, got)
	require.True(t, strings.HasPrefix(module.Summary(n), "trainable params: "))
}
