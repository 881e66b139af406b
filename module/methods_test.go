package module_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// The methods on Base act on the whole module they are promoted to, like
// the package functions.
func TestBaseMethodsActOnTheWholeModule(t *testing.T) {
	require.NoError(t, torch.ManualSeed(3))
	a, err := module.NewLinear(4, 3, true)
	require.NoError(t, err)
	b, err := module.NewLinear(3, 2, false)
	require.NoError(t, err)
	seq := module.NewSequential(a, b)
	defer module.Close(seq)

	// 4·3 + 3 + 3·2 = 21 parameters, by hand.
	total, trainable := seq.Count()
	require.Equal(t, int64(21), total)
	require.Equal(t, int64(21), trainable)
	require.Equal(t, "trainable params: 21 || all params: 21 || trainable%: 100.0000", seq.Summary())

	var names []string
	for _, p := range seq.NamedParameters() {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{"0.weight", "0.bias", "1.weight"}, names)
	require.Empty(t, seq.NamedBuffers())

	require.NoError(t, module.Freeze(a))
	require.Len(t, seq.Parameters(false), 3)
	require.Equal(t, []*torch.Tensor{b.Weight}, seq.Parameters(true))

	seq.Eval()
	require.False(t, a.Training())
	seq.Train()
	require.True(t, b.Training())

	w := a.Weight
	require.NoError(t, seq.To(torch.Float64))
	require.Same(t, w, a.Weight)
	require.Equal(t, torch.Float64, a.Weight.DType())
	require.False(t, a.Weight.RequiresGrad(), "To keeps a frozen parameter frozen")
	require.True(t, b.Weight.RequiresGrad())

	sd := seq.StateDict()
	require.Len(t, sd, 3)
	require.Same(t, b.Weight, sd["1.weight"])
	require.NoError(t, seq.LoadStateDict(sd))
}
