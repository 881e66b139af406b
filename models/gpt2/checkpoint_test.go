package gpt2_test

// Activation checkpointing (SetGradientCheckpointing): a training step
// with dropout and a padding mask gives the same loss and the same
// gradients as without it, and leaves nothing behind.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestGradientCheckpointingSameGradients(t *testing.T) {
	c := tinyConfig()
	c.ResidPdrop, c.AttnPdrop, c.EmbdPdrop = 0.2, 0.2, 0.1
	m := newTiny(t, c)
	m.Train()
	step := func(ckpt bool) (float64, map[string][]float64) {
		m.SetGradientCheckpointing(ckpt)
		require.NoError(t, module.ZeroGrad(m))
		s := torch.NewScope()
		defer s.Close()
		require.NoError(t, torch.ManualSeed(99))
		ids := s.Own(torch.FromSlice([]int64{0, 0, 5, 9, 13, 3, 4, 8, 15, 16, 23, 42}, 2, 6))
		mask := s.Own(torch.FromSlice([]int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2, 6))
		logits := m.ForwardInputs(module.Inputs{IDs: ids, AttentionMask: mask})
		w := s.Own(torch.Randn(logits.Shape()))
		loss := logits.Mul(w).Sum()
		require.NoError(t, loss.Backward())
		l, err := loss.Item()
		require.NoError(t, err)
		grads := map[string][]float64{}
		for _, p := range module.NamedParameters(m) {
			g := s.Own(p.Tensor.Grad())
			require.NotNil(t, g, p.Name)
			v, err := torch.ToSlice[float32](g)
			require.NoError(t, err)
			f := make([]float64, len(v))
			for i, x := range v {
				f[i] = float64(x)
			}
			grads[p.Name] = f
		}
		return l, grads
	}
	l0, g0 := step(false)
	live := reftest.SettledLiveTensors()
	l1, g1 := step(true)
	require.Equal(t, l0, l1, "loss")
	require.Len(t, g1, len(g0))
	for name, want := range g0 {
		reftest.RequireSlicesClose(t, name, g1[name], want, 1e-6)
	}
	require.Equal(t, live, reftest.SettledLiveTensors())
}
