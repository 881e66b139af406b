package module_test

// Tests of ModuleList and ModuleDict.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// attnBlock is a decoder layer with the projections LoRA targets.
type attnBlock struct {
	module.Base
	Attn *attnProj
}

type attnProj struct {
	module.Base
	QProj, VProj module.Layer
}

func newAttnBlock(t *testing.T, d int64) *attnBlock {
	a := &attnProj{QProj: torch.Must(module.NewLinear(d, d, false)), VProj: torch.Must(module.NewLinear(d, d, false))}
	module.Child(&a.Base, "q_proj", &a.QProj)
	module.Child(&a.Base, "v_proj", &a.VProj)
	b := &attnBlock{Attn: a}
	module.Child(&b.Base, "attn", &b.Attn)
	return b
}

func (b *attnBlock) Forward(x *torch.Tensor) *torch.Tensor {
	return x.Add(b.Attn.VProj.Forward(b.Attn.QProj.Forward(x)))
}

// decoder holds its blocks in a ModuleList and its heads in a ModuleDict.
type decoder struct {
	module.Base
	Layers *module.ModuleList[module.Layer]
	Heads  *module.ModuleDict[*module.Linear]
}

func TestModuleListAndDict(t *testing.T) {
	d := &decoder{Layers: module.NewModuleList[module.Layer](), Heads: module.NewModuleDict[*module.Linear]()}
	module.Child(&d.Base, "layers", &d.Layers)
	module.Child(&d.Base, "heads", &d.Heads)
	defer module.Close(d)
	for i := 0; i < 3; i++ {
		d.Layers.Append(newAttnBlock(t, 2))
	}
	d.Heads.Set("sentiment", torch.Must(module.NewLinear(2, 3, true)))
	d.Heads.Set("lm", torch.Must(module.NewLinear(2, 5, false)))

	require.Equal(t, []string{
		"layers.0.attn.q_proj.weight", "layers.0.attn.v_proj.weight",
		"layers.1.attn.q_proj.weight", "layers.1.attn.v_proj.weight",
		"layers.2.attn.q_proj.weight", "layers.2.attn.v_proj.weight",
		"heads.sentiment.weight", "heads.sentiment.bias", "heads.lm.weight",
	}, names(d))
	require.Equal(t, 3, d.Layers.Len())
	require.Equal(t, []string{"sentiment", "lm"}, d.Heads.Keys())
	require.Equal(t, 2, d.Heads.Len())
	for i, l := range d.Layers.All() {
		require.Same(t, module.Children(d.Layers)[i].Module, l)
		require.Same(t, d.Layers.At(i), l)
	}
	var keys []string
	for k, h := range d.Heads.All() {
		keys = append(keys, k)
		got, ok := d.Heads.Get(k)
		require.True(t, ok)
		require.Same(t, got, h)
	}
	require.Equal(t, []string{"sentiment", "lm"}, keys)
	require.Panics(t, func() { d.Layers.At(3) })
	_, ok := d.Heads.Get("nope")
	require.False(t, ok)

	// Replacing an element, directly or through SetChild, keeps its place
	// and name; the element type decides what fits.
	old := d.Layers.At(1)
	repl := newAttnBlock(t, 2)
	require.NoError(t, module.SetChild(d, "layers.1", repl))
	require.Same(t, repl, d.Layers.At(1))
	module.Close(old)
	wrapped := newScaled(d.Layers.At(0).(*attnBlock).Attn.QProj, 2)
	require.NoError(t, module.SetChild(d, "layers.0.attn.q_proj", wrapped))
	require.Equal(t, "layers.0.attn.q_proj.inner.weight", names(d)[0])
	require.ErrorContains(t, module.SetChild(d, "heads.lm", wrapped), "*module.Linear")
	oldLM, _ := d.Heads.Get("lm")
	d.Heads.Set("lm", torch.Must(module.NewLinear(2, 7, false)))
	module.Close(oldLM)
	require.Equal(t, []string{"sentiment", "lm"}, d.Heads.Keys(), "Set on a key keeps its place")
	require.Equal(t, []int64{7, 2}, module.StateDict(d)["heads.lm.weight"].Shape())

	// The elements run like any layers.
	s := newScope(t)
	h := s.Own(torch.Ones([]int64{1, 2}))
	for _, l := range d.Layers.All() {
		h = l.Forward(h)
	}
	lm, _ := d.Heads.Get("lm")
	require.Equal(t, []int64{1, 7}, lm.Forward(h).Must().Shape())

	// Bad keys are programming errors.
	require.Panics(t, func() { d.Heads.Set("", nil) })
	require.Panics(t, func() { d.Heads.Set("a.b", nil) })

	// A zero ModuleDict works too, and nil elements are skipped.
	var z module.ModuleDict[module.Layer]
	z.Set("none", nil)
	require.Empty(t, module.Children(&z))
	l := module.NewModuleList[module.Layer](nil, nil)
	require.Equal(t, 2, l.Len())
	require.Empty(t, module.Children(l))
}
