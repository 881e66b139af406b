package lora_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// modules_to_save with two adapters: each gets its own copy of the
// classifier made from the original, switching adapters switches copies
// without changing the parameters' identity, a copy trains only while its
// adapter is active, and SaveAdapter/LoadAdapter carry each adapter's own
// copy. (The values against PEFT's: peft_interop_test.go.)
func TestModulesToSavePerAdapter(t *testing.T) {
	live := reftest.SettledLiveTensors()
	t.Run("models", func(t *testing.T) { // their cleanups run at its end
		n := newPeftNet(t, 3)
		cls := n.Classifier.(*module.Linear)
		w, b := cls.Weight, cls.Bias
		orig := reftest.Float64s(t, w)
		cfg := func(target string) lora.Config {
			return lora.Config{R: 2, TargetModules: []string{target}, ModulesToSave: []string{"classifier"}, Init: lora.InitRandom}
		}
		_, err := lora.Apply(n, cfg("q_proj"))
		require.NoError(t, err)
		_, err = lora.AddAdapter(n, "second", cfg("v_proj"))
		require.NoError(t, err)
		require.True(t, w.RequiresGrad(), "the active copy trains")

		// Each adapter moves its own copy: w + 1 for default, w − 2 for second.
		for _, c := range []struct {
			name  string
			shift float64
		}{{"default", 1}, {"second", -2}} {
			require.NoError(t, lora.SetAdapter(n, c.name))
			require.NoError(t, torch.NoGrad(func() error { return w.AddScalar_(c.shift).Err() }))
		}
		shifted := func(d float64) []float64 {
			out := make([]float64, len(orig))
			for i, v := range orig {
				out[i] = float64(float32(v) + float32(d))
			}
			return out
		}
		require.NoError(t, lora.SetAdapter(n, "default"))
		require.Equal(t, shifted(1), reftest.Float64s(t, w))
		require.NoError(t, lora.SetAdapter(n, "second"))
		require.Equal(t, shifted(-2), reftest.Float64s(t, w))
		require.NoError(t, lora.WithAdaptersDisabled(n, func() error {
			require.Equal(t, orig, reftest.Float64s(t, w), "disabled: the original")
			require.False(t, w.RequiresGrad(), "the original is frozen")
			return nil
		}))
		require.Equal(t, shifted(-2), reftest.Float64s(t, w), "back to the active copy")
		require.Same(t, w, n.Classifier.(*module.Linear).Weight, "identity kept")
		require.Same(t, b, n.Classifier.(*module.Linear).Bias)
		require.ErrorContains(t, lora.SetAdapter(n, "default", "second"), "only one can be active")
		require.Equal(t, shifted(-2), reftest.Float64s(t, w), "a refused SetAdapter changes nothing")

		// Saved and loaded per adapter, into a fresh model.
		dir := t.TempDir()
		require.NoError(t, lora.SaveAdapter(n, dir, "default"))
		require.NoError(t, lora.SaveAdapter(n, dir, "second"))
		m := newPeftNet(t, 3)
		require.NoError(t, lora.LoadAdapter(m, dir, "default"))
		require.NoError(t, lora.LoadAdapter(m, filepath.Join(dir), "second"))
		mw := m.Classifier.(*module.Linear).Weight
		require.NoError(t, lora.SetAdapter(m, "default"))
		require.Equal(t, shifted(1), reftest.Float64s(t, mw))
		require.NoError(t, lora.SetAdapter(m, "second"))
		require.Equal(t, shifted(-2), reftest.Float64s(t, mw))

		// Deleting the active adapter brings back the original; Unload
		// keeps the active copy's values.
		require.NoError(t, lora.DeleteAdapter(n, "second"))
		require.Equal(t, orig, reftest.Float64s(t, w))
		require.False(t, w.RequiresGrad())
		require.NoError(t, lora.SetAdapter(n, "default"))
		require.Equal(t, shifted(1), reftest.Float64s(t, w))
		_, err = lora.Unload(n)
		require.NoError(t, err)
		require.Equal(t, shifted(1), reftest.Float64s(t, n.Classifier.(*module.Linear).Weight))
		require.Same(t, w, n.Classifier.(*module.Linear).Weight)

		// A module moved after Apply (dtype here) still switches.
		k := newPeftNet(t, 4)
		_, err = lora.Apply(k, cfg("q_proj"))
		require.NoError(t, err)
		_, err = lora.AddAdapter(k, "second", cfg("v_proj"))
		require.NoError(t, err)
		require.NoError(t, module.To(k, torch.Float64))
		kw := k.Classifier.(*module.Linear).Weight
		require.NoError(t, lora.SetAdapter(k, "second"))
		require.NoError(t, lora.SetAdapter(k, "default"))
		require.Equal(t, torch.Float64, kw.DType())
	})
	require.Equal(t, live, reftest.SettledLiveTensors(), "every copy freed")
}

// A mixed batch whose samples need different copies of a module to save
// is refused (the module runs once for the batch); one that needs one copy
// runs.
func TestModulesToSaveMixedBatch(t *testing.T) {
	n := newPeftNet(t, 3)
	_, err := lora.Apply(n, lora.Config{R: 2, TargetModules: []string{"q_proj"}, ModulesToSave: []string{"classifier"}})
	require.NoError(t, err)
	_, err = lora.AddAdapter(n, "plain", lora.Config{R: 2, TargetModules: []string{"v_proj"}})
	require.NoError(t, err)
	requireErr(t, func() error {
		return lora.WithAdapterNames(n, []string{"default", "plain", "default", "default"}, func() error { return nil })
	}, "modules_to_save classifier", "different copies")
	require.NoError(t, lora.WithAdapterNames(n, []string{"plain", "__base__", "plain", "plain"}, func() error { return nil }))
}
