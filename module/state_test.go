package module_test

// Tests of state dicts: Save/Load round trips, LoadStateDict's errors,
// atomicity and aliasing, key maps and transforms.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.safetensors")
	a := newNet(t, 1)
	require.NoError(t, module.Freeze(a.Embed))
	require.NoError(t, module.Save(a, path, map[string]string{"epoch": "3", "base": "tiny"}))

	b := newNet(t, 2)
	sa, sb := snapshot(t, a), snapshot(t, b)
	for _, name := range netOrder {
		if name == "norm.weight" || name == "norm.bias" {
			continue // ones and zeros in both
		}
		require.NotEqual(t, sa[name], sb[name], "%s: different seeds give different values", name)
	}
	live := torch.LiveTensors()
	require.NoError(t, module.Load(b, path))
	require.Equal(t, live, torch.LiveTensors(), "Load frees what it read")
	require.Equal(t, sa, snapshot(t, b), "Load restores every value bit for bit")
	for _, p := range module.NamedParameters(b) {
		require.True(t, p.Trainable, "%s: Load keeps b's trainability, not a's", p.Name)
	}

	// The file is an ordinary safetensors file with the metadata given.
	sd, meta, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(sd)
	require.Equal(t, map[string]string{"epoch": "3", "base": "tiny"}, meta)
	require.Equal(t, sortedKeys(module.StateDict(a)), sortedKeys(sd))

	// Same parameters, same outputs.
	s := newScope(t)
	ids := s.Own(torch.FromSlice([]int64{3, 1, 4, 1, 5}))
	reftest.RequireBitwise(t, "forward", b.Forward(ids).Must(), a.Forward(ids).Must())
}

// scalarModel has a 0-d parameter.
type scalarModel struct {
	module.Base
	Temp *torch.Tensor
}

func TestSaveLoadScalarParameter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scalar.safetensors")
	newScalar := func(v float64) *scalarModel {
		m := &scalarModel{Temp: torch.Full(nil, v).Must()}
		require.Empty(t, m.Temp.Shape())
		m.Param("temp", &m.Temp)
		return m
	}
	a, b := newScalar(0.25), newScalar(7)
	defer module.Close(a)
	defer module.Close(b)
	require.NoError(t, module.Save(a, path, nil))
	require.NoError(t, module.Load(b, path))
	require.Equal(t, 0.25, torch.Must(b.Temp.Item()))
}

func TestLoadStateDictConvertsDType(t *testing.T) {
	a := newNet(t, 1, torch.WithDType(torch.Float64))
	b := newNet(t, 2)
	s := newScope(t)
	require.NoError(t, module.LoadStateDict(b, module.StateDict(a)))
	for _, p := range module.NamedParameters(b) {
		require.Equal(t, torch.Float32, p.Tensor.DType(), "%s keeps the model's dtype", p.Name)
		want := own(s, module.StateDict(a)[p.Name]).To(torch.Float32)
		reftest.RequireBitwise(t, p.Name, p.Tensor, want)
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	other := newNet(t, 9)
	s := newScope(t)
	wide := s.Own(torch.Ones([]int64{5}))
	extra := s.Own(torch.Zeros([]int64{2, 2}))
	transposed := s.Own(torch.Zeros([]int64{4, 3}))
	ints := s.Own(torch.Zeros([]int64{3}, torch.WithDType(torch.Int64)))
	closed := torch.Zeros([]int64{3}).Must()
	closed.Close()

	// sd returns other's state dict (its own tensors) with edits applied.
	sd := func(edit func(map[string]*torch.Tensor)) map[string]*torch.Tensor {
		m := map[string]*torch.Tensor{}
		for k, v := range module.StateDict(other) {
			m[k] = v
		}
		edit(m)
		return m
	}

	for _, c := range []struct {
		name                          string
		edit                          func(map[string]*torch.Tensor)
		missing, unexpected, misshape []string
		mistyped, invalid             []string
	}{
		{
			name:    "missing",
			edit:    func(m map[string]*torch.Tensor) { delete(m, "head.bias"); delete(m, "pos") },
			missing: []string{"pos", "head.bias"},
		},
		{
			name:       "unexpected",
			edit:       func(m map[string]*torch.Tensor) { m["extra.weight"] = extra; m["blocks.2.bias"] = extra },
			unexpected: []string{"blocks.2.bias", "extra.weight"},
		},
		{
			name:     "misshaped",
			edit:     func(m map[string]*torch.Tensor) { m["norm.weight"] = wide; m["head.weight"] = transposed },
			misshape: []string{"norm.weight: model [4], state dict [5]", "head.weight: model [3 4], state dict [4 3]"},
		},
		{
			name:     "mistyped",
			edit:     func(m map[string]*torch.Tensor) { m["head.bias"] = ints },
			mistyped: []string{"head.bias: model float32, state dict int64"},
		},
		{
			name: "invalid",
			edit: func(m map[string]*torch.Tensor) {
				m["pos"] = nil
				m["head.bias"] = closed
				m["norm.bias"] = torch.FromSlice([]float32{1}, 4) // a failed tensor
			},
			invalid: []string{"pos: nil tensor", "norm.bias: torch: FromSlice", "head.bias: closed tensor"},
		},
		{
			name: "all three",
			edit: func(m map[string]*torch.Tensor) {
				delete(m, "embed.weight")
				m["extra.weight"] = extra
				m["norm.weight"] = wide
			},
			missing:    []string{"embed.weight"},
			unexpected: []string{"extra.weight"},
			misshape:   []string{"norm.weight: model [4], state dict [5]"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNet(t, 1)
			before := snapshot(t, n)
			err := module.LoadStateDict(n, sd(c.edit))
			require.Error(t, err)
			var se *module.StateDictError
			require.True(t, errors.As(err, &se), "%T is not a *module.StateDictError", err)
			require.Equal(t, c.missing, se.Missing, "missing")
			require.Equal(t, c.unexpected, se.Unexpected, "unexpected")
			require.Equal(t, c.misshape, se.Misshaped, "misshaped")
			require.Equal(t, c.mistyped, se.Mistyped, "mistyped")
			require.Len(t, se.Invalid, len(c.invalid))
			for i, want := range c.invalid {
				require.True(t, strings.HasPrefix(se.Invalid[i], want), "%q does not start with %q", se.Invalid[i], want)
			}
			for _, k := range append(append(append([]string{}, c.missing...), c.unexpected...), c.misshape...) {
				require.Contains(t, err.Error(), k)
			}
			require.Equal(t, before, snapshot(t, n), "nothing is copied when LoadStateDict fails")

			// Partial loading forgives only missing keys.
			err = module.LoadStateDictPartial(n, sd(c.edit))
			if len(c.unexpected)+len(c.misshape)+len(c.mistyped)+len(c.invalid) == 0 {
				require.NoError(t, err)
				return
			}
			require.True(t, errors.As(err, &se))
			require.Empty(t, se.Missing)
			require.Equal(t, c.unexpected, se.Unexpected)
			require.Equal(t, c.misshape, se.Misshaped)
			require.Equal(t, before, snapshot(t, n))
		})
	}

	// The message names every kind.
	n := newNet(t, 1)
	err := module.LoadStateDict(n, sd(func(m map[string]*torch.Tensor) {
		delete(m, "pos")
		m["extra.weight"] = extra
		m["norm.bias"] = wide
		m["head.bias"] = ints
	}))
	require.EqualError(t, err, "module: LoadStateDict: missing keys: pos; unexpected keys: extra.weight; "+
		"shape mismatch: norm.bias: model [4], state dict [5]; dtype mismatch: head.bias: model float32, state dict int64")
}

func TestLoadStateDictPartial(t *testing.T) {
	other := newNet(t, 9)
	n := newNet(t, 1)
	before := snapshot(t, n)
	want := snapshot(t, other)

	sd := map[string]*torch.Tensor{}
	for k, v := range module.StateDict(other) {
		if k == "head.weight" || k == "head.bias" || k == "pos" {
			sd[k] = v
		}
	}
	require.NoError(t, module.LoadStateDictPartial(n, sd))
	got := snapshot(t, n)
	for _, name := range netOrder {
		if _, ok := sd[name]; ok {
			require.Equal(t, want[name], got[name], "%s is loaded", name)
		} else {
			require.Equal(t, before[name], got[name], "%s is left alone", name)
		}
	}
	// The tensors are copied, not shared.
	require.NotSame(t, other.Pos, n.Pos)

	// The strict form refuses the same dict.
	err := module.LoadStateDict(n, sd)
	var se *module.StateDictError
	require.True(t, errors.As(err, &se))
	require.Len(t, se.Missing, len(netOrder)-3)
	require.Empty(t, se.Unexpected)
	require.Empty(t, se.Misshaped)

	// An empty dict: a no-op for Partial.
	require.NoError(t, module.LoadStateDictPartial(n, map[string]*torch.Tensor{}))
	require.Equal(t, got, snapshot(t, n))
}

// A state dict made of the module's own tensors with two same-shaped
// weights swapped loads as if copied first: the copies must not read what
// an earlier copy wrote (the old LoadStateDict copied in place and left
// both weights equal). Views of the module's tensors are staged too.
func TestLoadStateDictAliasing(t *testing.T) {
	swap := func() (*module.Sequential, *module.Linear, *module.Linear) {
		a := torch.Must(module.NewLinear(3, 3, true))
		b := torch.Must(module.NewLinear(3, 3, true))
		return module.NewSequential(a, b), a, b
	}

	// The module's own tensors, swapped.
	seq, a, b := swap()
	defer module.Close(seq)
	wa, wb := reftest.Bits(t, a.Weight), reftest.Bits(t, b.Weight)
	ba, bb := reftest.Bits(t, a.Bias), reftest.Bits(t, b.Bias)
	sd := module.StateDict(seq)
	sd["0.weight"], sd["1.weight"] = sd["1.weight"], sd["0.weight"]
	sd["0.bias"], sd["1.bias"] = sd["1.bias"], sd["0.bias"]
	require.NoError(t, module.LoadStateDict(seq, sd))
	require.Equal(t, wb, reftest.Bits(t, a.Weight))
	require.Equal(t, wa, reftest.Bits(t, b.Weight))
	require.Equal(t, bb, reftest.Bits(t, a.Bias))
	require.Equal(t, ba, reftest.Bits(t, b.Bias))

	// Views: each weight loaded from the other's transpose (a view of the
	// same memory), and a bias from the other's handle alias.
	seq2, c, d := swap()
	defer module.Close(seq2)
	s := newScope(t)
	ct, dt := s.Own(c.Weight.Detach()).T(), s.Own(d.Weight.Detach()).T()
	wantC, wantD := reftest.Bits(t, dt), reftest.Bits(t, ct)
	cb := reftest.Bits(t, c.Bias)
	views := module.StateDict(seq2)
	views["0.weight"], views["1.weight"] = dt, ct
	views["1.bias"] = own(s, c.Bias)
	require.NoError(t, module.LoadStateDict(seq2, views))
	require.Equal(t, wantC, reftest.Bits(t, c.Weight))
	require.Equal(t, wantD, reftest.Bits(t, d.Weight))
	require.Equal(t, cb, reftest.Bits(t, d.Bias))
	require.True(t, c.Weight.RequiresGrad(), "loading keeps trainability")
	require.Nil(t, c.Weight.Grad(), "the copies record no autograd")
}

// A failure found late (the last key in copy order has the wrong dtype, or
// its transform fails) leaves every tensor unchanged: validation and
// conversion happen before the first copy. The old LoadStateDict had
// copied the earlier keys by then, or converted silently.
func TestLoadStateDictAllOrNothing(t *testing.T) {
	n := newNet(t, 1)
	other := newNet(t, 2)
	before := snapshot(t, n)
	s := newScope(t)
	ints := s.Own(torch.FromSlice([]int64{1, 2, 3}))
	live := torch.LiveTensors()

	sd := module.StateDict(other)
	sd["head.bias"] = ints
	err := module.LoadStateDict(n, sd)
	require.ErrorContains(t, err, "head.bias: model float32, state dict int64")
	require.Equal(t, before, snapshot(t, n))

	sd = module.StateDict(other)
	calls := 0
	fail := module.WithTransform(func(key string, t *torch.Tensor) *torch.Tensor {
		calls++
		if key == "head.bias" {
			return t.View(7) // fails: 3 elements
		}
		return t.MulScalar(2)
	})
	err = module.LoadStateDict(n, sd, fail)
	require.ErrorContains(t, err, "head.bias: transform: torch: View")
	require.Equal(t, len(netOrder), calls, "every key is transformed before any copy")
	require.Equal(t, before, snapshot(t, n))
	require.Equal(t, live, torch.LiveTensors(), "the transforms' tensors are freed")

	// The same load without the failure applies every transform.
	ok := module.WithTransform(func(key string, t *torch.Tensor) *torch.Tensor { return t.MulScalar(2) })
	require.NoError(t, module.LoadStateDict(n, sd, ok))
	for _, p := range module.NamedParameters(n) {
		want := own(s, sd[p.Name]).MulScalar(2)
		reftest.RequireBitwise(t, p.Name, p.Tensor, want)
	}
	require.Equal(t, live+2*len(netOrder), torch.LiveTensors(), "only the test's own handles remain")
}

// conv1DModel holds two Linear layers named like GPT-2's Conv1D layers.
type conv1DModel struct {
	module.Base
	CAttn, CProj *module.Linear
	Ln           *module.LayerNorm
}

func newConv1DModel(t *testing.T, seed uint64) *conv1DModel {
	require.NoError(t, torch.ManualSeed(seed))
	m := &conv1DModel{
		CAttn: torch.Must(module.NewLinear(4, 12, true)),
		CProj: torch.Must(module.NewLinear(4, 4, true)),
		Ln:    torch.Must(module.NewLayerNorm([]int64{4})),
	}
	module.Child(&m.Base, "c_attn", &m.CAttn)
	module.Child(&m.Base, "c_proj", &m.CProj)
	module.Child(&m.Base, "ln_1", &m.Ln)
	return m
}

// gpt2Layout transposes the Conv1D weights (GPT-2 stores them in×out).
func gpt2Layout(key string, t *torch.Tensor) *torch.Tensor {
	if strings.HasSuffix(key, "c_attn.weight") || strings.HasSuffix(key, "c_proj.weight") || strings.HasSuffix(key, "c_fc.weight") {
		return t.T()
	}
	return t
}

// Key maps and transforms load another layout and save it back: a GPT-2
// style file (prefix "transformer.h.0.", Conv1D weights in×out) loads into
// Linear layers and saves to the same bytes.
func TestKeyMapAndTransform(t *testing.T) {
	dir := t.TempDir()
	src := newConv1DModel(t, 1)
	defer module.Close(src)
	s := newScope(t)

	// Write the foreign layout by hand: renamed keys, transposed weights.
	foreign := map[string]*torch.Tensor{}
	for k, v := range module.StateDict(src) {
		foreign["transformer.h.0."+k] = gpt2Layout(k, s.Own(v.Detach()))
	}
	foreign["transformer.h.0.attn.masked_bias"] = s.Own(torch.Full(nil, -1e4))
	gpt2 := filepath.Join(dir, "gpt2.safetensors")
	require.NoError(t, torch.SaveSafetensors(gpt2, foreign, nil))
	require.Equal(t, []int64{4, 12}, foreign["transformer.h.0.c_attn.weight"].Shape())

	strip := module.WithKeyMap(func(k string) (string, bool) {
		return strings.CutPrefix(k, "transformer.h.0.")
	})
	dst := newConv1DModel(t, 2)
	defer module.Close(dst)
	before := snapshot(t, dst)

	// Without the transform, the shapes do not match; without ignoring
	// masked_bias, it is unexpected. Nothing changes.
	var se *module.StateDictError
	require.True(t, errors.As(module.Load(dst, gpt2, strip), &se))
	require.Equal(t, []string{"transformer.h.0.attn.masked_bias"}, se.Unexpected)
	require.Equal(t, []string{"c_attn.weight: model [12 4], state dict [4 12]"}, se.Misshaped[:1])
	require.Equal(t, before, snapshot(t, dst))

	opts := []module.StateOption{strip, module.WithTransform(gpt2Layout), module.IgnoreKeys("*.masked_bias")}
	require.NoError(t, module.Load(dst, gpt2, opts...))
	require.Equal(t, snapshot(t, src), snapshot(t, dst), "the transposed weights load exactly")

	// Save with the inverse map and the same transform writes the foreign
	// layout back, bit for bit.
	back := filepath.Join(dir, "back.safetensors")
	prefix := module.WithKeyMap(func(k string) (string, bool) { return "transformer.h.0." + k, true })
	require.NoError(t, module.Save(dst, back, nil, prefix, module.WithTransform(gpt2Layout)))
	got, _, err := torch.LoadSafetensors(back)
	require.NoError(t, err)
	defer torch.CloseMap(got)
	delete(foreign, "transformer.h.0.attn.masked_bias")
	require.Equal(t, sortedKeys(foreign), sortedKeys(got))
	for k, v := range foreign {
		reftest.RequireBitwise(t, k, got[k], v.Contiguous())
	}

	// A key map can drop keys on save, and two keys mapped to one name
	// are an error on both sides.
	only := filepath.Join(dir, "only.safetensors")
	require.NoError(t, module.Save(dst, only, nil, module.IgnoreKeys("ln_1.*"),
		module.WithKeyMap(func(k string) (string, bool) { return k, !strings.HasPrefix(k, "c_proj") })))
	kept, _, err := torch.LoadSafetensors(only)
	require.NoError(t, err)
	require.Equal(t, []string{"c_attn.bias", "c_attn.weight"}, sortedKeys(kept))
	torch.CloseMap(kept)
	same := module.WithKeyMap(func(string) (string, bool) { return "x", true })
	require.ErrorContains(t, module.Save(dst, only, nil, same), `both map to key "x"`)
	one := module.WithKeyMap(func(string) (string, bool) { return "ln_1.weight", true })
	require.True(t, errors.As(module.Load(dst, gpt2, one), &se))
	require.NotEmpty(t, se.Invalid)
	require.Contains(t, se.Invalid[0], "both map to it")

	// A malformed pattern is an error.
	require.ErrorContains(t, module.Load(dst, gpt2, module.IgnoreKeys("[")), "syntax error in pattern")
}

func TestLoadFileErrors(t *testing.T) {
	n := newNet(t, 1)
	before := snapshot(t, n)
	live := torch.LiveTensors()

	err := module.Load(n, filepath.Join(t.TempDir(), "absent.safetensors"))
	require.Error(t, err)
	var se *module.StateDictError
	require.False(t, errors.As(err, &se))

	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("not a safetensors file"), 0o644))
	require.Error(t, module.Load(n, bad))

	// A file for another model: missing keys, reported through errors.As,
	// and the loaded tensors are freed.
	path := filepath.Join(t.TempDir(), "linear.safetensors")
	l := torch.Must(module.NewLinear(4, 3, true))
	require.NoError(t, module.Save(l, path, nil))
	module.Close(l)
	err = module.Load(n, path)
	require.True(t, errors.As(err, &se))
	require.Len(t, se.Missing, len(netOrder))
	require.Equal(t, []string{"bias", "weight"}, se.Unexpected)
	require.Equal(t, live, torch.LiveTensors())
	require.Equal(t, before, snapshot(t, n))

	// LoadPartial forgives the missing keys, not the unexpected ones.
	require.True(t, errors.As(module.LoadPartial(n, path), &se))
	require.Empty(t, se.Missing)
	require.NoError(t, module.LoadPartial(n, path, module.IgnoreKeys("*")))
	require.Equal(t, before, snapshot(t, n))
}
