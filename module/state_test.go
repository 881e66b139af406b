package module_test

// Tests of state dicts: Save/Load round trips and LoadStateDict's errors.

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.safetensors")
	a := newNet(t, 1)
	defer module.Close(a)
	require.NoError(t, module.Freeze(a.Embed))
	require.NoError(t, module.Save(a, path, map[string]string{"epoch": "3", "base": "tiny"}))

	b := newNet(t, 2)
	defer module.Close(b)
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
	ids := torch.Must(torch.FromSlice([]int64{3, 1, 4, 1, 5}))
	defer ids.Close()
	ya := torch.Must(a.Forward(ids))
	defer ya.Close()
	yb := torch.Must(b.Forward(ids))
	defer yb.Close()
	reftest.RequireBitwise(t, "forward", yb, ya)
}

// scalarModel has a 0-d parameter.
type scalarModel struct {
	module.Base
	Temp *torch.Tensor
}

func TestSaveLoadScalarParameter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scalar.safetensors")
	newScalar := func(v float64) *scalarModel {
		m := &scalarModel{Temp: torch.Must(torch.Full(nil, v))}
		require.Empty(t, m.Temp.Shape())
		m.Param("temp", &m.Temp)
		return m
	}
	a, b := newScalar(0.25), newScalar(7)
	defer module.Close(a)
	defer module.Close(b)
	require.NoError(t, module.Save(a, path, nil))
	require.NoError(t, module.Load(b, path))
	v, err := b.Temp.Item()
	require.NoError(t, err)
	require.Equal(t, 0.25, v)
}

func TestLoadStateDictConvertsDType(t *testing.T) {
	a := newNet(t, 1, torch.WithDType(torch.Float64))
	defer module.Close(a)
	b := newNet(t, 2)
	defer module.Close(b)
	require.NoError(t, module.LoadStateDict(b, module.StateDict(a)))
	for _, p := range module.NamedParameters(b) {
		require.Equal(t, torch.Float32, p.Tensor.DType(), "%s keeps the model's dtype", p.Name)
		src := module.StateDict(a)[p.Name]
		want := torch.Must(src.To(torch.Float32))
		reftest.RequireBitwise(t, p.Name, p.Tensor, want)
		want.Close()
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	other := newNet(t, 9)
	defer module.Close(other)
	wide := torch.Must(torch.Ones([]int64{5}))
	defer wide.Close()
	extra := torch.Must(torch.Zeros([]int64{2, 2}))
	defer extra.Close()
	transposed := torch.Must(torch.Zeros([]int64{4, 3}))
	defer transposed.Close()

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
			defer module.Close(n)
			before := snapshot(t, n)
			err := module.LoadStateDict(n, sd(c.edit))
			require.Error(t, err)
			var se *module.StateDictError
			require.True(t, errors.As(err, &se), "%T is not a *module.StateDictError", err)
			require.Equal(t, c.missing, se.Missing, "missing")
			require.Equal(t, c.unexpected, se.Unexpected, "unexpected")
			require.Equal(t, c.misshape, se.Misshaped, "misshaped")
			for _, k := range append(append(append([]string{}, c.missing...), c.unexpected...), c.misshape...) {
				require.Contains(t, err.Error(), k)
			}
			require.Equal(t, before, snapshot(t, n), "nothing is copied when LoadStateDict fails")

			// Partial loading forgives only missing keys.
			err = module.LoadStateDictPartial(n, sd(c.edit))
			if len(c.unexpected)+len(c.misshape) == 0 {
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
	defer module.Close(n)
	err := module.LoadStateDict(n, sd(func(m map[string]*torch.Tensor) {
		delete(m, "pos")
		m["extra.weight"] = extra
		m["norm.bias"] = wide
	}))
	require.EqualError(t, err, "module: LoadStateDict: missing keys: pos; unexpected keys: extra.weight; "+
		"shape mismatch: norm.bias: model [4], state dict [5]")
}

func TestLoadStateDictPartial(t *testing.T) {
	other := newNet(t, 9)
	defer module.Close(other)
	n := newNet(t, 1)
	defer module.Close(n)
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

func TestLoadFileErrors(t *testing.T) {
	n := newNet(t, 1)
	defer module.Close(n)
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
}
