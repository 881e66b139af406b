package lora_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// groupedNet holds one grouped Conv2d at "conv", like
// testdata/interop_grouped.py's Net: Conv2d(4, 6, 3, stride 2, padding 1,
// groups 2).
type groupedNet struct {
	module.Base
	Conv module.Layer
}

func newGroupedNet(t testing.TB) *groupedNet {
	t.Helper()
	c, err := module.NewConv2d(4, 6, [2]int64{3, 3}, true,
		torch.Conv2dOptions{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, Groups: 2})
	require.NoError(t, err)
	n := &groupedNet{Conv: c}
	module.Child(&n.Base, "conv", &n.Conv)
	t.Cleanup(func() { module.Close(n) })
	return n
}

// A grouped Conv2d takes LoRA as PEFT builds it: A over all in channels
// [r, in, kh, kw], B a grouped 1×1 conv [out, r/groups, 1, 1]. (The values
// are checked against PEFT in grouped_interop_test.go.) What PEFT cannot
// do with it, golora refuses with errors naming the layer and the reason.
func TestGroupedConv2d(t *testing.T) {
	n := newGroupedNet(t)
	_, err := lora.Apply(n, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"conv"}, Init: lora.InitRandom})
	require.NoError(t, err)
	l := lora.Layers(n)[0].Layer.LoraLayer()
	ad := l.Adapter(lora.DefaultAdapter)
	require.Equal(t, []int64{4, 4, 3, 3}, ad.A.Shape())
	require.Equal(t, []int64{6, 2, 1, 1}, ad.B.Shape())

	x := own(t, torch.Randn([]int64{2, 4, 7, 7}))
	y := own(t, n.Conv.Forward(x))
	require.Equal(t, []int64{2, 6, 4, 4}, y.Shape())

	requireErr(t, func() error { return lora.Merge(n, true) }, "conv", "groups=2", "no merged form")
	_, err = l.DeltaWeight(lora.DefaultAdapter)
	require.ErrorContains(t, err, "groups=2")
	requireErr(t, func() error {
		_, err := lora.AddAdapter(n, "odd", lora.Config{R: 3, TargetModules: []string{"conv"}})
		return err
	}, "conv", "r=3 is not a multiple", "groups=2")
	requireErr(t, func() error {
		_, err := lora.AddAdapter(n, "dora", lora.Config{R: 2, TargetModules: []string{"conv"}, UseDoRA: true})
		return err
	}, "conv", "DoRA on a Conv2d with groups=2")
	_, err = lora.AddAdapter(n, "other", lora.Config{R: 2, TargetModules: []string{"conv"}, Init: lora.InitRandom})
	require.NoError(t, err)
	requireErr(t, func() error {
		return lora.AddWeightedAdapter(n, []string{"default", "other"}, []float64{1, 1}, "mix", lora.CombineCat, 0)
	}, "groups=2", "weighted combination")
	require.Equal(t, []string{"default", "other"}, l.AdapterNames(), "the failed calls added nothing")

	// A mixed batch runs each sample's adapter (the grouped B included).
	require.NoError(t, lora.SetAdapter(n, "other"))
	yOther := own(t, n.Conv.Forward(x))
	var mixed *torch.Tensor
	require.NoError(t, lora.WithAdapterNames(n, []string{"default", "other"}, func() error {
		mixed = own(t, n.Conv.Forward(x))
		return nil
	}))
	reftest.RequireClose(t, "mixed sample 0", own(t, mixed.Narrow(0, 0, 1)), own(t, y.Narrow(0, 0, 1)), 1e-6)
	reftest.RequireClose(t, "mixed sample 1", own(t, mixed.Narrow(0, 1, 1)), own(t, yOther.Narrow(0, 1, 1)), 1e-6)
}
