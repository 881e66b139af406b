package module_test

// Tests against PyTorch references from testdata/gen_module.py.

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func TestLinearInitMatchesPyTorch(t *testing.T) {
	r := loadRefs(t)
	var cases []struct {
		Name    string
		In, Out int64
		Bias    bool
		Seed    uint64
		DType   string
	}
	r.DecodeMeta(t, "linear", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypeOf(t, c.DType)
			require.NoError(t, torch.ManualSeed(c.Seed))
			l, err := module.NewLinear(c.In, c.Out, c.Bias, torch.WithDType(dt))
			require.NoError(t, err)
			defer module.Close(l)
			require.Equal(t, c.In, l.InFeatures())
			require.Equal(t, c.Out, l.OutFeatures())
			reftest.RequireBitwise(t, "weight", l.Weight, r.Tensor(t, c.Name+".weight"))
			if c.Bias {
				reftest.RequireBitwise(t, "bias", l.Bias, r.Tensor(t, c.Name+".bias"))
				require.True(t, l.Bias.RequiresGrad())
				require.Equal(t, []string{"weight", "bias"}, names(l))
			} else {
				require.Nil(t, l.Bias)
				require.False(t, r.Has(c.Name+".bias"))
				require.Equal(t, []string{"weight"}, names(l))
			}
			require.True(t, l.Weight.RequiresGrad())
		})
	}
}

func TestEmbeddingInitMatchesPyTorch(t *testing.T) {
	r := loadRefs(t)
	var cases []struct {
		Name     string
		Num, Dim int64
		Seed     uint64
		DType    string
	}
	r.DecodeMeta(t, "embedding", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypeOf(t, c.DType)
			require.NoError(t, torch.ManualSeed(c.Seed))
			e, err := module.NewEmbedding(c.Num, c.Dim, torch.WithDType(dt))
			require.NoError(t, err)
			defer module.Close(e)
			require.Equal(t, c.Num, e.NumEmbeddings())
			require.Equal(t, c.Dim, e.EmbeddingDim())
			reftest.RequireBitwise(t, "weight", e.Weight, r.Tensor(t, c.Name+".weight"))
			require.True(t, e.Weight.RequiresGrad())
			require.Equal(t, []string{"weight"}, names(e))
			s := newScope(t)
			out := e.Forward(own(s, r.Tensor(t, c.Name+".ids")))
			reftest.RequireBitwise(t, "lookup", out.Must(), r.Tensor(t, c.Name+".out"))
		})
	}
}

func TestLayerNormMatchesPyTorch(t *testing.T) {
	r := loadRefs(t)
	var cases []struct {
		Name  string
		Shape []int64
		DType string
	}
	r.DecodeMeta(t, "layernorm", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypeOf(t, c.DType)
			n, err := module.NewLayerNorm(c.Shape, torch.WithDType(dt))
			require.NoError(t, err)
			defer module.Close(n)

			// nn.LayerNorm's defaults: eps 1e-5, weight ones, bias zeros.
			require.Equal(t, 1e-5, n.Eps)
			require.Equal(t, c.Shape, n.Shape)
			require.Equal(t, []string{"weight", "bias"}, names(n))
			for _, p := range module.NamedParameters(n) {
				require.True(t, p.Trainable, p.Name)
				require.Equal(t, dt, p.Tensor.DType(), p.Name)
				require.Equal(t, c.Shape, p.Tensor.Shape(), p.Name)
			}
			for _, v := range reftest.Float64s(t, n.Weight) {
				require.Equal(t, 1.0, v)
			}
			for _, v := range reftest.Float64s(t, n.Bias) {
				require.Equal(t, 0.0, v)
			}

			require.NoError(t, n.Weight.Copy_(r.Tensor(t, c.Name+".weight")).Err())
			require.NoError(t, n.Bias.Copy_(r.Tensor(t, c.Name+".bias")).Err())
			require.True(t, n.Weight.RequiresGrad(), "Copy_ keeps the parameter a trainable leaf")
			s := newScope(t)
			x := leaf(t, s, r.Tensor(t, c.Name+".x"))
			out := n.Forward(x)
			e := requireClose(t, "forward", out, r.Tensor(t, c.Name+".out"))
			weightedBackward(t, out, r.Tensor(t, c.Name+".w"))
			ex := requireGradClose(t, s, "grad x", x, r.Tensor(t, c.Name+".grad_x"))
			ew := requireGradClose(t, s, "grad weight", n.Weight, r.Tensor(t, c.Name+".grad_weight"))
			eb := requireGradClose(t, s, "grad bias", n.Bias, r.Tensor(t, c.Name+".grad_bias"))
			t.Logf("relative errors: out %.3g, grad x %.3g, grad weight %.3g, grad bias %.3g", e, ex, ew, eb)
		})
	}
}

func TestDropoutMatchesPyTorch(t *testing.T) {
	r := loadRefs(t)
	var cases []struct {
		Name  string
		P     float64
		Seed  uint64
		DType string
	}
	r.DecodeMeta(t, "dropout", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			d, err := module.NewDropout(c.P)
			require.NoError(t, err)
			require.True(t, d.Training())
			s := newScope(t)
			x := leaf(t, s, r.Tensor(t, c.Name+".x"))

			require.NoError(t, torch.ManualSeed(c.Seed))
			out := d.Forward(x)
			want := r.Tensor(t, c.Name+".out")
			// Same mask as F.dropout under the same seed.
			g, w := reftest.Float64s(t, out), reftest.Float64s(t, want)
			for i := range w {
				require.Equal(t, w[i] == 0, g[i] == 0, "element %d: mask differs from PyTorch", i)
			}
			requireClose(t, "forward", out, want)
			weightedBackward(t, out, r.Tensor(t, c.Name+".w"))
			requireGradClose(t, s, "grad x", x, r.Tensor(t, c.Name+".grad_x"))

			// In eval mode the same module is the identity.
			module.Eval(d)
			require.False(t, d.Training())
			reftest.RequireBitwise(t, "eval", d.Forward(x).Must(), x)
		})
	}
}

func TestSequentialMatchesPyTorch(t *testing.T) {
	r := loadRefs(t)
	// Layers are ["linear", in, out] or ["dropout", p]: strings and
	// numbers mixed, decoded by hand.
	var raw []struct {
		Name   string
		Layers [][]any
		Seed   uint64
		DType  string
		Params []string
	}
	r.DecodeMeta(t, "seq", &raw)
	require.NotEmpty(t, raw)
	for _, c := range raw {
		t.Run(c.Name, func(t *testing.T) {
			dt := dtypeOf(t, c.DType)
			require.NoError(t, torch.ManualSeed(c.Seed))
			var layers []module.Layer
			for _, spec := range c.Layers {
				switch spec[0] {
				case "linear":
					l, err := module.NewLinear(int64(spec[1].(float64)), int64(spec[2].(float64)), true, torch.WithDType(dt))
					require.NoError(t, err)
					layers = append(layers, l)
				case "dropout":
					d, err := module.NewDropout(spec[1].(float64))
					require.NoError(t, err)
					layers = append(layers, d)
				default:
					t.Fatalf("unknown layer %v", spec)
				}
			}
			seq := module.NewSequential(layers...)
			defer module.Close(seq)
			require.Equal(t, c.Params, names(seq), "parameter names follow nn.Sequential")
			for _, p := range module.NamedParameters(seq) {
				reftest.RequireBitwise(t, "init "+p.Name, p.Tensor, r.Tensor(t, c.Name+".param."+p.Name))
			}

			s := newScope(t)
			x := leaf(t, s, r.Tensor(t, c.Name+".x"))
			require.NoError(t, torch.ManualSeed(c.Seed+1))
			out := seq.Forward(x)
			e := requireClose(t, "forward", out, r.Tensor(t, c.Name+".out"))
			weightedBackward(t, out, r.Tensor(t, c.Name+".w"))
			worst := requireGradClose(t, s, "grad x", x, r.Tensor(t, c.Name+".grad_x"))
			for _, p := range module.NamedParameters(seq) {
				worst = max(worst, requireGradClose(t, s, "grad "+p.Name, p.Tensor, r.Tensor(t, c.Name+".grad."+p.Name)))
			}
			t.Logf("relative errors: forward %.3g, worst gradient %.3g", e, worst)
		})
	}
}

// Net mirrors the Python model of testdata/gen_module.py.
type Net struct {
	module.Base
	Embed  *module.Embedding
	Pos    *torch.Tensor
	Blocks *module.Sequential
	Norm   *module.LayerNorm
	Head   module.Layer // an interface: replaceable through SetChild
}

// netOrder is Net's parameter order, written by hand from PyTorch's rule:
// a module's own parameters, then each child's, depth first.
var netOrder = []string{
	"pos",
	"embed.weight",
	"blocks.0.weight",
	"blocks.0.bias",
	"blocks.1.weight",
	"blocks.1.bias",
	"norm.weight",
	"norm.bias",
	"head.weight",
	"head.bias",
}

// netTotal is Net's parameter count: embed 10·4, pos 4, blocks.0 4·8+8,
// blocks.1 8·4+4, norm 4+4, head 4·3+3.
const netTotal = 40 + 4 + 40 + 36 + 8 + 15

// newNet builds a Net after torch.ManualSeed(seed); it is closed when t
// ends (closing it earlier is harmless).
func newNet(t *testing.T, seed uint64, opts ...torch.Option) *Net {
	t.Helper()
	require.NoError(t, torch.ManualSeed(seed))
	n := &Net{}
	t.Cleanup(func() { module.Close(n) })
	var err error
	n.Embed, err = module.NewEmbedding(10, 4, opts...)
	require.NoError(t, err)
	n.Pos = torch.Randn([]int64{4}, opts...).Must()
	require.NoError(t, n.Pos.SetRequiresGrad(true))
	l0, err := module.NewLinear(4, 8, true, opts...)
	require.NoError(t, err)
	l1, err := module.NewLinear(8, 4, true, opts...)
	require.NoError(t, err)
	n.Blocks = module.NewSequential(l0, l1)
	n.Norm, err = module.NewLayerNorm([]int64{4}, opts...)
	require.NoError(t, err)
	n.Head, err = module.NewLinear(4, 3, true, opts...)
	require.NoError(t, err)

	// Registration order differs from Python's (pos after embed there);
	// the parameter order must not depend on it.
	n.Param("pos", &n.Pos)
	module.Child(&n.Base, "embed", &n.Embed)
	module.Child(&n.Base, "blocks", &n.Blocks)
	module.Child(&n.Base, "norm", &n.Norm)
	module.Child(&n.Base, "head", &n.Head)
	return n
}

// Forward is embed(ids) + pos, then blocks, norm and head.
func (n *Net) Forward(ids *torch.Tensor) *torch.Tensor {
	h := n.Embed.Forward(ids).Add(n.Pos)
	return n.Head.Forward(n.Norm.Forward(n.Blocks.Forward(h)))
}

func TestLoadPythonStateDict(t *testing.T) {
	r := loadRefs(t)
	var order []string
	r.DecodeMeta(t, "net_order", &order)
	require.Equal(t, netOrder, order, "the hand-written order is PyTorch's named_parameters order")

	n := newNet(t, 5)
	require.Equal(t, order, names(n), "NamedParameters follows named_parameters")

	require.NoError(t, module.Load(n, netStatePath))
	file, meta, err := torch.LoadSafetensors(netStatePath)
	require.NoError(t, err)
	defer torch.CloseMap(file)
	require.Equal(t, "pt", meta["format"])
	require.Equal(t, order, sortedByOrder(sortedKeys(file), order))
	for _, p := range module.NamedParameters(n) {
		reftest.RequireBitwise(t, p.Name, p.Tensor, file[p.Name])
		require.True(t, p.Trainable, "%s: Load keeps parameters trainable", p.Name)
	}

	s := newScope(t)
	out := n.Forward(own(s, r.Tensor(t, "net.ids")))
	e := requireClose(t, "forward after Load", out, r.Tensor(t, "net.out"))
	t.Logf("relative error of the loaded model's forward: %.3g", e)
}

// sortedByOrder returns keys rearranged into the order of ref (keys absent
// from ref go last, in the order given), to compare sets with a message
// that shows both.
func sortedByOrder(keys, ref []string) []string {
	in := map[string]bool{}
	for _, k := range keys {
		in[k] = true
	}
	var out []string
	for _, k := range ref {
		if in[k] {
			out = append(out, k)
			delete(in, k)
		}
	}
	for _, k := range keys {
		if in[k] {
			out = append(out, k)
		}
	}
	return out
}

func TestLoadPythonStateDictIntoWrongModel(t *testing.T) {
	// A Net whose head has no bias and whose norm is wider: the file has
	// an unexpected key and two misshaped ones.
	n := newNet(t, 5)
	noBias, err := module.NewLinear(4, 3, false)
	require.NoError(t, err)
	wide, err := module.NewLayerNorm([]int64{5})
	require.NoError(t, err)
	oldHead, oldNorm := n.Head, n.Norm
	require.NoError(t, module.SetChild(n, "head", noBias))
	require.NoError(t, module.SetChild(n, "norm", wide))
	module.Close(oldHead)
	module.Close(oldNorm)
	before := snapshot(t, n)

	err = module.Load(n, netStatePath)
	require.Error(t, err)
	var se *module.StateDictError
	require.True(t, errors.As(err, &se), "error %v is not a *module.StateDictError", err)
	require.Empty(t, se.Missing)
	require.Equal(t, []string{"head.bias"}, se.Unexpected)
	require.Equal(t, []string{"norm.weight: model [5], state dict [4]", "norm.bias: model [5], state dict [4]"}, se.Misshaped)
	require.Contains(t, err.Error(), netStatePath)
	require.Equal(t, before, snapshot(t, n), "nothing is copied when Load fails")
}

func TestNetFloat64(t *testing.T) {
	// Loading converts dtypes: the float32 file loads into a float64 model.
	r := loadRefs(t)
	n := newNet(t, 5, torch.WithDType(torch.Float64))
	require.NoError(t, module.Load(n, netStatePath))
	for _, p := range module.NamedParameters(n) {
		require.Equal(t, torch.Float64, p.Tensor.DType(), p.Name)
	}
	s := newScope(t)
	out := n.Forward(own(s, r.Tensor(t, "net.ids")))
	// The reference is a float32 forward: compare at float32 precision.
	e := reftest.RequireClose(t, "float64 forward vs float32 PyTorch", out.To(torch.Float32).Must(), r.Tensor(t, "net.out"), 1e-5)
	t.Logf("relative error of the float64 forward: %.3g", e)
}
