package module_test

// Tests of the base layers' constructors and forward passes by hand.

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestConstructorErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func() error
		msg  string
	}{
		{"linear in 0", func() error { _, err := module.NewLinear(0, 3, true); return err }, "in=0 out=3"},
		{"linear out 0", func() error { _, err := module.NewLinear(3, 0, true); return err }, "in=3 out=0"},
		{"linear negative", func() error { _, err := module.NewLinear(-1, 3, false); return err }, "positive"},
		{"embedding num 0", func() error { _, err := module.NewEmbedding(0, 4); return err }, "positive, got 0 and 4"},
		{"embedding dim -2", func() error { _, err := module.NewEmbedding(4, -2); return err }, "positive, got 4 and -2"},
		{"layernorm 0", func() error { _, err := module.NewLayerNorm([]int64{4, 0}); return err }, "[4 0]"},
		{"layernorm -1", func() error { _, err := module.NewLayerNorm([]int64{-1}); return err }, "positive"},
		{"dropout negative", func() error { _, err := module.NewDropout(-0.1); return err }, "-0.1"},
		{"dropout above 1", func() error { _, err := module.NewDropout(1.01); return err }, "1.01"},
		{"dropout NaN", func() error { _, err := module.NewDropout(math.NaN()); return err }, "NaN"},
		{"dropout +Inf", func() error { _, err := module.NewDropout(math.Inf(1)); return err }, "[0, 1]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			live := torch.LiveTensors()
			err := c.f()
			require.Error(t, err)
			require.Contains(t, err.Error(), "module: New")
			require.Contains(t, err.Error(), c.msg)
			require.Equal(t, live, torch.LiveTensors(), "a failed constructor allocates nothing")
		})
	}
	for _, p := range []float64{0, 0.5, 1} {
		d, err := module.NewDropout(p)
		require.NoError(t, err)
		require.Equal(t, p, d.P)
		require.Empty(t, module.NamedParameters(d))
	}
}

func TestLinearFrom(t *testing.T) {
	w := tensorOf(t, []float32{1, 2, 3, 4, 5, 6}, 3, 2)
	b := tensorOf(t, []float32{0.5, -1, 2}, 3)

	// Rejected: a 1-D weight, a bias of the wrong length or rank. The
	// caller keeps ownership of what was refused.
	flat := tensorOf(t, []float32{1, 2, 3})
	_, err := module.LinearFrom(flat, nil)
	require.ErrorContains(t, err, "module: LinearFrom: weight must be 2-D (out×in), got shape [3]")
	require.False(t, flat.Closed())
	require.False(t, flat.RequiresGrad())
	short := tensorOf(t, []float32{1, 2}, 2)
	_, err = module.LinearFrom(w, short)
	require.ErrorContains(t, err, "bias shape [2] does not match out_features 3")
	col := tensorOf(t, []float32{1, 2, 3}, 3, 1)
	_, err = module.LinearFrom(w, col)
	require.ErrorContains(t, err, "bias shape [3 1] does not match out_features 3")
	require.False(t, w.RequiresGrad(), "a refused weight is not touched")
	_, err = module.EmbeddingFrom(flat)
	require.ErrorContains(t, err, "module: EmbeddingFrom: weight must be 2-D (num×dim), got shape [3]")

	// Accepted: the tensors become trainable parameters, used as is.
	l, err := module.LinearFrom(w, b)
	require.NoError(t, err)
	require.Same(t, w, l.Weight)
	require.Same(t, b, l.Bias)
	require.True(t, w.RequiresGrad())
	require.True(t, b.RequiresGrad())
	require.Equal(t, int64(2), l.InFeatures())
	require.Equal(t, int64(3), l.OutFeatures())

	// y = x·Wᵀ + b: [1 1]·[[1 3 5] [2 4 6]] + b = [3.5 6 13];
	// [2 -1] gives [0.5 1 6].
	x := tensorOf(t, []float32{1, 1, 2, -1}, 2, 2)
	y, err := l.Forward(x)
	require.NoError(t, err)
	defer y.Close()
	require.Equal(t, []int64{2, 3}, y.Shape())
	require.Equal(t, []float32{3.5, 6, 13, 0.5, 1, 6}, torch.Must(torch.ToSlice[float32](y)))

	// Without bias, and with leading batch dims.
	nb, err := module.LinearFrom(torch.Must(w.Detach()), nil)
	require.NoError(t, err)
	defer nb.Weight.Close()
	x3 := tensorOf(t, []float32{1, 1, 2, -1}, 2, 1, 2)
	y3, err := nb.Forward(x3)
	require.NoError(t, err)
	defer y3.Close()
	require.Equal(t, []int64{2, 1, 3}, y3.Shape())
	require.Equal(t, []float32{3, 7, 11, 0, 2, 4}, torch.Must(torch.ToSlice[float32](y3)))

	// A wrong input width is an error, not a crash.
	bad := tensorOf(t, []float32{1, 2, 3}, 1, 3)
	_, err = l.Forward(bad)
	require.Error(t, err)
}

func TestEmbeddingFrom(t *testing.T) {
	w := tensorOf(t, []float32{0, 0, 1, 10, 2, 20}, 3, 2)
	e, err := module.EmbeddingFrom(w)
	require.NoError(t, err)
	require.True(t, w.RequiresGrad())
	for _, c := range []struct {
		ids  *torch.Tensor
		want []float32
	}{
		{torch.Must(torch.FromSlice([]int64{2, 0, 1}, 3)), []float32{2, 20, 0, 0, 1, 10}},
		{torch.Must(torch.FromSlice([]int32{1, 1}, 1, 2)), []float32{1, 10, 1, 10}},
	} {
		y, err := e.Forward(c.ids)
		require.NoError(t, err)
		require.Equal(t, append(c.ids.Shape(), 2), y.Shape())
		require.Equal(t, c.want, torch.Must(torch.ToSlice[float32](y)))
		torch.CloseAll(y, c.ids)
	}
	oob := torch.Must(torch.FromSlice([]int64{3}))
	defer oob.Close()
	_, err = e.Forward(oob)
	require.Error(t, err, "an index past the table is an error")
}

func TestSequentialForward(t *testing.T) {
	x := tensorOf(t, []float32{1, 2}, 1, 2)

	// Empty: a new handle to x.
	empty := module.NewSequential()
	y, err := empty.Forward(x)
	require.NoError(t, err)
	require.NotSame(t, x, y)
	require.NoError(t, y.Close())
	require.False(t, x.Closed())
	require.Empty(t, module.NamedParameters(empty))

	// Append names layers by position, even after the slice grows.
	s := module.NewSequential()
	for i := 0; i < 9; i++ {
		s.Append(torch.Must(module.LinearFrom(torch.Must(torch.Ones([]int64{2, 2})), nil)))
	}
	defer module.Close(s)
	require.Len(t, module.Children(s), 9)
	for i, c := range module.Children(s) {
		require.Same(t, s.Layers[i], c.Module, "child %d", i)
	}
	require.Equal(t, "8.weight", names(s)[8])
	// Nine doublings of the sum: [1 2] → [3 3] → [6 6] → … → [768 768].
	y, err = s.Forward(x)
	require.NoError(t, err)
	require.Equal(t, []float32{768, 768}, torch.Must(torch.ToSlice[float32](y)))
	y.Close()

	// A layer's error names its position; x stays valid.
	bad := module.NewSequential(torch.Must(module.NewLinear(2, 3, true)), torch.Must(module.NewLinear(4, 1, true)))
	defer module.Close(bad)
	_, err = bad.Forward(x)
	require.ErrorContains(t, err, "module: Sequential layer 1")
	require.False(t, x.Closed())
}
