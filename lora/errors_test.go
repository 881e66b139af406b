package lora_test

// Bad arguments return errors that name the problem; nothing panics.

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// requireErr runs f, fails on a panic, and checks that its error contains
// every substring given.
func requireErr(t *testing.T, f func() error, subs ...string) {
	t.Helper()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				require.Failf(t, "panic", "expected an error, got a panic: %v", p)
			}
		}()
		err = f()
	}()
	require.Error(t, err)
	for _, s := range subs {
		require.Contains(t, err.Error(), s)
	}
}

func newLinearErr(in, out int64, bias bool, r int64, opts ...lora.Option) func() error {
	return func() error {
		l, err := lora.NewLinear(in, out, bias, r, opts...)
		if l != nil {
			module.Close(l)
		}
		if err == nil && l == nil {
			panic("nil layer and nil error")
		}
		return err
	}
}

func newEmbeddingErr(num, dim, r int64, opts ...lora.Option) func() error {
	return func() error {
		e, err := lora.NewEmbedding(num, dim, r, opts...)
		if e != nil {
			module.Close(e)
		}
		return err
	}
}

// keep(t)(op()) fails the test if op failed and closes its tensor with
// the test.
func keep(t testing.TB) func(*torch.Tensor, error) *torch.Tensor {
	return func(x *torch.Tensor, err error) *torch.Tensor {
		t.Helper()
		require.NoError(t, err)
		t.Cleanup(func() { x.Close() })
		return x
	}
}

func TestErrorsRank(t *testing.T) {
	for _, r := range []int64{0, -1, -8} {
		requireErr(t, newLinearErr(4, 4, true, r), "NewLinear", "rank r must be positive", "got "+itoa(r))
		requireErr(t, newEmbeddingErr(4, 4, r), "NewEmbedding", "rank r must be positive", "got "+itoa(r))
	}
}

func TestErrorsDims(t *testing.T) {
	for _, d := range [][2]int64{{0, 4}, {4, 0}, {-3, 4}, {4, -1}, {0, 0}} {
		requireErr(t, newLinearErr(d[0], d[1], true, 2), "NewLinear", "in_features and out_features must be positive",
			"got "+itoa(d[0])+" and "+itoa(d[1]))
		requireErr(t, newEmbeddingErr(d[0], d[1], 2), "NewEmbedding", "num_embeddings and embedding_dim must be positive",
			"got "+itoa(d[0])+" and "+itoa(d[1]))
	}
}

func TestErrorsAlpha(t *testing.T) {
	for _, tc := range []struct {
		alpha float64
		text  string
	}{{0, "got 0"}, {-1, "got -1"}, {-0.5, "got -0.5"}, {math.NaN(), "got NaN"}} {
		requireErr(t, newLinearErr(4, 4, false, 2, lora.WithAlpha(tc.alpha)), "NewLinear", "alpha must be positive", tc.text)
		requireErr(t, newEmbeddingErr(4, 4, 2, lora.WithAlpha(tc.alpha)), "NewEmbedding", "alpha must be positive", tc.text)
	}
}

func TestErrorsLinearInputShape(t *testing.T) {
	require.NoError(t, torch.ManualSeed(0))
	l, err := lora.NewLinear(4, 3, true, 2)
	require.NoError(t, err)
	defer module.Close(l)

	for _, shape := range [][]int64{{2, 5}, {5}, {2, 3, 3}, {4, 0}} {
		x := keep(t)(torch.Zeros(shape))
		requireErr(t, func() error { _, err := l.Forward(x); return err },
			"Linear.Forward", "expected last dim in_features=4", "got "+itoa(shape[len(shape)-1]))
	}
	// A 0-dim tensor has no last dim.
	s := keep(t)(torch.Full(nil, 1))
	requireErr(t, func() error { _, err := l.Forward(s); return err },
		"expected last dim in_features=4", "got a 0-dim tensor")

	// Merged layers check the same way.
	require.NoError(t, l.Merge())
	x := keep(t)(torch.Zeros([]int64{2, 7}))
	requireErr(t, func() error { _, err := l.Forward(x); return err }, "expected last dim in_features=4", "got 7")

	// A dtype that does not match the layer's is a libtorch error, not a panic.
	xd := keep(t)(torch.Zeros([]int64{2, 4}, torch.WithDType(torch.Float64)))
	require.NoError(t, l.Unmerge())
	requireErr(t, func() error { _, err := l.Forward(xd); return err }, "Linear.Forward")
}

func TestErrorsEmbeddingIndices(t *testing.T) {
	require.NoError(t, torch.ManualSeed(0))
	e, err := lora.NewEmbedding(10, 4, 2)
	require.NoError(t, err)
	defer module.Close(e)

	for _, dt := range []torch.DType{torch.Float32, torch.Float64} {
		x := keep(t)(torch.Zeros([]int64{3}, torch.WithDType(dt)))
		requireErr(t, func() error { _, err := e.Forward(x); return err },
			"Embedding.Forward", "indices must be int64 or int32", "got "+dt.String())
	}
	for _, tc := range []struct {
		idx  []int64
		span string
	}{
		{[]int64{0, 10}, "[0, 10]"},
		{[]int64{3, 100}, "[3, 100]"},
		{[]int64{-1, 2}, "[-1, 2]"},
		{[]int64{-5}, "[-5, -5]"},
	} {
		x64 := keep(t)(torch.FromSlice(tc.idx))
		i32 := make([]int32, len(tc.idx))
		for i, v := range tc.idx {
			i32[i] = int32(v)
		}
		x32 := keep(t)(torch.FromSlice(i32))
		for _, x := range []*torch.Tensor{x64, x32} {
			requireErr(t, func() error { _, err := e.Forward(x); return err },
				"Embedding.Forward", "index out of range", tc.span, "there are 10 embeddings")
		}
	}
	// The merged path validates as well.
	require.NoError(t, e.Merge())
	bad := keep(t)(torch.FromSlice([]int64{10}))
	requireErr(t, func() error { _, err := e.Forward(bad); return err }, "index out of range")
	fl := keep(t)(torch.Zeros([]int64{1}))
	requireErr(t, func() error { _, err := e.Forward(fl); return err }, "indices must be int64 or int32")
}

func TestErrorsWithWeights(t *testing.T) {
	w := func(shape ...int64) *torch.Tensor {
		x, err := torch.Zeros(shape)
		require.NoError(t, err)
		t.Cleanup(func() { x.Close() })
		return x
	}
	// Linear(in=4, out=3): weight must be [3 4], bias [3].
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(w(4, 3), w(3))),
		"NewLinear", "WithWeights", "weight shape [4 3], expected [3 4]")
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(w(3, 4, 1), nil)),
		"weight shape [3 4 1], expected [3 4]")
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(w(12), nil)),
		"weight shape [12], expected [3 4]")
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(w(3, 4), w(4))),
		"bias shape [4], expected [3]")
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(w(3, 4), w(3, 1))),
		"bias shape [3 1], expected [3]")
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(w(3, 4), nil)),
		"bias=true but a bias tensor was not given")
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(w(3, 4), w(3))),
		"bias=false but a bias tensor was given")
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(nil, nil)),
		"WithWeights", "weight is nil")

	// Embedding(num=5, dim=2): weight must be [5 2], no bias.
	requireErr(t, newEmbeddingErr(5, 2, 2, lora.WithWeights(w(2, 5), nil)),
		"NewEmbedding", "WithWeights", "weight shape [2 5], expected [5 2]")
	requireErr(t, newEmbeddingErr(5, 2, 2, lora.WithWeights(w(5, 2), w(2))),
		"NewEmbedding", "needs a weight and no bias")
	requireErr(t, newEmbeddingErr(5, 2, 2, lora.WithWeights(nil, nil)),
		"NewEmbedding", "needs a weight and no bias")

	// A rejected weight is left to its owner, usable.
	kept := w(3, 4)
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(kept, nil)), "bias=true")
	require.False(t, kept.Closed())
	require.Equal(t, []int64{3, 4}, kept.Shape())
}

func TestErrorsClosedInput(t *testing.T) {
	require.NoError(t, torch.ManualSeed(0))
	l, err := lora.NewLinear(4, 3, false, 2)
	require.NoError(t, err)
	defer module.Close(l)
	e, err := lora.NewEmbedding(6, 3, 2)
	require.NoError(t, err)
	defer module.Close(e)

	x, err := torch.Zeros([]int64{2, 4})
	require.NoError(t, err)
	x.Close()
	requireErr(t, func() error { _, err := l.Forward(x); return err }, "Linear.Forward", "closed tensor")
	requireErr(t, func() error { _, err := l.Forward(nil); return err }, "Linear.Forward", "nil tensor")

	idx, err := torch.FromSlice([]int64{1, 2})
	require.NoError(t, err)
	idx.Close()
	requireErr(t, func() error { _, err := e.Forward(idx); return err }, "Embedding.Forward", "closed tensor")
	requireErr(t, func() error { _, err := e.Forward(nil); return err }, "Embedding.Forward")

	// A closed tensor given as pre-trained weights.
	cw, err := torch.Zeros([]int64{3, 4})
	require.NoError(t, err)
	cw.Close()
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(cw, nil)), "NewLinear", "WithWeights")
}

func TestErrorsClosedLayer(t *testing.T) {
	x := keep(t)(torch.Zeros([]int64{2, 4}))
	idx := keep(t)(torch.FromSlice([]int64{1, 2}))
	l, err := lora.NewLinear(4, 3, true, 2)
	require.NoError(t, err)
	module.Close(l)
	requireErr(t, func() error { _, err := l.Forward(x); return err }, "Linear.Forward", "closed tensor")
	requireErr(t, l.Merge, "Linear.Merge", "closed tensor")
	e, err := lora.NewEmbedding(4, 3, 2)
	require.NoError(t, err)
	module.Close(e)
	requireErr(t, func() error { _, err := e.Forward(idx); return err }, "Embedding.Forward", "closed tensor")
	requireErr(t, e.Merge, "Embedding.Merge", "closed tensor")
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
