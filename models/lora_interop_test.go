//go:build interop

package models_test

// LoRA v2 (lora/) on real transformers checkpoints (models.Load) against
// PEFT 0.21.2, both ways, on a tiny random LlamaForCausalLM (GQA) and
// GPT2LMHeadModel (Conv1D, tied head) that testdata/interop_lora_models.py
// writes with save_pretrained (make interop-refs):
//
//   - TestInteropLoRAOnRealCheckpoints: adapters that PEFT created on the
//     real model classes and saved load with lora.LoadAdapter (strict), and
//     the logits equal PEFT's within 1e-5 of max|logit| (float32): LoRA on
//     q_proj/v_proj, DoRA and rsLoRA on "all-linear", GPT-2's Conv1D
//     (fan_in_fan_out) with and without DoRA, the tied embedding wte, two
//     named adapters with embed_tokens, the mixed batch against PEFT's
//     adapter_names=, and MergeAndUnload against merge_and_unload.
//   - TestInteropGoAdaptersLoadInPEFT: adapters that Go made on the loaded
//     checkpoints (the same target sets, B randomised with a Go seed) and
//     saved with lora.SaveAdapter load with PeftModel.from_pretrained on
//     AutoModelForCausalLM.from_pretrained(base) (testdata/peft_check.py)
//     with no missing or unexpected key, every LoRA layer changes PEFT's
//     output, and PEFT's logits equal Go's within 1e-5.

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const (
	loraInteropDir   = "testdata/lora_interop"
	loraInteropRegen = "make interop-refs (or $GOLORA_INTEROP_PYTHON models/testdata/interop_lora_models.py)"
	// loraInteropTol is the largest error accepted, relative to max|logit|.
	loraInteropTol = 1e-5
)

// loraCase is one adapter set-up of the generator's CASES.
type loraCase struct {
	Model    string   `json:"model"`    // "llama" or "gpt2": the checkpoint in loraInteropDir
	Adapters []string `json:"adapters"` // "default" first, then "second"
}

// interopPython returns $GOLORA_INTEROP_PYTHON, the interop venv's Python.
func interopPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("GOLORA_INTEROP_PYTHON")
	if py == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop (it builds the interop venv and sets it)")
	}
	return py
}

// loraRefs loads the generator's references: PEFT's logits, the cases
// (sorted by name) and the mixed batch's adapter names.
func loraRefs(t *testing.T) (*reftest.File, []string, map[string]loraCase, []string) {
	t.Helper()
	path := filepath.Join(loraInteropDir, "refs.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run %s", path, loraInteropRegen)
	}
	r := reftest.Load(t, path, loraInteropRegen)
	var meta struct {
		Cases map[string]loraCase `json:"cases"`
		Mixed []string            `json:"mixed"`
	}
	r.DecodeMeta(t, "refs", &meta)
	cases, mixed := meta.Cases, meta.Mixed
	require.NotEmpty(t, mixed)
	require.NotEmpty(t, cases)
	names := make([]string, 0, len(cases))
	for c := range cases {
		names = append(names, c)
		if _, err := os.Stat(filepath.Join(loraInteropDir, c, lora.ConfigFile)); err != nil {
			t.Fatalf("adapter %s is missing: run %s", c, loraInteropRegen)
		}
	}
	sort.Strings(names)
	return r, names, cases, mixed
}

// loadLoRABase loads checkpoint model ("llama", "gpt2") with models.Load.
func loadLoRABase(t *testing.T, model string) models.Model {
	t.Helper()
	m, err := models.Load(filepath.Join(loraInteropDir, model))
	require.NoError(t, err, "run "+loraInteropRegen)
	t.Cleanup(m.Close)
	module.Eval(m)
	return m
}

// scoreLogits runs m over ids and returns the logits.
func scoreLogits(t *testing.T, m models.Model, ids *torch.Tensor) []float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	y := m.Score(module.Inputs{IDs: s.Borrow(ids)})
	require.NoError(t, y.Err())
	require.NoError(t, s.Err())
	return reftest.Float64s(t, y)
}

// mixedLogits runs m over ids with one adapter per sample.
func mixedLogits(t *testing.T, m models.Model, ids *torch.Tensor, names []string) []float64 {
	t.Helper()
	var got []float64
	require.NoError(t, lora.WithAdapterNames(m, names, func() error {
		got = scoreLogits(t, m, ids)
		return nil
	}))
	return got
}

// errTable records the largest error of each check, for the log.
type errTable map[string]float64

func (e errTable) check(t *testing.T, what string, got []float64, want *torch.Tensor) {
	t.Helper()
	err := reftest.RequireSlicesClose(t, what, got, reftest.Float64s(t, want), loraInteropTol)
	e[what] = err
}

func (e errTable) log(t *testing.T) {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-40s max |Δlogit| / max|logit| = %.2e", k, e[k])
	}
}

// changes fails t unless got differs from the base logits by more than 1%
// of max|logit|: the adapter matters.
func changes(t *testing.T, what string, got []float64, base *torch.Tensor) {
	t.Helper()
	require.Greater(t, reftest.RelErr(got, reftest.Float64s(t, base)), 1e-2, "%s: the adapter does not change the logits", what)
}

func TestInteropLoRAOnRealCheckpoints(t *testing.T) {
	interopPython(t)
	r, names, cases, mixed := loraRefs(t)
	errs := errTable{}
	defer errs.log(t)

	for _, model := range []string{"llama", "gpt2"} {
		m := loadLoRABase(t, model)
		errs.check(t, model+" base vs transformers", scoreLogits(t, m, r.Tensor(t, model+".ids")), r.Tensor(t, model+".base"))
	}

	for _, name := range names {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			ref := func(k string) *torch.Tensor { return r.Tensor(t, name+"."+k) }
			ids, base := r.Tensor(t, c.Model+".ids"), r.Tensor(t, c.Model+".base")
			m := loadLoRABase(t, c.Model)
			dir := filepath.Join(loraInteropDir, name)
			for _, a := range c.Adapters {
				// Strict: PEFT's files, including the base embedding
				// weights that save_pretrained adds for a targeted
				// embed_tokens (save_embedding_layers="auto"), load with
				// no key left over.
				err := lora.LoadAdapter(m, dir, a)
				require.NoError(t, err, "lora.LoadAdapter(%s, %s)", dir, a)
			}
			require.NotEmpty(t, lora.Layers(m))

			require.NoError(t, lora.SetAdapter(m, "default"))
			got := scoreLogits(t, m, ids)
			errs.check(t, name+" vs PEFT", got, ref("logits"))
			changes(t, name, got, base)

			if len(c.Adapters) > 1 {
				require.NoError(t, lora.SetAdapter(m, "second"))
				got := scoreLogits(t, m, ids)
				errs.check(t, name+" second vs PEFT", got, ref("logits.second"))
				changes(t, name+" second", got, base)
				require.NoError(t, lora.SetAdapter(m, "default"))
				errs.check(t, name+" mixed vs adapter_names=", mixedLogits(t, m, ids, mixed), ref("mixed"))
			}

			// merge_and_unload merges the active adapter ("default").
			_, err := lora.MergeAndUnload(m)
			require.NoError(t, err)
			require.Empty(t, lora.Layers(m), "MergeAndUnload leaves plain layers")
			errs.check(t, name+" merged vs merge_and_unload", scoreLogits(t, m, ids), ref("merged"))
		})
	}
}

// goLoRACase is an adapter set-up that Go makes for PEFT to load: the
// generator's target sets.
type goLoRACase struct {
	name, model string
	adapters    []lora.Config // "default", then "second"
}

var goLoRACases = []goLoRACase{
	{"llama_qv", "llama", []lora.Config{{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}}}},
	{"llama_dora", "llama", []lora.Config{{R: 4, Alpha: 8, TargetRegexp: lora.AllLinear, UseDoRA: true}}},
	{"llama_rslora", "llama", []lora.Config{{R: 8, Alpha: 16, TargetRegexp: lora.AllLinear, UseRSLoRA: true}}},
	{"llama_two", "llama", []lora.Config{
		{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}},
		{R: 2, Alpha: 4, TargetModules: []string{"k_proj", "o_proj", "down_proj", "embed_tokens"}, UseRSLoRA: true}}},
	{"gpt2_conv1d", "gpt2", []lora.Config{{R: 4, Alpha: 8, TargetModules: []string{"c_attn", "c_fc"}, FanInFanOut: true}}},
	{"gpt2_wte", "gpt2", []lora.Config{{R: 4, Alpha: 8, TargetModules: []string{"c_attn", "c_fc", "wte"}, FanInFanOut: true}}},
	{"gpt2_dora", "gpt2", []lora.Config{{R: 4, Alpha: 8, TargetModules: []string{"c_attn", "c_proj"}, FanInFanOut: true, UseDoRA: true}}},
	{"gpt2_two", "gpt2", []lora.Config{
		{R: 4, Alpha: 8, TargetModules: []string{"c_attn", "c_fc"}, FanInFanOut: true},
		{R: 2, Alpha: 4, TargetModules: []string{"c_proj", "c_attn"}, FanInFanOut: true}}},
}

var adapterNames = []string{"default", "second"}

// randomiseAdapter gives adapter name's B (and, for embeddings, A) random
// values and moves its DoRA magnitudes, so that every layer changes the
// output.
func randomiseAdapter(t *testing.T, m module.Module, name string) {
	t.Helper()
	n := 0
	require.NoError(t, torch.NoGrad(func() error {
		for _, nl := range lora.Layers(m) {
			l := nl.Layer.LoraLayer()
			ad := l.Adapter(name)
			if ad == nil {
				continue
			}
			n++
			if err := ad.B.Normal_(0, 0.2); err != nil {
				return err
			}
			if _, ok := l.BaseLayer().(*module.Embedding); ok {
				if err := ad.A.Normal_(0, 0.3); err != nil {
					return err
				}
			}
			if ad.Magnitude != nil {
				f := torch.Randn(ad.Magnitude.Shape())
				err := ad.Magnitude.Mul_(f.MulScalar_(0.2).AddScalar_(1)).Err()
				f.Close()
				if err != nil {
					return err
				}
			}
		}
		return nil
	}))
	require.Positive(t, n, "adapter %s has layers", name)
}

func TestInteropGoAdaptersLoadInPEFT(t *testing.T) {
	python := interopPython(t)
	r, _, _, mixed := loraRefs(t)
	tmp := t.TempDir()
	errs := errTable{}
	defer errs.log(t)

	idsFiles := map[string]string{}
	for _, model := range []string{"llama", "gpt2"} {
		p := filepath.Join(tmp, model+"_ids.safetensors")
		require.NoError(t, torch.SaveSafetensors(p, map[string]*torch.Tensor{"input_ids": r.Tensor(t, model+".ids")}, nil))
		idsFiles[model] = p
	}

	for ci, c := range goLoRACases {
		t.Run(c.name, func(t *testing.T) {
			ids, base := r.Tensor(t, c.model+".ids"), r.Tensor(t, c.model+".base")
			m := loadLoRABase(t, c.model)
			require.NoError(t, torch.ManualSeed(uint64(1000+ci)))
			names := adapterNames[:len(c.adapters)]
			dir := filepath.Join(tmp, c.name)
			for i, a := range names {
				cfg := c.adapters[i]
				cfg.BaseModelNameOrPath = c.model
				_, err := lora.AddAdapter(m, a, cfg)
				require.NoError(t, err, "%s/%s", c.name, a)
				randomiseAdapter(t, m, a)
				require.NoError(t, lora.SaveAdapter(m, dir, a))
			}
			module.Eval(m)

			want := map[string][]float64{}
			for _, a := range names {
				require.NoError(t, lora.SetAdapter(m, a))
				key := "logits"
				if a != "default" {
					key += "." + a
				}
				want[key] = scoreLogits(t, m, ids)
				changes(t, c.name+" "+a, want[key], base)
			}
			args := []string{filepath.Join("testdata", "peft_check.py"), filepath.Join(loraInteropDir, c.model), dir,
				idsFiles[c.model], filepath.Join(dir, "peft_out.safetensors"), "--adapters", strings.Join(names, ",")}
			if len(names) > 1 {
				require.NoError(t, lora.SetAdapter(m, "default"))
				want["mixed"] = mixedLogits(t, m, ids, mixed)
				args = append(args, "--mixed", strings.Join(mixed, ","))
			}

			cmd := exec.Command(python, args...)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "PEFT's load of Go's adapter (%s %s):\n%s", python, strings.Join(args, " "), out)
			got := reftest.Load(t, filepath.Join(dir, "peft_out.safetensors"), "peft_check.py")
			require.Len(t, got.Tensors, len(want))
			for k, w := range want {
				p := got.Tensor(t, k)
				e := reftest.RequireSlicesClose(t, c.name+" "+k, w, reftest.Float64s(t, p), loraInteropTol)
				errs[c.name+" "+k+": Go vs PEFT"] = e
			}
		})
	}
}
