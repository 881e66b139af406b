package lora_test

// Benchmarks of a training step (forward + backward) of lora.Linear, and of
// the same math composed from separate torch ops in Go, to show what
// fusing the LoRA path into one C call (torch.LoraLinear) saves.
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

// composedForward is lora.Linear's forward built from separate ops:
// Linear(x, W, b) + (x·Aᵀ·Bᵀ)·scaling, one cgo call per op.
func composedForward(l *lora.Linear, x *torch.Tensor) (*torch.Tensor, error) {
	base, err := torch.Linear(x, l.Weight, l.Bias)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	at, err := l.LoraA.T()
	if err != nil {
		return nil, err
	}
	defer at.Close()
	h, err := x.MatMul(at)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	bt, err := l.LoraB.T()
	if err != nil {
		return nil, err
	}
	defer bt.Close()
	d, err := h.MatMul(bt)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ds, err := d.MulScalar(l.Scaling())
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	return base.Add(ds)
}

func fusedForward(l *lora.Linear, x *torch.Tensor) (*torch.Tensor, error) { return l.Forward(x) }

// benchLayer returns a seeded float32 layer with a non-zero lora_b (so the
// LoRA path does real work) and an input batch.
func benchLayer(tb testing.TB, s benchShape) (*lora.Linear, *torch.Tensor) {
	tb.Helper()
	require.NoError(tb, torch.ManualSeed(0))
	l, err := lora.NewLinear(s.in, s.out, true, s.r)
	require.NoError(tb, err)
	tb.Cleanup(func() { module.Close(l) })
	b := keep(tb)(torch.Randn([]int64{s.out, s.r}))
	require.NoError(tb, l.LoraB.Copy_(b))
	x := keep(tb)(torch.Randn([]int64{s.batch, s.in}))
	return l, x
}

// step runs one training step: forward, loss = y.sum(), backward, then
// closes its handles and drops the gradients (set_to_none).
func step(l *lora.Linear, x *torch.Tensor, fwd func(*lora.Linear, *torch.Tensor) (*torch.Tensor, error)) error {
	y, err := fwd(l, x)
	if err != nil {
		return err
	}
	defer y.Close()
	loss, err := y.Sum()
	if err != nil {
		return err
	}
	defer loss.Close()
	if err := loss.Backward(); err != nil {
		return err
	}
	return module.ZeroGrad(l)
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

func BenchmarkLinearForwardBackward(b *testing.B) {
	benchThreads(b)
	for _, s := range benchShapes {
		for _, v := range []struct {
			name string
			fwd  func(*lora.Linear, *torch.Tensor) (*torch.Tensor, error)
		}{{"fused", fusedForward}, {"composed", composedForward}} {
			b.Run(s.String()+"/"+v.name, func(b *testing.B) {
				l, x := benchLayer(b, s)
				require.NoError(b, step(l, x, v.fwd)) // warm up
				b.ResetTimer()
				for b.Loop() {
					if err := step(l, x, v.fwd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Forward alone (graph still recorded, as in training): the part where
// the number of cgo calls differs.
func BenchmarkLinearForward(b *testing.B) {
	benchThreads(b)
	for _, s := range benchShapes {
		for _, v := range []struct {
			name string
			fwd  func(*lora.Linear, *torch.Tensor) (*torch.Tensor, error)
		}{{"fused", fusedForward}, {"composed", composedForward}} {
			b.Run(s.String()+"/"+v.name, func(b *testing.B) {
				l, x := benchLayer(b, s)
				b.ResetTimer()
				for b.Loop() {
					y, err := v.fwd(l, x)
					if err != nil {
						b.Fatal(err)
					}
					y.Close()
				}
			})
		}
		// Merged: the inference cost, a plain linear layer.
		b.Run(s.String()+"/merged", func(b *testing.B) {
			l, x := benchLayer(b, s)
			require.NoError(b, l.Merge())
			b.ResetTimer()
			for b.Loop() {
				y, err := l.Forward(x)
				if err != nil {
					b.Fatal(err)
				}
				y.Close()
			}
		})
	}
}

// The composed path of the benchmark computes what lora.Linear does, with
// the same gradients, and the step leaks no handles.
func TestComposedMatchesFused(t *testing.T) {
	s := benchShape{48, 40, 8, 16}
	l, x := benchLayer(t, s)
	xg := keep(t)(x.Clone())
	require.NoError(t, xg.SetRequiresGrad(true))

	run := func(fwd func(*lora.Linear, *torch.Tensor) (*torch.Tensor, error)) (y, ga, gb, gx []float64) {
		out, err := fwd(l, xg)
		require.NoError(t, err)
		defer out.Close()
		loss, err := out.Sum()
		require.NoError(t, err)
		defer loss.Close()
		require.NoError(t, loss.Backward())
		y = reftest.Float64s(t, out)
		ga, gb, gx = reftest.Float64s(t, grad(t, l.LoraA, "lora_a")), reftest.Float64s(t, grad(t, l.LoraB, "lora_b")), reftest.Float64s(t, grad(t, xg, "x"))
		require.NoError(t, module.ZeroGrad(l))
		require.NoError(t, xg.ClearGrad())
		return
	}
	y1, a1, b1, x1 := run(fusedForward)
	y2, a2, b2, x2 := run(composedForward)
	reftest.RequireSlicesClose(t, "output", y2, y1, 1e-6)
	reftest.RequireSlicesClose(t, "grad lora_a", a2, a1, 1e-6)
	reftest.RequireSlicesClose(t, "grad lora_b", b2, b1, 1e-6)
	reftest.RequireSlicesClose(t, "grad x", x2, x1, 1e-6)

	for _, fwd := range []func(*lora.Linear, *torch.Tensor) (*torch.Tensor, error){fusedForward, composedForward} {
		require.NoError(t, step(l, x, fwd))
		live := torch.LiveTensors()
		for range 10 {
			require.NoError(t, step(l, x, fwd))
		}
		require.LessOrEqual(t, torch.LiveTensors(), live, "step leaks handles")
	}
}
