package torch_test

// Checkpoint against torch.utils.checkpoint (testdata/gen_checkpoint.py):
// a stack of three blocks with dropout, the first and third checkpointed;
// output and every gradient, the dropout masks replayed in the backward.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

func ckptBlock(w1, b1, w2 *torch.Tensor, p float64) func([]*torch.Tensor) []*torch.Tensor {
	return func(in []*torch.Tensor) []*torch.Tensor {
		t := in[0]
		return []*torch.Tensor{t.Add(torch.Dropout(t.Linear(w1, b1).Gelu(), p, true).Linear(w2, nil))}
	}
}

func TestCheckpointMatchesPyTorch(t *testing.T) {
	r := reftest.Load(t, "testdata/checkpoint_refs.safetensors", "/usr/bin/python3 torch/testdata/gen_checkpoint.py")
	s := reftest.Scope(t)
	param := func(name string) *torch.Tensor {
		p := s.Own(r.Tensor(t, name).Clone())
		require.NoError(t, p.SetRequiresGrad(true))
		return p
	}
	p, err := r.Tensor(t, "p").Item()
	require.NoError(t, err)
	x := param("x")
	var blocks [3][3]*torch.Tensor
	for i := range blocks {
		for j, k := range []string{"w1", "b1", "w2"} {
			blocks[i][j] = param("block." + string(rune('0'+i)) + "." + k)
		}
	}
	require.NoError(t, torch.ManualSeed(1234))
	y := x
	for i, b := range blocks {
		f := ckptBlock(b[0], b[1], b[2], p)
		if i == 1 {
			y = f([]*torch.Tensor{y})[0]
		} else {
			y = torch.Checkpoint(f, y)[0]
		}
	}
	reftest.RequireClose(t, "out", y, r.Tensor(t, "out"), 1e-5)
	require.NoError(t, y.Mul(s.Own(r.Tensor(t, "w").Clone())).Sum().Backward())
	reftest.RequireClose(t, "grad.x", s.Own(x.Grad()), r.Tensor(t, "grad.x"), 1e-5)
	for i, b := range blocks {
		for j, k := range []string{"w1", "b1", "w2"} {
			name := "grad.block." + string(rune('0'+i)) + "." + k
			reftest.RequireClose(t, name, s.Own(b[j].Grad()), r.Tensor(t, name), 1e-5)
		}
	}
}

func TestCheckpointEdgeCases(t *testing.T) {
	s := reftest.Scope(t)
	w := s.Own(torch.Ones([]int64{3}))
	require.NoError(t, w.SetRequiresGrad(true))
	x := s.Own(torch.Arange(0, 3, 1))

	// No input needs grad, a parameter inside does: its gradient still
	// comes (PyTorch's reentrant checkpoint would lose it).
	y := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor {
		return []*torch.Tensor{in[0].Mul(w).Mul(w)}
	}, x)[0]
	require.NoError(t, y.Sum().Backward())
	g := s.Own(w.Grad())
	require.Equal(t, []float32{0, 2, 4}, torch.Must(torch.ToSlice[float32](g))) // d/dw Σ x·w² = 2·x·w

	// Identity region: the output is a new tensor, the input untouched.
	z := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor { return in }, w)[0]
	require.NoError(t, z.Err())
	require.NoError(t, w.ZeroGrad())
	require.NoError(t, z.Mul(z).Sum().Backward())
	require.Equal(t, []float32{2, 2, 2}, torch.Must(torch.ToSlice[float32](s.Own(w.Grad()))))

	// Errors: nil fn, an error inside fn, a panic inside fn, no outputs,
	// a failed input; none leaks.
	_, err := s.Child().Done(torch.Checkpoint(nil, w)[0])
	require.ErrorContains(t, err, "nil function")
	bad := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor {
		return []*torch.Tensor{in[0].View(7)}
	}, w)
	require.ErrorContains(t, bad[0].Err(), "View")
	pan := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor { panic("boom") }, w)
	require.ErrorContains(t, pan[0].Err(), "panic: boom")
	none := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor { return nil }, w)
	require.ErrorContains(t, none[0].Err(), "no tensors")
	nilIn := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor { return in }, nil)
	require.ErrorContains(t, nilIn[0].Err(), "nil tensor")

	// A second backward without retain_graph is an error, not a crash.
	y2 := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor {
		return []*torch.Tensor{in[0].Mul(w)}
	}, x)[0].Sum()
	require.NoError(t, y2.BackwardWith(nil, true))
	require.NoError(t, y2.Backward())

	// Under NoGrad fn just runs.
	require.NoError(t, torch.NoGrad(func() error {
		o := torch.Checkpoint(func(in []*torch.Tensor) []*torch.Tensor { return []*torch.Tensor{in[0].Mul(w)} }, x)[0]
		require.False(t, o.RequiresGrad())
		return o.Err()
	}))
}

// The recomputation's inputs and intermediates are freed, and so is the
// region once its graph goes (after backward, or dropped without one): no
// handle outlives a step.
func TestCheckpointNoLeak(t *testing.T) {
	s0 := reftest.Scope(t)
	w := s0.Own(torch.Randn([]int64{16, 16}))
	require.NoError(t, w.SetRequiresGrad(true))
	region := func(in []*torch.Tensor) []*torch.Tensor {
		return []*torch.Tensor{in[0].MatMul(w).Tanh().MatMul(w)}
	}
	step := func(backward bool) {
		s := torch.NewScope()
		defer s.Close()
		x := s.Own(torch.Randn([]int64{4, 16}))
		y := torch.Checkpoint(region, x)[0].Sum()
		if backward {
			require.NoError(t, y.Backward())
		}
		require.NoError(t, s.Err())
		w.ClearGrad()
	}
	step(true)
	base, regions := reftest.SettledLiveTensors(), torch.LiveRegions()
	for i := 0; i < 50; i++ {
		step(i%2 == 0)
	}
	require.Equal(t, base, reftest.SettledLiveTensors())
	require.Equal(t, regions, torch.LiveRegions())
	require.Zero(t, regions)
}
