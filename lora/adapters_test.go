package lora_test

// Named adapters on every layer kind (the PEFT model of peft_net.py's Go
// twin), checked against hand-derived maths:
//
//   - each kind's forward is base(x) + s·B(A(x)) written out with plain
//     ops (Linear x·Aᵀ·Bᵀ, Embedding F.embedding(x, Aᵀ)·Bᵀ, Conv1D as
//     Linear, Conv2d conv(conv(x, A, padding), B));
//   - merging each adapter (LoRA and DoRA, every kind) gives the unmerged
//     output, unmerging gives back W0;
//   - SetAdapter with two names sums both updates; WithAdaptersDisabled is
//     the base output and re-enables after a panic; the mixed batch equals
//     running each sample with its own adapter; DeleteAdapter frees;
//   - rsLoRA's scaling is α/√r; gaussian, pissa and orthogonal inits.

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func pnInputs(t testing.TB) (ids, img *torch.Tensor) {
	t.Helper()
	require.NoError(t, torch.ManualSeed(3))
	ids = own(t, torch.FromSlice([]int64{1, 5, 9, 30, 2, 7, 0, 31, 4, 4, 8, 16, 3, 3, 3, 12, 19, 25, 6, 11, 13, 17, 21, 29}, 4, 6))
	img = own(t, torch.Randn([]int64{4, 3, 5, 5}))
	return ids, img
}

var allKinds = []string{"q_proj", "v_proj", "embed_tokens", "c_attn", "conv"}

// randomB gives every adapter's B (and A) a random value so that it
// changes the output.
func adaptNet(t testing.TB, n *peftNet, name string, cfg lora.Config) {
	t.Helper()
	if cfg.Init == "" {
		cfg.Init = lora.InitRandom
	}
	_, err := lora.AddAdapter(n, name, cfg)
	require.NoError(t, err)
}

func TestKindsForwardHandDerived(t *testing.T) {
	n := newPeftNet(t, 1)
	adaptNet(t, n, "default", lora.Config{R: 3, Alpha: 6, TargetModules: allKinds})
	s := newScope(t)
	x := own(t, torch.Randn([]int64{2, 4, pnDim}))
	ids, img := pnInputs(t)

	check := func(what string, got, want *torch.Tensor) {
		t.Helper()
		require.NoError(t, s.Err())
		reftest.RequireClose(t, what, s.Own(got), s.Own(want), 1e-6)
	}
	q := n.Model.Layers.At(0).SelfAttn.Q.(*lora.Linear)
	ad := q.Adapter("default")
	require.Equal(t, 2.0, ad.Scaling())
	check("Linear", q.Forward(s.Borrow(x)),
		torch.Linear(s.Borrow(x), q.Weight, q.Bias).Add(s.Borrow(x).MatMul(s.Own(ad.A.T())).MatMul(s.Own(ad.B.T())).MulScalar(2)))

	e := n.Model.Embed.(*lora.Embedding)
	ea := e.Adapter("default")
	check("Embedding", e.Forward(s.Borrow(ids)),
		torch.Embedding(s.Borrow(ids), e.Weight).Add(torch.Embedding(s.Borrow(ids), s.Own(ea.A.T())).MatMul(s.Own(ea.B.T())).MulScalar(2)))

	c1 := n.Transformer.H.At(0).Attn.CAttn.(*lora.Conv1D)
	ca := c1.Adapter("default")
	require.Equal(t, []int64{3, pnDim}, ca.A.Shape(), "Conv1D's A is r×in")
	require.Equal(t, []int64{3 * pnDim, 3}, ca.B.Shape(), "Conv1D's B is out×r")
	check("Conv1D", c1.Forward(s.Borrow(x)),
		s.Borrow(x).MatMul(c1.Weight).Add(c1.Bias).Add(s.Borrow(x).MatMul(s.Own(ca.A.T())).MatMul(s.Own(ca.B.T())).MulScalar(2)))

	c2 := n.Conv.(*lora.Conv2d)
	a2 := c2.Adapter("default")
	require.Equal(t, []int64{3, 3, 3, 3}, a2.A.Shape(), "Conv2d's A is r×in×kh×kw")
	require.Equal(t, []int64{4, 3, 1, 1}, a2.B.Shape(), "Conv2d's B is out×r×1×1")
	pad := torch.Conv2dOptions{Padding: [2]int64{1, 1}}
	check("Conv2d", c2.Forward(s.Borrow(img)),
		torch.Conv2d(s.Borrow(img), c2.Weight, c2.Bias, pad).Add(torch.Conv2d(torch.Conv2d(s.Borrow(img), a2.A, nil, pad), a2.B, nil, torch.Conv2dOptions{}).MulScalar(2)))
}

// Merging gives the unmerged output for every kind, for LoRA and DoRA;
// unmerging gives back W0.
func TestMergeEveryKind(t *testing.T) {
	for _, dora := range []bool{false, true} {
		targets := allKinds
		if dora {
			targets = []string{"q_proj", "v_proj", "c_attn", "conv"} // no DoRA on embeddings
		}
		n := newPeftNet(t, 2)
		adaptNet(t, n, "default", lora.Config{R: 4, Alpha: 8, TargetModules: targets, UseDoRA: dora})
		adaptNet(t, n, "other", lora.Config{R: 2, Alpha: 2, TargetModules: []string{"q_proj", "conv"}, UseRSLoRA: true})
		require.NoError(t, lora.SetAdapter(n, "default", "other"))
		if dora {
			for _, nl := range lora.Layers(n) {
				if m := nl.Layer.LoraLayer().LoraMagnitude; m != nil {
					require.NoError(t, torch.NoGrad(func() error { return m.MulScalar_(1.2).Err() }))
				}
			}
		}
		ids, img := pnInputs(t)
		w0 := snapshot(t, n)
		y := n.run(t, ids, img)
		require.NoError(t, lora.Merge(n, true))
		for _, nl := range lora.Layers(n) {
			require.NotEmpty(t, nl.Layer.LoraLayer().MergedAdapters(), nl.Name)
		}
		e := reftest.RequireSlicesClose(t, "merged vs unmerged", n.run(t, ids, img), y, 2e-6)
		t.Logf("dora=%v: merged vs unmerged %.2e", dora, e)
		require.NoError(t, lora.Unmerge(n))
		for k, v := range snapshot(t, n) {
			reftest.RequireSlicesClose(t, "unmerged "+k, v, w0[k], 1e-6)
		}
		reftest.RequireSlicesClose(t, "after unmerge", n.run(t, ids, img), y, 1e-6)

		// MergeAndUnload: plain base layers that compute the same.
		out, err := lora.MergeAndUnload(n)
		require.NoError(t, err)
		require.Same(t, n, out.(*peftNet))
		require.Empty(t, lora.Layers(n))
		_, isLinear := n.Model.Layers.At(0).SelfAttn.Q.(*module.Linear)
		require.True(t, isLinear, "q_proj is a plain module.Linear again")
		reftest.RequireSlicesClose(t, "MergeAndUnload", n.run(t, ids, img), y, 2e-6)
	}
}

// The update is α/√r with rsLoRA.
func TestRSLoRAScaling(t *testing.T) {
	n := newPeftNet(t, 3)
	adaptNet(t, n, "default", lora.Config{R: 9, Alpha: 6, UseRSLoRA: true, TargetModules: []string{"q_proj"}})
	require.Equal(t, 6/math.Sqrt(9), n.Model.Layers.At(0).SelfAttn.Q.(*lora.Linear).Adapter("default").Scaling())
}

func TestSeveralAdapters(t *testing.T) {
	n := newPeftNet(t, 4)
	ids, img := pnInputs(t)
	base := n.run(t, ids, img)
	adaptNet(t, n, "a", lora.Config{R: 2, TargetModules: []string{"q_proj", "embed_tokens"}})
	adaptNet(t, n, "b", lora.Config{R: 4, TargetModules: []string{"v_proj", "q_proj", "conv"}})
	require.Equal(t, []string{"a", "b"}, lora.AdapterNames(n))

	require.NoError(t, lora.SetAdapter(n, "a"))
	ya := n.run(t, ids, img)
	require.NoError(t, lora.SetAdapter(n, "b"))
	yb := n.run(t, ids, img)
	require.Greater(t, reftest.RelErr(ya, base), 1e-3)
	require.Greater(t, reftest.RelErr(yb, ya), 1e-3)

	// Disabled: the base output exactly, also after a panic inside.
	require.NoError(t, lora.WithAdaptersDisabled(n, func() error {
		reftest.RequireSlicesClose(t, "disabled", n.run(t, ids, img), base, 0)
		return nil
	}))
	require.Panics(t, func() {
		_ = lora.WithAdaptersDisabled(n, func() error { panic("boom") })
	})
	reftest.RequireSlicesClose(t, "enabled again after a panic", n.run(t, ids, img), yb, 0)

	// Both active: on q_proj, the two updates add up.
	require.NoError(t, lora.SetAdapter(n, "a", "b"))
	q := n.Model.Layers.At(0).SelfAttn.Q.(*lora.Linear)
	require.Equal(t, []string{"a", "b"}, q.ActiveAdapters())
	x := own(t, torch.Randn([]int64{3, pnDim}))
	s := newScope(t)
	qa, qb := q.Adapter("a"), q.Adapter("b")
	want := torch.Linear(s.Borrow(x), q.Weight, q.Bias).
		Add(s.Borrow(x).MatMul(s.Own(qa.A.T())).MatMul(s.Own(qa.B.T())).MulScalar(qa.Scaling())).
		Add(s.Borrow(x).MatMul(s.Own(qb.A.T())).MatMul(s.Own(qb.B.T())).MulScalar(qb.Scaling()))
	reftest.RequireClose(t, "two active adapters", s.Own(q.Forward(s.Borrow(x))), s.Own(want), 1e-6)

	// Mixed batch: sample i uses names[i]; equal to running the batch with
	// each adapter and taking row i.
	names := []string{"b", "__base__", "a", "b"}
	var mixed []float64
	require.NoError(t, lora.WithAdapterNames(n, names, func() error {
		mixed = n.run(t, ids, img)
		return nil
	}))
	per := map[string][]float64{"a": ya, "b": yb, "__base__": base}
	row := len(base) / 4
	for i, nm := range names {
		reftest.RequireSlicesClose(t, "mixed sample "+itoa(int64(i))+" ("+nm+")", mixed[i*row:(i+1)*row], per[nm][i*row:(i+1)*row], 1e-6)
	}
	requireErr(t, func() error {
		return lora.WithAdapterNames(n, []string{"a", "zzz", "a", "a"}, func() error { return nil })
	}, `no adapter "zzz"`)
	s2 := newScope(t)
	require.NoError(t, lora.WithAdapterNames(n, []string{"a"}, func() error {
		y := s2.Own(n.forward(s2.Borrow(ids), s2.Borrow(img)))
		requireFailed(t, y, "1 adapter names for a batch of 4")
		return nil
	}))

	// Delete: gone from every layer, its tensors freed; the other stays.
	bA := q.Adapter("b").A
	require.NoError(t, lora.DeleteAdapter(n, "b"))
	require.True(t, bA.Closed())
	require.Equal(t, []string{"a"}, lora.AdapterNames(n))
	require.Equal(t, []string{"a"}, q.ActiveAdapters())
	reftest.RequireSlicesClose(t, "after deleting b", n.run(t, ids, img), ya, 0)
	requireErr(t, func() error { return lora.DeleteAdapter(n, "b") }, `no adapter "b"`)
	requireErr(t, func() error { return lora.SetAdapter(n, "b") }, `no adapter "b"`)

	// A second adapter of an existing name is an error, nothing changes.
	names0 := paramNames(n)
	requireErr(t, func() error {
		_, err := lora.AddAdapter(n, "a", lora.Config{R: 2, TargetModules: []string{"k_proj", "q_proj"}})
		return err
	}, `already has a LoRA adapter`, `named "a"`)
	require.Equal(t, names0, paramNames(n))
	for _, bad := range []string{"", "..", "x/y", "__base__", "a.b"} {
		requireErr(t, func() error {
			_, err := lora.AddAdapter(n, bad, lora.Config{R: 2, TargetModules: []string{"k_proj"}})
			return err
		}, "adapter name")
	}
}

// PEFT's target rules: exclude_modules, layers_to_transform, rank and
// alpha patterns, all-linear.
func TestConfigMatching(t *testing.T) {
	n := newPeftNet(t, 5)
	adapted, err := lora.Apply(n, lora.Config{R: 2, TargetRegexp: lora.AllLinear, ExcludeModules: []string{"o_proj"},
		LayersToTransform: []int{1}, LayersPattern: []string{"layers"},
		RankPattern: map[string]int64{"q_proj": 6}, AlphaPattern: map[string]float64{`layers\.1\.self_attn\.k_proj`: 10}})
	require.NoError(t, err)
	require.Equal(t, []string{"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj"}, adapted)
	l1 := n.Model.Layers.At(1).SelfAttn
	require.Equal(t, int64(6), l1.Q.(*lora.Linear).Rank())
	require.Equal(t, 6.0, l1.Q.(*lora.Linear).Alpha(), "alpha defaults to the pattern's r")
	require.Equal(t, 10.0, l1.K.(*lora.Linear).Alpha())
	require.Equal(t, int64(2), l1.V.(*lora.Linear).Rank())

	// all-linear takes Linear and Conv1D, not the output head.
	n2 := newPeftNet(t, 5)
	adapted, err = lora.Apply(n2, lora.Config{R: 2, TargetRegexp: lora.AllLinear, TaskType: "SEQ_CLS"})
	require.NoError(t, err)
	require.Len(t, adapted, 9, "8 projections and c_attn; the classifier head is left out: %v", adapted)
	require.Contains(t, adapted, "transformer.h.0.attn.c_attn")

	// bias and modules_to_save decide what else trains.
	n3 := newPeftNet(t, 5)
	_, err = lora.Apply(n3, lora.Config{R: 2, TargetModules: []string{"q_proj"}, Bias: "lora_only", ModulesToSave: []string{"classifier"}})
	require.NoError(t, err)
	require.Equal(t, []string{
		"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.q_proj.lora_a", "model.layers.0.self_attn.q_proj.lora_b",
		"model.layers.1.self_attn.q_proj.bias", "model.layers.1.self_attn.q_proj.lora_a", "model.layers.1.self_attn.q_proj.lora_b",
		"classifier.weight", "classifier.bias"}, trainableNames(n3))
}

// PEFT's other initialisations.
func TestInitVariants(t *testing.T) {
	ids, img := pnInputs(t)
	t.Run("gaussian", func(t *testing.T) {
		n := newPeftNet(t, 6)
		_, err := lora.Apply(n, lora.Config{R: 4, TargetModules: []string{"q_proj", "embed_tokens"}, Init: lora.InitGaussian})
		require.NoError(t, err)
		q := n.Model.Layers.At(0).SelfAttn.Q.(*lora.Linear)
		a := reftest.Float64s(t, q.LoraA)
		var ss float64
		for _, v := range a {
			ss += v * v
		}
		std := math.Sqrt(ss / float64(len(a)))
		require.InDelta(t, 0.25, std, 0.06, "A ~ N(0, 1/r²), r = 4")
		require.Equal(t, make([]float64, 4*pnDim), reftest.Float64s(t, q.LoraB), "B = 0")
		e := n.Model.Embed.(*lora.Embedding)
		require.Equal(t, make([]float64, 4*pnVocab), reftest.Float64s(t, e.LoraA), "PEFT's embedding init: A = 0")
	})
	t.Run("pissa", func(t *testing.T) {
		n := newPeftNet(t, 7)
		y := n.run(t, ids, img)
		_, err := lora.Apply(n, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "c_attn"}, Init: lora.InitPiSSA})
		require.NoError(t, err)
		// W0 − s·B·A + s·B·A: the output is unchanged; B·A·s is W0's best
		// rank-4 approximation, so W0 lost its top singular values.
		reftest.RequireSlicesClose(t, "pissa keeps the output", n.run(t, ids, img), y, 1e-5)
		q := n.Model.Layers.At(0).SelfAttn.Q.(*lora.Linear)
		require.NotEqual(t, make([]float64, 4*pnDim), reftest.Float64s(t, q.LoraB))
	})
	t.Run("orthogonal", func(t *testing.T) {
		n := newPeftNet(t, 8)
		_, err := lora.Apply(n, lora.Config{R: 4, TargetModules: []string{"q_proj"}, Init: lora.InitOrthogonal})
		require.NoError(t, err)
		requireErr(t, func() error {
			_, err := lora.Apply(newPeftNet(t, 8), lora.Config{R: 3, TargetModules: []string{"q_proj"}, Init: lora.InitOrthogonal})
			return err
		}, "even rank")
	})
}

// Forward passes of every path (fused, generic, DoRA with dropout in
// training, mixed batch), merges and unmerges free every handle they make
// when the scope closes or the call returns.
func TestAdapterPathsFreeEverything(t *testing.T) {
	n := newPeftNet(t, 13)
	adaptNet(t, n, "a", lora.Config{R: 2, TargetModules: allKinds, Dropout: 0.1})
	adaptNet(t, n, "b", lora.Config{R: 2, TargetModules: []string{"q_proj", "c_attn", "conv"}, UseDoRA: true, Dropout: 0.2})
	ids, img := pnInputs(t)
	step := func() {
		for _, train := range []bool{false, true} {
			module.SetTraining(n, train)
			require.NoError(t, lora.SetAdapter(n, "a", "b"))
			n.run(t, ids, img)
			require.NoError(t, lora.WithAdapterNames(n, []string{"a", "b", "__base__", "b"}, func() error {
				n.run(t, ids, img)
				return nil
			}))
		}
		module.Eval(n)
		require.NoError(t, lora.Merge(n, true))
		require.NoError(t, lora.Unmerge(n))
	}
	step() // warm up lazily created state
	live := reftest.SettledLiveTensors()
	for range 3 {
		step()
	}
	require.LessOrEqual(t, torch.LiveTensors(), live, "handles leaked")
}

// A safe merge refuses a weight with NaN or Inf and writes nothing;
// Unload gives the original layers back.
func TestSafeMergeAndUnload(t *testing.T) {
	n := newPeftNet(t, 14)
	adaptNet(t, n, "default", lora.Config{R: 2, TargetModules: []string{"q_proj", "conv"}})
	q := n.Model.Layers.At(1).SelfAttn.Q.(*lora.Linear)
	require.NoError(t, torch.NoGrad(func() error { return q.LoraB.Fill_(math.Inf(1)) }))
	w0 := snapshot(t, n)
	requireErr(t, func() error { return lora.Merge(n, true) }, "model.layers.1.self_attn.q_proj", "NaN or Inf", "nothing merged")
	require.Equal(t, w0, snapshot(t, n), "no weight changed (layer 0's merge was taken back)")
	for _, nl := range lora.Layers(n) {
		require.Empty(t, nl.Layer.LoraLayer().MergedAdapters(), nl.Name)
	}
	requireErr(t, func() error { _, err := lora.MergeAndUnload(n); return err }, "NaN or Inf")

	require.NoError(t, torch.NoGrad(func() error { return q.LoraB.Fill_(0.5) }))
	w0 = snapshot(t, n)
	require.NoError(t, lora.Merge(n, true))
	requireErr(t, func() error { return lora.WithAdaptersDisabled(n, func() error { return nil }) }, "merged; unmerge them first")
	requireErr(t, func() error { return lora.SetAdapter(n, "default") }, "merged; unmerge them first")
	ids, img := pnInputs(t)
	out, err := lora.Unload(n)
	require.NoError(t, err)
	require.Same(t, n, out.(*peftNet))
	require.Empty(t, lora.Layers(n))
	_, ok := n.Conv.(*module.Conv2d)
	require.True(t, ok, "conv is a module.Conv2d again")
	for k, v := range snapshot(t, n) { // the base's parameters, restored
		reftest.RequireSlicesClose(t, "after Unload "+k, v, w0[k], 1e-6)
	}
	n.run(t, ids, img)
}

func TestAdapterErrors(t *testing.T) {
	n := newPeftNet(t, 15)
	requireErr(t, func() error {
		_, err := lora.Apply(n, lora.Config{R: 2, TargetModules: []string{"q_proj"}, Init: "loftq"})
		return err
	}, `Init "loftq" is not supported`)
	requireErr(t, func() error {
		_, err := lora.Apply(n, lora.Config{R: 2, TargetModules: []string{"q_proj"}, Bias: "most"})
		return err
	}, `Bias must be "none", "all" or "lora_only"`)
	requireErr(t, func() error {
		_, err := lora.Apply(n, lora.Config{R: 2, TargetModules: []string{"q_proj"}, ModulesToSave: []string{"nohead"}})
		return err
	}, `modules_to_save "nohead" matched no module`)
	require.Empty(t, lora.Layers(n), "nothing was adapted")
}

// A kind registered with RegisterDispatcher plugs in without a type
// switch: here LayerNorm-free "scaled linear" layers, a module.Linear
// wrapper type the built-in dispatchers do not know.
type scaledLinear struct {
	module.Base
	Inner *module.Linear
}

func (s *scaledLinear) Forward(x *torch.Tensor) *torch.Tensor { return s.Inner.Forward(x).MulScalar(2) }

type scaledKind struct{ lora.Kind }

func (k scaledKind) Name() string { return "scaledLinear" }

func TestRegisterDispatcher(t *testing.T) {
	lin, err := module.NewLinear(4, 3, true)
	require.NoError(t, err)
	sl := &scaledLinear{Inner: lin}
	module.Child(&sl.Base, "inner", &sl.Inner)
	_, err = lora.NewLayer(sl)
	require.ErrorContains(t, err, "no dispatcher handles a *lora_test.scaledLinear")

	// Borrow the Linear kind's maths; only the base forward differs.
	lora.RegisterDispatcher(func(m module.Module) (lora.Kind, bool) {
		s, ok := m.(*scaledLinear)
		if !ok {
			return nil, false
		}
		al, err := lora.NewLayer(s.Inner)
		if err != nil {
			return nil, false
		}
		return scaledBase{scaledKind{al.LoraLayer().Kind()}, s}, true
	})
	al, err := lora.NewLayer(sl)
	require.NoError(t, err)
	l, ok := al.(*lora.Layer)
	require.True(t, ok, "a registered kind gets a *lora.Layer")
	require.Equal(t, "scaledLinear", l.Kind().Name())
	defer module.Close(l)
}

type scaledBase struct {
	scaledKind
	s *scaledLinear
}

func (k scaledBase) Base() module.Layer { return k.s }

// AddWeightedAdapter by hand: "cat" and a full-rank "svd" give
// ΔW = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly (to rounding); "linear" gives
// (Σ√|wᵢsᵢ|Bᵢ)(Σ sgn·√|wᵢsᵢ|Aᵢ), cross terms included, as PEFT.
func TestAddWeightedAdapterHandDerived(t *testing.T) {
	n := newPeftNet(t, 16)
	adaptNet(t, n, "x", lora.Config{R: 2, Alpha: 4, TargetModules: []string{"q_proj", "embed_tokens", "c_attn", "conv"}})
	adaptNet(t, n, "y", lora.Config{R: 2, Alpha: 2, TargetModules: []string{"q_proj", "embed_tokens", "c_attn", "conv"}})
	w := []float64{0.6, -1.5}
	require.NoError(t, lora.AddWeightedAdapter(n, []string{"x", "y"}, w, "cat", lora.CombineCat, 0))
	require.NoError(t, lora.AddWeightedAdapter(n, []string{"x", "y"}, w, "svd", lora.CombineSVD, 4))
	require.NoError(t, lora.AddWeightedAdapter(n, []string{"x", "y"}, w, "lin", lora.CombineLinear, 0))
	for _, nl := range lora.Layers(n) {
		l := nl.Layer.LoraLayer()
		dx, err := l.DeltaWeight("x")
		require.NoError(t, err)
		dy, err := l.DeltaWeight("y")
		require.NoError(t, err)
		s := newScope(t)
		s.Own(dx)
		s.Own(dy)
		want := dx.MulScalar(w[0]).Add(dy.MulScalar(w[1]))
		for _, c := range []string{"cat", "svd"} {
			d, err := l.DeltaWeight(c)
			require.NoError(t, err)
			reftest.RequireClose(t, nl.Name+" "+c, s.Own(d), want, 1e-5)
		}
		ax, ay := l.Adapter("x"), l.Adapter("y")
		sx, sy := w[0]*ax.Scaling(), w[1]*ay.Scaling()
		bl := ax.B.MulScalar(math.Sqrt(math.Abs(sx))).Add(ay.B.MulScalar(math.Sqrt(math.Abs(sy))))
		al := ax.A.MulScalar(math.Copysign(math.Sqrt(math.Abs(sx)), sx)).Add(ay.A.MulScalar(math.Copysign(math.Sqrt(math.Abs(sy)), sy)))
		reftest.RequireClose(t, nl.Name+" linear A", l.Adapter("lin").A, s.Own(al), 1e-6)
		reftest.RequireClose(t, nl.Name+" linear B", l.Adapter("lin").B, s.Own(bl), 1e-6)
		require.Equal(t, 1.0, l.Adapter("cat").Scaling())
		require.Equal(t, int64(4), l.Adapter("cat").Rank())
		require.False(t, l.Adapter("cat").A.RequiresGrad(), "frozen, as PEFT")
	}
	require.NotContains(t, lora.Layers(n)[0].Layer.LoraLayer().ActiveAdapters(), "cat", "inactive until SetAdapter")
	requireErr(t, func() error {
		return lora.AddWeightedAdapter(n, []string{"x", "cat"}, w, "bad", lora.CombineLinear, 0)
	}, "same r")
}
