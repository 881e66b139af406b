package module_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
)

func groupNames(g module.ParamGroup) []string {
	var out []string
	for _, p := range g.Params {
		out = append(out, p.Name)
	}
	return out
}

// Parameter groups by name pattern: biases and LayerNorm weights go to a
// no-decay group, first match wins, frozen parameters are left out, the
// rest go to the default group, each trainable parameter exactly once.
func TestGroups(t *testing.T) {
	n := newNet(t, 1)
	require.NoError(t, module.Freeze(n.Embed))

	gs, err := module.Groups(n,
		module.Group{Name: "no_decay", Match: []string{"*.bias", "*norm*.weight"}},
		module.Group{Name: "head", Match: []string{"head.*"}},
		module.Group{Name: "empty", Match: []string{"nothing"}},
	)
	require.NoError(t, err)
	require.Len(t, gs, 4)
	require.Equal(t, "no_decay", gs[0].Name)
	require.Equal(t, []string{"blocks.0.bias", "blocks.1.bias", "norm.weight", "norm.bias", "head.bias"}, groupNames(gs[0]))
	require.Equal(t, []string{"head.weight"}, groupNames(gs[1]), "head.bias went to the first group that matched")
	require.Empty(t, gs[2].Params)
	require.Equal(t, module.DefaultGroup, gs[3].Name)
	require.Equal(t, []string{"pos", "blocks.0.weight", "blocks.1.weight"}, groupNames(gs[3]))
	require.Same(t, n.Norm.Weight, gs[0].Tensors()[2])

	// Every trainable parameter is in exactly one group.
	count := map[string]int{}
	for _, g := range gs {
		for _, p := range g.Params {
			count[p.Name]++
			require.True(t, p.Trainable)
		}
	}
	require.Len(t, count, len(module.Parameters(n, true)))
	for name, c := range count {
		require.Equal(t, 1, c, name)
	}

	// Without groups, everything trainable is in the default group.
	gs, err = module.Groups(n)
	require.NoError(t, err)
	require.Len(t, gs, 1)
	require.Len(t, gs[0].Params, len(netOrder)-1)

	// Errors.
	for _, c := range []struct {
		groups []module.Group
		msg    string
	}{
		{[]module.Group{{Name: "", Match: []string{"*"}}}, "no name"},
		{[]module.Group{{Name: "a"}, {Name: "a"}}, `two groups are named "a"`},
		{[]module.Group{{Name: module.DefaultGroup}}, "unmatched"},
		{[]module.Group{{Name: "a", Match: []string{"["}}}, "syntax error in pattern"},
	} {
		_, err := module.Groups(n, c.groups...)
		require.ErrorContains(t, err, c.msg)
	}
	_, err = module.Groups(nil)
	require.ErrorContains(t, err, "nil module")
}
