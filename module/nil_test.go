package module_test

// Accessors never panic: not after Close, not on nil modules.

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// After Close, the accessors answer from what the module knows, and
// everything else returns errors or failed tensors. (The old InFeatures
// and OutFeatures indexed the closed weight's nil shape and panicked.)
func TestClosedModuleDoesNotPanic(t *testing.T) {
	l := torch.Must(module.NewLinear(3, 2, true))
	e := torch.Must(module.NewEmbedding(5, 4))
	n := torch.Must(module.NewLayerNorm([]int64{4}))
	seq := module.NewSequential(l, n)
	module.Close(seq)
	module.Close(e)
	module.Close(seq) // twice is harmless

	require.NotPanics(t, func() {
		require.Equal(t, int64(3), l.InFeatures())
		require.Equal(t, int64(2), l.OutFeatures())
		require.Equal(t, int64(5), e.NumEmbeddings())
		require.Equal(t, int64(4), e.EmbeddingDim())
		require.Equal(t, []int64{4}, n.Shape)

		// A Linear made without LinearFrom reads W's shape: -1 once closed.
		raw := &module.Linear{Weight: l.Weight}
		require.Equal(t, int64(-1), raw.InFeatures())
		require.Equal(t, int64(-1), raw.OutFeatures())
		rawE := &module.Embedding{Weight: e.Weight}
		require.Equal(t, int64(-1), rawE.NumEmbeddings())
		require.Equal(t, int64(-1), (&module.Embedding{}).EmbeddingDim())

		total, trainable := module.Count(seq)
		require.Zero(t, total)
		require.Zero(t, trainable)
		require.Equal(t, "trainable params: 0 || all params: 0 || trainable%: 0.0000", module.Summary(seq))
		require.Len(t, module.NamedParameters(seq), 4)
		require.Len(t, module.StateDict(seq), 4)
		require.ErrorContains(t, module.To(seq, torch.Float64), "closed")
		require.Error(t, module.LoadStateDict(seq, module.StateDict(seq)))
		require.Error(t, module.Save(seq, filepath.Join(t.TempDir(), "x.safetensors"), nil))
		require.Error(t, module.Freeze(seq))

		s := newScope(t)
		y := seq.Forward(s.Own(torch.Ones([]int64{1, 3})))
		require.ErrorContains(t, y.Err(), "closed")
		require.ErrorContains(t, e.Forward(s.Own(torch.FromSlice([]int64{1}))).Err(), "closed")
	})
}

// Nil modules, as a nil interface or a typed nil pointer, give empty
// results or errors. (The old functions called Registry on them and
// panicked.)
func TestNilModules(t *testing.T) {
	var typed *module.Linear
	var seqNil *module.Sequential
	for _, m := range []module.Module{nil, typed, seqNil} {
		require.NotPanics(t, func() {
			require.Empty(t, module.NamedParameters(m))
			require.Empty(t, module.NamedBuffers(m))
			require.Empty(t, module.Parameters(m, false))
			require.Empty(t, module.Modules(m))
			require.Empty(t, module.Children(m))
			require.Empty(t, module.StateDict(m))
			total, trainable := module.Count(m)
			require.Zero(t, total+trainable)
			require.Equal(t, "trainable params: 0 || all params: 0 || trainable%: 0.0000", module.Summary(m))
			module.Close(m)
			module.Train(m)
			module.Eval(m)
			for _, err := range []error{
				module.To(m, torch.Float64),
				module.LoadStateDict(m, nil),
				module.LoadStateDictPartial(m, nil),
				module.Load(m, "x.safetensors"),
				module.Save(m, "x.safetensors", nil),
				module.Freeze(m),
				module.Unfreeze(m),
				module.ZeroGrad(m),
				module.SetChild(m, "a", typed),
			} {
				require.ErrorContains(t, err, "nil module")
			}
			_, err := module.Groups(m)
			require.ErrorContains(t, err, "nil module")
		})
	}
	require.NotPanics(t, func() {
		require.Zero(t, typed.InFeatures())
		require.Zero(t, typed.OutFeatures())
		var e *module.Embedding
		require.Zero(t, e.NumEmbeddings())
		require.Zero(t, e.EmbeddingDim())
		var b *module.Base
		require.False(t, b.Training())
	})
	// A nil target is an error too.
	l := torch.Must(module.NewLinear(2, 2, false))
	defer module.Close(l)
	require.ErrorContains(t, module.To(l, nil), "nil target")
}
