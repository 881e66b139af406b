package module_test

// Leak tests: torch.LiveTensors must come back to where it started.
// Nothing here calls runtime.GC between start and end, so a tensor left to
// the GC's safety net shows up as a leak.

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestNoLeakBuildAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.safetensors")
	start := reftest.SettledLiveTensors()
	for i := 0; i < 20; i++ {
		n := newNet(t, uint64(i))
		require.Equal(t, start+len(netOrder), torch.LiveTensors(), "one handle per parameter")
		require.NoError(t, module.To(n, torch.Float64))
		require.Equal(t, start+len(netOrder), torch.LiveTensors(), "To converts in place")
		require.NoError(t, module.Freeze(n.Blocks))
		_ = module.StateDict(n)
		_ = module.Summary(n)
		require.NoError(t, module.Save(n, path, nil))
		require.NoError(t, module.Load(n, path))
		require.NoError(t, module.LoadStateDict(n, module.StateDict(n)))
		// A failed load frees what it read too.
		bad := newNet(t, 0)
		oldHead := bad.Head
		require.NoError(t, module.SetChild(bad, "head", torch.Must(module.NewLinear(4, 3, false))))
		module.Close(oldHead)
		require.Error(t, module.Load(bad, path))
		module.Close(n)
		module.Close(bad)
		require.Equal(t, start, torch.LiveTensors(), "iteration %d: Close frees every parameter", i)

		for _, f := range []func() (module.Module, error){
			func() (module.Module, error) { return module.NewLinear(8, 4, true) },
			func() (module.Module, error) { return module.NewLinear(8, 4, false, torch.WithDType(torch.Float64)) },
			func() (module.Module, error) { return module.NewEmbedding(16, 4) },
			func() (module.Module, error) { return module.NewLayerNorm([]int64{2, 4}) },
			func() (module.Module, error) { return module.NewDropout(0.1) },
		} {
			m, err := f()
			require.NoError(t, err)
			module.Close(m)
		}
		require.Equal(t, start, torch.LiveTensors(), "iteration %d", i)
	}
}

func TestNoLeakForward(t *testing.T) {
	n := newNet(t, 1)
	drop := newDropNet(t)
	defer module.Close(drop)
	outer := newScope(t)
	ids := outer.Own(torch.FromSlice([]int64{1, 2, 3, 4, 5, 6}, 2, 3))
	x := outer.Own(torch.Randn([]int64{3, 4}))
	w := outer.Own(torch.Randn([]int64{2, 3, 3}))

	start := reftest.SettledLiveTensors()
	for i := 0; i < 1000; i++ {
		s := torch.NewScope()
		y, err := s.Done(n.Forward(s.Own(ids.Alias())))
		require.NoError(t, err)
		require.NoError(t, y.Close())
		s = torch.NewScope()
		if i%2 == 1 {
			module.Eval(drop)
		} else {
			module.Train(drop)
		}
		drop.Drop.Forward(drop.Body.Forward(s.Own(x.Alias())))
		s.Close()
	}
	require.Equal(t, start, torch.LiveTensors(), "1000 forward passes, each scope freed")

	// With backward: the gradients live on the parameters, not in handles.
	start = torch.LiveTensors()
	for i := 0; i < 200; i++ {
		s := torch.NewScope()
		weightedBackward(t, n.Forward(s.Own(ids.Alias())), w)
		s.Close()
		require.NoError(t, module.ZeroGrad(n))
	}
	require.Equal(t, start, torch.LiveTensors(), "200 forward and backward passes")
}
