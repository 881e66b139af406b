package optim_test

// BenchmarkAdamWStep times one AdamW step over LoRA-sized parameters (8
// float32 tensors of 64×8, gradients set), the step alone: one C call.
// testdata/bench_twin.py times torch.optim.AdamW.step() on the same shapes
// with the same libtorch; BENCH.md has the figures side by side.
//
//	go test -run=NONE -bench=AdamWStep -benchmem ./optim/
//	/usr/bin/python3 optim/testdata/bench_twin.py

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// benchParams returns n trainable float32 tensors of shape with gradients.
func benchParams(b *testing.B, n int, shape ...int64) []*torch.Tensor {
	require.NoError(b, torch.ManualSeed(0))
	ps := make([]*torch.Tensor, n)
	for i := range ps {
		ps[i] = torch.Randn(shape)
		require.NoError(b, ps[i].SetRequiresGrad(true))
		s := torch.NewScope()
		g := s.Own(torch.Randn(shape))
		require.NoError(b, s.Borrow(ps[i]).Mul(g).Sum().Backward())
		s.Close()
	}
	b.Cleanup(func() { torch.CloseAll(ps...) })
	return ps
}

func BenchmarkAdamWStep(b *testing.B) {
	ps := benchParams(b, 8, 64, 8)
	o, err := optim.NewAdamW(ps, optim.LR(1e-3))
	require.NoError(b, err)
	defer o.Close()
	require.NoError(b, o.Step()) // allocate the state
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.Step(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkZeroGrad(b *testing.B) {
	ps := benchParams(b, 8, 64, 8)
	o, err := optim.NewAdamW(ps)
	require.NoError(b, err)
	defer o.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.ZeroGrad(); err != nil { // drops nothing after the first
			b.Fatal(err)
		}
	}
}

func BenchmarkClipGradNorm(b *testing.B) {
	ps := benchParams(b, 8, 64, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := optim.ClipGradNorm(ps, 1e9, 2); err != nil { // never clips: the gradients stay
			b.Fatal(err)
		}
	}
}
