package llama_test

// Activation checkpointing (Model.GradientCheckpointing): a training step
// with dropout and a padding mask gives the same loss and the same
// gradients as without it, and leaves nothing behind.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestGradientCheckpointingSameGradients(t *testing.T) {
	cfg := tinyConfig()
	cfg.AttentionDropout = 0.25 // the recomputation must replay the masks
	cfg.SlidingWindow, cfg.Sliding = 3, []bool{false, true}
	m := newTiny(t, cfg)
	m.Train()
	step := func(ckpt bool) (float64, map[string][]float64) {
		m.SetGradientCheckpointing(ckpt)
		require.NoError(t, module.ZeroGrad(m))
		s := torch.NewScope()
		defer s.Close()
		require.NoError(t, torch.ManualSeed(99))
		ids := s.Own(torch.FromSlice([]int64{0, 0, 5, 9, 13, 3, 4, 8, 15, 16, 23, 42}, 2, 6))
		mask := s.Own(torch.FromSlice([]int64{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2, 6))
		logits := m.Run(llama.Inputs{IDs: ids, AttentionMask: mask})
		w := s.Own(torch.Randn(logits.Shape()))
		loss := logits.Mul(w).Sum()
		require.NoError(t, loss.Backward())
		l, err := loss.Item()
		require.NoError(t, err)
		grads := map[string][]float64{}
		for _, p := range module.NamedParameters(m) {
			g := s.Own(p.Tensor.Grad())
			require.NotNil(t, g, p.Name)
			grads[p.Name] = floats(t, g)
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

	// Off in inference (no grad) and with a cache: the same logits.
	m.Eval()
	s := reftest.Scope(t)
	ids := s.Own(torch.FromSlice([]int64{4, 8, 15}, 1, 3))
	var a, b *torch.Tensor
	require.NoError(t, torch.NoGrad(func() error {
		a = m.Forward(ids)
		m.SetGradientCheckpointing(false)
		b = m.Forward(ids)
		return nil
	}))
	reftest.RequireBitwise(t, "logits", a, b)
}
