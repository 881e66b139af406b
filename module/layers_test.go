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
		{"linear bad dtype", func() error { _, err := module.NewLinear(2, 3, true, torch.WithDType(torch.DType(99))); return err }, "dtype"},
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
	s := newScope(t)
	in := func(data []float32, shape ...int64) *torch.Tensor { return s.Own(torch.FromSlice(data, shape...)) }
	w := torch.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 3, 2).Must()
	b := torch.FromSlice([]float32{0.5, -1, 2}, 3).Must()

	// Rejected: a 1-D weight, a bias of the wrong length or rank, a failed
	// weight. The caller keeps ownership of what was refused.
	flat := in([]float32{1, 2, 3})
	_, err := module.LinearFrom(flat, nil)
	require.ErrorContains(t, err, "module: LinearFrom: weight must be 2-D (out×in), got shape [3]")
	require.False(t, flat.Closed())
	require.False(t, flat.RequiresGrad())
	_, err = module.LinearFrom(w, in([]float32{1, 2}, 2))
	require.ErrorContains(t, err, "bias shape [2] does not match out_features 3")
	_, err = module.LinearFrom(w, in([]float32{1, 2, 3}, 3, 1))
	require.ErrorContains(t, err, "bias shape [3 1] does not match out_features 3")
	require.False(t, w.RequiresGrad(), "a refused weight is not touched")
	_, err = module.LinearFrom(torch.FromSlice([]float32{1, 2}, 3), nil)
	require.ErrorContains(t, err, "module: LinearFrom: weight:")
	_, err = module.EmbeddingFrom(flat)
	require.ErrorContains(t, err, "module: EmbeddingFrom: weight must be 2-D (num×dim), got shape [3]")

	// Accepted: the tensors become trainable parameters, used as is.
	l, err := module.LinearFrom(w, b)
	require.NoError(t, err)
	defer module.Close(l)
	require.Same(t, w, l.Weight)
	require.Same(t, b, l.Bias)
	require.True(t, w.RequiresGrad())
	require.True(t, b.RequiresGrad())
	require.Equal(t, int64(2), l.InFeatures())
	require.Equal(t, int64(3), l.OutFeatures())

	// y = x·Wᵀ + b: [1 1]·[[1 3 5] [2 4 6]] + b = [3.5 6 13];
	// [2 -1] gives [0.5 1 6].
	y := l.Forward(in([]float32{1, 1, 2, -1}, 2, 2))
	require.Equal(t, []int64{2, 3}, y.Shape())
	require.Equal(t, []float32{3.5, 6, 13, 0.5, 1, 6}, torch.Must(torch.ToSlice[float32](y)))
	require.Same(t, s, y.Scope(), "the result joins the input's scope")

	// Without bias, and with leading batch dims.
	nb, err := module.LinearFrom(w.Detach(), nil)
	require.NoError(t, err)
	defer module.Close(nb)
	y3 := nb.Forward(in([]float32{1, 1, 2, -1}, 2, 1, 2))
	require.Equal(t, []int64{2, 1, 3}, y3.Shape())
	require.Equal(t, []float32{3, 7, 11, 0, 2, 4}, torch.Must(torch.ToSlice[float32](y3)))

	// A wrong input width is a failed tensor naming the op, not a crash.
	bad := l.Forward(in([]float32{1, 2, 3}, 1, 3))
	require.ErrorContains(t, bad.Err(), "Linear")
	require.Error(t, s.Err(), "the scope records the failure")
}

func TestEmbeddingFrom(t *testing.T) {
	s := newScope(t)
	w := torch.FromSlice([]float32{0, 0, 1, 10, 2, 20}, 3, 2).Must()
	e, err := module.EmbeddingFrom(w)
	require.NoError(t, err)
	defer module.Close(e)
	require.True(t, w.RequiresGrad())
	require.Equal(t, int64(3), e.NumEmbeddings())
	require.Equal(t, int64(2), e.EmbeddingDim())
	for _, c := range []struct {
		ids  *torch.Tensor
		want []float32
	}{
		{s.Own(torch.FromSlice([]int64{2, 0, 1}, 3)), []float32{2, 20, 0, 0, 1, 10}},
		{s.Own(torch.FromSlice([]int32{1, 1}, 1, 2)), []float32{1, 10, 1, 10}},
	} {
		y := e.Forward(c.ids)
		require.Equal(t, append(c.ids.Shape(), 2), y.Shape())
		require.Equal(t, c.want, torch.Must(torch.ToSlice[float32](y)))
	}
	oob := e.Forward(s.Own(torch.FromSlice([]int64{3})))
	require.Error(t, oob.Err(), "an index past the table is an error")
}

// identity returns its input itself, as nn.Identity does.
type identity struct{ module.Base }

func (identity) Forward(x *torch.Tensor) *torch.Tensor { return x }

func TestSequentialForward(t *testing.T) {
	s := newScope(t)
	x := s.Own(torch.FromSlice([]float32{1, 2}, 1, 2))

	// Empty: x itself, as nn.Sequential() returns its input.
	empty := module.NewSequential()
	require.Same(t, x, empty.Forward(x))
	require.Empty(t, module.NamedParameters(empty))

	// Append names layers by position, even after the slice grows.
	seq := module.NewSequential()
	for i := 0; i < 9; i++ {
		seq.Append(torch.Must(module.LinearFrom(torch.Ones([]int64{2, 2}), nil)))
	}
	defer module.Close(seq)
	require.Len(t, module.Children(seq), 9)
	require.Equal(t, 9, seq.Len())
	for i, c := range module.Children(seq) {
		require.Same(t, seq.Layers[i], c.Module, "child %d", i)
		require.Same(t, seq.At(i), c.Module, "child %d", i)
	}
	require.Equal(t, "8.weight", names(seq)[8])
	// Nine doublings of the sum: [1 2] → [3 3] → [6 6] → … → [768 768].
	require.Equal(t, []float32{768, 768}, torch.Must(torch.ToSlice[float32](seq.Forward(x))))

	// A layer's error passes through the rest and names the failing op.
	bad := module.NewSequential(torch.Must(module.NewLinear(2, 3, true)), torch.Must(module.NewLinear(4, 1, true)))
	defer module.Close(bad)
	inner := torch.NewScope()
	_, err := inner.Done(bad.Forward(inner.Own(x.Clone())))
	require.ErrorContains(t, err, "Linear")
	require.False(t, x.Closed())
}

// Sequential closes nothing: an identity layer hands the caller's input
// through, and both the input and every result stay valid. (The old
// Sequential closed each intermediate after the next layer ran, which
// closed the output when the next layer was an identity.)
func TestSequentialClosesNothing(t *testing.T) {
	lin := torch.Must(module.LinearFrom(torch.FromSlice([]float32{2, 0, 0, 2}, 2, 2), nil))
	defer module.Close(lin)
	for _, c := range []struct {
		layers []module.Layer
		want   []float32
	}{
		{[]module.Layer{&identity{}}, []float32{1, 2}},
		{[]module.Layer{&identity{}, &identity{}}, []float32{1, 2}},
		{[]module.Layer{&identity{}, lin, &identity{}}, []float32{2, 4}},
		{[]module.Layer{lin, &identity{}}, []float32{2, 4}},
		{[]module.Layer{lin, &identity{}, lin}, []float32{4, 8}},
	} {
		s := torch.NewScope()
		x := s.Own(torch.FromSlice([]float32{1, 2}, 1, 2))
		y := module.NewSequential(c.layers...).Forward(x)
		require.NoError(t, y.Err())
		require.False(t, x.Closed(), "the input is the caller's")
		require.False(t, y.Closed(), "the output is the caller's")
		require.Equal(t, c.want, torch.Must(torch.ToSlice[float32](y)))
		require.Equal(t, []float32{1, 2}, torch.Must(torch.ToSlice[float32](x)))
		s.Close() // the scope frees x and every result
		require.True(t, x.Closed())
	}

	// A nil layer (put into Layers by hand) is skipped.
	seq := module.NewSequential(&identity{})
	seq.Layers[0] = nil
	s := newScope(t)
	x := s.Own(torch.FromSlice([]float32{1}))
	require.Same(t, x, seq.Forward(x))
}
