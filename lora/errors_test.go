package lora_test

// Bad arguments return errors that name the problem; nothing panics.
// Constructors and Merge return an error; Forward returns a failed tensor
// whose error sticks to everything computed from it.

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// loraLayer is what lora.Linear and lora.Embedding have in common.
type loraLayer interface {
	module.Layer
	Rank() int64
	Alpha() float64
	Scaling() float64
	Merged() bool
	Merge() error
	Unmerge() error
}

// ctorErr returns a func that runs build and returns its error, closing
// the layer it built; a nil layer without an error panics.
func ctorErr[L interface {
	*lora.Linear | *lora.Embedding
	loraLayer
}](build func() (L, error)) func() error {
	return func() error {
		l, err := build()
		if l != nil {
			module.Close(l)
		}
		if err == nil && l == nil {
			panic("nil layer and nil error")
		}
		return err
	}
}

func newLinearErr(in, out int64, bias bool, r int64, opts ...lora.Option) func() error {
	return ctorErr(func() (*lora.Linear, error) { return lora.NewLinear(in, out, bias, r, opts...) })
}

func newEmbeddingErr(num, dim, r int64, opts ...lora.Option) func() error {
	return ctorErr(func() (*lora.Embedding, error) { return lora.NewEmbedding(num, dim, r, opts...) })
}

// accessors is what a layer's accessors report; dims are InFeatures and
// OutFeatures, or NumEmbeddings and EmbeddingDim.
type accessors struct {
	rank           int64
	alpha, scaling float64
	dims           [2]int64
	merged         bool
}

func accessorsOf(l loraLayer) accessors {
	a := accessors{rank: l.Rank(), alpha: l.Alpha(), scaling: l.Scaling(), merged: l.Merged()}
	switch l := l.(type) {
	case *lora.Linear:
		a.dims = [2]int64{l.InFeatures(), l.OutFeatures()}
	case *lora.Embedding:
		a.dims = [2]int64{l.NumEmbeddings(), l.EmbeddingDim()}
	}
	return a
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
	s := newScope(t)

	for _, shape := range [][]int64{{2, 5}, {5}, {2, 3, 3}, {4, 0}} {
		y := l.Forward(torch.Zeros(shape, torch.In(s)))
		err := requireFailed(t, y, "LoraLinear", "input last dim is "+itoa(shape[len(shape)-1]), "in_features=4")
		e, ok := torch.AsError(err)
		require.True(t, ok, "%T is a *torch.Error", err)
		require.Equal(t, "LoraLinear", e.Op)
		// The error sticks: what is computed from y fails with it, and
		// the scope remembers it.
		require.ErrorIs(t, y.Sum().MulScalar(2).Err(), err)
	}
	require.Error(t, s.Err(), "the scope of the input records the first error")
	// A 0-dim tensor has no last dim.
	requireFailed(t, l.Forward(torch.Full(nil, 1, torch.In(s))), "input must have at least 1 dim")

	// Merged layers check the same way, through a plain linear.
	require.NoError(t, l.Merge())
	requireFailed(t, l.Forward(torch.Zeros([]int64{2, 7}, torch.In(s))), "Linear", "input last dim is 7", "in_features=4")

	// A dtype that does not match the layer's is a libtorch error, not a panic.
	require.NoError(t, l.Unmerge())
	requireFailed(t, l.Forward(torch.Zeros([]int64{2, 4}, torch.WithDType(torch.Float64), torch.In(s))), "LoraLinear")
}

func TestErrorsEmbeddingIndices(t *testing.T) {
	require.NoError(t, torch.ManualSeed(0))
	e, err := lora.NewEmbedding(10, 4, 2)
	require.NoError(t, err)
	defer module.Close(e)
	s := newScope(t)

	for _, dt := range []torch.DType{torch.Float32, torch.Float64} {
		requireFailed(t, e.Forward(torch.Zeros([]int64{3}, torch.WithDType(dt), torch.In(s))),
			"LoraEmbedding", "indices must be int64 or int32")
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
		i32 := make([]int32, len(tc.idx))
		for i, v := range tc.idx {
			i32[i] = int32(v)
		}
		for _, x := range []*torch.Tensor{s.Own(torch.FromSlice(tc.idx)), s.Own(torch.FromSlice(i32))} {
			requireFailed(t, e.Forward(x), "LoraEmbedding", "index out of range", tc.span, "there are 10 embeddings")
		}
	}
	// The merged path validates as well.
	require.NoError(t, e.Merge())
	requireFailed(t, e.Forward(s.Own(torch.FromSlice([]int64{10}))), "Embedding", "index out of range")
	requireFailed(t, e.Forward(torch.Zeros([]int64{1}, torch.In(s))), "indices must be int64 or int32")
}

func TestErrorsWithWeights(t *testing.T) {
	s := newScope(t)
	w := func(shape ...int64) *torch.Tensor { return torch.Zeros(shape, torch.In(s)) }
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

	// A failed tensor given as weights passes its own error on.
	bad := torch.Zeros([]int64{-1, 4})
	requireFailed(t, bad, "negative dimension")
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(bad, nil)), "NewLinear", "WithWeights", "weight", "negative dimension")
	requireErr(t, newLinearErr(4, 3, true, 2, lora.WithWeights(w(3, 4), bad)), "NewLinear", "WithWeights", "bias", "negative dimension")
	requireErr(t, newEmbeddingErr(5, 2, 2, lora.WithWeights(bad, nil)), "NewEmbedding", "WithWeights", "negative dimension")

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

	x := torch.Zeros([]int64{2, 4})
	x.Close()
	requireFailed(t, l.Forward(x), "LoraLinear", "input", "closed tensor")
	requireFailed(t, l.Forward(nil), "LoraLinear", "input", "nil tensor")

	idx := torch.FromSlice([]int64{1, 2})
	idx.Close()
	requireFailed(t, e.Forward(idx), "LoraEmbedding", "indices", "closed tensor")
	requireFailed(t, e.Forward(nil), "LoraEmbedding", "indices", "nil tensor")

	// A failed input passes its error on unchanged (sticky errors).
	bad := torch.Zeros([]int64{-2})
	want := requireFailed(t, bad, "negative dimension")
	require.ErrorIs(t, l.Forward(bad).Err(), want)
	require.ErrorIs(t, e.Forward(bad).Err(), want)

	// A closed tensor given as pre-trained weights.
	cw := torch.Zeros([]int64{3, 4})
	cw.Close()
	requireErr(t, newLinearErr(4, 3, false, 2, lora.WithWeights(cw, nil)), "NewLinear", "WithWeights", "closed tensor")
}

// A closed layer fails cleanly: Forward returns a failed tensor, Merge an
// error that leaves Merged as it was.
func TestErrorsClosedLayer(t *testing.T) {
	s := newScope(t)
	x := torch.Zeros([]int64{2, 4}, torch.In(s))
	idx := s.Own(torch.FromSlice([]int64{1, 2}))
	for _, tc := range []struct {
		name  string
		build func() (loraLayer, error)
		in    *torch.Tensor
	}{
		{"Linear", func() (loraLayer, error) { return lora.NewLinear(4, 3, true, 2) }, x},
		{"Embedding", func() (loraLayer, error) { return lora.NewEmbedding(4, 3, 2) }, idx},
	} {
		l, err := tc.build()
		require.NoError(t, err)
		module.Close(l)
		requireFailed(t, l.Forward(tc.in), "Lora"+tc.name, "closed tensor")
		requireErr(t, l.Merge, tc.name+".Merge", "closed tensor")
		require.False(t, l.Merged())
	}
}

// The accessors never panic: on a nil layer they return zero values, and
// after module.Close they return what the layer was built with. Forward,
// Merge and Unmerge of a nil layer fail with an error. (Before, a nil
// *Linear panicked in every accessor, and Embedding.NumEmbeddings and
// EmbeddingDim panicked after Close: they read the closed tensors' shapes.)
func TestAccessorsNeverPanic(t *testing.T) {
	s := newScope(t)
	x := torch.Zeros([]int64{2, 4}, torch.In(s))
	idx := s.Own(torch.FromSlice([]int64{1, 2}))

	for _, tc := range []struct {
		name  string
		layer loraLayer // a nil pointer
		in    *torch.Tensor
	}{{"Linear", (*lora.Linear)(nil), x}, {"Embedding", (*lora.Embedding)(nil), idx}} {
		notPanics(t, "nil *"+tc.name+" accessors", func() { require.Equal(t, accessors{}, accessorsOf(tc.layer)) })
		notPanics(t, "nil *"+tc.name+" Forward", func() { requireFailed(t, tc.layer.Forward(tc.in), "weight", "nil tensor") })
		requireErr(t, tc.layer.Merge, tc.name+".Merge", "nil layer")
		requireErr(t, tc.layer.Unmerge, tc.name+".Unmerge", "nil layer")
	}

	l, err := lora.NewLinear(4, 3, true, 2, lora.WithAlpha(3))
	require.NoError(t, err)
	require.NoError(t, l.Merge())
	module.Close(l)
	notPanics(t, "closed *Linear accessors", func() {
		require.Equal(t, accessors{rank: 2, alpha: 3, scaling: 1.5, dims: [2]int64{4, 3}, merged: true}, accessorsOf(l))
	})
	requireErr(t, l.Unmerge, "Linear.Unmerge", "closed tensor")
	require.True(t, l.Merged(), "a failed Unmerge changes nothing")

	e, err := lora.NewEmbedding(6, 5, 2)
	require.NoError(t, err)
	module.Close(e)
	notPanics(t, "closed *Embedding accessors", func() {
		require.Equal(t, accessors{rank: 2, alpha: 2, scaling: 1, dims: [2]int64{6, 5}}, accessorsOf(e))
	})
}
