package module_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// The constructors refuse zero, negative and non-finite arguments with an
// error naming the constructor and the argument; a LayerNorm whose Eps
// was set to NaN fails in Forward naming eps.
func TestEntrypointsConstructors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	type ctorCase struct {
		name string
		make func() (module.Module, error)
		subs []string
	}
	var cases []ctorCase
	for _, d := range []int64{0, -1} {
		d := d
		cases = append(cases,
			ctorCase{fmt.Sprintf("NewLinear in=%d", d), func() (module.Module, error) { return module.NewLinear(d, 2, true) }, []string{"NewLinear", "in and out features must be positive", fmt.Sprintf("in=%d", d)}},
			ctorCase{fmt.Sprintf("NewLinear out=%d", d), func() (module.Module, error) { return module.NewLinear(2, d, false) }, []string{"NewLinear", fmt.Sprintf("out=%d", d)}},
			ctorCase{fmt.Sprintf("NewEmbedding num=%d", d), func() (module.Module, error) { return module.NewEmbedding(d, 2) }, []string{"NewEmbedding", "num_embeddings"}},
			ctorCase{fmt.Sprintf("NewEmbedding dim=%d", d), func() (module.Module, error) { return module.NewEmbedding(2, d) }, []string{"NewEmbedding", "embedding_dim"}},
			ctorCase{fmt.Sprintf("NewLayerNorm dim=%d", d), func() (module.Module, error) { return module.NewLayerNorm([]int64{4, d}) }, []string{"NewLayerNorm", "dims must be positive"}},
			ctorCase{fmt.Sprintf("NewConv1D in=%d", d), func() (module.Module, error) { return module.NewConv1D(d, 2) }, []string{"NewConv1D", fmt.Sprintf("in=%d", d)}},
			ctorCase{fmt.Sprintf("NewConv2d in=%d", d), func() (module.Module, error) {
				return module.NewConv2d(d, 2, [2]int64{3, 3}, true, torch.Conv2dOptions{})
			}, []string{"NewConv2d", "channels must be positive"}},
			ctorCase{fmt.Sprintf("NewConv2d kernel=%d", d), func() (module.Module, error) {
				return module.NewConv2d(2, 2, [2]int64{3, d}, true, torch.Conv2dOptions{})
			}, []string{"NewConv2d", "kernel size must be positive"}},
		)
	}
	for _, p := range []float64{nan, inf, -inf, -0.1, 1.5} {
		p := p
		cases = append(cases, ctorCase{fmt.Sprintf("NewDropout p=%v", p), func() (module.Module, error) { return module.NewDropout(p) },
			[]string{"NewDropout", "p must be in [0, 1]", fmt.Sprint(p)}})
	}
	for field, o := range map[string]torch.Conv2dOptions{
		"stride":   {Stride: [2]int64{-1, 1}},
		"padding":  {Padding: [2]int64{0, -2}},
		"dilation": {Dilation: [2]int64{-1, -1}},
		"groups":   {Groups: 3},
	} {
		o := o
		cases = append(cases, ctorCase{"NewConv2d " + field, func() (module.Module, error) {
			return module.NewConv2d(4, 4, [2]int64{3, 3}, true, o)
		}, []string{"NewConv2d", field}})
	}
	live := torch.LiveTensors()
	for _, c := range cases {
		var m module.Module
		var err error
		require.NotPanicsf(t, func() { m, err = c.make() }, c.name)
		if !assert.Errorf(t, err, c.name) {
			module.Close(m)
			continue
		}
		for _, s := range c.subs {
			assert.Containsf(t, err.Error(), s, c.name)
		}
	}
	assert.Equal(t, live, torch.LiveTensors(), "a refused constructor frees what it made")

	// p at the ends of [0, 1] is PyTorch's too.
	for _, p := range []float64{0, 1} {
		_, err := module.NewDropout(p)
		assert.NoError(t, err)
	}

	// A non-finite Eps set on the field is refused when used, naming eps.
	n, err := module.NewLayerNorm([]int64{2})
	require.NoError(t, err)
	defer module.Close(n)
	x := torch.Ones([]int64{3, 2})
	defer x.Close()
	for _, eps := range []float64{nan, inf} {
		n.Eps = eps
		y := n.Forward(x)
		err := y.Err()
		y.Close()
		if assert.Errorf(t, err, "Eps=%v", eps) {
			assert.Contains(t, err.Error(), "LayerNorm: eps: must be finite")
		}
	}
}
