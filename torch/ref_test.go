package torch_test

import (
	"errors"
	"fmt"
	"go/ast"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Reference tests: torch/testdata/gen_refs.py runs every op of the Go API
// in PyTorch and stores inputs, outputs, a fixed loss weight per float
// output and the gradients of loss = Σ_j (out_j · w_j).sum(). These tests
// replay each case through golora and compare (see helpers_test.go and
// internal/reftest for the tolerances and the definition of relative error).
//
// Regenerate the files with `/usr/bin/python3 torch/testdata/gen_refs.py`.

// opsSuite replays the cases of gen_refs.py's files. Exact cases (seeded
// draws, dropout masks) run on the CPU: see helpers_test.go.
var opsSuite = &refSuite{
	regen:       "/usr/bin/python3 torch/testdata/gen_refs.py",
	ops:         refOps,
	exactOnCPU:  true,
	strictScope: true,
	compare:     compare,
}

// The parameters of gen_refs.py's ops besides the shared ones
// (helpers_test.go).

func (p refParams) has(k string) bool { _, ok := p[k]; return ok }

func (p refParams) pair(k string) [2]int64 {
	v := p.ints(k)
	if len(v) != 2 {
		panic(fmt.Sprintf("param %q needs 2 values", k))
	}
	return [2]int64{v[0], v[1]}
}

func (p refParams) dtype(k string) torch.DType {
	return named(p, k, map[string]torch.DType{
		"float32": torch.Float32, "float64": torch.Float64, "int64": torch.Int64, "int32": torch.Int32})
}

func (p refParams) fan() torch.FanMode {
	return named(p, "mode", map[string]torch.FanMode{"fan_in": torch.FanIn, "fan_out": torch.FanOut})
}

func (p refParams) nonlinearity() torch.Nonlinearity {
	return named(p, "nonlinearity", map[string]torch.Nonlinearity{"leaky_relu": torch.LeakyReLU, "relu": torch.ReLU,
		"linear": torch.LinearGain, "tanh": torch.TanhGain, "sigmoid": torch.SigmoidGain})
}

// seededCreate covers Randn and Rand; seededInit the in-place initialisers.
func seededCreate(f func([]int64, ...torch.Option) *torch.Tensor) refOp {
	return func(env refEnv, _ []*torch.Tensor, p refParams) []*torch.Tensor {
		require.NoError(env.t, torch.ManualSeed(uint64(p.i("seed"))))
		return one(f(p.ints("shape"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(env.dev), torch.In(env.s)))
	}
}

func seededInit(f func(*torch.Tensor, refParams) error) refOp {
	return func(env refEnv, _ []*torch.Tensor, p refParams) []*torch.Tensor {
		x := ok(env.t, torch.Empty(p.ints("shape"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(env.dev), torch.In(env.s)))
		require.NoError(env.t, torch.ManualSeed(uint64(p.i("seed"))))
		require.NoError(env.t, f(x, p))
		return one(x)
	}
}

// refOps maps the op names of gen_refs.py to golora calls.
var refOps = map[string]refOp{
	"linear": func(_ refEnv, in []*torch.Tensor, _ refParams) []*torch.Tensor {
		var b *torch.Tensor
		if len(in) > 2 {
			b = in[2]
		}
		return one(in[0].Linear(in[1], b))
	},
	"lora_linear": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[4]
		}
		return one(torch.LoraLinear(in[0], in[1], b, in[2], in[3], p.f("scaling")))
	},
	"embedding": binaryOp(torch.Embedding),
	"lora_embedding": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.LoraEmbedding(in[0], in[1], in[2], in[3], p.f("scaling")))
	},
	"matmul": binaryOp((*torch.Tensor).MatMul),
	"mm":     binaryOp((*torch.Tensor).Mm),
	"t":      unaryOp((*torch.Tensor).T),
	"transpose": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Transpose(p.i("d0"), p.i("d1")))
	},
	"permute": intsOp("dims", (*torch.Tensor).Permute),
	"reshape": intsOp("shape", (*torch.Tensor).Reshape),
	"view":    intsOp("shape", (*torch.Tensor).View),
	"contiguous": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Transpose(p.i("d0"), p.i("d1")).Contiguous())
	},
	"narrow": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Narrow(p.i("dim"), p.i("start"), p.i("length")))
	},
	"slice": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Slice(p.i("dim"), p.i("start"), p.i("end"), p.i("step")))
	},
	"index_select": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].IndexSelect(p.i("dim"), in[1]))
	},
	"cat": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.Cat(in, p.i("dim")))
	},
	"stack": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.Stack(in, p.i("dim")))
	},
	"add":        binaryOp((*torch.Tensor).Add),
	"sub":        binaryOp((*torch.Tensor).Sub),
	"mul":        binaryOp((*torch.Tensor).Mul),
	"div":        binaryOp((*torch.Tensor).Div),
	"pow":        binaryOp((*torch.Tensor).Pow),
	"maximum":    binaryOp((*torch.Tensor).Maximum),
	"eq":         binaryOp((*torch.Tensor).Eq),
	"add_scalar": scalarOp((*torch.Tensor).AddScalar),
	"sub_scalar": scalarOp((*torch.Tensor).SubScalar),
	"mul_scalar": scalarOp((*torch.Tensor).MulScalar),
	"div_scalar": scalarOp((*torch.Tensor).DivScalar),
	"pow_scalar": scalarOp((*torch.Tensor).PowScalar),
	"neg":        unaryOp((*torch.Tensor).Neg),
	"abs":        unaryOp((*torch.Tensor).Abs),
	"sqrt":       unaryOp((*torch.Tensor).Sqrt),
	"exp":        unaryOp((*torch.Tensor).Exp),
	"log":        unaryOp((*torch.Tensor).Log),
	"tanh":       unaryOp((*torch.Tensor).Tanh),
	"sigmoid":    unaryOp((*torch.Tensor).Sigmoid),
	"relu":       unaryOp((*torch.Tensor).Relu),
	"gelu":       unaryOp((*torch.Tensor).Gelu),
	"gelu_tanh":  unaryOp((*torch.Tensor).GeluTanh),
	"silu":       unaryOp((*torch.Tensor).Silu),
	"sum":        unaryOp((*torch.Tensor).Sum),
	"mean":       unaryOp((*torch.Tensor).Mean),
	"max":        unaryOp((*torch.Tensor).Max),
	"argmax":     unaryOp((*torch.Tensor).Argmax),
	"sum_dims":   dimsOp((*torch.Tensor).SumDims),
	"mean_dims":  dimsOp((*torch.Tensor).MeanDims),
	"max_dim":    dimPairOp((*torch.Tensor).MaxDim),
	"argmax_dim": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].ArgmaxDim(p.i("dim"), p.b("keepdim")))
	},
	"softmax":     intOp("dim", (*torch.Tensor).Softmax),
	"log_softmax": intOp("dim", (*torch.Tensor).LogSoftmax),
	"layer_norm": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		affine := optionalInputs(in, p, "weight", "bias")
		return one(torch.LayerNorm(in[0], p.ints("shape"), affine[0], affine[1], p.f("eps")))
	},
	"dropout": func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		if p.has("seed") {
			require.NoError(env.t, torch.ManualSeed(uint64(p.i("seed"))))
		}
		return one(torch.Dropout(in[0], p.f("p"), p.b("train")))
	},
	"conv2d": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[2]
		}
		return one(torch.Conv2d(in[0], in[1], b, torch.Conv2dOptions{
			Stride: p.pair("stride"), Padding: p.pair("padding"), Dilation: p.pair("dilation"), Groups: p.i("groups"),
		}))
	},
	"tril": intOp("diagonal", (*torch.Tensor).Tril),
	"masked_fill": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].MaskedFill(in[1], p.f("value")))
	},
	"sdpa": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		var mask *torch.Tensor
		if len(in) == 4 {
			mask = in[3]
		}
		return one(torch.ScaledDotProductAttention(in[0], in[1], in[2], mask, 0, p.b("causal")))
	},
	"cross_entropy": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.CrossEntropy(in[0], in[1], p.i("ignore_index"), p.reduction()))
	},
	"mse_loss": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.MSELoss(in[0], in[1], p.reduction()))
	},
	"clone": unaryOp((*torch.Tensor).Clone),
	"add_scaled": func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		out := in[0].Clone()
		require.NoError(env.t, out.AddScaled_(in[1], p.f("alpha")))
		return one(out)
	},
	"arange": func(env refEnv, _ []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.Arange(p.f("start"), p.f("end"), p.f("step"),
			torch.WithDType(p.dtype("dtype")), torch.WithDevice(env.dev), torch.In(env.s)))
	},
	"full": func(env refEnv, _ []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.Full(p.ints("shape"), p.f("value"),
			torch.WithDType(p.dtype("dtype")), torch.WithDevice(env.dev), torch.In(env.s)))
	},

	// Seeded cases (seeded.safetensors).
	"randn": seededCreate(torch.Randn),
	"rand":  seededCreate(torch.Rand),
	"normal_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.Normal_(p.f("mean"), p.f("std"))
	}),
	"uniform_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.Uniform_(p.f("lo"), p.f("hi"))
	}),
	"kaiming_uniform_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.KaimingUniform_(p.f("a"), p.fan(), p.nonlinearity())
	}),
	"kaiming_normal_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.KaimingNormal_(p.f("a"), p.fan(), p.nonlinearity())
	}),
	"xavier_uniform_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.XavierUniform_(p.f("gain"))
	}),
	"xavier_normal_": seededInit(func(x *torch.Tensor, p refParams) error {
		return x.XavierNormal_(p.f("gain"))
	}),
}

func TestRefOpsFloat32(t *testing.T) { opsSuite.runFile(t, "ops_float32.safetensors") }

func TestRefOpsFloat64(t *testing.T) { opsSuite.runFile(t, "ops_float64.safetensors") }

// TestRefSeeded checks that seeded draws and initialisers equal PyTorch's
// bit for bit. They always run on the CPU (see helpers_test.go).
func TestRefSeeded(t *testing.T) { opsSuite.runFile(t, "seeded.safetensors") }

// tensorMethodOps lists, for each exported method of *torch.Tensor, the
// reference op that covers it, or "api" when the API tests of this package
// (ref_test.go, errors_test.go, memory_test.go, state_test.go) cover it. A new
// method fails TestRefCoverage until it is listed here (and, if it
// computes something, given a case in gen_refs.py). The methods declared
// in ops_aten.go are left to ops_aten_test.go and its own references.
var tensorMethodOps = map[string]string{
	"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Eq": "eq", "Maximum": "maximum",
	"MatMul": "matmul", "Mm": "mm", "AddScalar": "add_scalar", "SubScalar": "sub_scalar",
	"MulScalar": "mul_scalar", "DivScalar": "div_scalar", "PowScalar": "pow_scalar",
	"Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Tanh": "tanh",
	"Sigmoid": "sigmoid", "Relu": "relu", "Gelu": "gelu", "GeluTanh": "gelu_tanh", "Silu": "silu",
	"Contiguous": "contiguous", "T": "t", "Sum": "sum", "Mean": "mean", "Max": "max",
	"SumDims": "sum_dims", "MeanDims": "mean_dims", "MaxDim": "max_dim", "Argmax": "argmax",
	"ArgmaxDim": "argmax_dim", "Softmax": "softmax", "LogSoftmax": "log_softmax",
	"AddScaled_": "add_scaled", "Transpose": "transpose", "Permute": "permute", "Reshape": "reshape",
	"View": "view", "Narrow": "narrow", "Slice": "slice", "IndexSelect": "index_select",
	"Tril": "tril", "MaskedFill": "masked_fill", "Clone": "clone", "Linear": "linear",
	"Uniform_": "uniform_", "Normal_": "normal_", "KaimingUniform_": "kaiming_uniform_",
	"KaimingNormal_": "kaiming_normal_", "XavierUniform_": "xavier_uniform_", "XavierNormal_": "xavier_normal_",
	"Backward": "api", "BackwardWith": "api", "Grad": "api", "ZeroGrad": "api", "ClearGrad": "api",
	"Detach": "api", "SetRequiresGrad": "api", "RequiresGrad": "api",
	"Close": "api", "Closed": "api", "Size": "api", "Shape": "api", "Dim": "api", "Numel": "api",
	"SizeOf": "api", "DType": "api", "Device": "api", "String": "api", "Item": "api", "ItemInt": "api",
	"To": "api", "Alias": "api", "Copy_": "api", "AllClose": "api", "Fill_": "api", "Zeros_": "api",
	"Ones_": "api", "Err": "api", "Must": "api", "Scope": "api", "SetData": "api",
}

// atenMethods returns the names of the *Tensor methods declared in
// ops_aten.go, whose tests are ops_aten_test.go's.
func atenMethods(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for _, fd := range opsAtenFuncs(t) {
		if fd.Recv == nil || len(fd.Recv.List) != 1 {
			continue
		}
		if star, ok := fd.Recv.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := star.X.(*ast.Ident); ok && id.Name == "Tensor" {
				out[fd.Name.Name] = true
			}
		}
	}
	return out
}

// TestRefCoverage checks that the reference files exercise every op the
// tests know, and every method of *torch.Tensor is accounted for.
func TestRefCoverage(t *testing.T) {
	seen := opsSuite.countOps(t, "ops_float32.safetensors", "ops_float64.safetensors", "seeded.safetensors")
	aten := atenMethods(t)
	typ := reflect.TypeOf(&torch.Tensor{})
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i).Name
		if aten[m] {
			continue
		}
		op, ok := tensorMethodOps[m]
		if !assert.Truef(t, ok, "(*Tensor).%s is not covered: add a case to gen_refs.py and list it in tensorMethodOps", m) {
			continue
		}
		if op != "api" {
			assert.Positivef(t, seen[op], "(*Tensor).%s maps to op %q without reference cases", m, op)
		}
	}
	t.Logf("%d ops, %d tensor methods (%d in ops_aten.go), %d cases", len(seen), typ.NumMethod(), len(aten), sumCounts(seen))
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ---------------------------------------------------------------------------
// API behaviour: handles, queries, conversions, autograd, safetensors.

func TestCloseIdempotent(t *testing.T) {
	start := reftest.SettledLiveTensors()
	x := ok(t, torch.Ones([]int64{2, 2}))
	assert.False(t, x.Closed())
	assert.Nil(t, x.Scope(), "a creation function without In makes an unowned tensor")
	assert.Equal(t, start+1, torch.LiveTensors())
	require.NoError(t, x.Close())
	require.NoError(t, x.Close())
	assert.True(t, x.Closed())
	assert.Equal(t, start, torch.LiveTensors())
	var nilT *torch.Tensor
	require.NoError(t, nilT.Close())
	assert.True(t, nilT.Closed())
	torch.CloseAll(x, nil, nilT)
	assert.Equal(t, start, torch.LiveTensors())
	assert.Equal(t, "Tensor(closed)", x.String())
	assert.Equal(t, "Tensor(nil)", nilT.String())
	assert.Nil(t, x.Shape())
	assert.Equal(t, -1, x.Dim())
	assert.Equal(t, int64(-1), x.SizeOf(0))
	assert.Equal(t, int64(0), x.Numel())
	assert.Equal(t, torch.Invalid, x.DType())
	assert.False(t, x.RequiresGrad())

	// Closing a failed tensor returns its error and frees nothing.
	bad := x.Neg()
	require.Error(t, bad.Err())
	assert.True(t, bad.Closed())
	assert.Equal(t, bad.Err(), bad.Close())
	assert.Contains(t, bad.String(), "Tensor(failed: torch: Neg: self: use of closed tensor")
	assert.Equal(t, start, torch.LiveTensors())
}

func TestQueries(t *testing.T) {
	require.NoError(t, torch.CheckABI())
	assert.True(t, strings.HasPrefix(torch.Version(), "1.") || strings.HasPrefix(torch.Version(), "2."), torch.Version())
	assert.Positive(t, torch.NumThreads())
	s := testScope(t)

	x := torch.Zeros([]int64{2, 3, 4}, torch.WithDType(torch.Float64), torch.In(s))
	assert.Same(t, s, x.Scope())
	assert.Equal(t, []int64{2, 3, 4}, x.Shape())
	size, err := x.Size()
	require.NoError(t, err)
	assert.Equal(t, []int64{2, 3, 4}, size)
	assert.Equal(t, 3, x.Dim())
	assert.Equal(t, int64(3), x.SizeOf(1))
	assert.Equal(t, int64(4), x.SizeOf(-1))
	assert.Equal(t, int64(-1), x.SizeOf(3))
	assert.Equal(t, int64(24), x.Numel())
	assert.Equal(t, torch.Float64, x.DType())
	assert.Equal(t, torch.CPU, x.Device())
	assert.Equal(t, "cpu", x.Device().String())
	assert.Equal(t, "cuda:1", torch.CUDA(1).String())
	assert.Equal(t, "Tensor(float64 [2 3 4] cpu)", x.String())

	sc := torch.Full(nil, 2.5, torch.In(s))
	assert.Equal(t, []int64{}, sc.Shape())
	assert.Equal(t, 0, sc.Dim())
	assert.Equal(t, int64(1), sc.Numel())

	// More than the 8 dims Size reads in its first call.
	big := torch.Zeros([]int64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, torch.In(s))
	assert.Equal(t, []int64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, big.Shape())

	for _, d := range []torch.DType{torch.Uint8, torch.Int32, torch.Int64, torch.Float16, torch.Float32, torch.Float64, torch.Bool, torch.BFloat16} {
		assert.Equal(t, d, torch.Empty([]int64{3}, torch.WithDType(d), torch.In(s)).DType(), d.String())
		assert.True(t, d.Valid())
	}
	require.NoError(t, s.Err())
	assert.False(t, torch.DType(99).Valid())
	assert.Equal(t, "DType(99)", torch.DType(99).String())
	assert.Equal(t, "bfloat16", torch.BFloat16.String())
	assert.Equal(t, 2, torch.BFloat16.ElemSize())
	assert.True(t, torch.Float16.IsFloat())
	assert.False(t, torch.Int64.IsFloat())
	assert.Equal(t, torch.Int32, torch.DTypeOf[int32]())
}

func TestItem(t *testing.T) {
	s := testScope(t)
	x := torch.Full(nil, 2.75, torch.WithDType(torch.Float64), torch.In(s))
	i := s.Own(torch.FromSlice([]int64{-9007199254740993}, 1))
	assert.Equal(t, 2.75, item(t, x))
	assert.Equal(t, int64(2), torch.Must(x.ItemInt()))
	assert.Equal(t, int64(-9007199254740993), torch.Must(i.ItemInt())) // not representable as float64

	v := torch.Ones([]int64{2}, torch.In(s))
	_, err := v.Item()
	require.Error(t, err)
	_, err = v.ItemInt()
	require.Error(t, err)
}

func TestToSliceDTypeMismatch(t *testing.T) {
	x := testScope(t).Own(torch.Ones([]int64{3}))
	_, err := torch.ToSlice[float64](x)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tensor is float32 but the slice type is float64")
	_, err = torch.ToSlice[int64](x)
	require.ErrorContains(t, err, "float32")
	assert.Equal(t, []float32{1, 1, 1}, vals[float32](t, x))

	_, err = torch.ToSlice[float32](nil)
	require.ErrorContains(t, err, "nil tensor")
}

func roundTrip[T torch.Element](t *testing.T, data []T, shape ...int64) {
	t.Helper()
	x := ok(t, torch.FromSlice(data, shape...))
	defer x.Close()
	assert.Equal(t, torch.DTypeOf[T](), x.DType())
	if shape == nil {
		shape = []int64{int64(len(data))}
	}
	assert.Equal(t, shape, x.Shape())
	assert.Equal(t, data, vals[T](t, x))
}

func TestFromSliceRoundTrip(t *testing.T) {
	roundTrip(t, []float32{1.5, -2, float32(math.Inf(1)), math.MaxFloat32, math.SmallestNonzeroFloat32, 0}, 2, 3)
	roundTrip(t, []float64{math.Pi, -1e300, math.SmallestNonzeroFloat64, 0.1})
	roundTrip(t, []int64{math.MinInt64, -1, 0, math.MaxInt64}, 2, 2)
	roundTrip(t, []int32{math.MinInt32, 7, math.MaxInt32}, 3, 1)
	roundTrip(t, []uint8{0, 1, 128, 255})
	roundTrip(t, []bool{true, false, false, true, true, false}, 3, 2)
	roundTrip(t, []float32{42}, []int64{}...) // an empty, non-nil shape: 0-dim
	roundTrip(t, []float32{}, 0, 3)

	s := testScope(t)
	f := s.Own(torch.FromSlice([]float64{-3.5}, []int64{}...))
	x := s.Own(torch.FromSlice([]float32{7}, make([]int64, 0)...))
	assert.Equal(t, []int64{}, x.Shape(), "an empty (non-nil) shape makes a 0-dim tensor")
	assert.Equal(t, []int64{}, f.Shape())

	nan := s.Own(torch.FromSlice([]float64{math.NaN()}))
	assert.True(t, math.IsNaN(vals[float64](t, nan)[0]))
	require.NoError(t, s.Err())

	bad := torch.FromSlice([]float32{1, 2, 3}, 2, 2)
	require.ErrorContains(t, bad.Err(), "needs 4 elements but the slice has 3")
}

func TestToDType(t *testing.T) {
	s := testScope(t)
	x := s.Own(torch.FromSlice([]float32{1.5, -2.25, 3, 0.125, 65504, -0.5}, 2, 3))
	cases := []struct {
		to   torch.DType
		want []float32 // after the round trip back to float32
	}{
		{torch.Float64, []float32{1.5, -2.25, 3, 0.125, 65504, -0.5}},
		{torch.Float16, []float32{1.5, -2.25, 3, 0.125, 65504, -0.5}},
		{torch.BFloat16, []float32{1.5, -2.25, 3, 0.125, 65536, -0.5}}, // 65504 rounds to 2^16 in bfloat16
		{torch.Int64, []float32{1, -2, 3, 0, 65504, 0}},                // truncation toward zero
		{torch.Int32, []float32{1, -2, 3, 0, 65504, 0}},
		{torch.Bool, []float32{1, 1, 1, 1, 1, 1}},
	}
	for _, c := range cases {
		y := x.To(c.to)
		assert.Equal(t, c.to, y.DType(), c.to.String())
		assert.Equal(t, []int64{2, 3}, y.Shape())
		assert.Equal(t, c.want, vals[float32](t, y.To(torch.Float32)), "float32 -> %v -> float32", c.to)
	}

	// Exact integers survive float64 -> int64 and back.
	i := s.Own(torch.FromSlice([]int64{-5, 0, 1 << 40}))
	assert.Equal(t, []int64{-5, 0, 1 << 40}, vals[int64](t, i.To(torch.Float64).To(torch.Int64)))

	u := s.Own(torch.FromSlice([]uint8{0, 200, 255}))
	assert.Equal(t, []float32{0, 200, 255}, vals[float32](t, u.To(torch.Float32)))

	// Same dtype and device: a new handle that can be closed on its own.
	same := ok(t, x.To(torch.Float32))
	assert.NotSame(t, x, same)
	require.NoError(t, same.Close())
	assert.False(t, x.Closed())

	assert.Equal(t, torch.CPU, x.To(torch.CPU).Device())
	require.NoError(t, s.Err())

	require.ErrorContains(t, x.To(torch.DType(42)).Err(), "unsupported dtype")
}

func TestCreation(t *testing.T) {
	s := testScope(t)
	z := torch.Zeros([]int64{2, 2}, torch.WithDType(torch.Int32), torch.In(s))
	o := torch.Ones([]int64{3}, torch.WithDType(torch.Float64), torch.In(s))
	a := torch.Arange(0, 5, 1, torch.WithDType(torch.Int64), torch.In(s))
	require.NoError(t, s.Err())
	assert.Equal(t, []int32{0, 0, 0, 0}, vals[int32](t, z))
	assert.Equal(t, []float64{1, 1, 1}, vals[float64](t, o))
	assert.Equal(t, []int64{0, 1, 2, 3, 4}, vals[int64](t, a))

	x := torch.Empty([]int64{4}, torch.In(s))
	require.NoError(t, x.Fill_(0.5))
	assert.Equal(t, []float32{0.5, 0.5, 0.5, 0.5}, vals[float32](t, x))
	require.NoError(t, x.Zeros_())
	assert.Equal(t, []float32{0, 0, 0, 0}, vals[float32](t, x))
	require.NoError(t, x.Ones_())
	assert.Equal(t, []float32{1, 1, 1, 1}, vals[float32](t, x))

	require.ErrorContains(t, torch.Arange(0, 1, 0).Err(), "step must not be zero")
	assert.Panics(t, func() { torch.Zeros([]int64{-2}).Must() })
	assert.NotPanics(t, func() { torch.Zeros([]int64{2}).Must().Close() })
	var nilT *torch.Tensor
	assert.Panics(t, func() { nilT.Must() })
	assert.Panics(t, func() { torch.Must(0, errors.New("boom")) })
	assert.Equal(t, 7, torch.Must(7, nil))
}

func TestAliasCopyAllClose(t *testing.T) {
	s := testScope(t)
	x := s.Own(torch.FromSlice([]float32{1, 2, 3, 4}, 2, 2))
	al := ok(t, x.Alias())
	assert.Same(t, s, al.Scope(), "an alias joins its source's scope")
	require.NoError(t, al.Fill_(7))
	assert.Equal(t, []float32{7, 7, 7, 7}, vals[float32](t, x), "an alias shares memory")
	require.NoError(t, al.Close())
	assert.False(t, x.Closed(), "closing an alias leaves the original valid")

	src := s.Own(torch.FromSlice([]float64{1, 2}, 2))
	assert.Same(t, x, ok(t, x.Copy_(src)), "Copy_ returns its receiver") // broadcast over rows, converted to float32
	assert.Equal(t, []float32{1, 2, 1, 2}, vals[float32](t, x))

	y := s.Own(torch.FromSlice([]float32{1, 2, 1, 2.000001}, 2, 2))
	near, err := x.AllClose(y, 1e-5, 0)
	require.NoError(t, err)
	assert.True(t, near)
	near, err = x.AllClose(y, 0, 0)
	require.NoError(t, err)
	assert.False(t, near)
}

func TestNoGradRestoresMode(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2}, torch.In(s))
	require.NoError(t, x.SetRequiresGrad(true))

	check := func(outer bool) {
		var innerY, innerMode bool
		err := torch.NoGrad(func() error {
			innerMode = torch.GradEnabled()
			innerY = x.MulScalar(2).RequiresGrad()
			// Nested EnableGrad turns recording back on, then off again.
			return torch.EnableGrad(func() error {
				if !x.MulScalar(3).RequiresGrad() {
					return fmt.Errorf("EnableGrad inside NoGrad did not record")
				}
				return s.Err()
			})
		})
		require.NoError(t, err)
		assert.False(t, innerMode, "grad mode inside NoGrad")
		assert.False(t, innerY, "RequiresGrad of a result inside NoGrad")
		assert.Equal(t, outer, torch.GradEnabled(), "NoGrad must restore the previous mode")
	}

	// GradEnabled is per OS thread: pin this goroutine to compare modes.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	require.True(t, torch.GradEnabled())
	check(true)
	assert.True(t, x.MulScalar(2).RequiresGrad(), "recording resumes after NoGrad")

	// From a disabled mode, NoGrad restores "disabled".
	require.NoError(t, torch.NoGrad(func() error {
		check(false)
		return nil
	}))
	assert.True(t, torch.GradEnabled())

	// The mode is restored when f fails and when it panics.
	err := torch.NoGrad(func() error { return fmt.Errorf("boom") })
	require.EqualError(t, err, "boom")
	assert.True(t, torch.GradEnabled())
	assert.Panics(t, func() { _ = torch.NoGrad(func() error { panic("boom") }) })
	assert.True(t, torch.GradEnabled())
	require.NoError(t, s.Err())
}

func TestGradLifecycle(t *testing.T) {
	s := testScope(t)
	w := s.Own(torch.FromSlice([]float32{1, 2, 3}))
	assert.Nil(t, w.Grad(), "no grad on a tensor that does not require it")

	require.NoError(t, w.SetRequiresGrad(true))
	assert.True(t, w.RequiresGrad())
	assert.Nil(t, w.Grad(), "Grad is nil before backward")

	step := func() { require.NoError(t, w.Mul(w).Sum().Backward()) }
	step()
	g := ok(t, w.Grad())
	assert.Same(t, s, g.Scope(), "a gradient handle joins its tensor's scope")
	assert.Equal(t, []float32{2, 4, 6}, vals[float32](t, g))
	step() // gradients accumulate
	assert.Equal(t, []float32{4, 8, 12}, vals[float32](t, g), "the handle sees the accumulated grad")
	require.NoError(t, g.Close())

	require.NoError(t, w.ZeroGrad())
	g = w.Grad()
	require.NotNil(t, g, "ZeroGrad keeps the gradient tensor")
	assert.Equal(t, []float32{0, 0, 0}, vals[float32](t, g))

	require.NoError(t, w.ClearGrad())
	assert.Nil(t, w.Grad(), "ClearGrad drops the gradient")
	require.NoError(t, w.ClearGrad(), "ClearGrad without a gradient is a no-op")
	require.NoError(t, w.ZeroGrad(), "ZeroGrad without a gradient is a no-op")

	// BackwardWith: non-scalar output, explicit gradient, retained graph.
	// w*w saves its inputs, so a second backward needs the retained graph.
	y := w.Mul(w)
	seed := s.Own(torch.FromSlice([]float32{1, 0.5, 0.25}))
	require.NoError(t, y.BackwardWith(seed, true))
	require.NoError(t, y.BackwardWith(seed, false))
	assert.Equal(t, []float32{4, 4, 3}, vals[float32](t, w.Grad())) // 2 × 2w × seed
	err := y.BackwardWith(seed, false)
	require.Error(t, err, "the graph was freed")
	assert.NotContains(t, err.Error(), "Exception raised from")

	// Detach cuts the graph but shares memory.
	d := w.Detach()
	assert.False(t, d.RequiresGrad())
	require.NoError(t, d.Fill_(5))
	assert.Equal(t, []float32{5, 5, 5}, vals[float32](t, w))
	assert.False(t, d.MulScalar(2).RequiresGrad())

	// The failed backward above is the scope's first error.
	assert.Equal(t, "Backward", errOp(s.Err()))

	// Backward of a failed tensor returns its error, and does nothing.
	bad := w.Reshape(7)
	require.Error(t, bad.Err())
	assert.True(t, bad.Backward() == bad.Err())
	assert.Equal(t, "Backward", errOp(s.Err()), "the scope keeps its first error")
}

// ---------------------------------------------------------------------------
// Safetensors round trips and interoperability.

func TestSafetensorsRoundTrip(t *testing.T) {
	s := testScope(t)
	f32 := s.Own(torch.FromSlice([]float32{1.5, -2, 3.25, 0}, 2, 2))
	tensors := map[string]*torch.Tensor{
		"f32":        f32,
		"f64":        s.Own(torch.FromSlice([]float64{math.Pi, -1e-300})),
		"f16":        f32.To(torch.Float16),
		"bf16":       f32.To(torch.BFloat16),
		"i64":        s.Own(torch.FromSlice([]int64{math.MinInt64, 3, math.MaxInt64}, 3, 1)),
		"i32":        s.Own(torch.FromSlice([]int32{-1, 2})),
		"u8":         s.Own(torch.FromSlice([]uint8{0, 255, 7})),
		"bool":       s.Own(torch.FromSlice([]bool{true, false})),
		"scalar":     torch.Full(nil, 0.5, torch.WithDType(torch.Float64), torch.In(s)),
		"empty":      torch.Zeros([]int64{0, 4}, torch.In(s)),
		"layer.0.wt": f32.T(), // non-contiguous view
	}
	require.NoError(t, s.Err())
	meta := map[string]string{"format": "pt", "step": "42", "unicode": "λ ✓"}
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	require.NoError(t, torch.SaveSafetensors(path, tensors, meta))

	got, gotMeta, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(got)
	assert.Equal(t, meta, gotMeta)
	require.Len(t, got, len(tensors))
	for name, want := range tensors {
		g, ok := got[name]
		if !assert.Truef(t, ok, "tensor %s missing", name) {
			continue
		}
		assert.Equalf(t, torch.CPU, g.Device(), name)
		compare(t, "safetensors "+name, g, want, true, 0)
	}

	// No metadata at all.
	path2 := filepath.Join(t.TempDir(), "nometa.safetensors")
	require.NoError(t, torch.SaveSafetensors(path2, map[string]*torch.Tensor{"x": f32}, nil))
	got2, meta2, err := torch.LoadSafetensors(path2)
	require.NoError(t, err)
	defer torch.CloseMap(got2)
	assert.Empty(t, meta2)
	compare(t, "nometa x", got2["x"], f32, true, 0)
}

// TestInteropPythonFile loads interop.safetensors, written by gen_refs.py's
// own safetensors writer, and checks every dtype and the metadata.
func TestInteropPythonFile(t *testing.T) {
	ts, meta, err := torch.LoadSafetensors(filepath.Join("testdata", "interop.safetensors"))
	require.NoError(t, err)
	defer torch.CloseMap(ts)
	assert.Equal(t, map[string]string{"format": "pt", "writer": "gen_refs.py", "note": "héllo ✓"}, meta)
	require.Len(t, ts, 10)
	s := testScope(t)

	check := func(name string, dt torch.DType, shape []int64) *torch.Tensor {
		t.Helper()
		x := ts[name]
		require.NotNilf(t, x, "tensor %s", name)
		assert.Equalf(t, dt, x.DType(), name)
		assert.Equalf(t, shape, x.Shape(), name)
		return x
	}
	assert.Equal(t, []float32{1.5, -2, 0.25, 3, 0, -0.125}, vals[float32](t, check("f32", torch.Float32, []int64{2, 3})))
	assert.Equal(t, []float64{1.0 / 3.0, -1e300, 2.5}, vals[float64](t, check("f64", torch.Float64, []int64{3})))
	for _, n := range []string{"f16", "bf16"} {
		dt := map[string]torch.DType{"f16": torch.Float16, "bf16": torch.BFloat16}[n]
		up := s.Own(check(n, dt, []int64{3}).To(torch.Float32))
		want := map[string][]float32{"f16": {0.5, -1, 65504}, "bf16": {1, -2.5, 3.0040553e38}}[n] // 3e38 rounds to 0x7F62 in bfloat16
		assert.Equal(t, want, vals[float32](t, up), n)
	}
	assert.Equal(t, []int64{-(1 << 62), 0, 7, 1 << 62}, vals[int64](t, check("i64", torch.Int64, []int64{2, 2})))
	assert.Equal(t, []int32{-7, 0, math.MaxInt32}, vals[int32](t, check("i32", torch.Int32, []int64{3})))
	assert.Equal(t, []uint8{0, 1, 255}, vals[uint8](t, check("u8", torch.Uint8, []int64{3})))
	assert.Equal(t, []bool{true, false, true, true}, vals[bool](t, check("bool", torch.Bool, []int64{4})))
	assert.Equal(t, 42.0, item(t, check("scalar", torch.Float32, []int64{})))
	assert.Equal(t, int64(0), check("empty", torch.Float32, []int64{0, 3}).Numel())

	// The reference files carry their generator's metadata too.
	f := opsSuite.load(t, "ops_float32.safetensors")
	assert.Equal(t, "float32", f.Meta["dtype"])
	assert.Equal(t, "torch/testdata/gen_refs.py", f.Meta["generator"])
}
