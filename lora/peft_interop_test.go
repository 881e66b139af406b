//go:build interop

package lora_test

// Interop with the real PEFT (0.21.2, PyTorch 2.x, transformers), both
// ways, on testdata/peft_net.py's model (Linear, Embedding, GPT-2's
// Conv1D, Conv2d at a transformer's module paths):
//
//   - TestInteropLoadPEFT: adapters that PEFT created and saved
//     (testdata/interop_peft.py, make interop-refs) load with
//     lora.LoadAdapter into the Go twin of the model (the same base
//     weights), and the outputs equal PEFT's within 1e-5 relative:
//     LoRA on every kind, rsLoRA, DoRA, modules_to_save, two named
//     adapters, and the mixed batch against PEFT's adapter_names=.
//   - TestInteropSaveForPEFT: adapters that Go created and saved with
//     lora.SaveAdapter load with PeftModel.from_pretrained
//     (testdata/peft_load.py, run with $GOLORA_INTEROP_PYTHON) with no
//     missing or unexpected key, every LoRA layer changes PEFT's output,
//     and PEFT's outputs equal Go's within 1e-5 relative.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const interopTol = 1e-5

var peftDir = filepath.Join("testdata", "peft")

// peftRefs loads testdata/peft/refs.safetensors.
func peftRefs(t *testing.T) (map[string]*torch.Tensor, map[string]string) {
	t.Helper()
	path := filepath.Join(peftDir, "refs.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run make interop (make interop-refs writes it with testdata/interop_peft.py)", path)
	}
	ts, _, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	t.Cleanup(func() { torch.CloseMap(ts) })
	raw, err := os.ReadFile(filepath.Join(peftDir, "refs.json"))
	require.NoError(t, err)
	var md map[string]string
	require.NoError(t, json.Unmarshal(raw, &md))
	return ts, md
}

// pytorchNet is the Go twin with PyTorch's base weights.
func pytorchNet(t *testing.T) *peftNet {
	n := newPeftNet(t, 0)
	require.NoError(t, module.Load(n, filepath.Join(peftDir, "base.safetensors")))
	return n
}

func requireRel(t *testing.T, what string, got []float64, want *torch.Tensor) float64 {
	t.Helper()
	e := reftest.RequireSlicesClose(t, what, got, reftest.Float64s(t, want), interopTol)
	t.Logf("%s: relative error %.2e", what, e)
	return e
}

func TestInteropLoadPEFT(t *testing.T) {
	refs, md := peftRefs(t)
	ids, img := refs["x.ids"], refs["x.img"]

	base := pytorchNet(t)
	requireRel(t, "base model", base.run(t, ids, img), refs["y.base"])

	for _, c := range []string{"default", "rslora", "dora", "save", "bias"} {
		t.Run(c, func(t *testing.T) {
			n := pytorchNet(t)
			require.NoError(t, lora.LoadAdapter(n, filepath.Join(peftDir, c), lora.DefaultAdapter))
			got := n.run(t, ids, img)
			requireRel(t, c, got, refs["y."+c])
			require.Greater(t, reftest.RelErr(got, reftest.Float64s(t, refs["y.base"])), 1e-3, "the adapter changes the output")
		})
	}

	// Training agrees too: the gradients of (y·g).sum() for every adapter
	// tensor, LoRA on every kind and DoRA (whose norm PEFT detaches).
	for _, c := range []string{"default", "dora"} {
		t.Run("gradients "+c, func(t *testing.T) {
			n := pytorchNet(t)
			require.NoError(t, lora.LoadAdapter(n, filepath.Join(peftDir, c), lora.DefaultAdapter))
			s := newScope(t)
			y := n.forward(s.Borrow(ids), s.Borrow(img))
			require.NoError(t, y.Mul(refs["g."+c]).Sum().Backward())
			checked := 0
			for _, nl := range lora.Layers(n) {
				l := nl.Layer.LoraLayer()
				ad := l.Adapter("default")
				k := "grad." + c + ".base_model.model." + nl.Name
				names := map[string]*torch.Tensor{".lora_A.default.weight": ad.A, ".lora_B.default.weight": ad.B,
					".lora_magnitude_vector.default.weight": ad.Magnitude}
				if _, ok := l.BaseLayer().(*module.Embedding); ok {
					names = map[string]*torch.Tensor{".lora_embedding_A.default": ad.A, ".lora_embedding_B.default": ad.B,
						".lora_magnitude_vector.default.weight": ad.Magnitude}
				}
				for suffix, p := range names {
					if p == nil {
						continue
					}
					g := s.Own(p.Grad())
					requireRel(t, "grad "+nl.Name+suffix, reftest.Float64s(t, g), refs[k+suffix])
					checked++
				}
			}
			require.Greater(t, checked, 10)
		})
	}

	t.Run("DoRA merge", func(t *testing.T) {
		n := pytorchNet(t)
		require.NoError(t, lora.LoadAdapter(n, filepath.Join(peftDir, "dora"), lora.DefaultAdapter))
		w0 := snapshot(t, n)
		require.NoError(t, lora.Merge(n, true))
		for _, nl := range lora.Layers(n) {
			requireRel(t, "merged "+nl.Name, reftest.Float64s(t, nl.Layer.LoraLayer().Weight), refs["merged.dora."+nl.Name])
		}
		requireRel(t, "merged DoRA output", n.run(t, ids, img), refs["y.dora"])
		require.NoError(t, lora.Unmerge(n))
		for k, v := range snapshot(t, n) {
			reftest.RequireSlicesClose(t, "unmerged "+k, v, w0[k], 1e-6)
		}
	})

	t.Run("two adapters and a mixed batch", func(t *testing.T) {
		n := pytorchNet(t)
		dir := filepath.Join(peftDir, "two")
		require.NoError(t, lora.LoadAdapter(n, dir, "default"))
		require.NoError(t, lora.LoadAdapter(n, dir, "second")) // dir/second, as save_pretrained wrote it
		require.NoError(t, lora.SetAdapter(n, "default"))
		requireRel(t, "default", n.run(t, ids, img), refs["y.two"])
		require.NoError(t, lora.SetAdapter(n, "second"))
		requireRel(t, "second", n.run(t, ids, img), refs["y.two.second"])

		var mixed []string
		require.NoError(t, json.Unmarshal([]byte(md["mixed"]), &mixed))
		require.NoError(t, lora.WithAdapterNames(n, mixed, func() error {
			requireRel(t, "mixed batch vs adapter_names=", n.run(t, ids, img), refs["y.two.mixed"])
			return nil
		}))
	})

	// Each adapter has its own copy of the classifier (modules_to_save):
	// switching adapters switches heads, as in PEFT, and loading the
	// second adapter does not overwrite the first one's head.
	t.Run("two adapters with their own modules_to_save", func(t *testing.T) {
		n := pytorchNet(t)
		cls := n.Classifier.(*module.Linear).Weight
		dir := filepath.Join(peftDir, "twosave")
		require.NoError(t, lora.LoadAdapter(n, dir, "default"))
		require.NoError(t, lora.LoadAdapter(n, dir, "second"))
		for _, a := range []string{"default", "second", "default"} {
			require.NoError(t, lora.SetAdapter(n, a))
			requireRel(t, a, n.run(t, ids, img), refs["y.twosave."+a])
			require.True(t, cls.RequiresGrad(), "the active copy trains")
		}
		require.NoError(t, lora.WithAdaptersDisabled(n, func() error {
			requireRel(t, "disabled", n.run(t, ids, img), refs["y.twosave.disabled"])
			require.False(t, cls.RequiresGrad(), "the original is frozen")
			return nil
		}))
		requireRel(t, "default again", n.run(t, ids, img), refs["y.twosave.default"])
		require.ErrorContains(t, lora.SetAdapter(n, "default", "second"), "only one can be active")
		require.ErrorContains(t, lora.WithAdapterNames(n, []string{"default", "second", "default", "default"}, func() error { return nil }),
			"modules_to_save classifier")
		require.NoError(t, lora.DeleteAdapter(n, "default"))
		require.NoError(t, lora.SetAdapter(n, "second"))
		requireRel(t, "second after deleting default", n.run(t, ids, img), refs["y.twosave.second"])
		require.NoError(t, lora.DeleteAdapter(n, "second"))
		requireRel(t, "no adapters left: the original head", n.run(t, ids, img), refs["y.twosave.disabled"])
	})
}

// add_weighted_adapter's "linear", "cat" and "svd" against PEFT's.
func TestInteropWeightedAdapter(t *testing.T) {
	refs, md := peftRefs(t)
	ids, img := refs["x.ids"], refs["x.img"]
	var weights []float64
	require.NoError(t, json.Unmarshal([]byte(md["weights"]), &weights))
	svdRank, err := strconv.ParseInt(md["svd_rank"], 10, 64)
	require.NoError(t, err)
	n := pytorchNet(t)
	dir := filepath.Join(peftDir, "weighted")
	require.NoError(t, lora.LoadAdapter(n, dir, "default"))
	require.NoError(t, lora.LoadAdapter(n, dir, "other"))
	for _, c := range []lora.Combination{lora.CombineLinear, lora.CombineCat, lora.CombineSVD} {
		name := "w_" + string(c)
		require.NoError(t, lora.AddWeightedAdapter(n, []string{"default", "other"}, weights, name, c, svdRank))
		require.NoError(t, lora.SetAdapter(n, name))
		requireRel(t, string(c), n.run(t, ids, img), refs["y.weighted."+string(c)])
	}
}

// PEFT's inits (true, false, gaussian, orthogonal, pissa) with
// Config.PEFTInit: the same seed gives the same A and B as
// get_peft_model, on every kind; PiSSA also the same residual base weight.
func TestInteropInit(t *testing.T) {
	refs, md := peftRefs(t)
	var inits []string
	require.NoError(t, json.Unmarshal([]byte(md["inits"]), &inits))
	init := map[string]lora.Init{"true": lora.InitDefault, "false": lora.InitRandom, "gaussian": lora.InitGaussian,
		"orthogonal": lora.InitOrthogonal, "pissa": lora.InitPiSSA}
	for _, name := range inits {
		t.Run(name, func(t *testing.T) {
			prefix := "init." + name + "."
			var targets []string
			for k := range refs {
				if strings.HasPrefix(k, prefix) && (strings.HasSuffix(k, ".lora_A.default.weight") || strings.HasSuffix(k, ".lora_embedding_A.default")) {
					p := strings.TrimPrefix(k, prefix+"base_model.model.")
					p = p[:strings.Index(p, ".lora_")]
					targets = append(targets, p)
				}
			}
			require.NotEmpty(t, targets)
			n := pytorchNet(t)
			require.NoError(t, torch.ManualSeed(7))
			_, err := lora.AddAdapter(n, "default", lora.Config{R: 4, Alpha: 8, TargetModules: targets, Init: init[name], PEFTInit: true})
			require.NoError(t, err)
			for _, nl := range lora.Layers(n) {
				l := nl.Layer.LoraLayer()
				ad := l.Adapter("default")
				k := prefix + "base_model.model." + nl.Name
				ka, kb := k+".lora_A.default.weight", k+".lora_B.default.weight"
				if _, ok := l.BaseLayer().(*module.Embedding); ok {
					ka, kb = k+".lora_embedding_A.default", k+".lora_embedding_B.default"
				}
				tol := 1e-6
				if name == "pissa" || name == "orthogonal" {
					tol = 1e-4 // LAPACK's SVD and QR, two builds
				}
				reftest.RequireClose(t, nl.Name+" A", ad.A, refs[ka], tol)
				reftest.RequireClose(t, nl.Name+" B", ad.B, refs[kb], tol)
				reftest.RequireClose(t, nl.Name+" W", l.Weight, refs[k+".base_layer.weight"], tol)
			}
		})
	}
}

// goCase is an adapter set-up made in Go for PEFT to load.
type goCase struct {
	name     string
	adapters map[string]lora.Config
	order    []string
	runs     []goRun
}

type goRun struct {
	Active []string `json:"active,omitempty"` // SetAdapter
	Mixed  []string `json:"mixed,omitempty"`  // adapter_names=
}

func TestInteropSaveForPEFT(t *testing.T) {
	python := os.Getenv("GOLORA_INTEROP_PYTHON")
	if python == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop (it builds the venv and sets it)")
	}
	dir := t.TempDir()
	qv := []string{"q_proj", "v_proj", "embed_tokens", "c_attn", "conv"}
	cases := []goCase{
		{name: "default", adapters: map[string]lora.Config{"default": {R: 4, Alpha: 8, TargetModules: qv, Init: lora.InitRandom}}},
		{name: "rslora", adapters: map[string]lora.Config{"default": {R: 8, Alpha: 16, UseRSLoRA: true, Dropout: 0.1,
			TargetModules: []string{"q_proj", "k_proj", "o_proj"}, Init: lora.InitRandom}}},
		{name: "dora", adapters: map[string]lora.Config{"default": {R: 4, Alpha: 8, UseDoRA: true,
			TargetModules: []string{"q_proj", "v_proj", "embed_tokens", "c_attn", "conv"}, Init: lora.InitRandom}}},
		{name: "save", adapters: map[string]lora.Config{"default": {R: 2, Alpha: 4, TargetModules: []string{"v_proj"},
			ModulesToSave: []string{"classifier"}, Init: lora.InitRandom}}},
		{name: "bias", adapters: map[string]lora.Config{"default": {R: 2, Alpha: 4, TargetModules: []string{"q_proj", "conv"},
			Bias: "all", Init: lora.InitRandom}}},
		{name: "two", order: []string{"default", "second"}, adapters: map[string]lora.Config{
			"default": {R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}, Init: lora.InitRandom},
			"second":  {R: 2, Alpha: 4, TargetModules: []string{"k_proj", "embed_tokens", "q_proj"}, Init: lora.InitRandom}},
			runs: []goRun{{Active: []string{"default"}}, {Active: []string{"second"}},
				{Mixed: []string{"default", "second", "__base__", "default"}}}},
		{name: "twosave", order: []string{"default", "second"}, adapters: map[string]lora.Config{
			"default": {R: 2, Alpha: 4, TargetModules: []string{"q_proj"}, ModulesToSave: []string{"classifier"}, Init: lora.InitRandom},
			"second":  {R: 2, Alpha: 4, TargetModules: []string{"v_proj"}, ModulesToSave: []string{"classifier"}, Init: lora.InitRandom}},
			runs: []goRun{{Active: []string{"default"}}, {Active: []string{"second"}}}},
	}

	require.NoError(t, torch.ManualSeed(5))
	ids := own(t, torch.FromSlice([]int64{1, 5, 9, 30, 2, 7, 0, 31, 4, 4, 8, 16, 3, 3, 3, 12, 19, 25, 6, 11, 13, 17, 21, 29}, 4, 6))
	img := own(t, torch.Randn([]int64{4, 3, 5, 5}))
	require.NoError(t, torch.SaveSafetensors(filepath.Join(dir, "inputs.safetensors"),
		map[string]*torch.Tensor{"ids": ids, "img": img}, nil))

	want := map[string][]float64{}
	manifest := map[string]any{}
	for ci, c := range cases {
		n := newPeftNet(t, 10)
		if ci == 0 {
			require.NoError(t, module.Save(n, filepath.Join(dir, "base.safetensors"), nil))
		}
		order := c.order
		if order == nil {
			order = []string{"default"}
		}
		require.NoError(t, torch.ManualSeed(uint64(20+ci)))
		for _, a := range order {
			_, err := lora.AddAdapter(n, a, c.adapters[a])
			require.NoError(t, err, "%s/%s", c.name, a)
		}
		// DoRA's magnitude starts at ‖W + ΔW‖; move it so that it matters.
		for _, nl := range lora.Layers(n) {
			for _, a := range order {
				if ad := nl.Layer.LoraLayer().Adapter(a); ad != nil && ad.Magnitude != nil {
					require.NoError(t, torch.NoGrad(func() error { return ad.Magnitude.MulScalar_(1.1).Err() }))
				}
			}
		}
		if c.name == "bias" { // every bias trains and is saved: move them
			for _, p := range module.NamedParameters(n) {
				if strings.HasSuffix(p.Name, "bias") {
					require.True(t, p.Trainable, p.Name)
					require.NoError(t, torch.NoGrad(func() error { return p.Tensor.AddScalar_(0.1).Err() }))
				}
			}
		}
		if c.name == "save" {
			cls := n.Classifier.(*module.Linear)
			require.NoError(t, torch.NoGrad(func() error { return cls.Weight.AddScalar_(0.25).Err() }))
		}
		if c.name == "twosave" { // move each adapter's own copy of the head
			cls := n.Classifier.(*module.Linear)
			for i, a := range order {
				require.NoError(t, lora.SetAdapter(n, a))
				require.NoError(t, torch.NoGrad(func() error { return cls.Weight.AddScalar_(0.25 - 0.5*float64(i)).Err() }))
			}
		}
		for _, a := range order {
			require.NoError(t, lora.SaveAdapter(n, filepath.Join(dir, c.name), a))
		}
		runs := c.runs
		if runs == nil {
			runs = []goRun{{Active: []string{"default"}}}
		}
		for ri, r := range runs {
			key := c.name + "/" + itoa(int64(ri))
			if r.Mixed != nil {
				require.NoError(t, lora.SetAdapter(n, "default"))
				require.NoError(t, lora.WithAdapterNames(n, r.Mixed, func() error {
					want[key] = n.run(t, ids, img)
					return nil
				}))
			} else {
				require.NoError(t, lora.SetAdapter(n, r.Active...))
				want[key] = n.run(t, ids, img)
			}
		}
		manifest[c.name] = map[string]any{"adapters": order, "runs": runs}
	}
	js, err := json.Marshal(manifest)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifest.json"), js, 0o644))

	cmd := exec.Command(python, filepath.Join("testdata", "peft_load.py"), dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "peft_load.py")
	var got struct {
		Outputs map[string][]float64       `json:"outputs"`
		Keys    map[string]string          `json:"keys"`
		Changed map[string]map[string]bool `json:"changed"`
	}
	require.NoError(t, json.Unmarshal(out, &got))
	for k, msg := range got.Keys {
		require.Empty(t, msg, "%s: PEFT's load of Go's adapter", k)
	}
	require.Len(t, got.Keys, 9, "every adapter checked by PEFT")
	for c, layers := range got.Changed {
		require.NotEmpty(t, layers, c)
		for l, ch := range layers {
			require.True(t, ch, "%s: LoRA layer %s does not change PEFT's output", c, l)
		}
	}
	require.Len(t, got.Outputs, len(want))

	// The config's fields are the ones PEFT writes.
	keys := func(path string) []string {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	require.Equal(t, keys(filepath.Join(peftDir, "default", "adapter_config.json")), keys(filepath.Join(dir, "default", "adapter_config.json")))
	for k, w := range want {
		e := reftest.RequireSlicesClose(t, "PEFT's output for Go's adapter "+k, got.Outputs[k], w, interopTol)
		t.Logf("%s: PEFT vs Go relative error %.2e", k, e)
	}
}
