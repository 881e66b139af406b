package optim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// TestGradientAccumulation: k backward passes over micro-batches, each
// loss divided by k, then one Step, equal one Step over the whole batch
// (up to the rounding of the summation order), because gradients
// accumulate until ZeroGrad.
func TestGradientAccumulation(t *testing.T) {
	for _, c := range []struct {
		dt  torch.DType
		tol float64
	}{{torch.Float64, 1e-12}, {torch.Float32, 1e-5}} {
		t.Run(c.dt.String(), func(t *testing.T) {
			const batch, k = 8, 4
			require.NoError(t, torch.ManualSeed(7))
			x := torch.Randn([]int64{batch, 6}, torch.WithDType(c.dt))
			y := torch.Randn([]int64{batch, 3}, torch.WithDType(c.dt))
			defer torch.CloseAll(x, y)
			// Two identical layers with a non-zero B.
			var layers [2]*lora.Linear
			for i := range layers {
				require.NoError(t, torch.ManualSeed(1))
				l, err := lora.NewLinear(6, 3, true, 2, lora.WithDType(c.dt))
				require.NoError(t, err)
				defer module.Close(l)
				require.NoError(t, l.LoraB.Fill_(0.1))
				layers[i] = l
			}
			whole, micro := layers[0], layers[1]
			opts := []optim.Option{optim.LR(1e-2), optim.WeightDecay(0.1)}
			ow, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(whole)}, opts...)
			require.NoError(t, err)
			defer ow.Close()
			om, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(micro)}, opts...)
			require.NoError(t, err)
			defer om.Close()

			for step := 0; step < 5; step++ {
				s := torch.NewScope()
				loss := torch.MSELoss(whole.Forward(s.Own(x.Alias())), y, torch.ReductionMean)
				require.NoError(t, loss.Backward())
				for i := int64(0); i < k; i++ {
					n := int64(batch / k)
					xi := s.Own(x.Narrow(0, i*n, n))
					yi := s.Own(y.Narrow(0, i*n, n))
					l := torch.MSELoss(micro.Forward(xi), yi, torch.ReductionMean).DivScalar(k)
					require.NoError(t, l.Backward())
				}
				s.Close()
				require.NoError(t, ow.Step())
				require.NoError(t, om.Step())
				require.NoError(t, ow.ZeroGrad())
				require.NoError(t, om.ZeroGrad())
				reftest.RequireClose(t, "lora_a", micro.LoraA, whole.LoraA, c.tol)
				reftest.RequireClose(t, "lora_b", micro.LoraB, whole.LoraB, c.tol)
			}
		})
	}
}
