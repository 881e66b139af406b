package torch_test

import (
	"fmt"
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

// refCase is one entry of a reference file's "cases" metadata.
type refCase struct {
	Name    string    `json:"name"`
	Op      string    `json:"op"`
	Params  refParams `json:"params"`
	NIn     int       `json:"n_in"`
	NOut    int       `json:"n_out"`
	Grad    []int     `json:"grad"`
	Exact   bool      `json:"exact"`
	CPUOnly bool      `json:"cpu_only"`
}

// refParams are a case's op parameters. The accessors panic on a missing or
// mistyped key; runRef turns the panic into a test failure naming the case.
type refParams map[string]any

func (p refParams) get(k string) any {
	v, ok := p[k]
	if !ok {
		panic(fmt.Sprintf("missing param %q", k))
	}
	return v
}

func (p refParams) has(k string) bool { _, ok := p[k]; return ok }

func (p refParams) f(k string) float64 { return p.get(k).(float64) }

func (p refParams) i(k string) int64 {
	v := p.f(k)
	if v != math.Trunc(v) {
		panic(fmt.Sprintf("param %q = %v is not an integer", k, v))
	}
	return int64(v)
}

func (p refParams) b(k string) bool { return p.get(k).(bool) }

func (p refParams) s(k string) string { return p.get(k).(string) }

func (p refParams) ints(k string) []int64 {
	vs := p.get(k).([]any)
	out := make([]int64, len(vs))
	for j, v := range vs {
		out[j] = int64(v.(float64))
	}
	return out
}

func (p refParams) pair(k string) [2]int64 {
	v := p.ints(k)
	if len(v) != 2 {
		panic(fmt.Sprintf("param %q needs 2 values", k))
	}
	return [2]int64{v[0], v[1]}
}

func (p refParams) dtype(k string) torch.DType {
	switch p.s(k) {
	case "float32":
		return torch.Float32
	case "float64":
		return torch.Float64
	case "int64":
		return torch.Int64
	case "int32":
		return torch.Int32
	}
	panic("unknown dtype " + p.s(k))
}

func (p refParams) reduction() torch.Reduction {
	switch p.s("reduction") {
	case "none":
		return torch.ReductionNone
	case "mean":
		return torch.ReductionMean
	case "sum":
		return torch.ReductionSum
	}
	panic("unknown reduction " + p.s("reduction"))
}

func (p refParams) fan() torch.FanMode {
	switch p.s("mode") {
	case "fan_in":
		return torch.FanIn
	case "fan_out":
		return torch.FanOut
	}
	panic("unknown mode " + p.s("mode"))
}

func (p refParams) nonlinearity() torch.Nonlinearity {
	switch p.s("nonlinearity") {
	case "leaky_relu":
		return torch.LeakyReLU
	case "relu":
		return torch.ReLU
	case "linear":
		return torch.LinearGain
	case "tanh":
		return torch.TanhGain
	case "sigmoid":
		return torch.SigmoidGain
	}
	panic("unknown nonlinearity " + p.s("nonlinearity"))
}

// refOp runs one op of the Go API on the inputs (already on dev) and returns
// its outputs. It closes any intermediate tensors it makes.
type refOp func(dev torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error)

func one(t *torch.Tensor, err error) ([]*torch.Tensor, error) {
	if err != nil {
		return nil, err
	}
	return []*torch.Tensor{t}, nil
}

func unaryOp(f func(*torch.Tensor) (*torch.Tensor, error)) refOp {
	return func(_ torch.Device, in []*torch.Tensor, _ refParams) ([]*torch.Tensor, error) { return one(f(in[0])) }
}

func binaryOp(f func(a, b *torch.Tensor) (*torch.Tensor, error)) refOp {
	return func(_ torch.Device, in []*torch.Tensor, _ refParams) ([]*torch.Tensor, error) {
		return one(f(in[0], in[1]))
	}
}

func scalarOp(f func(*torch.Tensor, float64) (*torch.Tensor, error)) refOp {
	return func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(f(in[0], p.f("s")))
	}
}

// seededCreate covers Randn and Rand; seededInit the in-place initialisers.
func seededCreate(f func([]int64, ...torch.Option) (*torch.Tensor, error)) refOp {
	return func(dev torch.Device, _ []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		if err := torch.ManualSeed(uint64(p.i("seed"))); err != nil {
			return nil, err
		}
		return one(f(p.ints("shape"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(dev)))
	}
}

func seededInit(f func(*torch.Tensor, refParams) error) refOp {
	return func(dev torch.Device, _ []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		x, err := torch.Empty(p.ints("shape"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(dev))
		if err != nil {
			return nil, err
		}
		if err := torch.ManualSeed(uint64(p.i("seed"))); err != nil {
			x.Close()
			return nil, err
		}
		if err := f(x, p); err != nil {
			x.Close()
			return nil, err
		}
		return []*torch.Tensor{x}, nil
	}
}

// refOps maps the op names of gen_refs.py to golora calls.
var refOps = map[string]refOp{
	"linear": func(_ torch.Device, in []*torch.Tensor, _ refParams) ([]*torch.Tensor, error) {
		var b *torch.Tensor
		if len(in) > 2 {
			b = in[2]
		}
		return one(torch.Linear(in[0], in[1], b))
	},
	"lora_linear": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[4]
		}
		return one(torch.LoraLinear(in[0], in[1], b, in[2], in[3], p.f("scaling")))
	},
	"embedding": binaryOp(torch.Embedding),
	"lora_embedding": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.LoraEmbedding(in[0], in[1], in[2], in[3], p.f("scaling")))
	},
	"matmul": binaryOp((*torch.Tensor).MatMul),
	"mm":     binaryOp((*torch.Tensor).Mm),
	"t":      unaryOp((*torch.Tensor).T),
	"transpose": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Transpose(p.i("d0"), p.i("d1")))
	},
	"permute": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Permute(p.ints("dims")...))
	},
	"reshape": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Reshape(p.ints("shape")...))
	},
	"view": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].View(p.ints("shape")...))
	},
	"contiguous": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		tr, err := in[0].Transpose(p.i("d0"), p.i("d1"))
		if err != nil {
			return nil, err
		}
		defer tr.Close()
		return one(tr.Contiguous())
	},
	"narrow": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Narrow(p.i("dim"), p.i("start"), p.i("length")))
	},
	"slice": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Slice(p.i("dim"), p.i("start"), p.i("end"), p.i("step")))
	},
	"index_select": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].IndexSelect(p.i("dim"), in[1]))
	},
	"cat": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.Cat(in, p.i("dim")))
	},
	"stack": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
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
	"sum_dims": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].SumDims(p.ints("dims"), p.b("keepdim")))
	},
	"mean_dims": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].MeanDims(p.ints("dims"), p.b("keepdim")))
	},
	"max_dim": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		v, i, err := in[0].MaxDim(p.i("dim"), p.b("keepdim"))
		if err != nil {
			return nil, err
		}
		return []*torch.Tensor{v, i}, nil
	},
	"argmax_dim": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].ArgmaxDim(p.i("dim"), p.b("keepdim")))
	},
	"softmax": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Softmax(p.i("dim")))
	},
	"log_softmax": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].LogSoftmax(p.i("dim")))
	},
	"layer_norm": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		var w, b *torch.Tensor
		k := 1
		if p.b("weight") {
			w = in[k]
			k++
		}
		if p.b("bias") {
			b = in[k]
		}
		return one(torch.LayerNorm(in[0], p.ints("shape"), w, b, p.f("eps")))
	},
	"dropout": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		if p.has("seed") {
			if err := torch.ManualSeed(uint64(p.i("seed"))); err != nil {
				return nil, err
			}
		}
		return one(torch.Dropout(in[0], p.f("p"), p.b("train")))
	},
	"conv2d": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[2]
		}
		return one(torch.Conv2d(in[0], in[1], b, torch.Conv2dOptions{
			Stride: p.pair("stride"), Padding: p.pair("padding"), Dilation: p.pair("dilation"), Groups: p.i("groups"),
		}))
	},
	"tril": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].Tril(p.i("diagonal")))
	},
	"masked_fill": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(in[0].MaskedFill(in[1], p.f("value")))
	},
	"sdpa": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		var mask *torch.Tensor
		if len(in) == 4 {
			mask = in[3]
		}
		return one(torch.ScaledDotProductAttention(in[0], in[1], in[2], mask, 0, p.b("causal")))
	},
	"cross_entropy": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.CrossEntropy(in[0], in[1], p.i("ignore_index"), p.reduction()))
	},
	"mse_loss": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.MSELoss(in[0], in[1], p.reduction()))
	},
	"clone": unaryOp((*torch.Tensor).Clone),
	"add_scaled": func(_ torch.Device, in []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		out, err := in[0].Clone()
		if err != nil {
			return nil, err
		}
		if err := out.AddScaled_(in[1], p.f("alpha")); err != nil {
			out.Close()
			return nil, err
		}
		return []*torch.Tensor{out}, nil
	},
	"arange": func(dev torch.Device, _ []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.Arange(p.f("start"), p.f("end"), p.f("step"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(dev)))
	},
	"full": func(dev torch.Device, _ []*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
		return one(torch.Full(p.ints("shape"), p.f("value"), torch.WithDType(p.dtype("dtype")), torch.WithDevice(dev)))
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

// refFile is a loaded reference file and its cases.
type refFile struct {
	*reftest.File
	cases []refCase
}

func loadRefFile(t *testing.T, name string) *refFile {
	t.Helper()
	f := reftest.Load(t, filepath.Join("testdata", name), "/usr/bin/python3 torch/testdata/gen_refs.py")
	var cases []refCase
	f.DecodeMeta(t, "cases", &cases)
	require.NotEmptyf(t, cases, "%s: no cases", f.Path)
	return &refFile{File: f, cases: cases}
}

func (f *refFile) tensor(t *testing.T, c refCase, kind string, i int) *torch.Tensor {
	t.Helper()
	return f.Tensor(t, fmt.Sprintf("%s.%s.%d", c.Name, kind, i))
}

// runRef replays one case on dev and compares its outputs and gradients.
func runRef(t *testing.T, f *refFile, c refCase, dev torch.Device, stats *reftest.MaxErrors) {
	t.Helper()
	op, ok := refOps[c.Op]
	require.Truef(t, ok, "case %s: op %q has no Go runner in refOps", c.Name, c.Op)
	if c.CPUOnly || c.Exact {
		dev = torch.CPU
	}

	// Inputs: fresh leaves on dev (Detach on the CPU so that requires_grad
	// does not stick to the loaded tensor).
	wantGrad := map[int]bool{}
	for _, i := range c.Grad {
		wantGrad[i] = true
	}
	in := make([]*torch.Tensor, c.NIn)
	for i := range in {
		src := f.tensor(t, c, "in", i)
		var x *torch.Tensor
		var err error
		if dev.IsCUDA() {
			x, err = src.To(dev)
		} else {
			x, err = src.Detach()
		}
		require.NoError(t, err)
		closeLater(t, x)
		if wantGrad[i] {
			require.NoError(t, x.SetRequiresGrad(true))
		}
		in[i] = x
	}

	var outs []*torch.Tensor
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		outs, err = op(dev, in, c.Params)
	}()
	require.NoErrorf(t, err, "case %s (%s)", c.Name, c.Op)
	closeLater(t, outs...)
	require.Lenf(t, outs, c.NOut, "case %s: outputs", c.Name)

	var loss *torch.Tensor
	for j, o := range outs {
		if o.Device() != dev {
			t.Errorf("case %s: output %d is on %v, want %v", c.Name, j, o.Device(), dev)
		}
		want := f.tensor(t, c, "out", j)
		e := compare(t, fmt.Sprintf("%s out %d", c.Name, j), o, want, c.Exact, tolerance(want.DType(), dev, c.Op))
		if want.DType().IsFloat() {
			stats.Note(fmt.Sprintf("%v/%v/value", want.DType(), dev), c.Name, e)
		}

		w, ok := f.Tensors[fmt.Sprintf("%s.w.%d", c.Name, j)]
		if !ok {
			continue
		}
		wd := try(w.To(dev)).must(t)
		prod := try(o.Mul(wd)).must(t)
		term := try(prod.Sum()).must(t)
		closeLater(t, wd, prod, term)
		if loss == nil {
			loss = term
		} else {
			loss = try(loss.Add(term)).must(t)
			closeLater(t, loss)
		}
	}
	if len(c.Grad) == 0 {
		return
	}
	require.NotNilf(t, loss, "case %s: gradients expected but no output has a loss weight", c.Name)
	require.NoErrorf(t, loss.Backward(), "case %s: backward", c.Name)
	for _, i := range c.Grad {
		g, err := in[i].Grad()
		require.NoError(t, err)
		require.NotNilf(t, g, "case %s: input %d has no gradient after backward", c.Name, i)
		closeLater(t, g)
		want := f.tensor(t, c, "grad", i)
		e := compare(t, fmt.Sprintf("%s grad %d", c.Name, i), g, want, c.Exact, tolerance(want.DType(), dev, c.Op))
		stats.Note(fmt.Sprintf("%v/%v/grad", want.DType(), dev), c.Name, e)
	}
}

func runRefFile(t *testing.T, name string) {
	f := loadRefFile(t, name)
	dev := reftest.Device(t)
	stats := &reftest.MaxErrors{}
	for _, c := range f.cases {
		t.Run(c.Name, func(t *testing.T) { runRef(t, f, c, dev, stats) })
	}
	t.Logf("%s: %d cases on %v (torch %s)", name, len(f.cases), dev, torch.Version())
	stats.Log(t, "")
}

func TestRefOpsFloat32(t *testing.T) { runRefFile(t, "ops_float32.safetensors") }

func TestRefOpsFloat64(t *testing.T) { runRefFile(t, "ops_float64.safetensors") }

// TestRefSeeded checks that seeded draws and initialisers equal PyTorch's
// bit for bit. They always run on the CPU (see helpers_test.go).
func TestRefSeeded(t *testing.T) { runRefFile(t, "seeded.safetensors") }

// tensorMethodOps lists, for each exported method of *torch.Tensor, the
// reference op that covers it, or "api" when the API tests in this file
// cover it. A new method fails TestRefCoverage until it is listed here
// (and, if it computes something, given a case in gen_refs.py).
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
	"Tril": "tril", "MaskedFill": "masked_fill", "Clone": "clone",
	"Uniform_": "uniform_", "Normal_": "normal_", "KaimingUniform_": "kaiming_uniform_",
	"KaimingNormal_": "kaiming_normal_", "XavierUniform_": "xavier_uniform_", "XavierNormal_": "xavier_normal_",
	"Backward": "api", "BackwardWith": "api", "Grad": "api", "ZeroGrad": "api", "ClearGrad": "api",
	"Detach": "api", "SetRequiresGrad": "api", "RequiresGrad": "api",
	"Close": "api", "Closed": "api", "Size": "api", "Shape": "api", "Dim": "api", "Numel": "api",
	"DType": "api", "Device": "api", "String": "api", "Item": "api", "ItemInt": "api", "To": "api",
	"Alias": "api", "Copy_": "api", "AllClose": "api", "Fill_": "api", "Zeros_": "api", "Ones_": "api",
}

// TestRefCoverage checks that the reference files exercise every op the
// tests know, and every method of *torch.Tensor is accounted for.
func TestRefCoverage(t *testing.T) {
	seen := map[string]int{}
	for _, name := range []string{"ops_float32.safetensors", "ops_float64.safetensors", "seeded.safetensors"} {
		f := loadRefFile(t, name)
		for _, c := range f.cases {
			seen[c.Op]++
			assert.Containsf(t, refOps, c.Op, "%s: case %s uses op %q that has no Go runner", name, c.Name, c.Op)
		}
	}
	for op := range refOps {
		assert.Positivef(t, seen[op], "op %q has no reference case in testdata (gen_refs.py)", op)
	}
	typ := reflect.TypeOf(&torch.Tensor{})
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i).Name
		op, ok := tensorMethodOps[m]
		if !assert.Truef(t, ok, "(*Tensor).%s is not covered: add a case to gen_refs.py and list it in tensorMethodOps", m) {
			continue
		}
		if op != "api" {
			assert.Positivef(t, seen[op], "(*Tensor).%s maps to op %q without reference cases", m, op)
		}
	}
	t.Logf("%d ops, %d tensor methods, %d cases", len(seen), typ.NumMethod(), sumCounts(seen))
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
	x := try(torch.Ones([]int64{2, 2})).must(t)
	assert.False(t, x.Closed())
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
	assert.Nil(t, x.Shape())
	assert.Equal(t, -1, x.Dim())
	assert.Equal(t, int64(0), x.Numel())
	assert.Equal(t, torch.Invalid, x.DType())
	assert.False(t, x.RequiresGrad())
}

func TestQueries(t *testing.T) {
	require.NoError(t, torch.CheckABI())
	assert.True(t, strings.HasPrefix(torch.Version(), "1.") || strings.HasPrefix(torch.Version(), "2."), torch.Version())
	assert.Positive(t, torch.NumThreads())

	x := try(torch.Zeros([]int64{2, 3, 4}, torch.WithDType(torch.Float64))).must(t)
	closeLater(t, x)
	assert.Equal(t, []int64{2, 3, 4}, x.Shape())
	assert.Equal(t, []int64{2, 3, 4}, try(x.Size()).must(t))
	assert.Equal(t, 3, x.Dim())
	assert.Equal(t, int64(24), x.Numel())
	assert.Equal(t, torch.Float64, x.DType())
	assert.Equal(t, torch.CPU, x.Device())
	assert.Equal(t, "cpu", x.Device().String())
	assert.Equal(t, "cuda:1", torch.CUDA(1).String())
	assert.Equal(t, "Tensor(float64 [2 3 4] cpu)", x.String())

	s := try(torch.Full(nil, 2.5)).must(t)
	closeLater(t, s)
	assert.Equal(t, []int64{}, s.Shape())
	assert.Equal(t, 0, s.Dim())
	assert.Equal(t, int64(1), s.Numel())

	// More than the 8 dims Size reads in its first call.
	big := try(torch.Zeros([]int64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2})).must(t)
	closeLater(t, big)
	assert.Equal(t, []int64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, big.Shape())

	for _, d := range []torch.DType{torch.Uint8, torch.Int32, torch.Int64, torch.Float16, torch.Float32, torch.Float64, torch.Bool, torch.BFloat16} {
		e := try(torch.Empty([]int64{3}, torch.WithDType(d))).must(t)
		assert.Equal(t, d, e.DType(), d.String())
		e.Close()
		assert.True(t, d.Valid())
	}
	assert.False(t, torch.DType(99).Valid())
	assert.Equal(t, "DType(99)", torch.DType(99).String())
	assert.Equal(t, "bfloat16", torch.BFloat16.String())
	assert.Equal(t, 2, torch.BFloat16.ElemSize())
	assert.True(t, torch.Float16.IsFloat())
	assert.False(t, torch.Int64.IsFloat())
	assert.Equal(t, torch.Int32, torch.DTypeOf[int32]())
}

func TestItem(t *testing.T) {
	x := try(torch.Full(nil, 2.75, torch.WithDType(torch.Float64))).must(t)
	i := try(torch.FromSlice([]int64{-9007199254740993}, 1)).must(t)
	closeLater(t, x, i)
	assert.Equal(t, 2.75, try(x.Item()).must(t))
	assert.Equal(t, int64(2), try(x.ItemInt()).must(t))
	assert.Equal(t, int64(-9007199254740993), try(i.ItemInt()).must(t)) // not representable as float64

	v := try(torch.Ones([]int64{2})).must(t)
	closeLater(t, v)
	_, err := v.Item()
	require.Error(t, err)
	_, err = v.ItemInt()
	require.Error(t, err)
}

func TestToSliceDTypeMismatch(t *testing.T) {
	x := try(torch.Ones([]int64{3})).must(t)
	closeLater(t, x)
	_, err := torch.ToSlice[float64](x)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tensor is float32 but the slice type is float64")
	_, err = torch.ToSlice[int64](x)
	require.ErrorContains(t, err, "float32")
	v, err := torch.ToSlice[float32](x)
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 1, 1}, v)
}

func roundTrip[T torch.Element](t *testing.T, data []T, shape ...int64) {
	t.Helper()
	x, err := torch.FromSlice(data, shape...)
	require.NoError(t, err)
	defer x.Close()
	assert.Equal(t, torch.DTypeOf[T](), x.DType())
	if shape == nil {
		shape = []int64{int64(len(data))}
	}
	assert.Equal(t, shape, x.Shape())
	got, err := torch.ToSlice[T](x)
	require.NoError(t, err)
	assert.Equal(t, data, got)
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

	s := try(torch.FromSlice([]float64{-3.5}, []int64{}...)).must(t)
	closeLater(t, s)
	x := try(torch.FromSlice([]float32{7}, make([]int64, 0)...)).must(t)
	closeLater(t, x)
	assert.Equal(t, []int64{}, x.Shape(), "an empty (non-nil) shape makes a 0-dim tensor")
	assert.Equal(t, []int64{}, s.Shape())

	nan := try(torch.FromSlice([]float64{math.NaN()})).must(t)
	closeLater(t, nan)
	v := try(torch.ToSlice[float64](nan)).must(t)
	assert.True(t, math.IsNaN(v[0]))

	_, err := torch.FromSlice([]float32{1, 2, 3}, 2, 2)
	require.ErrorContains(t, err, "needs 4 elements but the slice has 3")
}

func TestToDType(t *testing.T) {
	x := try(torch.FromSlice([]float32{1.5, -2.25, 3, 0.125, 65504, -0.5}, 2, 3)).must(t)
	closeLater(t, x)
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
		y := try(x.To(c.to)).must(t)
		assert.Equal(t, c.to, y.DType(), c.to.String())
		assert.Equal(t, []int64{2, 3}, y.Shape())
		back := try(y.To(torch.Float32)).must(t)
		got := try(torch.ToSlice[float32](back)).must(t)
		assert.Equal(t, c.want, got, "float32 -> %v -> float32", c.to)
		torch.CloseAll(y, back)
	}

	// Exact integers survive float64 -> int64 and back.
	i := try(torch.FromSlice([]int64{-5, 0, 1 << 40})).must(t)
	f := try(i.To(torch.Float64)).must(t)
	j := try(f.To(torch.Int64)).must(t)
	closeLater(t, i, f, j)
	assert.Equal(t, []int64{-5, 0, 1 << 40}, try(torch.ToSlice[int64](j)).must(t))

	u := try(torch.FromSlice([]uint8{0, 200, 255})).must(t)
	ub := try(u.To(torch.Float32)).must(t)
	closeLater(t, u, ub)
	assert.Equal(t, []float32{0, 200, 255}, try(torch.ToSlice[float32](ub)).must(t))

	// Same dtype and device: a new handle that must be closed separately.
	same := try(x.To(torch.Float32)).must(t)
	require.NoError(t, same.Close())
	assert.False(t, x.Closed())

	cpu := try(x.To(torch.CPU)).must(t)
	closeLater(t, cpu)
	assert.Equal(t, torch.CPU, cpu.Device())

	_, err := x.To(torch.DType(42))
	require.ErrorContains(t, err, "unsupported dtype")
}

func TestCreation(t *testing.T) {
	z := try(torch.Zeros([]int64{2, 2}, torch.WithDType(torch.Int32))).must(t)
	o := try(torch.Ones([]int64{3}, torch.WithDType(torch.Float64))).must(t)
	a := try(torch.Arange(0, 5, 1, torch.WithDType(torch.Int64))).must(t)
	closeLater(t, z, o, a)
	assert.Equal(t, []int32{0, 0, 0, 0}, try(torch.ToSlice[int32](z)).must(t))
	assert.Equal(t, []float64{1, 1, 1}, try(torch.ToSlice[float64](o)).must(t))
	assert.Equal(t, []int64{0, 1, 2, 3, 4}, try(torch.ToSlice[int64](a)).must(t))

	x := try(torch.Empty([]int64{4})).must(t)
	closeLater(t, x)
	require.NoError(t, x.Fill_(0.5))
	assert.Equal(t, []float32{0.5, 0.5, 0.5, 0.5}, try(torch.ToSlice[float32](x)).must(t))
	require.NoError(t, x.Zeros_())
	assert.Equal(t, []float32{0, 0, 0, 0}, try(torch.ToSlice[float32](x)).must(t))
	require.NoError(t, x.Ones_())
	assert.Equal(t, []float32{1, 1, 1, 1}, try(torch.ToSlice[float32](x)).must(t))

	_, err := torch.Arange(0, 1, 0)
	require.ErrorContains(t, err, "step must not be zero")
	assert.Panics(t, func() { torch.Must(torch.Zeros([]int64{-2})) })
	assert.NotPanics(t, func() { torch.Must(torch.Zeros([]int64{2})).Close() })
}

func TestAliasCopyAllClose(t *testing.T) {
	x := try(torch.FromSlice([]float32{1, 2, 3, 4}, 2, 2)).must(t)
	closeLater(t, x)
	al := try(x.Alias()).must(t)
	require.NoError(t, al.Fill_(7))
	assert.Equal(t, []float32{7, 7, 7, 7}, try(torch.ToSlice[float32](x)).must(t), "an alias shares memory")
	require.NoError(t, al.Close())
	assert.False(t, x.Closed(), "closing an alias leaves the original valid")

	src := try(torch.FromSlice([]float64{1, 2}, 2)).must(t)
	closeLater(t, src)
	require.NoError(t, x.Copy_(src)) // broadcast over rows, converted to float32
	assert.Equal(t, []float32{1, 2, 1, 2}, try(torch.ToSlice[float32](x)).must(t))

	y := try(torch.FromSlice([]float32{1, 2, 1, 2.000001}, 2, 2)).must(t)
	closeLater(t, y)
	ok, err := x.AllClose(y, 1e-5, 0)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = x.AllClose(y, 0, 0)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestNoGradRestoresMode(t *testing.T) {
	x := try(torch.Ones([]int64{2})).must(t)
	closeLater(t, x)
	require.NoError(t, x.SetRequiresGrad(true))

	check := func(outer bool) {
		var innerY, innerMode bool
		err := torch.NoGrad(func() error {
			innerMode = torch.GradEnabled()
			y, err := x.MulScalar(2)
			if err != nil {
				return err
			}
			defer y.Close()
			innerY = y.RequiresGrad()
			// Nested EnableGrad turns recording back on, then off again.
			return torch.EnableGrad(func() error {
				z, err := x.MulScalar(3)
				if err != nil {
					return err
				}
				defer z.Close()
				if !z.RequiresGrad() {
					return fmt.Errorf("EnableGrad inside NoGrad did not record")
				}
				return nil
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
	y := try(x.MulScalar(2)).must(t)
	assert.True(t, y.RequiresGrad(), "recording resumes after NoGrad")
	y.Close()

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
}

func TestGradLifecycle(t *testing.T) {
	w := try(torch.FromSlice([]float32{1, 2, 3})).must(t)
	closeLater(t, w)
	g, err := w.Grad()
	require.NoError(t, err)
	assert.Nil(t, g, "no grad on a tensor that does not require it")

	require.NoError(t, w.SetRequiresGrad(true))
	assert.True(t, w.RequiresGrad())
	g, err = w.Grad()
	require.NoError(t, err)
	assert.Nil(t, g, "Grad is nil before backward")

	step := func() {
		sq := try(w.Mul(w)).must(t)
		l := try(sq.Sum()).must(t)
		require.NoError(t, l.Backward())
		torch.CloseAll(sq, l)
	}
	step()
	g = try(w.Grad()).must(t)
	require.NotNil(t, g)
	assert.Equal(t, []float32{2, 4, 6}, try(torch.ToSlice[float32](g)).must(t))
	step() // gradients accumulate
	assert.Equal(t, []float32{4, 8, 12}, try(torch.ToSlice[float32](g)).must(t), "the handle sees the accumulated grad")
	g.Close()

	require.NoError(t, w.ZeroGrad())
	g = try(w.Grad()).must(t)
	require.NotNil(t, g, "ZeroGrad keeps the gradient tensor")
	assert.Equal(t, []float32{0, 0, 0}, try(torch.ToSlice[float32](g)).must(t))
	g.Close()

	require.NoError(t, w.ClearGrad())
	g, err = w.Grad()
	require.NoError(t, err)
	assert.Nil(t, g, "ClearGrad drops the gradient")
	require.NoError(t, w.ClearGrad(), "ClearGrad without a gradient is a no-op")
	require.NoError(t, w.ZeroGrad(), "ZeroGrad without a gradient is a no-op")

	// BackwardWith: non-scalar output, explicit gradient, retained graph.
	// w*w saves its inputs, so a second backward needs the retained graph.
	y := try(w.Mul(w)).must(t)
	seed := try(torch.FromSlice([]float32{1, 0.5, 0.25})).must(t)
	closeLater(t, y, seed)
	require.NoError(t, y.BackwardWith(seed, true))
	require.NoError(t, y.BackwardWith(seed, false))
	g = try(w.Grad()).must(t)
	closeLater(t, g)
	assert.Equal(t, []float32{4, 4, 3}, try(torch.ToSlice[float32](g)).must(t)) // 2 × 2w × seed
	err = y.BackwardWith(seed, false)
	require.Error(t, err, "the graph was freed")
	assert.NotContains(t, err.Error(), "Exception raised from")

	// Detach cuts the graph but shares memory.
	d := try(w.Detach()).must(t)
	closeLater(t, d)
	assert.False(t, d.RequiresGrad())
	require.NoError(t, d.Fill_(5))
	assert.Equal(t, []float32{5, 5, 5}, try(torch.ToSlice[float32](w)).must(t))
	z := try(d.MulScalar(2)).must(t)
	closeLater(t, z)
	assert.False(t, z.RequiresGrad())
}

// ---------------------------------------------------------------------------
// Safetensors round trips and interoperability.

func TestSafetensorsRoundTrip(t *testing.T) {
	mk := func(x *torch.Tensor, err error) *torch.Tensor {
		t.Helper()
		require.NoError(t, err)
		closeLater(t, x)
		return x
	}
	f32 := mk(torch.FromSlice([]float32{1.5, -2, 3.25, 0}, 2, 2))
	tensors := map[string]*torch.Tensor{
		"f32":        f32,
		"f64":        mk(torch.FromSlice([]float64{math.Pi, -1e-300})),
		"f16":        mk(f32.To(torch.Float16)),
		"bf16":       mk(f32.To(torch.BFloat16)),
		"i64":        mk(torch.FromSlice([]int64{math.MinInt64, 3, math.MaxInt64}, 3, 1)),
		"i32":        mk(torch.FromSlice([]int32{-1, 2})),
		"u8":         mk(torch.FromSlice([]uint8{0, 255, 7})),
		"bool":       mk(torch.FromSlice([]bool{true, false})),
		"scalar":     mk(torch.Full(nil, 0.5, torch.WithDType(torch.Float64))),
		"empty":      mk(torch.Zeros([]int64{0, 4})),
		"layer.0.wt": mk(f32.T()), // non-contiguous view
	}
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

	check := func(name string, dt torch.DType, shape []int64) *torch.Tensor {
		t.Helper()
		x := ts[name]
		require.NotNilf(t, x, "tensor %s", name)
		assert.Equalf(t, dt, x.DType(), name)
		assert.Equalf(t, shape, x.Shape(), name)
		return x
	}
	assert.Equal(t, []float32{1.5, -2, 0.25, 3, 0, -0.125}, try(torch.ToSlice[float32](check("f32", torch.Float32, []int64{2, 3}))).must(t))
	assert.Equal(t, []float64{1.0 / 3.0, -1e300, 2.5}, try(torch.ToSlice[float64](check("f64", torch.Float64, []int64{3}))).must(t))
	for _, n := range []string{"f16", "bf16"} {
		dt := map[string]torch.DType{"f16": torch.Float16, "bf16": torch.BFloat16}[n]
		up := try(check(n, dt, []int64{3}).To(torch.Float32)).must(t)
		closeLater(t, up)
		want := map[string][]float32{"f16": {0.5, -1, 65504}, "bf16": {1, -2.5, 3.0040553e38}}[n] // 3e38 rounds to 0x7F62 in bfloat16
		assert.Equal(t, want, try(torch.ToSlice[float32](up)).must(t), n)
	}
	assert.Equal(t, []int64{-(1 << 62), 0, 7, 1 << 62}, try(torch.ToSlice[int64](check("i64", torch.Int64, []int64{2, 2}))).must(t))
	assert.Equal(t, []int32{-7, 0, math.MaxInt32}, try(torch.ToSlice[int32](check("i32", torch.Int32, []int64{3}))).must(t))
	assert.Equal(t, []uint8{0, 1, 255}, try(torch.ToSlice[uint8](check("u8", torch.Uint8, []int64{3}))).must(t))
	assert.Equal(t, []bool{true, false, true, true}, try(torch.ToSlice[bool](check("bool", torch.Bool, []int64{4}))).must(t))
	assert.Equal(t, 42.0, try(check("scalar", torch.Float32, []int64{}).Item()).must(t))
	assert.Equal(t, int64(0), check("empty", torch.Float32, []int64{0, 3}).Numel())

	// The reference files carry their generator's metadata too.
	f := loadRefFile(t, "ops_float32.safetensors")
	assert.Equal(t, "float32", f.Meta["dtype"])
	assert.Equal(t, "torch/testdata/gen_refs.py", f.Meta["generator"])
}
