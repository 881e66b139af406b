package lora_test

// Benchmarks of a training step (forward + backward) of lora.Linear, and of
// the same math composed from separate torch ops in Go, to show what
// fusing the LoRA path into one C call (torch.LoraLinear) saves. Each step
// runs in a scope of its own, as a training loop does.
// testdata/bench_twin.py times the same steps in PyTorch; BENCH.md has
// the figures side by side.
//
//	go test -run=NONE -bench=. -benchmem ./lora/
//	/usr/bin/python3 lora/testdata/bench_twin.py

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

type benchShape struct {
	in, out, r, batch int64
}

var benchShapes = []benchShape{
	{16, 16, 4, 1}, // tiny: call overhead only
	{64, 64, 8, 64},
	{1024, 1024, 8, 64},
}

func (s benchShape) String() string {
	return fmt.Sprintf("%dx%d_r%d_b%d", s.in, s.out, s.r, s.batch)
}

// forwardFunc computes a layer's output; s owns what it makes besides the
// ops on x (which join x's scope).
type forwardFunc func(s *torch.Scope, l *lora.Linear, x *torch.Tensor) *torch.Tensor

// composedForward is lora.Linear's forward built from separate ops, as the
// spec's class writes it: F.linear(x, W, b) + (x @ Aᵀ @ Bᵀ)·scaling, one C
// call per op (seven). Aᵀ and Bᵀ are views of parameters, which belong to
// no scope, so s adopts them.
func composedForward(s *torch.Scope, l *lora.Linear, x *torch.Tensor) *torch.Tensor {
	at, bt := s.Own(l.LoraA.T()), s.Own(l.LoraB.T())
	return torch.Linear(x, l.Weight, l.Bias).Add(x.MatMul(at).MatMul(bt).MulScalar(l.Scaling()))
}

// fusedForward is lora.Linear.Forward: one C call (torch.LoraLinear).
func fusedForward(_ *torch.Scope, l *lora.Linear, x *torch.Tensor) *torch.Tensor {
	return l.Forward(x)
}

// benchLayer returns a seeded float32 layer with a non-zero lora_b (so the
// LoRA path does real work) and an input batch, which belongs to no scope.
func benchLayer(tb testing.TB, s benchShape) (*lora.Linear, *torch.Tensor) {
	tb.Helper()
	require.NoError(tb, torch.ManualSeed(0))
	l, err := lora.NewLinear(s.in, s.out, true, s.r)
	require.NoError(tb, err)
	tb.Cleanup(func() { module.Close(l) })
	require.NoError(tb, l.LoraB.Copy_(own(tb, torch.Randn([]int64{s.out, s.r}))).Err())
	x := torch.Randn([]int64{s.batch, s.in}).Must()
	tb.Cleanup(func() { x.Close() })
	return l, x
}

// step runs one training step in a scope of its own: forward, loss =
// y.sum(), backward, then drops the gradients (set_to_none). The batch x
// outlives the step, so the step's scope owns an alias of it (one handle,
// no copy) and everything computed from it; closing the scope frees them.
func step(l *lora.Linear, params []*torch.Tensor, x *torch.Tensor, fwd forwardFunc) error {
	s := torch.NewScope()
	defer s.Close()
	loss := fwd(s, l, s.Own(x.Alias())).Sum()
	if err := loss.Backward(); err != nil {
		return err
	}
	for _, p := range params {
		if err := p.ClearGrad(); err != nil {
			return err
		}
	}
	return s.Err()
}

// forwardOnly runs the forward pass alone in a scope of its own (graph
// still recorded, as in training).
func forwardOnly(l *lora.Linear, x *torch.Tensor, fwd forwardFunc) error {
	s := torch.NewScope()
	defer s.Close()
	fwd(s, l, s.Own(x.Alias()))
	return s.Err()
}

// benchThreads applies GOLORA_BENCH_THREADS (libtorch intra-op threads) if
// set; the default is libtorch's.
func benchThreads(b *testing.B) {
	if s := os.Getenv("GOLORA_BENCH_THREADS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		require.NoError(b, torch.SetNumThreads(n))
	}
	b.Logf("libtorch %s, %d intra-op threads", torch.Version(), torch.NumThreads())
}

var variants = []struct {
	name string
	fwd  forwardFunc
}{{"fused", fusedForward}, {"composed", composedForward}}

func BenchmarkLinearForwardBackward(b *testing.B) {
	benchThreads(b)
	for _, s := range benchShapes {
		for _, v := range variants {
			b.Run(s.String()+"/"+v.name, func(b *testing.B) {
				l, x := benchLayer(b, s)
				params := module.Parameters(l, true)
				require.NoError(b, step(l, params, x, v.fwd)) // warm up
				b.ResetTimer()
				for b.Loop() {
					if err := step(l, params, x, v.fwd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Forward alone (graph still recorded, as in training): the part where
// the number of C calls differs.
func BenchmarkLinearForward(b *testing.B) {
	benchThreads(b)
	for _, s := range benchShapes {
		for _, v := range variants {
			b.Run(s.String()+"/"+v.name, func(b *testing.B) {
				l, x := benchLayer(b, s)
				b.ResetTimer()
				for b.Loop() {
					if err := forwardOnly(l, x, v.fwd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		// Merged: the inference cost, a plain linear layer.
		b.Run(s.String()+"/merged", func(b *testing.B) {
			l, x := benchLayer(b, s)
			require.NoError(b, l.Merge())
			b.ResetTimer()
			for b.Loop() {
				if err := forwardOnly(l, x, fusedForward); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The composed path of the benchmark computes what lora.Linear does, with
// the same gradients, and a step leaks no handles.
func TestComposedMatchesFused(t *testing.T) {
	s := benchShape{48, 40, 8, 16}
	l, x := benchLayer(t, s)
	params := module.Parameters(l, true)
	xg := own(t, x.Clone())
	require.NoError(t, xg.SetRequiresGrad(true))

	run := func(fwd forwardFunc) (y, ga, gb, gx []float64) {
		s := torch.NewScope()
		defer s.Close()
		out := fwd(s, l, xg)
		require.NoError(t, out.Sum().Backward())
		y = reftest.Float64s(t, s.Own(out))
		ga = reftest.Float64s(t, gradOf(t, s, l.LoraA, "lora_a"))
		gb = reftest.Float64s(t, gradOf(t, s, l.LoraB, "lora_b"))
		gx = reftest.Float64s(t, gradOf(t, s, xg, "x"))
		clearGrads(t, append(params, xg))
		return
	}
	y1, a1, b1, x1 := run(fusedForward)
	y2, a2, b2, x2 := run(composedForward)
	reftest.RequireSlicesClose(t, "output", y2, y1, 1e-6)
	reftest.RequireSlicesClose(t, "grad lora_a", a2, a1, 1e-6)
	reftest.RequireSlicesClose(t, "grad lora_b", b2, b1, 1e-6)
	reftest.RequireSlicesClose(t, "grad x", x2, x1, 1e-6)

	for _, fwd := range []forwardFunc{fusedForward, composedForward} {
		require.NoError(t, step(l, params, x, fwd))
		live := reftest.SettledLiveTensors()
		for range 10 {
			require.NoError(t, step(l, params, x, fwd))
			require.NoError(t, forwardOnly(l, x, fwd))
		}
		require.LessOrEqual(t, torch.LiveTensors(), live, "a step leaks handles")
	}
}
