package module_test

// Tests of the registry: names, traversal, freezing, counting, modes and
// child replacement.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestNamedParametersNested(t *testing.T) {
	n := newNet(t, 1)

	ps := module.NamedParameters(n)
	require.Equal(t, netOrder, names(n))
	want := map[string][]int64{
		"pos":             {4},
		"embed.weight":    {10, 4},
		"blocks.0.weight": {8, 4},
		"blocks.0.bias":   {8},
		"blocks.1.weight": {4, 8},
		"blocks.1.bias":   {4},
		"norm.weight":     {4},
		"norm.bias":       {4},
		"head.weight":     {3, 4},
		"head.bias":       {3},
	}
	for _, p := range ps {
		require.Equal(t, want[p.Name], p.Tensor.Shape(), p.Name)
		require.True(t, p.Trainable, p.Name)
	}
	// The tensors are the fields themselves, not copies.
	require.Same(t, n.Pos, ps[0].Tensor)
	require.Same(t, n.Embed.Weight, ps[1].Tensor)
	require.Same(t, n.Blocks.Layers[1].(*module.Linear).Bias, ps[5].Tensor)
	require.Same(t, n.Head.(*module.Linear).Bias, ps[9].Tensor)

	var mods []string
	for _, m := range module.Modules(n) {
		mods = append(mods, m.Name)
	}
	require.Equal(t, []string{"", "embed", "blocks", "blocks.0", "blocks.1", "norm", "head"}, mods)
	var kids []string
	for _, c := range module.Children(n) {
		kids = append(kids, c.Name)
	}
	require.Equal(t, []string{"embed", "blocks", "norm", "head"}, kids)
	require.Equal(t, []string{"0.weight", "0.bias", "1.weight", "1.bias"}, names(n.Blocks))

	sd := module.StateDict(n)
	require.Equal(t, len(netOrder), len(sd))
	for _, p := range ps {
		require.Same(t, p.Tensor, sd[p.Name], p.Name)
	}
}

// deepNet nests a Net two levels down, inside a Sequential, to check that
// dotted names compose.
type deepNet struct {
	module.Base
	Scale *torch.Tensor
	Trunk *module.Sequential
}

func TestNamedParametersDeep(t *testing.T) {
	a, b := newNet(t, 1), newNet(t, 2)
	d := &deepNet{Trunk: module.NewSequential(a, b)}
	d.Scale = torch.Ones([]int64{1}).Must()
	d.Param("scale", &d.Scale)
	module.Child(&d.Base, "trunk", &d.Trunk)
	defer module.Close(d)

	got := names(d)
	require.Len(t, got, 1+2*len(netOrder))
	require.Equal(t, "scale", got[0])
	for i, name := range netOrder {
		require.Equal(t, "trunk.0."+name, got[1+i])
		require.Equal(t, "trunk.1."+name, got[1+len(netOrder)+i])
	}
	// Scale was never marked trainable: it is a frozen parameter.
	require.False(t, module.NamedParameters(d)[0].Trainable)
}

// loop contains itself: Modules must not recurse forever.
type loop struct {
	module.Base
	Self *loop
	W    *torch.Tensor
}

func TestModulesStopsOnCycles(t *testing.T) {
	l := &loop{W: torch.Zeros([]int64{2}).Must()}
	defer l.W.Close()
	l.Self = l
	l.Param("w", &l.W)
	module.Child(&l.Base, "self", &l.Self)
	require.Len(t, module.Modules(l), 1)
	require.Equal(t, []string{"w"}, names(l))
}

// tied shares one tensor between two layers, like tied embeddings.
type tied struct {
	module.Base
	Emb *module.Embedding
	Out *module.Linear
}

func newTied(t *testing.T) *tied {
	emb, err := module.NewEmbedding(10, 4)
	require.NoError(t, err)
	out, err := module.LinearFrom(emb.Weight, nil)
	require.NoError(t, err)
	m := &tied{Emb: emb, Out: out}
	module.Child(&m.Base, "emb", &m.Emb)
	module.Child(&m.Base, "out", &m.Out)
	return m
}

func TestSharedParameterListedOnce(t *testing.T) {
	m := newTied(t)
	defer module.Close(m)

	require.Equal(t, []string{"emb.weight"}, names(m))
	total, trainable := module.Count(m)
	require.Equal(t, int64(40), total)
	require.Equal(t, int64(40), trainable)
	require.Equal(t, []string{"emb.weight"}, sortedKeys(module.StateDict(m)))
}

// optional has children that may be absent.
type optional struct {
	module.Base
	Lin   *module.Linear
	Layer module.Layer
	Bias  *torch.Tensor
}

func TestNilChildrenAndParametersAreSkipped(t *testing.T) {
	m := &optional{}
	m.Param("bias", &m.Bias)
	module.Child(&m.Base, "lin", &m.Lin)
	module.Child(&m.Base, "layer", &m.Layer)
	require.Empty(t, module.NamedParameters(m))
	require.Empty(t, module.Children(m))
	require.Len(t, module.Modules(m), 1)
	total, trainable := module.Count(m)
	require.Zero(t, total)
	require.Zero(t, trainable)
	require.Equal(t, "trainable params: 0 || all params: 0 || trainable%: 0.0000", module.Summary(m))

	// Filling the fields later makes them visible, because registration
	// is by pointer.
	var err error
	m.Lin, err = module.NewLinear(2, 3, false)
	require.NoError(t, err)
	m.Layer, err = module.NewLinear(3, 1, true)
	require.NoError(t, err)
	defer module.Close(m)
	require.Equal(t, []string{"lin.weight", "layer.weight", "layer.bias"}, names(m))
}

func TestRegistrationPanics(t *testing.T) {
	n := newNet(t, 1)
	var x *torch.Tensor
	require.PanicsWithValue(t, `module: "pos" registered twice`, func() { n.Param("pos", &x) })
	require.PanicsWithValue(t, `module: "head" registered twice`, func() { n.Param("head", &x) })
	require.PanicsWithValue(t, `module: "pos" registered twice`, func() { n.Buffer("pos", &x, true) })
	var l module.Layer
	require.PanicsWithValue(t, `module: "embed" registered twice`, func() { module.Child(&n.Base, "embed", &l) })
	require.PanicsWithValue(t, `module: Param: empty name`, func() { n.Param("", &x) })
	require.PanicsWithValue(t, `module: Buffer "a.b": a name cannot contain a dot`, func() { n.Buffer("a.b", &x, false) })
	require.PanicsWithValue(t, `module: Param "p": nil pointer`, func() { n.Param("p", nil) })
	require.PanicsWithValue(t, `module: Child "c": nil pointer`, func() { module.Child[module.Layer](&n.Base, "c", nil) })
}

func TestFreezeParametersCount(t *testing.T) {
	n := newNet(t, 1)

	total, trainable := module.Count(n)
	require.Equal(t, int64(netTotal), total)
	require.Equal(t, int64(143), total)
	require.Equal(t, total, trainable)
	require.Equal(t, "trainable params: 143 || all params: 143 || trainable%: 100.0000", module.Summary(n))
	require.Len(t, module.Parameters(n, false), len(netOrder))
	require.Len(t, module.Parameters(n, true), len(netOrder))

	// Freeze a submodule: blocks holds 4·8+8 + 8·4+4 = 76 elements.
	require.NoError(t, module.Freeze(n.Blocks))
	total, trainable = module.Count(n)
	require.Equal(t, int64(143), total)
	require.Equal(t, int64(67), trainable)
	// 67/143 = 46.853146…%
	require.Equal(t, "trainable params: 67 || all params: 143 || trainable%: 46.8531", module.Summary(n))

	all := module.Parameters(n, false)
	tr := module.Parameters(n, true)
	require.Len(t, all, 10)
	require.Len(t, tr, 6)
	want := []*torch.Tensor{n.Pos, n.Embed.Weight, n.Norm.Weight, n.Norm.Bias,
		n.Head.(*module.Linear).Weight, n.Head.(*module.Linear).Bias}
	for i := range want {
		require.Same(t, want[i], tr[i], "trainable parameter %d", i)
	}
	for _, p := range module.NamedParameters(n) {
		frozen := strings.HasPrefix(p.Name, "blocks.")
		require.Equal(t, !frozen, p.Trainable, p.Name)
		require.Equal(t, !frozen, p.Tensor.RequiresGrad(), p.Name)
	}

	// Freeze the embedding too: 67 − 40 = 27 trainable, 18.8811%.
	require.NoError(t, module.Freeze(n.Embed))
	require.Equal(t, "trainable params: 27 || all params: 143 || trainable%: 18.8811", module.Summary(n))

	require.NoError(t, module.Freeze(n))
	require.Empty(t, module.Parameters(n, true))
	require.Equal(t, "trainable params: 0 || all params: 143 || trainable%: 0.0000", module.Summary(n))

	require.NoError(t, module.Unfreeze(n.Blocks))
	_, trainable = module.Count(n)
	require.Equal(t, int64(76), trainable)
	require.NoError(t, module.Unfreeze(n))
	_, trainable = module.Count(n)
	require.Equal(t, int64(143), trainable)
}

// bigModel has enough parameters for thousands separators.
type bigModel struct {
	module.Base
	Emb  *module.Embedding
	Proj *module.Linear
}

func TestSummaryThousands(t *testing.T) {
	for _, c := range []struct {
		num, dim int64
		want     string
	}{
		// Embedding 1000×64 (frozen) and Linear 64→64: 64,000 + 4,160.
		{1000, 64, "trainable params: 4,160 || all params: 68,160 || trainable%: 6.1033"},
		// Embedding 1,234,567×1 (frozen) and Linear 1→1: 2 of 1,234,569.
		{1234567, 1, "trainable params: 2 || all params: 1,234,569 || trainable%: 0.0002"},
	} {
		m := &bigModel{}
		var err error
		m.Emb, err = module.NewEmbedding(c.num, c.dim)
		require.NoError(t, err)
		m.Proj, err = module.NewLinear(c.dim, c.dim, true)
		require.NoError(t, err)
		module.Child(&m.Base, "emb", &m.Emb)
		module.Child(&m.Base, "proj", &m.Proj)
		require.NoError(t, module.Freeze(m.Emb))
		require.Equal(t, c.want, module.Summary(m))
		module.Close(m)
	}

	// 1,234 trainable of 5,678: an Embedding 1234×1 and a frozen 4444×1.
	m := &bigModel{}
	m.Emb = torch.Must(module.NewEmbedding(1234, 1))
	m.Proj = torch.Must(module.LinearFrom(torch.Zeros([]int64{4444, 1}), nil))
	module.Child(&m.Base, "emb", &m.Emb)
	module.Child(&m.Base, "proj", &m.Proj)
	defer module.Close(m)
	require.NoError(t, module.Freeze(m.Proj))
	// 1234/5678 = 21.733004…%
	require.Equal(t, "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330", module.Summary(m))
}

// dropNet has dropouts at two depths.
type dropNet struct {
	module.Base
	Body *module.Sequential
	Drop *module.Dropout
}

func newDropNet(t *testing.T) *dropNet {
	t.Helper()
	l0 := torch.Must(module.NewLinear(4, 4, true))
	d0 := torch.Must(module.NewDropout(0.5))
	l1 := torch.Must(module.NewLinear(4, 4, true))
	m := &dropNet{Body: module.NewSequential(l0, d0, l1), Drop: torch.Must(module.NewDropout(0.5))}
	module.Child(&m.Base, "body", &m.Body)
	module.Child(&m.Base, "drop", &m.Drop)
	return m
}

func modes(m module.Module) map[string]bool {
	out := map[string]bool{}
	for _, nm := range module.Modules(m) {
		out[nm.Name] = nm.Module.Registry().Training()
	}
	return out
}

func TestTrainEvalRecursion(t *testing.T) {
	m := newDropNet(t)
	defer module.Close(m)
	all := func(on bool) map[string]bool {
		return map[string]bool{"": on, "body": on, "body.0": on, "body.1": on, "body.2": on, "drop": on}
	}
	require.Equal(t, all(true), modes(m), "modules start in training mode")
	module.Eval(m)
	require.Equal(t, all(false), modes(m))
	module.Train(m)
	require.Equal(t, all(true), modes(m))

	// A subtree alone.
	module.Eval(m.Body)
	want := all(false)
	want[""], want["drop"] = true, true
	require.Equal(t, want, modes(m))
	module.SetTraining(m, true)
	require.Equal(t, all(true), modes(m))
	module.SetTraining(m, false)
	require.Equal(t, all(false), modes(m))
}

func TestDropoutModes(t *testing.T) {
	m := newDropNet(t)
	defer module.Close(m)
	s := newScope(t)
	ones := make([]float32, 2000)
	for i := range ones {
		ones[i] = 1
	}
	x := s.Own(torch.FromSlice(ones))
	require.NoError(t, torch.ManualSeed(0))

	// Training: each element is dropped (0) or scaled by 1/(1−p) = 2.
	y := m.Drop.Forward(x)
	zeros := 0
	for i, v := range reftest.Float64s(t, y) {
		require.True(t, v == 0 || v == 2, "element %d = %v", i, v)
		if v == 0 {
			zeros++
		}
	}
	require.InDelta(t, 1000, zeros, 150, "about half are dropped")

	// Two draws differ; reseeding reproduces them.
	y2 := m.Drop.Forward(x)
	require.NotEqual(t, reftest.Float64s(t, y), reftest.Float64s(t, y2))
	require.NoError(t, torch.ManualSeed(0))
	require.Equal(t, reftest.Float64s(t, y), reftest.Float64s(t, m.Drop.Forward(x)))

	// Eval: identity, as a new handle; closing it leaves x.
	module.Eval(m)
	id := m.Drop.Forward(x)
	require.NotSame(t, x, id)
	require.Equal(t, ones, torch.Must(torch.ToSlice[float32](id)))
	require.NoError(t, id.Close())
	require.False(t, x.Closed())
	require.Equal(t, ones, torch.Must(torch.ToSlice[float32](x)))

	// The Sequential's dropout follows the mode: eval output is
	// deterministic and equals l1(l0(x)).
	in := s.Own(torch.FromSlice([]float32{1, -2, 3, 0.5, 0, 1, -1, 2}, 2, 4))
	a := m.Body.Forward(in)
	require.NoError(t, torch.ManualSeed(123))
	reftest.RequireBitwise(t, "eval is deterministic", a, m.Body.Forward(in))
	direct := m.Body.Layers[2].Forward(m.Body.Layers[0].Forward(in))
	reftest.RequireBitwise(t, "eval skips dropout", a, direct)

	// p = 0 and p = 1 in training mode.
	module.Train(m)
	for _, c := range []struct {
		p    float64
		want float32
	}{{0, 1}, {1, 0}} {
		d := torch.Must(module.NewDropout(c.p))
		for i, v := range torch.Must(torch.ToSlice[float32](d.Forward(x))) {
			require.Equal(t, c.want, v, "p=%v element %d", c.p, i)
		}
	}
}

// scaled wraps a layer, the way a LoRA adapter wraps a Linear.
type scaled struct {
	module.Base
	Inner module.Layer
	K     float64
}

func newScaled(inner module.Layer, k float64) *scaled {
	s := &scaled{Inner: inner, K: k}
	module.Child(&s.Base, "inner", &s.Inner)
	return s
}

func (s *scaled) Forward(x *torch.Tensor) *torch.Tensor { return s.Inner.Forward(x).MulScalar(s.K) }

// fixed declares its child with a concrete type, so it cannot be wrapped.
type fixed struct {
	module.Base
	Proj *module.Linear
}

func TestSetChild(t *testing.T) {
	n := newNet(t, 1)
	s := newScope(t)
	ids := s.Own(torch.FromSlice([]int64{0, 5}))
	before := n.Forward(ids)

	// Through a module.Layer field: wrap the head in place.
	head := n.Head
	w := newScaled(head, 3)
	require.NoError(t, module.SetChild(n, "head", w))
	require.Same(t, w, n.Head)
	require.Equal(t, append(append([]string{}, netOrder[:8]...), "head.inner.weight", "head.inner.bias"), names(n))
	requireClose(t, "wrapped head", n.Forward(ids), before.MulScalar(3))

	// Inside a Sequential, by index.
	old := n.Blocks.Layers[1]
	repl := torch.Must(module.NewLinear(8, 4, false))
	require.NoError(t, module.SetChild(n, "blocks.1", repl))
	require.Same(t, repl, n.Blocks.Layers[1])
	require.Contains(t, module.StateDict(n), "blocks.1.weight")
	require.NotContains(t, module.StateDict(n), "blocks.1.bias")
	module.Close(old)
	// Deeper: the wrapper's own child.
	inner2 := torch.Must(module.NewLinear(4, 3, true))
	require.NoError(t, module.SetChild(n, "head.inner", inner2))
	require.Same(t, inner2, w.Inner)
	module.Close(head)

	// Bad paths, and a nil module.
	for _, path := range []string{"nope", "blocks.7", "head.inner.x"} {
		err := module.SetChild(n, path, repl)
		require.Error(t, err, path)
		require.Contains(t, err.Error(), "no child", path)
	}
	require.ErrorContains(t, module.SetChild(n, "nope.head", repl), `no module at "nope"`)
	require.ErrorContains(t, module.SetChild(n, "head", nil), "nil module")
	require.Same(t, w, n.Head)

	// Through a *module.Linear field: a clear error, and nothing changes.
	f := &fixed{Proj: torch.Must(module.NewLinear(2, 2, true))}
	module.Child(&f.Base, "proj", &f.Proj)
	defer module.Close(f)
	orig := f.Proj
	wrapper := newScaled(torch.Must(module.NewLinear(2, 2, true)), 2)
	defer module.Close(wrapper)
	err := module.SetChild(f, "proj", wrapper)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"proj"`)
	require.Contains(t, err.Error(), "*module.Linear")
	require.Contains(t, err.Error(), "*module_test.scaled")
	require.Contains(t, err.Error(), "declare the field as module.Layer")
	require.Same(t, orig, f.Proj)
	// A value of the declared type is accepted.
	other := torch.Must(module.NewLinear(2, 2, false))
	require.NoError(t, module.SetChild(f, "proj", other))
	require.Same(t, other, f.Proj)
	module.Close(orig)
}
