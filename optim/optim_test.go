package optim_test

import (
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// param returns a trainable float32 tensor of the given values, closed
// when t ends.
func param(t testing.TB, values []float32, shape ...int64) *torch.Tensor {
	p := torch.FromSlice(values, shape...)
	require.NoError(t, p.Err())
	require.NoError(t, p.SetRequiresGrad(true))
	t.Cleanup(func() { p.Close() })
	return p
}

// setGrad gives p the gradient ∂(Σ p·w)/∂p = w (accumulated like any
// backward).
func setGrad(t testing.TB, p *torch.Tensor, w []float32) {
	s := torch.NewScope()
	defer s.Close()
	wt := s.Own(torch.FromSlice(w, p.Shape()...))
	require.NoError(t, s.Borrow(p).Mul(wt).Sum().Backward())
}

func values(t testing.TB, p *torch.Tensor) []float32 {
	v, err := torch.ToSlice[float32](p)
	require.NoError(t, err)
	return v
}

type ctor func([]*torch.Tensor, ...optim.Option) (optim.Optimizer, error)

var ctors = map[string]ctor{"SGD": optim.NewSGD, "Adam": optim.NewAdam, "AdamW": optim.NewAdamW}

func TestDefaults(t *testing.T) {
	p := param(t, []float32{1, 2}, 2)
	for name, want := range map[string]optim.Hyper{
		"SGD":   {LR: 1e-3},
		"Adam":  {LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		"AdamW": {LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01},
	} {
		o, err := ctors[name]([]*torch.Tensor{p})
		require.NoError(t, err, name)
		g := o.Groups()
		require.Len(t, g, 1)
		assert.Equal(t, want, g[0].Hyper, name)
		assert.Equal(t, module.DefaultGroup, g[0].Name)
		assert.Equal(t, []string{"param.0"}, g[0].Names)
		assert.Equal(t, 1e-3, o.LR())
		require.NoError(t, o.Close())
		require.NoError(t, o.Close()) // idempotent
	}
}

func TestOptionsOfAnotherOptimizer(t *testing.T) {
	p := param(t, []float32{1}, 1)
	_, err := optim.NewSGD([]*torch.Tensor{p}, optim.LR(0.1), optim.Betas(0.9, 0.99))
	errContains(t, err, "NewSGD", "Betas is not an option of SGD")
	_, err = optim.NewAdamW([]*torch.Tensor{p}, optim.Momentum(0.9))
	errContains(t, err, "NewAdamW", "Momentum is not an option of AdamW")
	_, err = optim.NewAdam([]*torch.Tensor{p}, optim.Nesterov(true))
	errContains(t, err, "Nesterov is not an option of Adam")
	_, err = optim.NewSGD([]*torch.Tensor{p}, optim.AMSGrad(true))
	errContains(t, err, "AMSGrad is not an option of SGD")
	// In a group's options too.
	_, err = optim.NewAdamWGroups([]optim.Group{{Name: "g", Params: []*torch.Tensor{p}, Options: []optim.Option{optim.Dampening(0.1)}}})
	errContains(t, err, `group "g"`, "Dampening is not an option of AdamW")
	// Names is not a hyperparameter.
	_, err = optim.NewAdamWGroups([]optim.Group{{Params: []*torch.Tensor{p}, Options: []optim.Option{optim.Names("x")}}})
	errContains(t, err, "Names is not a hyperparameter")
	_, err = optim.NewAdamWGroups([]optim.Group{{Params: []*torch.Tensor{p}}}, optim.Names("x"))
	errContains(t, err, "Names is not a hyperparameter")
	_, err = optim.NewAdam([]*torch.Tensor{p}, optim.Option{})
	errContains(t, err, "zero Option")
}

func TestBadHyperparameters(t *testing.T) {
	p := param(t, []float32{1}, 1)
	ps := []*torch.Tensor{p}
	for _, c := range []struct {
		name string
		ctor ctor
		opts []optim.Option
		want string
	}{
		{"lr NaN", optim.NewSGD, []optim.Option{optim.LR(math.NaN())}, "invalid learning rate NaN"},
		{"lr Inf", optim.NewAdam, []optim.Option{optim.LR(math.Inf(1))}, "invalid learning rate +Inf"},
		{"lr negative", optim.NewAdamW, []optim.Option{optim.LR(-1e-3)}, "invalid learning rate -0.001"},
		{"momentum negative", optim.NewSGD, []optim.Option{optim.Momentum(-0.1)}, "invalid momentum -0.1"},
		{"dampening NaN", optim.NewSGD, []optim.Option{optim.Dampening(math.NaN())}, "invalid dampening NaN"},
		{"weight decay negative", optim.NewSGD, []optim.Option{optim.WeightDecay(-1)}, "invalid weight decay -1"},
		{"weight decay Inf", optim.NewAdamW, []optim.Option{optim.WeightDecay(math.Inf(1))}, "invalid weight decay +Inf"},
		{"beta1 1", optim.NewAdam, []optim.Option{optim.Betas(1, 0.999)}, "invalid beta1 1"},
		{"beta2 negative", optim.NewAdamW, []optim.Option{optim.Betas(0.9, -0.1)}, "invalid beta2 -0.1"},
		{"beta NaN", optim.NewAdamW, []optim.Option{optim.Betas(math.NaN(), 0.9)}, "invalid beta1 NaN"},
		{"eps negative", optim.NewAdam, []optim.Option{optim.Eps(-1e-8)}, "invalid eps -1e-08"},
		{"nesterov without momentum", optim.NewSGD, []optim.Option{optim.Nesterov(true)}, "Nesterov momentum requires a momentum > 0 and zero dampening"},
		{"nesterov with dampening", optim.NewSGD, []optim.Option{optim.Nesterov(true), optim.Momentum(0.9), optim.Dampening(0.1)}, "Nesterov momentum requires"},
	} {
		_, err := c.ctor(ps, c.opts...)
		errContains(t, err, c.want)
	}
	// Valid edge values: lr 0, beta 0, eps 0.
	o, err := optim.NewAdam(ps, optim.LR(0), optim.Betas(0, 0), optim.Eps(0))
	require.NoError(t, err)
	o.Close()
}

func TestBadParameters(t *testing.T) {
	a := param(t, []float32{1, 2}, 2)
	b := param(t, []float32{3}, 1)
	frozen := torch.FromSlice([]float32{1})
	defer frozen.Close()
	closed := param(t, []float32{1}, 1)
	closed.Close()
	failed := torch.FromSlice([]float32{1, 2}, 3) // shape mismatch: a failed tensor
	nonLeaf := a.MulScalar(2)
	defer nonLeaf.Close()
	intParam := torch.FromSlice([]int64{1, 2})
	defer intParam.Close()

	_, err := optim.NewAdamW([]*torch.Tensor{a, frozen}, optim.Names("a", "frozen"))
	errContains(t, err, `parameter "frozen"`, "frozen (requires_grad is false)")
	_, err = optim.NewAdamW([]*torch.Tensor{a, b, a})
	errContains(t, err, `parameter "param.2"`, `same tensor as parameter "param.0"`)
	alias := a.Alias()
	defer alias.Close()
	_, err = optim.NewSGD([]*torch.Tensor{a, alias}, optim.Names("a", "alias"))
	errContains(t, err, `parameter "alias"`, "given twice")
	_, err = optim.NewAdam([]*torch.Tensor{a, nil})
	errContains(t, err, `parameter "param.1"`, "is nil")
	_, err = optim.NewAdam([]*torch.Tensor{closed})
	errContains(t, err, `parameter "param.0"`, "closed")
	_, err = optim.NewAdam([]*torch.Tensor{failed})
	errContains(t, err, "failed tensor", "shape")
	var te *torch.Error
	require.True(t, errors.As(err, &te), "the torch error is wrapped")
	_, err = optim.NewAdam([]*torch.Tensor{nonLeaf})
	errContains(t, err, "non-leaf")
	_, err = optim.NewAdam(nil)
	errContains(t, err, "no parameters")
	_, err = optim.NewAdam([]*torch.Tensor{a, b}, optim.Names("x"))
	errContains(t, err, "2 parameters but 1 names")
	_, err = optim.NewAdam([]*torch.Tensor{a, b}, optim.Names("x", "x"))
	errContains(t, err, `parameter "x"`, "names must be distinct")
	_, err = optim.NewAdam([]*torch.Tensor{a}, optim.Names(""))
	errContains(t, err, "empty name")
	_, err = optim.NewAdamWGroups(nil)
	errContains(t, err, "no parameter groups")
	_, err = optim.NewAdamWGroups([]optim.Group{{Name: "g", Params: []*torch.Tensor{a}}, {Name: "g", Params: []*torch.Tensor{b}}})
	errContains(t, err, `both named "g"`)
	_, err = optim.NewAdamWGroups([]optim.Group{{Name: "x", Params: []*torch.Tensor{a}}, {Name: "y", Params: []*torch.Tensor{a}}})
	errContains(t, err, `group "y"`, "same tensor")
	// An empty group is allowed, as module.Groups returns them.
	o, err := optim.NewAdamWGroups([]optim.Group{{Name: "empty"}, {Params: []*torch.Tensor{a}}})
	require.NoError(t, err)
	assert.Equal(t, "group.1", o.Groups()[1].Name)
	assert.Empty(t, o.Groups()[0].Names)
	o.Close()
}

// TestLazyStateAndSkips: state is made on the first step that finds a
// gradient, only for parameters with one; a parameter without gradient is
// not updated (also not by AdamW's weight decay).
func TestLazyStateAndSkips(t *testing.T) {
	a := param(t, []float32{1, 2, 3, 4}, 2, 2)
	b := param(t, []float32{5, 6}, 2)
	o, err := optim.NewAdamW([]*torch.Tensor{a, b}, optim.Names("a", "b"), optim.LR(0.1))
	require.NoError(t, err)
	defer o.Close()
	assert.Zero(t, o.StateBytes())
	require.NoError(t, o.Step()) // no gradients at all: nothing happens
	assert.Zero(t, o.StateBytes())
	assert.Equal(t, []float32{1, 2, 3, 4}, values(t, a))

	setGrad(t, a, []float32{1, 1, 1, 1})
	require.NoError(t, o.Step())
	// exp_avg and exp_avg_sq of a (2·16 bytes) and its step (4 bytes)
	assert.Equal(t, int64(2*16+4), o.StateBytes())
	assert.Equal(t, []float32{5, 6}, values(t, b))
	assert.NotEqual(t, []float32{1, 2, 3, 4}, values(t, a))
	ts, meta, err := o.StateDict()
	require.NoError(t, err)
	defer torch.CloseMap(ts)
	assert.ElementsMatch(t, []string{"state.a.step", "state.a.exp_avg", "state.a.exp_avg_sq"}, keys(ts))
	assert.Equal(t, "AdamW", meta[optim.MetaAlgorithm])
	step, err := ts["state.a.step"].Item()
	require.NoError(t, err)
	assert.Equal(t, 1.0, step)
	assert.Equal(t, torch.Float32, ts["state.a.step"].DType())

	// ZeroGrad drops the gradients in one call.
	require.NoError(t, o.ZeroGrad())
	assert.Nil(t, a.Grad())
	assert.Nil(t, b.Grad())
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFrozenWeightsGetNoState: over a LoRA layer, FromModule takes A and
// B only; the frozen weight never gets state.
func TestFrozenWeightsGetNoState(t *testing.T) {
	l, err := lora.NewLinear(16, 8, true, 2)
	require.NoError(t, err)
	defer module.Close(l)
	g := optim.FromModule(l)
	assert.Equal(t, []string{"lora_a", "lora_b"}, g.Names)
	o, err := optim.NewAdamWGroups([]optim.Group{g})
	require.NoError(t, err)
	defer o.Close()
	x := torch.Ones([]int64{4, 16})
	defer x.Close()
	s := torch.NewScope()
	require.NoError(t, l.Forward(s.Own(x.Alias())).Sum().Backward())
	s.Close()
	require.NoError(t, o.Step())
	// A (2×16) and B (8×2), two moments each, float32, plus two steps.
	assert.Equal(t, int64(2*4*(2*16+8*2)+2*4), o.StateBytes())
}

func TestSetLR(t *testing.T) {
	a := param(t, []float32{1}, 1)
	b := param(t, []float32{1}, 1)
	o, err := optim.NewSGDGroups([]optim.Group{
		{Name: "a", Params: []*torch.Tensor{a}, Options: []optim.Option{optim.LR(0.5)}},
		{Name: "b", Params: []*torch.Tensor{b}},
	}, optim.LR(0.1))
	require.NoError(t, err)
	defer o.Close()
	assert.Equal(t, 0.5, o.LR())
	assert.Equal(t, 0.1, o.Groups()[1].Hyper.LR)
	require.NoError(t, o.SetGroupLR(1, 0.25))
	assert.Equal(t, 0.25, o.Groups()[1].Hyper.LR)
	errContains(t, o.SetGroupLR(2, 0.1), "group index 2 out of range")
	errContains(t, o.SetGroupLR(0, math.NaN()), `group "a"`, "invalid learning rate NaN")
	assert.Equal(t, 0.5, o.LR())

	setGrad(t, a, []float32{1})
	setGrad(t, b, []float32{1})
	require.NoError(t, o.Step())
	assert.Equal(t, []float32{0.5}, values(t, a))
	assert.Equal(t, []float32{0.75}, values(t, b))

	// An invalid lr from SetLR is kept and fails the next Step, which
	// changes nothing.
	o.SetLR(math.Inf(1))
	assert.True(t, math.IsInf(o.LR(), 1))
	errContains(t, o.Step(), "SGD.Step", `group "a"`, "invalid learning rate +Inf")
	assert.Equal(t, []float32{0.5}, values(t, a))
	o.SetLR(1)
	require.NoError(t, o.Step())
	assert.Equal(t, []float32{-0.5}, values(t, a))
	assert.Equal(t, []float32{-0.25}, values(t, b))
}

// TestStepChecksBeforeUpdating: a parameter whose gradient or state no
// longer fits it fails the step, naming it, before any parameter changes.
func TestStepChecksBeforeUpdating(t *testing.T) {
	a := param(t, []float32{1, 2}, 2)
	b := param(t, []float32{3, 4}, 2)
	o, err := optim.NewAdam([]*torch.Tensor{a, b}, optim.Names("a", "b"))
	require.NoError(t, err)
	defer o.Close()
	setGrad(t, a, []float32{1, 1})
	setGrad(t, b, []float32{1, 1})
	require.NoError(t, o.Step())
	av := values(t, a)
	// b changes shape (set_data): its gradient and state no longer fit.
	nb := torch.FromSlice([]float32{1, 2, 3}, 3)
	defer nb.Close()
	require.NoError(t, b.SetData(nb))
	err = o.Step()
	errContains(t, err, "Adam.Step", `parameter "b" (group "default")`, "gradient is float32 [2]")
	require.NoError(t, o.ZeroGrad())
	setGrad(t, b, []float32{1, 1, 1})
	setGrad(t, a, []float32{1, 1})
	err = o.Step()
	errContains(t, err, `parameter "b"`, "state exp_avg is float32 [2]", "float32 [3]")
	assert.Equal(t, av, values(t, a), "a changed although the step failed")

	// A closed parameter is named.
	b.Close()
	errContains(t, o.Step(), `parameter "b"`, "closed")
	errContains(t, o.ZeroGrad(), `parameter "b"`, "closed")

	o.Close()
	errContains(t, o.Step(), "use of closed optimizer")
	errContains(t, o.ZeroGrad(), "use of closed optimizer")
	_, _, err = o.StateDict()
	errContains(t, err, "use of closed optimizer")
	errContains(t, o.LoadStateDict(nil, nil), "use of closed optimizer")
	assert.Zero(t, o.StateBytes())
}

// trainAdamW runs k AdamW steps with amsgrad over two parameters and
// returns the optimizer.
func trainAdamW(t *testing.T, a, b *torch.Tensor, steps int) optim.Optimizer {
	o, err := optim.NewAdamWGroups([]optim.Group{
		{Name: "g1", Params: []*torch.Tensor{a}, Names: []string{"a"}},
		{Name: "g2", Params: []*torch.Tensor{b}, Names: []string{"b"}, Options: []optim.Option{optim.WeightDecay(0)}},
	}, optim.AMSGrad(true), optim.LR(0.1))
	require.NoError(t, err)
	t.Cleanup(func() { o.Close() })
	for i := 0; i < steps; i++ {
		require.NoError(t, o.ZeroGrad())
		setGrad(t, a, []float32{1, -2, 3})
		setGrad(t, b, []float32{0.5})
		require.NoError(t, o.Step())
	}
	return o
}

func TestLoadStateDictRejects(t *testing.T) {
	a := param(t, []float32{1, 2, 3}, 3)
	b := param(t, []float32{4}, 1)
	src := trainAdamW(t, a, b, 3)
	ts, meta, err := src.StateDict()
	require.NoError(t, err)
	defer torch.CloseMap(ts)
	assert.Len(t, ts, 8)

	a2 := param(t, []float32{1, 2, 3}, 3)
	b2 := param(t, []float32{4}, 1)
	dst := trainAdamW(t, a2, b2, 1)
	before, beforeMeta, err := dst.StateDict()
	require.NoError(t, err)
	defer torch.CloseMap(before)
	snapshot := func(m map[string]*torch.Tensor) map[string][]float64 {
		out := map[string][]float64{}
		for k, v := range m {
			out[k] = reftest.Float64s(t, v)
		}
		return out
	}
	want := snapshot(before)
	unchanged := func() {
		t.Helper()
		now, nowMeta, err := dst.StateDict()
		require.NoError(t, err)
		defer torch.CloseMap(now)
		assert.Equal(t, want, snapshot(now))
		assert.Equal(t, beforeMeta, nowMeta)
	}
	with := func(edit func(ts map[string]*torch.Tensor, meta map[string]string)) (map[string]*torch.Tensor, map[string]string) {
		t2 := map[string]*torch.Tensor{}
		for k, v := range ts {
			t2[k] = v
		}
		m2 := map[string]string{}
		for k, v := range meta {
			m2[k] = v
		}
		edit(t2, m2)
		return t2, m2
	}

	wrongShape := torch.Zeros([]int64{2})
	defer wrongShape.Close()
	extra := torch.Zeros([]int64{1})
	defer extra.Close()
	for _, c := range []struct {
		name  string
		edit  func(ts map[string]*torch.Tensor, meta map[string]string)
		parts []string
	}{
		{"missing", func(ts map[string]*torch.Tensor, _ map[string]string) { delete(ts, "state.a.exp_avg_sq") },
			[]string{"nothing loaded", "missing keys: state.a.exp_avg_sq"}},
		{"missing amsgrad", func(ts map[string]*torch.Tensor, _ map[string]string) { delete(ts, "state.b.max_exp_avg_sq") },
			[]string{"missing keys: state.b.max_exp_avg_sq"}},
		{"unexpected", func(ts map[string]*torch.Tensor, _ map[string]string) {
			ts["state.c.exp_avg"] = extra
			ts["model.weight"] = extra
		}, []string{"unexpected keys: model.weight, state.c.exp_avg"}},
		{"shape", func(ts map[string]*torch.Tensor, _ map[string]string) { ts["state.a.exp_avg"] = wrongShape },
			[]string{"mismatched: state.a.exp_avg: shape [2], the parameter's is [3]"}},
		{"step shape", func(ts map[string]*torch.Tensor, _ map[string]string) { ts["state.b.step"] = wrongShape },
			[]string{"state.b.step: shape [2], want a scalar"}},
		{"algorithm", func(_ map[string]*torch.Tensor, m map[string]string) { m[optim.MetaAlgorithm] = "Adam" },
			[]string{`the state is of "Adam", this optimizer is AdamW`}},
		{"format", func(_ map[string]*torch.Tensor, m map[string]string) { m[optim.MetaFormat] = "7" },
			[]string{`state format "7"`}},
		{"no metadata", func(_ map[string]*torch.Tensor, m map[string]string) { delete(m, optim.MetaFormat) },
			[]string{"not an optimizer state"}},
		{"groups", func(_ map[string]*torch.Tensor, m map[string]string) {
			m[optim.MetaGroups] = `[{"name":"g1","params":["a","b"],"lr":0.1,"betas":[0.9,0.999],"eps":1e-8,"weight_decay":0.01,"amsgrad":true,"maximize":false}]`
		}, []string{"the state has 1 parameter groups, this optimizer 2"}},
		{"names", func(_ map[string]*torch.Tensor, m map[string]string) {
			m[optim.MetaGroups] = mustJSON([]map[string]any{
				{"name": "g1", "params": []string{"x"}, "lr": 0.1, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.01, "amsgrad": true, "maximize": false},
				{"name": "g2", "params": []string{"b"}, "lr": 0.1, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": true, "maximize": false},
			})
		}, []string{`group "g1": the state's parameters [x] are not this optimizer's [a]`}},
		{"hyperparameters", func(_ map[string]*torch.Tensor, m map[string]string) {
			m[optim.MetaGroups] = mustJSON([]map[string]any{
				{"name": "g1", "params": []string{"a"}, "lr": -1, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.01, "amsgrad": true, "maximize": false},
				{"name": "g2", "params": []string{"b"}, "lr": 0.1, "momentum": 0.9, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": true, "maximize": false},
			})
		}, []string{`group "g1": invalid learning rate -1`}},
		{"sgd keys", func(_ map[string]*torch.Tensor, m map[string]string) {
			m[optim.MetaGroups] = mustJSON([]map[string]any{
				{"name": "g1", "params": []string{"a"}, "lr": 0.1, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.01, "amsgrad": true, "maximize": false},
				{"name": "g2", "params": []string{"b"}, "lr": 0.1, "momentum": 0.9, "betas": []float64{0.9, 0.999}, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": true, "maximize": false},
			})
		}, []string{`group "g2": keys that AdamW does not have: momentum`}},
		{"bad json", func(_ map[string]*torch.Tensor, m map[string]string) {
			m[optim.MetaGroups] = `[{"name":"g1","bogus":1}]`
		},
			[]string{`metadata "optim.param_groups"`, "bogus"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts2, m2 := with(c.edit)
			err := dst.LoadStateDict(ts2, m2)
			errContains(t, err, append([]string{"AdamW.LoadStateDict"}, c.parts...)...)
			unchanged()
		})
	}
	// The real thing loads, and then equals the source.
	require.NoError(t, dst.LoadStateDict(ts, meta))
	after, afterMeta, err := dst.StateDict()
	require.NoError(t, err)
	defer torch.CloseMap(after)
	assert.Equal(t, snapshot(ts), snapshot(after))
	assert.Equal(t, meta, afterMeta)
	// The loaded state is a copy: a step of the source does not change it.
	require.NoError(t, src.Step())
	assert.Equal(t, snapshot(after), func() map[string][]float64 {
		now, _, err := dst.StateDict()
		require.NoError(t, err)
		defer torch.CloseMap(now)
		return snapshot(now)
	}())
}

// TestSaveLoadFile: Save writes safetensors with the documented layout,
// Load reads it (into float64 parameters too: the state takes the
// parameters' dtype), and a file without optimizer metadata is refused.
func TestSaveLoadFile(t *testing.T) {
	a := param(t, []float32{1, 2, 3}, 3)
	b := param(t, []float32{4}, 1)
	o := trainAdamW(t, a, b, 2)
	path := filepath.Join(t.TempDir(), "opt.safetensors")
	require.NoError(t, o.Save(path))
	ts, meta, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(ts)
	assert.ElementsMatch(t, []string{
		"state.a.step", "state.a.exp_avg", "state.a.exp_avg_sq", "state.a.max_exp_avg_sq",
		"state.b.step", "state.b.exp_avg", "state.b.exp_avg_sq", "state.b.max_exp_avg_sq",
	}, keys(ts))
	assert.Equal(t, "1", meta[optim.MetaFormat])
	assert.JSONEq(t, `[
		{"name":"g1","params":["a"],"lr":0.1,"betas":[0.9,0.999],"eps":1e-8,"weight_decay":0.01,"amsgrad":true,"maximize":false},
		{"name":"g2","params":["b"],"lr":0.1,"betas":[0.9,0.999],"eps":1e-8,"weight_decay":0,"amsgrad":true,"maximize":false}]`,
		meta[optim.MetaGroups])

	a64 := torch.FromSlice([]float64{1, 2, 3})
	b64 := torch.FromSlice([]float64{4})
	defer torch.CloseAll(a64, b64)
	require.NoError(t, a64.SetRequiresGrad(true))
	require.NoError(t, b64.SetRequiresGrad(true))
	o64, err := optim.NewAdamWGroups([]optim.Group{
		{Name: "g1", Params: []*torch.Tensor{a64}, Names: []string{"a"}},
		{Name: "g2", Params: []*torch.Tensor{b64}, Names: []string{"b"}},
	}, optim.AMSGrad(true))
	require.NoError(t, err)
	defer o64.Close()
	require.NoError(t, o64.Load(path))
	assert.Equal(t, 0.0, o64.Groups()[1].Hyper.WeightDecay, "hyperparameters come with the state")
	got, _, err := o64.StateDict()
	require.NoError(t, err)
	defer torch.CloseMap(got)
	assert.Equal(t, torch.Float64, got["state.a.exp_avg"].DType())
	assert.Equal(t, torch.Float32, got["state.a.step"].DType())
	assert.Equal(t, reftest.Float64s(t, ts["state.a.exp_avg"]), reftest.Float64s(t, got["state.a.exp_avg"]))

	// A model file is not an optimizer state.
	other := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, torch.SaveSafetensors(other, map[string]*torch.Tensor{"w": a}, nil))
	errContains(t, o.Load(other), "not an optimizer state")
	errContains(t, o.Load(filepath.Join(t.TempDir(), "missing.safetensors")), "AdamW.Load")
	// An SGD optimizer refuses AdamW state.
	s, err := optim.NewSGD([]*torch.Tensor{a, b}, optim.Names("a", "b"))
	require.NoError(t, err)
	defer s.Close()
	errContains(t, s.Load(path), `the state is of "AdamW", this optimizer is SGD`)
}

func TestClipErrors(t *testing.T) {
	a := param(t, []float32{1, 2}, 2)
	_, err := optim.ClipGradNorm([]*torch.Tensor{a}, math.NaN(), 2)
	errContains(t, err, "invalid max norm NaN")
	_, err = optim.ClipGradNorm([]*torch.Tensor{a}, -1, 2)
	errContains(t, err, "invalid max norm -1")
	_, err = optim.ClipGradNorm([]*torch.Tensor{a}, 1, 0)
	errContains(t, err, "invalid norm type 0")
	_, err = optim.ClipGradNorm([]*torch.Tensor{a, nil}, 1, 2)
	errContains(t, err, "parameter 1 is nil")
	errContains(t, optim.ClipGradValue([]*torch.Tensor{a}, -0.5), "invalid clip value -0.5")
	closed := param(t, []float32{1}, 1)
	closed.Close()
	errContains(t, optim.ClipGradValue([]*torch.Tensor{closed}, 1), "parameter 0 is closed")

	// No gradient: norm 0, nothing to do.
	n, err := optim.ClipGradNorm([]*torch.Tensor{a}, 1, 2)
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = optim.ClipGradNorm(nil, 1, 2)
	require.NoError(t, err)
	assert.Zero(t, n)

	// 3-4-5: norm 5, clipped to 1 (times 1/(5+1e-6)); value clip.
	setGrad(t, a, []float32{3, 4})
	n, err = optim.ClipGradNorm([]*torch.Tensor{a}, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, 5.0, n)
	g := a.Grad()
	defer g.Close()
	assert.InDeltaSlice(t, []float32{0.6, 0.8}, values(t, g), 1e-6)
	require.NoError(t, optim.ClipGradValue([]*torch.Tensor{a}, 0.7))
	assert.InDeltaSlice(t, []float32{0.6, 0.7}, values(t, g), 1e-6)
	n, err = optim.ClipGradNorm([]*torch.Tensor{a}, 1, math.Inf(1))
	require.NoError(t, err)
	assert.InDelta(t, 0.7, n, 1e-6)
}

// TestConcurrentUse: Step, ZeroGrad, SetLR, Groups and StateDict from
// several goroutines serialise (run under -race).
func TestConcurrentUse(t *testing.T) {
	a := param(t, []float32{1, 2, 3}, 3)
	o, err := optim.NewAdam([]*torch.Tensor{a})
	require.NoError(t, err)
	defer o.Close()
	setGrad(t, a, []float32{1, 1, 1})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				switch (g + i) % 4 {
				case 0:
					assert.NoError(t, o.Step())
				case 1:
					o.SetLR(1e-3 * float64(i+1))
				case 2:
					_ = o.Groups()
					_ = o.StateBytes()
				case 3:
					ts, _, err := o.StateDict()
					assert.NoError(t, err)
					torch.CloseMap(ts)
				}
			}
		}(g)
	}
	wg.Wait()
}
