package torch_test

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// Autocast runs linear in bfloat16 on float32 inputs, leaves float32
// elsewhere, restores the previous state, and matches PyTorch's rule that
// the result of an autocast op is the autocast dtype.
func TestAutocastCPU(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{4, 8}, torch.In(s))
	w := torch.Randn([]int64{3, 8}, torch.In(s))
	var y, z *torch.Tensor
	err := torch.Autocast(torch.CPU, torch.BFloat16, func() error {
		on, dt := torch.AutocastEnabled(torch.CPU)
		require.True(t, on)
		require.Equal(t, torch.BFloat16, dt)
		y = x.Linear(w, nil)
		z = x.Add(x) // not an autocast op: stays float32
		return torch.NoAutocast(torch.CPU, func() error {
			on, _ := torch.AutocastEnabled(torch.CPU)
			require.False(t, on)
			return nil
		})
	})
	require.NoError(t, err)
	require.Equal(t, torch.BFloat16, y.DType())
	require.Equal(t, torch.Float32, z.DType())

	// The bfloat16 result equals linear on inputs rounded to bfloat16,
	// accumulated in float32 and rounded once (PyTorch's CPU kernel).
	want := x.To(torch.BFloat16).Linear(w.To(torch.BFloat16), nil)
	require.Equal(t, torch.Must(torch.ToSlice[float32](want.To(torch.Float32))),
		torch.Must(torch.ToSlice[float32](y.To(torch.Float32))))

	runtime.LockOSThread()
	on, _ := torch.AutocastEnabled(torch.CPU)
	runtime.UnlockOSThread()
	require.False(t, on, "state restored after the region")

	require.Error(t, torch.Autocast(torch.CPU, torch.Float32, func() error { return nil }))
	require.NoError(t, s.Err())
}
