//go:build interop

package lora_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

var groupedDir = filepath.Join("testdata", "peft_grouped")

// LoRA on a grouped Conv2d against the real PEFT, both directions: PEFT's
// adapter (testdata/interop_grouped.py) loads into Go with the same output
// and gradients, and Go's adapter loads with PeftModel.from_pretrained with
// the same output.
func TestInteropGroupedConv2d(t *testing.T) {
	python := os.Getenv("GOLORA_INTEROP_PYTHON")
	if python == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop (it builds the venv and sets it)")
	}
	refsPath := filepath.Join(groupedDir, "refs.safetensors")
	if _, err := os.Stat(refsPath); err != nil {
		t.Fatalf("%s is missing: run make interop (testdata/interop_grouped.py writes it)", refsPath)
	}
	refs, _, err := torch.LoadSafetensors(refsPath)
	require.NoError(t, err)
	t.Cleanup(func() { torch.CloseMap(refs) })

	t.Run("PEFT to Go", func(t *testing.T) {
		n := newGroupedNet(t)
		require.NoError(t, module.Load(n, filepath.Join(groupedDir, "base.safetensors")))
		require.NoError(t, lora.LoadAdapter(n, filepath.Join(groupedDir, "adapter"), lora.DefaultAdapter))
		s := newScope(t)
		y := s.Own(n.Conv.Forward(s.Borrow(refs["x"])))
		requireRel(t, "output", reftest.Float64s(t, y), refs["y"])
		require.NoError(t, y.Mul(refs["g"]).Sum().Backward())
		ad := lora.Layers(n)[0].Layer.LoraLayer().Adapter(lora.DefaultAdapter)
		requireRel(t, "grad lora_A", reftest.Float64s(t, s.Own(ad.A.Grad())), refs["grad.base_model.model.conv.lora_A.default.weight"])
		requireRel(t, "grad lora_B", reftest.Float64s(t, s.Own(ad.B.Grad())), refs["grad.base_model.model.conv.lora_B.default.weight"])
	})

	t.Run("Go to PEFT", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, torch.ManualSeed(3))
		n := newGroupedNet(t)
		require.NoError(t, module.Save(n, filepath.Join(dir, "base.safetensors"), nil))
		_, err := lora.Apply(n, lora.Config{R: 2, Alpha: 6, TargetModules: []string{"conv"}, Init: lora.InitRandom})
		require.NoError(t, err)
		require.NoError(t, lora.SaveAdapter(n, filepath.Join(dir, "adapter"), lora.DefaultAdapter))
		x := own(t, torch.Randn([]int64{3, 4, 6, 6}))
		require.NoError(t, torch.SaveSafetensors(filepath.Join(dir, "x.safetensors"), map[string]*torch.Tensor{"x": x}, nil))
		y := own(t, n.Conv.Forward(x))

		cmd := exec.Command(python, filepath.Join("testdata", "interop_grouped.py"), dir)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		got, _, err := torch.LoadSafetensors(filepath.Join(dir, "y.safetensors"))
		require.NoError(t, err)
		defer torch.CloseMap(got)
		requireRel(t, "PEFT's output of Go's adapter", reftest.Float64s(t, got["y"]), y)
		base := newGroupedNet(t)
		require.NoError(t, module.Load(base, filepath.Join(dir, "base.safetensors")))
		require.Greater(t, reftest.RelErr(reftest.Float64s(t, y), reftest.Float64s(t, own(t, base.Conv.Forward(x)))), 1e-3, "the adapter changes the output")
	})
}
