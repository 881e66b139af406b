package lora_test

// lora.Apply on a small transformer-shaped model:
//
//	tinyModel
//	├── tok     Embedding(32, 8)
//	├── blocks  Sequential
//	│   ├── 0   block: q_proj, v_proj, out (Linear 8→8), ln (LayerNorm 8)
//	│   └── 1   block: q_proj, v_proj, out, ln
//	└── head    Linear(8 → 32)

import (
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const (
	vocab  = 32
	dModel = 8
)

type block struct {
	module.Base
	QProj, VProj, Out, LN module.Layer
}

func newBlock(t testing.TB, d int64) *block {
	t.Helper()
	lin := func() module.Layer {
		l, err := module.NewLinear(d, d, true)
		require.NoError(t, err)
		return l
	}
	ln, err := module.NewLayerNorm([]int64{d})
	require.NoError(t, err)
	b := &block{QProj: lin(), VProj: lin(), Out: lin(), LN: ln}
	module.Child(&b.Base, "q_proj", &b.QProj)
	module.Child(&b.Base, "v_proj", &b.VProj)
	module.Child(&b.Base, "out", &b.Out)
	module.Child(&b.Base, "ln", &b.LN)
	return b
}

// Forward returns ln(x + out(q_proj(x) * v_proj(x))).
func (b *block) Forward(x *torch.Tensor) *torch.Tensor {
	return b.LN.Forward(x.Add(b.Out.Forward(b.QProj.Forward(x).Mul(b.VProj.Forward(x)))))
}

type tinyModel struct {
	module.Base
	Tok    module.Layer
	Blocks *module.Sequential
	Head   module.Layer
}

func newTinyModel(t testing.TB, seed uint64) *tinyModel {
	t.Helper()
	require.NoError(t, torch.ManualSeed(seed))
	tok, err := module.NewEmbedding(vocab, dModel)
	require.NoError(t, err)
	head, err := module.NewLinear(dModel, vocab, true)
	require.NoError(t, err)
	m := &tinyModel{Tok: tok, Blocks: module.NewSequential(newBlock(t, dModel), newBlock(t, dModel)), Head: head}
	module.Child(&m.Base, "tok", &m.Tok)
	module.Child(&m.Base, "blocks", &m.Blocks)
	module.Child(&m.Base, "head", &m.Head)
	t.Cleanup(func() { module.Close(m) })
	return m
}

// Forward returns head(blocks(tok(ids))).
func (m *tinyModel) Forward(ids *torch.Tensor) *torch.Tensor {
	return m.Head.Forward(m.Blocks.Forward(m.Tok.Forward(ids)))
}

func (m *tinyModel) block(i int) *block { return m.Blocks.Layers[i].(*block) }

func tokenIDs(t testing.TB) *torch.Tensor {
	return own(t, torch.FromSlice([]int64{1, 5, 5, 31, 0, 7, 12, 30}, 2, 4))
}

// Parameter counts of tinyModel, by hand.
const (
	linear8x8   = 8*8 + 8                                               // weight + bias = 72
	layerNorm8  = 8 + 8                                                 // weight + bias = 16
	blockParams = 3*linear8x8 + layerNorm8                              // q_proj, v_proj, out, ln = 232
	baseParams  = vocab*dModel + 2*blockParams + (dModel*vocab + vocab) // tok + blocks + head = 1008
	loraLinear8 = 4*8 + 8*4                                             // r=4: A (4×8) + B (8×4) = 64
	loraTok     = 4*vocab + dModel*4                                    // r=4: A (4×32) + B (8×4) = 160
	qvAdapters  = 4 * loraLinear8                                       // 2 blocks × {q_proj, v_proj} = 256
	qvAllParams = baseParams + qvAdapters                               // 1264
)

var qvNames = []string{"blocks.0.q_proj", "blocks.0.v_proj", "blocks.1.q_proj", "blocks.1.v_proj"}

// snapshot returns every parameter's values by name.
func snapshot(t testing.TB, m module.Module) map[string][]float64 {
	out := map[string][]float64{}
	for _, p := range module.NamedParameters(m) {
		out[p.Name] = reftest.Float64s(t, p.Tensor)
	}
	return out
}

func paramNames(m module.Module) []string {
	ns, _ := names(module.NamedParameters(m))
	return ns
}

func trainableNames(m module.Module) []string {
	var out []string
	for _, p := range module.NamedParameters(m) {
		if p.Trainable {
			out = append(out, p.Name)
		}
	}
	return out
}

func TestApplyTargetModules(t *testing.T) {
	m := newTinyModel(t, 1)
	ids := tokenIDs(t)
	before := snapshot(t, m)
	baseNames := paramNames(m)
	yBefore := forward(t, m, ids)
	q0Weight := m.block(0).QProj.(*module.Linear).Weight

	total, trainable := module.Count(m)
	require.Equal(t, int64(baseParams), total)
	require.Equal(t, int64(1008), total)
	require.Equal(t, total, trainable, "a fresh model trains everything")

	adapted, err := lora.Apply(m, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}})
	require.NoError(t, err)
	require.Equal(t, qvNames, adapted)

	// The right layers were swapped, and only those.
	for i := range 2 {
		b := m.block(i)
		for _, l := range []module.Layer{b.QProj, b.VProj} {
			ll, ok := l.(*lora.Linear)
			require.Truef(t, ok, "block %d: %T", i, l)
			require.Equal(t, int64(4), ll.Rank())
			require.Equal(t, 2.0, ll.Scaling(), "alpha 8 / r 4")
		}
		require.IsType(t, &module.Linear{}, b.Out)
		require.IsType(t, &module.LayerNorm{}, b.LN)
	}
	require.IsType(t, &module.Embedding{}, m.Tok)
	require.IsType(t, &module.Linear{}, m.Head)
	require.Same(t, q0Weight, m.block(0).QProj.(*lora.Linear).Weight, "the adapter owns the pre-trained tensor")

	// Names: the old ones in place, lora_a and lora_b after each adapted
	// layer's weight and bias, like PEFT's state dicts.
	wantNames := []string{"tok.weight"}
	for _, b := range []string{"blocks.0", "blocks.1"} {
		for _, proj := range []string{"q_proj", "v_proj"} {
			for _, p := range []string{"weight", "bias", "lora_a", "lora_b"} {
				wantNames = append(wantNames, b+"."+proj+"."+p)
			}
		}
		wantNames = append(wantNames, b+".out.weight", b+".out.bias", b+".ln.weight", b+".ln.bias")
	}
	wantNames = append(wantNames, "head.weight", "head.bias")
	require.Equal(t, wantNames, paramNames(m))
	sd := module.StateDict(m)
	require.Len(t, sd, len(wantNames))
	for _, n := range []string{"blocks.0.q_proj.lora_a", "blocks.0.q_proj.lora_b", "blocks.1.v_proj.lora_a", "blocks.1.v_proj.lora_b"} {
		require.Contains(t, sd, n)
	}
	require.Equal(t, []int64{4, dModel}, sd["blocks.0.q_proj.lora_a"].Shape())
	require.Equal(t, []int64{dModel, 4}, sd["blocks.0.q_proj.lora_b"].Shape())

	// Only the adapters train.
	var wantTrainable []string
	for _, n := range qvNames {
		wantTrainable = append(wantTrainable, n+".lora_a", n+".lora_b")
	}
	require.Equal(t, wantTrainable, trainableNames(m))
	total, trainable = module.Count(m)
	require.Equal(t, int64(qvAllParams), total)
	require.Equal(t, int64(qvAdapters), trainable)
	require.Equal(t, int64(1008+4*(4*8+8*4)), total)
	require.Equal(t, int64(256), trainable)

	// Pre-trained values are kept.
	after := snapshot(t, m)
	for _, n := range baseNames {
		require.Equal(t, before[n], after[n], n)
	}

	// B = 0: the model computes exactly what it did before.
	reftest.RequireSlicesClose(t, "forward at init", forward(t, m, ids), yBefore, 0)

	// Backward reaches the adapters only.
	requireGradsOnlyOn(t, m, ids, wantTrainable)
}

// requireGradsOnlyOn runs a forward and backward pass of m on ids in a
// scope of its own and checks that exactly the parameters named want got a
// gradient; it drops the gradients afterwards.
func requireGradsOnlyOn(t testing.TB, m *tinyModel, ids *torch.Tensor, want []string) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	y := m.Forward(s.Own(ids.Alias()))
	loss := y.Mul(y.RandnLike()).Sum()
	require.NoError(t, loss.Backward())
	var got []string
	for _, p := range module.NamedParameters(m) {
		if g := p.Tensor.Grad(); g != nil {
			got = append(got, p.Name)
			s.Own(g)
		}
		require.NoError(t, p.Tensor.ClearGrad())
	}
	require.Equal(t, want, got, "parameters with a gradient")
}

// adapterParams returns "<layer>.lora_a", "<layer>.lora_b" for each layer.
func adapterParams(layers ...string) []string {
	var out []string
	for _, n := range layers {
		out = append(out, n+".lora_a", n+".lora_b")
	}
	return out
}

// A second Apply freezes what the model has, except the adapters of the
// first, which keep training (PEFT's mark_only_lora_as_trainable). Before,
// the second Apply froze the whole model, the first adapters included.
func TestApplyTwiceKeepsEarlierAdapters(t *testing.T) {
	m := newTinyModel(t, 12)
	ids := tokenIDs(t)

	adapted, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj"}})
	require.NoError(t, err)
	require.Equal(t, []string{"blocks.0.q_proj", "blocks.1.q_proj"}, adapted)
	require.Equal(t, adapterParams("blocks.0.q_proj", "blocks.1.q_proj"), trainableNames(m))
	q0 := m.block(0).QProj.(*lora.Linear)

	adapted, err = lora.Apply(m, lora.Config{R: 2, TargetModules: []string{"v_proj"}})
	require.NoError(t, err)
	require.Equal(t, []string{"blocks.0.v_proj", "blocks.1.v_proj"}, adapted)
	require.Same(t, q0, m.block(0).QProj, "the first adapters stay in place")
	require.Equal(t, adapterParams(qvNames...), trainableNames(m), "q_proj's adapters still train")
	require.True(t, q0.LoraA.RequiresGrad())
	require.True(t, q0.LoraB.RequiresGrad())
	_, trainable := module.Count(m)
	require.Equal(t, int64(2*loraLinear8+2*(2*8+8*2)), trainable, "r=4 on q_proj, r=2 on v_proj")
	requireGradsOnlyOn(t, m, ids, adapterParams(qvNames...))

	// An adapter the user froze stays frozen: Apply leaves adapters'
	// trainability as it finds it.
	require.NoError(t, q0.LoraA.SetRequiresGrad(false))
	require.NoError(t, q0.LoraB.SetRequiresGrad(false))
	_, err = lora.Apply(m, lora.Config{R: 2, TargetModules: []string{"head"}})
	require.NoError(t, err)
	require.Equal(t, adapterParams("blocks.0.v_proj", "blocks.1.q_proj", "blocks.1.v_proj", "head"), trainableNames(m))
}

// A target that is already a LoRA layer is an error naming it, and the
// model is left as it was: golora's layers hold one adapter, where PEFT
// would add a second named one or re-initialise it.
func TestApplyAlreadyAdapted(t *testing.T) {
	m := newTinyModel(t, 13)
	_, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj"}})
	require.NoError(t, err)
	names := paramNames(m)
	trainable := trainableNames(m)
	q0 := m.block(0).QProj

	for _, cfg := range []lora.Config{
		{R: 4, TargetModules: []string{"q_proj"}},
		{R: 8, TargetModules: []string{"v_proj", "blocks.0.q_proj"}},
		{R: 2, TargetRegexp: `.*_proj`},
	} {
		_, err := lora.Apply(m, cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), `"blocks.0.q_proj" already has a LoRA adapter (*lora.Linear)`)
		require.Equal(t, names, paramNames(m))
		require.Equal(t, trainable, trainableNames(m))
		require.Same(t, q0, m.block(0).QProj)
		require.IsType(t, &module.Linear{}, m.block(0).VProj, "nothing adapted on error")
	}

	_, err = lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"tok"}})
	require.NoError(t, err)
	_, err = lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"tok"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), `"tok" already has a LoRA adapter (*lora.Embedding)`)
}

// A nil model, given as a nil interface or a typed nil pointer, is an
// error, not a panic.
func TestApplyNilModel(t *testing.T) {
	cfg := lora.Config{R: 4, TargetModules: []string{"q_proj"}}
	var typed *tinyModel
	for _, m := range []module.Module{nil, typed, (*module.Linear)(nil), (*module.Sequential)(nil)} {
		requireErr(t, func() error {
			adapted, err := lora.Apply(m, cfg)
			require.Nil(t, adapted)
			return err
		}, "lora: Apply: model is nil")
	}
}

// Nil submodules are skipped, never a panic: an unset child field or a nil
// container entry is absent, like PyTorch's None, and a target that
// matches only it matches nothing.
func TestApplyNilSubmodule(t *testing.T) {
	m := newTinyModel(t, 14)
	head := m.Head
	m.Head = nil // an unset child: the model has no head now
	names := paramNames(m)
	requireErr(t, func() error {
		_, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"head"}})
		return err
	}, `target "head" matched no module`)
	require.Equal(t, names, paramNames(m))
	var typedNil *module.Linear
	m.Head = typedNil // a typed nil in an interface field is absent too
	notPanics(t, "Apply with a typed nil child", func() {
		adapted, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj"}})
		require.NoError(t, err)
		require.Equal(t, []string{"blocks.0.q_proj", "blocks.1.q_proj"}, adapted)
	})
	m.Head = head

	// A nil layer inside a Sequential is skipped too.
	m2 := newTinyModel(t, 15)
	m2.Blocks.Append(typedNil)
	notPanics(t, "Apply with a nil layer in a Sequential", func() {
		adapted, err := lora.Apply(m2, lora.Config{R: 4, TargetModules: []string{"q_proj"}})
		require.NoError(t, err)
		require.Equal(t, []string{"blocks.0.q_proj", "blocks.1.q_proj"}, adapted)
		require.Equal(t, adapterParams(adapted...), trainableNames(m2))
	})

	// A Linear without its weight (a zero module.Linear) cannot be adapted.
	m3 := newTinyModel(t, 16)
	defer module.Close(m3.Head)
	m3.Head = &module.Linear{}
	names = paramNames(m3)
	requireErr(t, func() error {
		_, err := lora.Apply(m3, lora.Config{R: 4, TargetModules: []string{"head", "q_proj"}})
		return err
	}, "lora: Apply: head:", "nil tensor")
	require.Equal(t, names, paramNames(m3))
	total, trainable := module.Count(m3)
	require.Equal(t, total, trainable, "trainability restored")
	require.IsType(t, &module.Linear{}, m3.block(0).QProj, "q_proj put back")
}

// A layer shared under two names (tied) gets one adapter, installed under
// both, so the tie holds.
type tied struct {
	module.Base
	Enc, Dec module.Layer
}

func TestApplySharedLayer(t *testing.T) {
	require.NoError(t, torch.ManualSeed(17))
	lin := torch.Must(module.NewLinear(6, 6, true))
	m := &tied{Enc: lin, Dec: lin}
	module.Child(&m.Base, "enc", &m.Enc)
	module.Child(&m.Base, "dec", &m.Dec)
	defer module.Close(m)

	adapted, err := lora.Apply(m, lora.Config{R: 2, TargetModules: []string{"enc", "dec"}})
	require.NoError(t, err)
	require.Equal(t, []string{"enc", "dec"}, adapted)
	require.IsType(t, &lora.Linear{}, m.Enc)
	require.Same(t, m.Enc, m.Dec, "one adapter for the shared layer")
	require.Equal(t, adapterParams("enc"), trainableNames(m), "its parameters are listed once")
}

func TestApplySummary(t *testing.T) {
	m := newTinyModel(t, 2)
	require.Equal(t, "trainable params: 1,008 || all params: 1,008 || trainable%: 100.0000", module.Summary(m))
	_, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj", "v_proj"}})
	require.NoError(t, err)
	s := module.Summary(m)
	require.Regexp(t, regexp.MustCompile(`^trainable params: [0-9,]+ \|\| all params: [0-9,]+ \|\| trainable%: [0-9]+\.[0-9]{4}$`), s)
	// 256 / 1264 = 20.2532%
	require.InDelta(t, 20.2532, 100*float64(qvAdapters)/float64(qvAllParams), 5e-5)
	require.Equal(t, "trainable params: 256 || all params: 1,264 || trainable%: 20.2532", s)
}

// Adapters are created in model order, each drawing its lora_a from the
// default generator right after the previous one.
func TestApplyDrawOrder(t *testing.T) {
	m := newTinyModel(t, 3)
	require.NoError(t, torch.ManualSeed(77))
	_, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj", "v_proj"}})
	require.NoError(t, err)

	require.NoError(t, torch.ManualSeed(77))
	for _, n := range qvNames {
		want := own(t, torch.Empty([]int64{4, dModel}))
		require.NoError(t, want.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU))
		reftest.RequireBitwise(t, n+".lora_a", module.StateDict(m)[n+".lora_a"], want)
	}
}

func TestApplyRegexp(t *testing.T) {
	for _, tc := range []struct {
		cfg  lora.Config
		want []string
	}{
		{lora.Config{R: 2, TargetRegexp: `blocks\.[0-9]+\.(q|v)_proj`}, qvNames},
		{lora.Config{R: 2, TargetRegexp: `.*_proj`}, qvNames},
		{lora.Config{R: 2, TargetRegexp: `blocks\.1\..*_proj`}, []string{"blocks.1.q_proj", "blocks.1.v_proj"}},
		// The regexp must match the whole name: "q_proj" alone matches nothing
		// as a regexp but is a suffix target.
		{lora.Config{R: 2, TargetModules: []string{"head"}, TargetRegexp: `blocks\.0\.out`}, []string{"blocks.0.out", "head"}},
		// PEFT suffix semantics: a dotted target matches a name's tail.
		{lora.Config{R: 2, TargetModules: []string{"0.q_proj", "1.out"}}, []string{"blocks.0.q_proj", "blocks.1.out"}},
	} {
		t.Run(strings.Join(append([]string{tc.cfg.TargetRegexp}, tc.cfg.TargetModules...), "|"), func(t *testing.T) {
			m := newTinyModel(t, 4)
			got, err := lora.Apply(m, tc.cfg)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			var wantTrainable []string
			for _, n := range tc.want {
				wantTrainable = append(wantTrainable, n+".lora_a", n+".lora_b")
			}
			require.Equal(t, wantTrainable, trainableNames(m))
		})
	}
}

// requireUntouched checks that a failed Apply left m as it was: same
// parameter names, all still trainable, no adapter installed.
func requireUntouched(t *testing.T, m *tinyModel, names []string) {
	t.Helper()
	require.Equal(t, names, paramNames(m))
	total, trainable := module.Count(m)
	require.Equal(t, int64(baseParams), total)
	require.Equal(t, total, trainable)
	for _, nm := range module.Modules(m) {
		switch nm.Module.(type) {
		case *lora.Linear, *lora.Embedding:
			require.Failf(t, "adapter left behind", "%s is a %T", nm.Name, nm.Module)
		}
	}
}

func TestApplyNoMatch(t *testing.T) {
	m := newTinyModel(t, 5)
	names := paramNames(m)

	_, err := lora.Apply(m, lora.Config{R: 4, TargetModules: []string{"q_proj", "k_proj"}})
	require.Error(t, err)
	for _, s := range []string{
		`target "k_proj" matched no module`, "the model has:",
		"tok (*module.Embedding)", "blocks (*module.Sequential)", "blocks.0 (*lora_test.block)",
		"blocks.0.q_proj (*module.Linear)", "blocks.1.v_proj (*module.Linear)", "blocks.1.ln (*module.LayerNorm)",
		"head (*module.Linear)",
	} {
		require.Contains(t, err.Error(), s)
	}
	require.NotContains(t, err.Error(), `"q_proj" matched`)
	requireUntouched(t, m, names)

	_, err = lora.Apply(m, lora.Config{R: 4, TargetRegexp: `q_proj`})
	require.Error(t, err)
	require.Contains(t, err.Error(), `regexp "q_proj" matched no module`)
	require.Contains(t, err.Error(), "blocks.0.q_proj (*module.Linear)")
	requireUntouched(t, m, names)
}

func TestApplyWrongType(t *testing.T) {
	m := newTinyModel(t, 6)
	names := paramNames(m)
	for _, tc := range []struct {
		cfg  lora.Config
		text string
	}{
		{lora.Config{R: 4, TargetModules: []string{"ln"}}, `target "blocks.0.ln" is a *module.LayerNorm`},
		{lora.Config{R: 4, TargetModules: []string{"q_proj", "ln"}}, `target "blocks.0.ln" is a *module.LayerNorm`},
		{lora.Config{R: 4, TargetRegexp: `blocks\.1\..*`}, `target "blocks.1.ln" is a *module.LayerNorm`},
		{lora.Config{R: 4, TargetModules: []string{"blocks"}}, `target "blocks" is a *module.Sequential`},
		{lora.Config{R: 4, TargetModules: []string{"1"}}, `target "blocks.1" is a *lora_test.block`},
	} {
		_, err := lora.Apply(m, tc.cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), tc.text)
		require.Contains(t, err.Error(), "only module.Linear and module.Embedding can be adapted")
		require.Contains(t, err.Error(), "adaptable: blocks.0.out, blocks.0.q_proj")
		requireUntouched(t, m, names)
	}
}

func TestApplyConfigErrors(t *testing.T) {
	m := newTinyModel(t, 7)
	names := paramNames(m)
	for _, tc := range []struct {
		cfg  lora.Config
		text string
	}{
		{lora.Config{R: 0, TargetModules: []string{"q_proj"}}, "R must be positive, got 0"},
		{lora.Config{R: -2, TargetModules: []string{"q_proj"}}, "R must be positive, got -2"},
		{lora.Config{R: 4, Alpha: -1, TargetModules: []string{"q_proj"}}, "Alpha must be positive"},
		{lora.Config{R: 4}, "no TargetModules or TargetRegexp"},
		{lora.Config{R: 4, TargetRegexp: `(`}, "TargetRegexp"},
	} {
		_, err := lora.Apply(m, tc.cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), "lora: Apply")
		require.Contains(t, err.Error(), tc.text)
		requireUntouched(t, m, names)
	}
}

// A child declared with a concrete type cannot hold an adapter: Apply
// fails and puts back what it had already replaced.
type rigid struct {
	module.Base
	A module.Layer
	B *module.Linear
}

func TestApplyRollback(t *testing.T) {
	require.NoError(t, torch.ManualSeed(8))
	a := torch.Must(module.NewLinear(4, 4, false))
	b := torch.Must(module.NewLinear(4, 4, false))
	m := &rigid{A: a, B: b}
	module.Child(&m.Base, "a", &m.A)
	module.Child(&m.Base, "b", &m.B)
	defer module.Close(m)

	_, err := lora.Apply(m, lora.Config{R: 2, TargetModules: []string{"a", "b"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "lora: Apply: b:")
	require.Contains(t, err.Error(), "declare the field as module.Layer")
	require.Same(t, a, m.A, "a is put back")
	require.Same(t, b, m.B)
	require.Equal(t, []string{"a.weight", "b.weight"}, paramNames(m))
	require.Equal(t, []string{"a.weight", "b.weight"}, trainableNames(m), "trainability restored")
}

func TestApplyEmbedding(t *testing.T) {
	m := newTinyModel(t, 9)
	ids := tokenIDs(t)
	before := snapshot(t, m)
	yBefore := forward(t, m, ids)

	adapted, err := lora.Apply(m, lora.Config{R: 4, Alpha: 2, TargetModules: []string{"tok"}})
	require.NoError(t, err)
	require.Equal(t, []string{"tok"}, adapted)
	e, ok := m.Tok.(*lora.Embedding)
	require.Truef(t, ok, "tok is a %T", m.Tok)
	require.Equal(t, 0.5, e.Scaling())
	require.Equal(t, int64(vocab), e.NumEmbeddings())
	require.Equal(t, int64(dModel), e.EmbeddingDim())

	require.Equal(t, []string{"tok.lora_a", "tok.lora_b"}, trainableNames(m))
	total, trainable := module.Count(m)
	require.Equal(t, int64(baseParams+loraTok), total)
	require.Equal(t, int64(loraTok), trainable)
	require.Equal(t, int64(4*32+8*4), trainable)
	require.Equal(t, "trainable params: 160 || all params: 1,168 || trainable%: 13.6986", module.Summary(m))

	after := snapshot(t, m)
	for n, v := range before {
		require.Equal(t, v, after[n], n)
	}
	reftest.RequireSlicesClose(t, "forward at init", forward(t, m, ids), yBefore, 0)

	// Both kinds at once.
	m2 := newTinyModel(t, 9)
	adapted, err = lora.Apply(m2, lora.Config{R: 4, TargetModules: []string{"tok", "q_proj", "v_proj"}})
	require.NoError(t, err)
	require.Equal(t, append([]string{"tok"}, qvNames...), adapted)
	_, trainable = module.Count(m2)
	require.Equal(t, int64(loraTok+qvAdapters), trainable)
}

// State dicts after Apply use the adapted names, so a trained adapter can
// be saved and loaded into a freshly adapted model.
func TestApplyStateDictRoundTrip(t *testing.T) {
	cfg := lora.Config{R: 4, TargetModules: []string{"q_proj", "v_proj"}}
	m := newTinyModel(t, 10)
	_, err := lora.Apply(m, cfg)
	require.NoError(t, err)
	for _, n := range qvNames {
		bm := module.StateDict(m)[n+".lora_b"]
		require.NoError(t, bm.Copy_(own(t, bm.RandnLike())).Err())
	}
	ids := tokenIDs(t)
	want := forward(t, m, ids)

	path := filepath.Join(t.TempDir(), "adapted.safetensors")
	require.NoError(t, module.Save(m, path, map[string]string{"r": "4"}))
	sd, meta, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(sd)
	require.Equal(t, "4", meta["r"])
	require.Contains(t, sd, "blocks.0.q_proj.lora_a")
	require.Contains(t, sd, "blocks.1.v_proj.lora_b")
	require.Len(t, sd, len(paramNames(m)))

	m2 := newTinyModel(t, 11) // other weights
	_, err = lora.Apply(m2, cfg)
	require.NoError(t, err)
	require.NoError(t, module.Load(m2, path))
	reftest.RequireSlicesClose(t, "forward after Load", forward(t, m2, ids), want, 0)
	require.Equal(t, trainableNames(m), trainableNames(m2))
}
