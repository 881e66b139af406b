package module_test

// Leak tests: torch.LiveTensors must come back to where it started.
// Nothing here calls runtime.GC between start and end, so a tensor left to
// its finalizer shows up as a leak.

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
		require.NoError(t, module.Freeze(n.Blocks))
		_ = module.StateDict(n)
		_ = module.Summary(n)
		require.NoError(t, module.Save(n, path, nil))
		require.NoError(t, module.Load(n, path))
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
	defer module.Close(n)
	drop := newDropNet(t)
	defer module.Close(drop)
	ids := torch.Must(torch.FromSlice([]int64{1, 2, 3, 4, 5, 6}, 2, 3))
	defer ids.Close()
	x := torch.Must(torch.Randn([]int64{3, 4}))
	defer x.Close()

	start := reftest.SettledLiveTensors()
	for i := 0; i < 1000; i++ {
		y, err := n.Forward(ids)
		require.NoError(t, err)
		require.NoError(t, y.Close())
		if i%2 == 1 {
			module.Eval(drop)
		} else {
			module.Train(drop)
		}
		z, err := drop.Body.Forward(x)
		require.NoError(t, err)
		d, err := drop.Drop.Forward(z)
		require.NoError(t, err)
		torch.CloseAll(z, d)
	}
	require.Equal(t, start, torch.LiveTensors(), "1000 forward passes with closed outputs")

	// With backward: the gradients live on the parameters, not in handles.
	w := torch.Must(torch.Randn([]int64{2, 3, 3}))
	defer w.Close()
	start = torch.LiveTensors()
	for i := 0; i < 200; i++ {
		y := torch.Must(n.Forward(ids))
		weightedBackward(t, y, w)
		y.Close()
		require.NoError(t, module.ZeroGrad(n))
	}
	require.Equal(t, start, torch.LiveTensors(), "200 forward and backward passes")
}
