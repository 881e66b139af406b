package torch_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Reference tests of the dispatcher ops (torch/ops_aten.go) and their
// neighbours (Abs, Maximum, Tril, GeluTanh, ScaledDotProductAttention,
// casts to bfloat16/float16): torch/testdata/gen_ops_aten.py runs each
// case in PyTorch and stores its inputs, outputs, a fixed loss weight per
// float output and the gradients of loss = Σ_j (out_j · w_j).sum(), as
// gen_refs.py does. These tests replay every case through golora on
// reftest.Device and compare values and gradients.
//
// Regenerate the files with `/usr/bin/python3 torch/testdata/gen_ops_aten.py`.
//
// Bounds: reftest.Tolerance, because golora and the generator run the same
// libtorch kernels; exact (bitwise) for integer and bool results, seeded
// draws and casts. Attention is the exception: its reference is the
// explicit formula softmax(q·kᵀ/√E + mask)·v evaluated in float64 (PyTorch
// 1.13 has no F.scaled_dot_product_attention; 2.x runs fused kernels with
// another summation order) and rounded to the case's dtype, so a float32
// result is compared with the float64 truth: atenTolTruth32.

const atenRegen = "/usr/bin/python3 torch/testdata/gen_ops_aten.py"

// atenTolTruth32 bounds float32 results against a float64 truth: a few
// float32 roundings (ε = 6e-8) in each of the matmul, softmax and matmul
// of attention over sums of at most 8 terms, measured against the tensor's
// largest magnitude (reftest.RelErr).
const atenTolTruth32 = 2e-6

// atenCase is one entry of the "cases" metadata of ops_aten_*.safetensors.
type atenCase struct {
	Name    string     `json:"name"`
	Op      string     `json:"op"`
	Params  atenParams `json:"params"`
	NIn     int        `json:"n_in"`
	NOut    int        `json:"n_out"`
	Grad    []int      `json:"grad"`
	Exact   bool       `json:"exact"`
	CPUOnly bool       `json:"cpu_only"`
	Truth   bool       `json:"truth"`
}

// atenParams are a case's op parameters. The accessors panic on a missing
// or mistyped key; atenRun turns the panic into a failure naming the case.
type atenParams map[string]any

func (p atenParams) get(k string) any {
	v, ok := p[k]
	if !ok {
		panic(fmt.Sprintf("missing param %q", k))
	}
	return v
}

func (p atenParams) f(k string) float64 {
	if s, ok := p.get(k).(string); ok && s == "inf" { // JSON has no infinity
		return math.Inf(1)
	}
	return p.get(k).(float64)
}

func (p atenParams) i(k string) int64 {
	v := p.f(k)
	if v != math.Trunc(v) {
		panic(fmt.Sprintf("param %q = %v is not an integer", k, v))
	}
	return int64(v)
}

func (p atenParams) b(k string) bool { return p.get(k).(bool) }

func (p atenParams) s(k string) string { return p.get(k).(string) }

// ints returns an int list; JSON null gives nil (PyTorch's None: all dims).
func (p atenParams) ints(k string) []int64 {
	raw := p.get(k)
	if raw == nil {
		return nil
	}
	vs := raw.([]any)
	out := make([]int64, len(vs))
	for j, v := range vs {
		out[j] = int64(v.(float64))
	}
	return out
}

func (p atenParams) reduction() torch.Reduction {
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

func (p atenParams) castDType() torch.DType {
	switch p.s("dtype") {
	case "bfloat16":
		return torch.BFloat16
	case "float16":
		return torch.Float16
	}
	panic("unknown dtype " + p.s("dtype"))
}

// atenRunner runs one op on the inputs (already on the test device) and
// returns its outputs; failures come back as failed tensors. t is for the
// checks a runner makes itself (in-place identity, _foreach against the
// per-tensor ops).
type atenRunner func(t *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor

func atenTs(xs ...*torch.Tensor) []*torch.Tensor { return xs }

func atenUnary(f func(*torch.Tensor) *torch.Tensor) atenRunner {
	return func(_ *testing.T, in []*torch.Tensor, _ atenParams) []*torch.Tensor { return atenTs(f(in[0])) }
}

func atenBinary(f func(a, b *torch.Tensor) *torch.Tensor) atenRunner {
	return func(_ *testing.T, in []*torch.Tensor, _ atenParams) []*torch.Tensor { return atenTs(f(in[0], in[1])) }
}

func atenScalar(f func(*torch.Tensor, float64) *torch.Tensor) atenRunner {
	return func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(f(in[0], p.f("s")))
	}
}

func atenPair(a, b *torch.Tensor) []*torch.Tensor { return atenTs(a, b) }

// atenSeeded reseeds the default generator first, as the generator does.
func atenSeeded(f atenRunner) atenRunner {
	return func(t *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		require.NoError(t, torch.ManualSeed(uint64(p.i("seed"))))
		return f(t, in, p)
	}
}

// atenInplace runs an in-place op on a clone of in[0] and checks that it
// returns its receiver.
func atenInplace(f func(x *torch.Tensor, in []*torch.Tensor, p atenParams) *torch.Tensor) atenRunner {
	return func(t *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		x := in[0].Clone()
		r := f(x, in[1:], p)
		require.NoError(t, r.Err())
		require.Same(t, x, r, "an in-place op returns its receiver")
		return atenTs(x)
	}
}

// atenLists splits the inputs of a _foreach case into its lists of n.
func atenLists(in []*torch.Tensor, p atenParams) [][]*torch.Tensor {
	n := int(p.i("n"))
	var out [][]*torch.Tensor
	for k := 0; k+n <= len(in); k += n {
		out = append(out, in[k:k+n])
	}
	return out
}

func atenClones(xs []*torch.Tensor) []*torch.Tensor {
	out := make([]*torch.Tensor, len(xs))
	for i, x := range xs {
		out[i] = x.Clone()
	}
	return out
}

// atenForeach runs a _foreach op on clones of the first list (or, for
// ops that return new tensors, on the lists) and checks the results
// against the per-tensor op, which the generator's reference is too: bit
// for bit on the CPU (libtorch's CPU _foreach kernels are that loop), within
// the dtype's tolerance on CUDA (fused kernels).
func atenForeach(multi func(ls [][]*torch.Tensor, p atenParams) ([]*torch.Tensor, error),
	single func(k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor) atenRunner {
	return func(t *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		ls := atenLists(in, p)
		got, err := multi(ls, p)
		require.NoError(t, err)
		require.NoError(t, torch.FirstErr(got...))
		require.Len(t, got, len(ls[0]))
		for k := range ls[0] {
			want := single(k, ls, p)
			require.NoError(t, want.Err())
			label := fmt.Sprintf("_foreach result %d against the per-tensor op", k)
			if dev := in[0].Device(); dev.IsCUDA() {
				reftest.RequireClose(t, label, got[k], want, reftest.Tolerance(want.DType(), dev))
			} else {
				reftest.RequireBitwise(t, label, got[k], want)
			}
		}
		return got
	}
}

// atenForeachInplace is atenForeach for the in-place _foreach ops: multi
// updates the clones of the first list, single the clone of one entry.
func atenForeachInplace(multi func(dst []*torch.Tensor, ls [][]*torch.Tensor, p atenParams) error,
	single func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor) atenRunner {
	return atenForeach(
		func(ls [][]*torch.Tensor, p atenParams) ([]*torch.Tensor, error) {
			dst := atenClones(ls[0])
			return dst, multi(dst, ls, p)
		},
		func(k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return single(ls[0][k].Clone(), k, ls, p)
		})
}

func atenSDPA(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
	q, k, v := in[0], in[1], in[2]
	if g, ok := p["groups"]; ok && g.(float64) > 1 {
		// Grouped-query attention: each key/value head serves g query heads.
		k = k.RepeatInterleave(p.i("groups"), 1)
		v = v.RepeatInterleave(p.i("groups"), 1)
	}
	var mask *torch.Tensor
	if len(in) == 4 {
		mask = in[3]
	}
	return atenTs(torch.ScaledDotProductAttention(q, k, v, mask, 0, p.b("causal")))
}

// atenOps maps the op names of gen_ops_aten.py to golora calls.
var atenOps = map[string]atenRunner{
	// Maths.
	"cos":        atenUnary((*torch.Tensor).Cos),
	"sin":        atenUnary((*torch.Tensor).Sin),
	"rsqrt":      atenUnary((*torch.Tensor).Rsqrt),
	"reciprocal": atenUnary((*torch.Tensor).Reciprocal),
	"square":     atenUnary((*torch.Tensor).Square),
	"abs":        atenUnary((*torch.Tensor).Abs),
	"clamp": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Clamp(p.f("min"), p.f("max")))
	},
	"clamp_min": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].ClampMin(p.f("min")))
	},
	"clamp_max": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].ClampMax(p.f("max")))
	},
	"clamp_tensor": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		var lo, hi *torch.Tensor
		k := 1
		if p.b("min") {
			lo = in[k]
			k++
		}
		if p.b("max") {
			hi = in[k]
		}
		return atenTs(in[0].ClampTensor(lo, hi))
	},
	"minimum":    atenBinary((*torch.Tensor).Minimum),
	"maximum":    atenBinary((*torch.Tensor).Maximum),
	"min":        atenUnary((*torch.Tensor).Min),
	"pow_tensor": atenBinary((*torch.Tensor).PowTensor),
	"min_dim": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenPair(in[0].MinDim(p.i("dim"), p.b("keepdim")))
	},
	"cumsum": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Cumsum(p.i("dim")))
	},
	"var": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Var(p.ints("dims"), p.i("correction"), p.b("keepdim")))
	},
	"var_mean": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenPair(in[0].VarMean(p.ints("dims"), p.i("correction"), p.b("keepdim")))
	},
	"mean_dims": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].MeanDims(p.ints("dims"), p.b("keepdim")))
	},
	"norm": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Norm(p.f("p"), p.ints("dims"), p.b("keepdim")))
	},

	// Comparisons and logic.
	"eq":          atenBinary((*torch.Tensor).Eq),
	"ne":          atenBinary((*torch.Tensor).Ne),
	"lt":          atenBinary((*torch.Tensor).Lt),
	"le":          atenBinary((*torch.Tensor).Le),
	"gt":          atenBinary((*torch.Tensor).Gt),
	"ge":          atenBinary((*torch.Tensor).Ge),
	"eq_scalar":   atenScalar((*torch.Tensor).EqScalar),
	"ne_scalar":   atenScalar((*torch.Tensor).NeScalar),
	"lt_scalar":   atenScalar((*torch.Tensor).LtScalar),
	"le_scalar":   atenScalar((*torch.Tensor).LeScalar),
	"gt_scalar":   atenScalar((*torch.Tensor).GtScalar),
	"ge_scalar":   atenScalar((*torch.Tensor).GeScalar),
	"logical_and": atenBinary((*torch.Tensor).LogicalAnd),
	"logical_or":  atenBinary((*torch.Tensor).LogicalOr),
	"logical_not": atenUnary((*torch.Tensor).LogicalNot),

	// Shapes.
	"expand": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Expand(p.ints("size")...))
	},
	"repeat": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Repeat(p.ints("repeats")...))
	},
	"repeat_interleave": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].RepeatInterleave(p.i("n"), p.i("dim")))
	},
	"unsqueeze": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Unsqueeze(p.i("dim")))
	},
	"squeeze": atenUnary((*torch.Tensor).Squeeze),
	"squeeze_dim": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].SqueezeDim(p.i("dim")))
	},
	"flatten": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Flatten(p.i("start"), p.i("end")))
	},
	"chunk": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return in[0].Chunk(p.i("n"), p.i("dim"))
	},
	"split": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return in[0].Split(p.i("size"), p.i("dim"))
	},
	"split_sizes": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return in[0].SplitSizes(p.ints("sizes"), p.i("dim"))
	},
	"gather": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Gather(p.i("dim"), in[1]))
	},
	"scatter": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Scatter(p.i("dim"), in[1], in[2]))
	},
	"scatter_value": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].ScatterValue(p.i("dim"), in[1], p.f("value")))
	},
	"where": func(_ *testing.T, in []*torch.Tensor, _ atenParams) []*torch.Tensor {
		return atenTs(torch.Where(in[0], in[1], in[2]))
	},
	"where_scalar": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(torch.WhereScalar(in[0], in[1], p.f("value")))
	},
	"triu": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Triu(p.i("diagonal")))
	},
	"tril": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Tril(p.i("diagonal")))
	},
	"one_hot": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].OneHot(p.i("n")))
	},
	"index": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		nones := map[int64]bool{}
		for _, k := range p.ints("nones") {
			nones[k] = true
		}
		idx, rest := make([]*torch.Tensor, p.i("n")), in[1:]
		for k := range idx {
			if !nones[int64(k)] {
				idx[k], rest = rest[0], rest[1:]
			}
		}
		return atenTs(in[0].Index(idx...))
	},

	// Creation like another tensor.
	"zeros_like": atenUnary((*torch.Tensor).ZerosLike),
	"ones_like":  atenUnary((*torch.Tensor).OnesLike),
	"full_like": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].FullLike(p.f("value")))
	},
	"empty_like": atenUnary((*torch.Tensor).EmptyLike), // shape and dtype only (atenShapeOnly)
	"rand_like":  atenSeeded(atenUnary((*torch.Tensor).RandLike)),
	"randn_like": atenSeeded(atenUnary((*torch.Tensor).RandnLike)),

	// Sampling.
	"topk": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenPair(in[0].Topk(p.i("k"), p.i("dim"), p.b("largest")))
	},
	"sort": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenPair(in[0].Sort(p.i("dim"), p.b("descending")))
	},
	"argsort": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Argsort(p.i("dim"), p.b("descending")))
	},
	"multinomial": atenSeeded(func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].Multinomial(p.i("n"), p.b("replacement")))
	}),

	// Networks.
	"gelu_tanh": atenUnary((*torch.Tensor).GeluTanh),
	"conv1d": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[2]
		}
		return atenTs(torch.Conv1d(in[0], in[1], b, p.i("stride"), p.i("padding"), p.i("dilation"), p.i("groups")))
	},
	"embedding_padded": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(torch.EmbeddingPadded(in[0], in[1], p.i("padding_idx")))
	},
	"cross_entropy_with": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		o := torch.CrossEntropyOptions{Reduction: p.reduction(), IgnoreIndex: p.i("ignore_index"),
			LabelSmoothing: p.f("label_smoothing")}
		if p.b("weight") {
			o.Weight = in[2]
		}
		return atenTs(torch.CrossEntropyWith(in[0], in[1], o))
	},
	"nll_loss": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		var w *torch.Tensor
		if p.b("weight") {
			w = in[2]
		}
		return atenTs(torch.NLLLoss(in[0], in[1], w, p.reduction(), p.i("ignore_index")))
	},
	"sdpa": atenSDPA,

	// In place.
	"mul_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, _ atenParams) *torch.Tensor { return x.Mul_(o[0]) }),
	"mul_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.MulScalar_(p.f("s"))
	}),
	"add_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Add_(o[0], p.f("alpha"))
	}),
	"add_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.AddScalar_(p.f("s"))
	}),
	"sub_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Sub_(o[0], p.f("alpha"))
	}),
	"div_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, _ atenParams) *torch.Tensor { return x.Div_(o[0]) }),
	"div_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.DivScalar_(p.f("s"))
	}),
	"addcmul_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Addcmul_(o[0], o[1], p.f("value"))
	}),
	"addcdiv_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Addcdiv_(o[0], o[1], p.f("value"))
	}),
	"lerp_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Lerp_(o[0], p.f("weight"))
	}),
	"sqrt_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, _ atenParams) *torch.Tensor { return x.Sqrt_() }),
	"zero_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, _ atenParams) *torch.Tensor { return x.Zero_() }),
	"clamp_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.Clamp_(p.f("min"), p.f("max"))
	}),
	"masked_fill_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p atenParams) *torch.Tensor {
		return x.MaskedFill_(o[0], p.f("value"))
	}),

	// _foreach, checked against the per-tensor ops as well.
	"foreach_mul_": atenForeachInplace(
		func(dst []*torch.Tensor, _ [][]*torch.Tensor, p atenParams) error {
			return torch.ForeachMul_(dst, p.f("s"))
		},
		func(x *torch.Tensor, _ int, _ [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return x.MulScalar_(p.f("s"))
		}),
	"foreach_add_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p atenParams) error {
			return torch.ForeachAdd_(dst, ls[1], p.f("alpha"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return x.Add_(ls[1][k], p.f("alpha"))
		}),
	"foreach_addcmul_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p atenParams) error {
			return torch.ForeachAddcmul_(dst, ls[1], ls[2], p.f("value"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return x.Addcmul_(ls[1][k], ls[2][k], p.f("value"))
		}),
	"foreach_addcdiv_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p atenParams) error {
			return torch.ForeachAddcdiv_(dst, ls[1], ls[2], p.f("value"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return x.Addcdiv_(ls[1][k], ls[2][k], p.f("value"))
		}),
	"foreach_lerp_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p atenParams) error {
			return torch.ForeachLerp_(dst, ls[1], p.f("weight"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return x.Lerp_(ls[1][k], p.f("weight"))
		}),
	"foreach_zero_": atenForeachInplace(
		func(dst []*torch.Tensor, _ [][]*torch.Tensor, _ atenParams) error { return torch.ForeachZero_(dst) },
		func(x *torch.Tensor, _ int, _ [][]*torch.Tensor, _ atenParams) *torch.Tensor { return x.Zero_() }),
	"foreach_sqrt": atenForeach(
		func(ls [][]*torch.Tensor, _ atenParams) ([]*torch.Tensor, error) {
			return torch.ForeachSqrt(ls[0]), nil
		},
		func(k int, ls [][]*torch.Tensor, _ atenParams) *torch.Tensor { return ls[0][k].Sqrt() }),
	"foreach_norm": atenForeach(
		func(ls [][]*torch.Tensor, p atenParams) ([]*torch.Tensor, error) {
			return torch.ForeachNorm(ls[0], p.f("p")), nil
		},
		func(k int, ls [][]*torch.Tensor, p atenParams) *torch.Tensor {
			return ls[0][k].Norm(p.f("p"), nil, false)
		}),

	// Casts.
	"to": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].To(p.castDType()))
	},
	"cast_roundtrip": func(_ *testing.T, in []*torch.Tensor, p atenParams) []*torch.Tensor {
		return atenTs(in[0].To(p.castDType()).To(in[0].DType()))
	},
}

// atenShapeOnly lists the ops whose values are arbitrary (uninitialised
// memory): only their dtype, shape and device are compared.
var atenShapeOnly = map[string]bool{"empty_like": true}

// atenFile is a loaded reference file and its cases.
type atenFile struct {
	*reftest.File
	cases []atenCase
}

func atenLoad(t *testing.T, name string) *atenFile {
	t.Helper()
	f := reftest.Load(t, filepath.Join("testdata", name), atenRegen)
	var cases []atenCase
	f.DecodeMeta(t, "cases", &cases)
	require.NotEmptyf(t, cases, "%s: no cases", f.Path)
	return &atenFile{File: f, cases: cases}
}

func (f *atenFile) tensor(t *testing.T, c atenCase, kind string, i int) *torch.Tensor {
	t.Helper()
	return f.Tensor(t, fmt.Sprintf("%s.%s.%d", c.Name, kind, i))
}

// atenBits reads any tensor as comparable bit patterns: floats by their
// bits (float16 and bfloat16 widened to float32, which is exact), integers
// and bools by value.
func atenBits(t testing.TB, x *torch.Tensor) []uint64 {
	t.Helper()
	conv := func(n int, f func(int) uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	switch x.DType() {
	case torch.Float32, torch.Float64:
		return reftest.Bits(t, x)
	case torch.Float16, torch.BFloat16:
		w := x.To(torch.Float32)
		require.NoError(t, w.Err())
		defer w.Close()
		return reftest.Bits(t, w)
	case torch.Int64:
		v := torch.Must(torch.ToSlice[int64](x))
		return conv(len(v), func(i int) uint64 { return uint64(v[i]) })
	case torch.Int32:
		v := torch.Must(torch.ToSlice[int32](x))
		return conv(len(v), func(i int) uint64 { return uint64(v[i]) })
	case torch.Uint8:
		v := torch.Must(torch.ToSlice[uint8](x))
		return conv(len(v), func(i int) uint64 { return uint64(v[i]) })
	case torch.Bool:
		v := torch.Must(torch.ToSlice[bool](x))
		return conv(len(v), func(i int) uint64 {
			if v[i] {
				return 1
			}
			return 0
		})
	}
	require.FailNowf(t, "atenBits", "unsupported dtype %v", x.DType())
	return nil
}

// atenRequireExact fails t unless got has want's dtype and shape and the
// same bit patterns (atenBits).
func atenRequireExact(t testing.TB, label string, got, want *torch.Tensor) {
	t.Helper()
	require.Equalf(t, want.DType(), got.DType(), "%s: dtype", label)
	require.Equalf(t, want.Shape(), got.Shape(), "%s: shape", label)
	g, w := atenBits(t, got), atenBits(t, want)
	bad, first := 0, -1
	for i := range w {
		if g[i] != w[i] {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad > 0 {
		require.FailNowf(t, "not bitwise equal", "%s: %d of %d elements differ; first at flat index %d: got bits %#x, want %#x",
			label, bad, len(w), first, g[first], w[first])
	}
}

// atenCompare compares one result: bitwise for exact cases and for
// non-float dtypes, else within tol. It returns the relative error (0 when
// exact).
func atenCompare(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64 {
	t.Helper()
	if exact || !want.DType().IsFloat() {
		atenRequireExact(t, label, got, want)
		return 0
	}
	return reftest.RequireClose(t, label, got, want, tol)
}

// atenTolerance is the bound for a result of dtype dt of case c on dev.
func atenTolerance(c atenCase, dt torch.DType, dev torch.Device) float64 {
	tol := reftest.Tolerance(dt, dev)
	if c.Truth && dt == torch.Float32 && tol < atenTolTruth32 {
		tol = atenTolTruth32
	}
	return tol
}

// atenRun replays one case on dev and compares its outputs and gradients.
func atenRun(t *testing.T, f *atenFile, c atenCase, dev torch.Device, stats *reftest.MaxErrors) {
	run, ok := atenOps[c.Op]
	require.Truef(t, ok, "case %s: op %q has no Go runner in atenOps", c.Name, c.Op)
	if c.CPUOnly {
		dev = torch.CPU // seeded draws: CUDA's generator draws other numbers
	}
	s := torch.NewScope()
	defer s.Close()

	wantGrad := map[int]bool{}
	for _, i := range c.Grad {
		wantGrad[i] = true
	}
	in := make([]*torch.Tensor, c.NIn)
	for i := range in {
		src := f.tensor(t, c, "in", i)
		var x *torch.Tensor
		if dev.IsCUDA() {
			x = s.Own(src.To(dev))
		} else {
			x = s.Own(src.Detach()) // a fresh leaf: requires_grad must not stick to the file's tensor
		}
		require.NoError(t, x.Err())
		if wantGrad[i] {
			require.NoError(t, x.SetRequiresGrad(true))
		}
		in[i] = x
	}

	var outs []*torch.Tensor
	func() {
		defer func() {
			if r := recover(); r != nil {
				require.FailNowf(t, "panic", "case %s (%s): %v", c.Name, c.Op, r)
			}
		}()
		outs = run(t, in, c.Params)
	}()
	require.NoErrorf(t, torch.FirstErr(outs...), "case %s (%s)", c.Name, c.Op)
	for _, o := range outs {
		if o.Scope() == nil {
			s.Own(o)
		}
	}
	require.Lenf(t, outs, c.NOut, "case %s: outputs", c.Name)

	var loss *torch.Tensor
	for j, o := range outs {
		assert.Equalf(t, dev, o.Device(), "case %s: output %d device", c.Name, j)
		want := f.tensor(t, c, "out", j)
		label := fmt.Sprintf("%s out %d", c.Name, j)
		if atenShapeOnly[c.Op] {
			require.Equalf(t, want.DType(), o.DType(), "%s: dtype", label)
			require.Equalf(t, want.Shape(), o.Shape(), "%s: shape", label)
			continue
		}
		e := atenCompare(t, label, o, want, c.Exact, atenTolerance(c, want.DType(), dev))
		if want.DType() == torch.Float32 || want.DType() == torch.Float64 {
			stats.Note(atenStatKey(c, want.DType(), dev, "value"), c.Name, e)
		}
		w, ok := f.Tensors[fmt.Sprintf("%s.w.%d", c.Name, j)]
		if !ok {
			continue
		}
		term := o.Mul(s.Own(w.To(dev))).Sum()
		if loss == nil {
			loss = term
		} else {
			loss = loss.Add(term)
		}
	}
	if len(c.Grad) == 0 {
		return
	}
	require.NotNilf(t, loss, "case %s: gradients expected but no output has a loss weight", c.Name)
	require.NoErrorf(t, loss.Err(), "case %s: loss", c.Name)
	require.NoErrorf(t, loss.Backward(), "case %s: backward", c.Name)
	for _, i := range c.Grad {
		g := in[i].Grad()
		require.NotNilf(t, g, "case %s: input %d has no gradient after backward", c.Name, i)
		require.NoError(t, g.Err())
		want := f.tensor(t, c, "grad", i)
		e := atenCompare(t, fmt.Sprintf("%s grad %d", c.Name, i), g, want, c.Exact, atenTolerance(c, want.DType(), dev))
		stats.Note(atenStatKey(c, want.DType(), dev, "grad"), c.Name, e)
	}
}

func atenStatKey(c atenCase, dt torch.DType, dev torch.Device, kind string) string {
	if c.Truth {
		kind += "(f64 truth)"
	}
	return fmt.Sprintf("%v/%v/%s", dt, dev, kind)
}

func atenRunFile(t *testing.T, name string) {
	f := atenLoad(t, name)
	dev := reftest.Device(t)
	stats := &reftest.MaxErrors{}
	start := reftest.SettledLiveTensors()
	for _, c := range f.cases {
		t.Run(c.Name, func(t *testing.T) { atenRun(t, f, c, dev, stats) })
	}
	// Every case's scope freed what it made: ops, gradients, _foreach results.
	assert.Equal(t, start, reftest.SettledLiveTensors(), "LiveTensors after the cases")
	t.Logf("%s: %d cases on %v (torch %s; file from torch %s)", name, len(f.cases), dev, torch.Version(), f.Meta["torch_version"])
	stats.Log(t, "")
}

func TestAtenRefFloat32(t *testing.T) { atenRunFile(t, "ops_aten_float32.safetensors") }

func TestAtenRefFloat64(t *testing.T) { atenRunFile(t, "ops_aten_float64.safetensors") }

// atenGoOps maps every exported function and method of ops_aten.go to the
// reference op that covers it. A new op fails TestAtenCoverage until it is
// listed here and given cases in gen_ops_aten.py.
var atenGoOps = map[string]string{
	"Cos": "cos", "Sin": "sin", "Rsqrt": "rsqrt", "Reciprocal": "reciprocal", "Square": "square",
	"Clamp": "clamp", "ClampMin": "clamp_min", "ClampMax": "clamp_max", "ClampTensor": "clamp_tensor",
	"Minimum": "minimum", "Min": "min", "MinDim": "min_dim", "PowTensor": "pow_tensor", "Cumsum": "cumsum",
	"Var": "var", "VarMean": "var_mean", "Norm": "norm",
	"Ne": "ne", "Lt": "lt", "Le": "le", "Gt": "gt", "Ge": "ge",
	"EqScalar": "eq_scalar", "NeScalar": "ne_scalar", "LtScalar": "lt_scalar", "LeScalar": "le_scalar",
	"GtScalar": "gt_scalar", "GeScalar": "ge_scalar",
	"LogicalAnd": "logical_and", "LogicalOr": "logical_or", "LogicalNot": "logical_not",
	"Expand": "expand", "Repeat": "repeat", "RepeatInterleave": "repeat_interleave", "Unsqueeze": "unsqueeze",
	"Squeeze": "squeeze", "SqueezeDim": "squeeze_dim", "Flatten": "flatten", "Chunk": "chunk", "Split": "split",
	"SplitSizes": "split_sizes", "Gather": "gather", "Scatter": "scatter", "ScatterValue": "scatter_value",
	"Where": "where", "WhereScalar": "where_scalar", "Triu": "triu", "OneHot": "one_hot", "Index": "index",
	"ZerosLike": "zeros_like", "OnesLike": "ones_like", "FullLike": "full_like", "RandLike": "rand_like",
	"RandnLike": "randn_like", "EmptyLike": "empty_like",
	"Topk": "topk", "Sort": "sort", "Argsort": "argsort", "Multinomial": "multinomial",
	"Conv1d": "conv1d", "EmbeddingPadded": "embedding_padded", "CrossEntropyWith": "cross_entropy_with",
	"NLLLoss": "nll_loss",
	"Mul_":    "mul_", "MulScalar_": "mul_scalar_", "Add_": "add_", "AddScalar_": "add_scalar_", "Sub_": "sub_",
	"Div_": "div_", "DivScalar_": "div_scalar_", "Addcmul_": "addcmul_", "Addcdiv_": "addcdiv_",
	"Lerp_": "lerp_", "Sqrt_": "sqrt_", "Zero_": "zero_", "Clamp_": "clamp_", "MaskedFill_": "masked_fill_",
	"ForeachMul_": "foreach_mul_", "ForeachAdd_": "foreach_add_", "ForeachAddcmul_": "foreach_addcmul_",
	"ForeachAddcdiv_": "foreach_addcdiv_", "ForeachLerp_": "foreach_lerp_", "ForeachSqrt": "foreach_sqrt",
	"ForeachNorm": "foreach_norm", "ForeachZero_": "foreach_zero_",
}

// TestAtenCoverage checks that every exported function and method of
// ops_aten.go has reference cases in both files, and that every op of the
// files has a runner.
func TestAtenCoverage(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "ops_aten.go", nil, 0)
	require.NoError(t, err)
	var exported []string
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.IsExported() {
			exported = append(exported, fd.Name.Name)
		}
	}
	require.NotEmpty(t, exported)

	for _, name := range []string{"ops_aten_float32.safetensors", "ops_aten_float64.safetensors"} {
		f := atenLoad(t, name)
		seen := map[string]int{}
		for _, c := range f.cases {
			seen[c.Op]++
			assert.Containsf(t, atenOps, c.Op, "%s: case %s has no Go runner", name, c.Name)
		}
		for op := range atenOps {
			assert.Positivef(t, seen[op], "%s: op %q has no reference case (gen_ops_aten.py)", name, op)
		}
		for _, fn := range exported {
			op, ok := atenGoOps[fn]
			if assert.Truef(t, ok, "%s of ops_aten.go is not mapped in atenGoOps", fn) {
				assert.Positivef(t, seen[op], "%s: %s maps to op %q without cases", name, fn, op)
			}
		}
	}
	t.Logf("%d exported ops in ops_aten.go, %d reference ops", len(exported), len(atenOps))
}

// ---------------------------------------------------------------------------
// Random draws: statistics that hold on any generator and device.

func TestAtenRandomStatistics(t *testing.T) {
	dev := reftest.Device(t)
	s := torch.NewScope()
	defer s.Close()
	require.NoError(t, torch.ManualSeed(123))
	const n = 200_000
	for _, dt := range []torch.DType{torch.Float32, torch.Float64} {
		x := torch.Zeros([]int64{n / 1000, 1000}, torch.WithDType(dt), torch.WithDevice(dev), torch.In(s))

		u := x.RandLike()
		require.NoError(t, u.Err())
		assert.Equal(t, dt, u.DType())
		assert.Equal(t, []int64{n / 1000, 1000}, u.Shape())
		assert.Equal(t, dev, u.Device())
		assert.Same(t, s, u.Scope(), "a _like result joins its operand's scope")
		mean, _ := u.Mean().Item()
		variance, _ := u.Var(nil, 1, false).Item()
		lo, _ := u.Min().Item()
		hi, _ := u.Max().Item()
		assert.InDelta(t, 0.5, mean, 0.005, "RandLike mean")
		assert.InDelta(t, 1.0/12, variance, 0.002, "RandLike variance")
		assert.GreaterOrEqual(t, lo, 0.0)
		assert.Less(t, hi, 1.0)

		g := x.RandnLike()
		require.NoError(t, g.Err())
		assert.Equal(t, dt, g.DType())
		v, m := g.VarMean(nil, 1, false)
		vm, _ := v.Item()
		mm, _ := m.Item()
		assert.InDelta(t, 0.0, mm, 0.01, "RandnLike mean")
		assert.InDelta(t, 1.0, vm, 0.02, "RandnLike variance")

		e := x.EmptyLike()
		assert.Equal(t, dt, e.DType())
		assert.Equal(t, x.Shape(), e.Shape())
	}

	// Multinomial frequencies follow the (unnormalised) weights; a zero
	// weight is never drawn; without replacement every row is distinct.
	p := s.Own(torch.FromSlice([]float64{1, 2, 3, 4, 0})).To(dev)
	draws := p.Multinomial(n, true)
	require.NoError(t, draws.Err())
	assert.Equal(t, torch.Int64, draws.DType())
	counts := make([]float64, 5)
	for _, k := range torch.Must(torch.ToSlice[int64](draws)) {
		counts[k]++
	}
	for k, w := range []float64{0.1, 0.2, 0.3, 0.4, 0} {
		assert.InDeltaf(t, w, counts[k]/n, 0.005, "frequency of class %d", k)
	}
	rows := s.Own(torch.FromSlice([]float32{1, 1, 1, 1, 1, 1, 5, 1, 0, 1, 1, 1}, 2, 6)).To(dev)
	for i := 0; i < 50; i++ {
		d := torch.Must(torch.ToSlice[int64](rows.Multinomial(5, false)))
		for r := 0; r < 2; r++ {
			seen := map[int64]bool{}
			for _, k := range d[r*5 : r*5+5] {
				assert.False(t, seen[k], "draw %d row %d repeats %d without replacement", i, r, k)
				seen[k] = true
			}
		}
		assert.False(t, atenContains(d[5:], 2), "a zero weight was drawn")
	}
}

func atenContains(v []int64, x int64) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// _foreach: behaviour beyond values.

func TestForeachAPI(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	mk := func(v ...float32) *torch.Tensor { return s.Own(torch.FromSlice(v)) }
	a, b := mk(1, 4), mk(9)
	list := []*torch.Tensor{a, b}

	// In place: the same tensors, updated.
	require.NoError(t, torch.ForeachMul_(list, 2))
	assert.Equal(t, []float32{2, 8}, torch.Must(torch.ToSlice[float32](a)))
	assert.Equal(t, []float32{18}, torch.Must(torch.ToSlice[float32](b)))
	require.NoError(t, torch.ForeachLerp_(list, []*torch.Tensor{mk(4, 8), mk(20)}, 0.5))
	assert.Equal(t, []float32{3, 8}, torch.Must(torch.ToSlice[float32](a)))
	assert.Equal(t, []float32{19}, torch.Must(torch.ToSlice[float32](b)))

	// New tensors join the scope of the first list entry.
	roots := torch.ForeachSqrt([]*torch.Tensor{mk(4, 9), mk(16)})
	require.NoError(t, torch.FirstErr(roots...))
	require.Len(t, roots, 2)
	assert.Same(t, s, roots[0].Scope())
	assert.Equal(t, []float32{4}, torch.Must(torch.ToSlice[float32](roots[1])))
	norms := torch.ForeachNorm([]*torch.Tensor{mk(3, 4), mk(-5)}, 2)
	require.NoError(t, torch.FirstErr(norms...))
	require.Len(t, norms, 2)
	assert.Empty(t, norms[0].Shape(), "a norm is 0-dim")
	n0, _ := norms[0].Item()
	n1, _ := norms[1].Item()
	assert.Equal(t, []float64{5, 5}, []float64{n0, n1})

	// Empty lists do nothing.
	require.NoError(t, torch.ForeachMul_(nil, 2))
	require.NoError(t, torch.ForeachAdd_(nil, nil, 1))
	require.NoError(t, torch.ForeachZero_([]*torch.Tensor{}))
	assert.Empty(t, torch.ForeachSqrt(nil))
	assert.Empty(t, torch.ForeachNorm(nil, 2))

	require.NoError(t, torch.ForeachZero_(list))
	assert.Equal(t, []float32{0, 0}, torch.Must(torch.ToSlice[float32](a)))

	lerp := torch.NewOp("aten::_foreach_lerp_", "Scalar")
	if lerp.Available() {
		schema, err := lerp.Schema()
		require.NoError(t, err)
		t.Logf("ForeachLerp_ is one call to %s", schema)
	} else {
		t.Logf("libtorch %s has no aten::_foreach_lerp_: ForeachLerp_ loops over Lerp_", torch.Version())
	}
	for _, op := range []struct{ name, overload string }{
		{"aten::_foreach_mul_", "Scalar"}, {"aten::_foreach_add_", "List"}, {"aten::_foreach_addcmul_", "Scalar"},
		{"aten::_foreach_addcdiv_", "Scalar"}, {"aten::_foreach_sqrt", ""}, {"aten::_foreach_norm", "Scalar"},
		{"aten::_foreach_zero_", ""},
	} {
		o := torch.NewOp(op.name, op.overload)
		assert.Truef(t, o.Available(), "%s.%s: every libtorch golora supports has it", op.name, op.overload)
	}
}

// ---------------------------------------------------------------------------
// Errors: they name the op (and the argument where the Go side knows it),
// point at the caller's line and carry no C++ source location.

var atenCxxLocation = regexp.MustCompile(`\.(cpp|cc|cxx|h|hpp|cu):\d+|Exception raised from|frame #`)

// atenExpectError checks err: an *torch.Error of op (and arg, when not
// empty) whose message contains subs.
func atenExpectError(t *testing.T, label string, err error, op, arg string, subs ...string) {
	t.Helper()
	require.Errorf(t, err, "%s: expected an error", label)
	e, ok := torch.AsError(err)
	require.Truef(t, ok, "%s: %T is not a *torch.Error: %v", label, err, err)
	assert.Equalf(t, op, e.Op, "%s: op of %q", label, err)
	if arg != "" {
		assert.Equalf(t, arg, e.Arg, "%s: argument of %q", label, err)
	}
	for _, s := range subs {
		assert.Containsf(t, err.Error(), s, "%s", label)
	}
	assert.Falsef(t, atenCxxLocation.MatchString(err.Error()), "%s: C++ location in %q", label, err)
	assert.Truef(t, strings.HasPrefix(e.Where, "ops_aten_test.go:"), "%s: Where = %q, want this file", label, e.Where)
	t.Logf("%s: %v", label, err)
}

func TestAtenErrors(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x := s.Own(torch.Randn([]int64{2, 3}))
	y := s.Own(torch.Randn([]int64{3, 5}))
	i64 := s.Own(torch.FromSlice([]int64{0, 2, 1}, 3, 1))
	f32idx := s.Own(torch.FromSlice([]float32{0, 1}, 2, 1))
	fmask := s.Own(torch.Ones([]int64{2, 3}))
	ints := s.Own(torch.FromSlice([]int64{4, 9}))

	// Wrong shapes.
	atenExpectError(t, "Expand", x.Expand(4, 3).Err(), "Expand", "", "expanded size")
	atenExpectError(t, "Gather dims", y.Gather(1, s.Own(torch.FromSlice([]int64{0, 1}))).Err(), "Gather", "",
		"Index tensor must have the same number of dimensions")
	atenExpectError(t, "Conv1d channels", torch.Conv1d(s.Own(torch.Randn([]int64{2, 4, 9})),
		s.Own(torch.Randn([]int64{6, 3, 3})), nil, 1, 0, 1, 1).Err(), "Conv1d", "", "channels")
	atenExpectError(t, "Where broadcast", torch.Where(s.Own(torch.Ones([]int64{2, 3}, torch.WithDType(torch.Bool))), x, y).Err(),
		"Where", "", "must match")
	atenExpectError(t, "Mul_ into a smaller receiver", s.Own(torch.Ones([]int64{3, 1})).Mul_(y).Err(), "Mul_", "",
		"doesn't match the broadcast shape")
	atenExpectError(t, "Chunk zero", x.Chunk(0, 0)[0].Err(), "Chunk", "chunks", "must be positive")
	atenExpectError(t, "ForeachAdd_ lengths", torch.ForeachAdd_([]*torch.Tensor{x, x}, []*torch.Tensor{x}, 1),
		"ForeachAdd_", "others", "has 1 tensors but ts has 2")
	atenExpectError(t, "ForeachAddcmul_ shapes", torch.ForeachAddcmul_([]*torch.Tensor{x.Clone()}, []*torch.Tensor{y},
		[]*torch.Tensor{y}, 1), "ForeachAddcmul_", "", "")

	// Wrong dtypes.
	atenExpectError(t, "Gather float index", y.Gather(1, f32idx).Err(), "Gather", "", "int64")
	atenExpectError(t, "OneHot float", x.OneHot(3).Err(), "OneHot", "", "index tensor")
	atenExpectError(t, "MaskedFill_ float mask", x.Clone().MaskedFill_(fmask, 0).Err(), "MaskedFill_", "mask", "bool")
	atenExpectError(t, "Multinomial ints", ints.Multinomial(1, true).Err(), "Multinomial", "", "")
	atenExpectError(t, "Index float", y.Index(f32idx).Err(), "Index", "", "")
	atenExpectError(t, "Sqrt_ of int64", ints.Clone().Sqrt_().Err(), "Sqrt_", "", "")
	atenExpectError(t, "NLLLoss float target", torch.NLLLoss(x, s.Own(torch.FromSlice([]float32{0, 1})), nil,
		torch.ReductionMean, -100).Err(), "NLLLoss", "", "")

	// Arguments out of range that the Go side checks.
	atenExpectError(t, "EmbeddingPadded paddingIdx", torch.EmbeddingPadded(i64, y, 3).Err(), "EmbeddingPadded",
		"paddingIdx", "3 is out of range for 3 embeddings")
	atenExpectError(t, "EmbeddingPadded negative paddingIdx", torch.EmbeddingPadded(i64, y, -4).Err(),
		"EmbeddingPadded", "paddingIdx", "out of range")

	// Closed and nil tensors.
	closed := torch.Randn([]int64{2, 3})
	require.NoError(t, closed.Close())
	err := closed.Cos().Err()
	atenExpectError(t, "Cos(closed)", err, "Cos", "", "use of closed tensor")
	assert.NotEmpty(t, err.(*torch.Error).Arg, "the Go side knows which argument is closed")
	atenExpectError(t, "Where(closed other)", torch.Where(s.Own(torch.Ones([]int64{2, 3}, torch.WithDType(torch.Bool))), x, closed).Err(),
		"Where", "", "use of closed tensor")
	atenExpectError(t, "Add_(closed)", x.Clone().Add_(closed, 1).Err(), "Add_", "", "use of closed tensor")
	atenExpectError(t, "ForeachMul_(closed)", torch.ForeachMul_([]*torch.Tensor{x, closed}, 2), "ForeachMul_", "ts[1]",
		"use of closed tensor")
	atenExpectError(t, "ForeachLerp_(nil)", torch.ForeachLerp_([]*torch.Tensor{x}, []*torch.Tensor{nil}, 0.5),
		"ForeachLerp_", "ends[0]", "nil tensor")
	atenExpectError(t, "ForeachNorm(closed)", torch.ForeachNorm([]*torch.Tensor{closed}, 2)[0].Err(), "ForeachNorm", "ts[0]",
		"use of closed tensor")
	var nilT *torch.Tensor
	atenExpectError(t, "Cos(nil)", nilT.Cos().Err(), "Cos", "", "self")
	atenExpectError(t, "Where(nil)", torch.Where(s.Own(torch.Ones([]int64{2, 3}, torch.WithDType(torch.Bool))), nilT, x).Err(),
		"Where", "", "self")
	atenExpectError(t, "Mul_(nil receiver)", nilT.Mul_(x).Err(), "Mul_", "", "self")

	// Sticky: a failed operand's error passes on unchanged.
	bad := x.Expand(4, 3)
	assert.Same(t, bad.Err(), bad.Cos().Err(), "a failed tensor's error passes through Cos")
	assert.Same(t, bad.Err(), x.Clone().Mul_(bad).Err(), "and through an in-place op")
	assert.Same(t, bad.Err(), torch.ForeachMul_([]*torch.Tensor{bad}, 2), "and through _foreach")

	// The dispatcher's own checks.
	_, err = torch.Call("aten::no_such_op", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown operator aten::no_such_op")
	_, err = torch.Call("aten::cos", "", 1.5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "argument 'self' (position 1) of aten::cos must be a Tensor, got a float")
	assert.False(t, atenCxxLocation.MatchString(err.Error()), err.Error())
}

// TestAtenChunkHugeN checks that Chunk with a huge count returns one piece
// per entry instead of allocating room for n results.
func TestAtenChunkHugeN(t *testing.T) {
	x := torch.Arange(0, 5, 1).Must()
	defer x.Close()
	pieces := x.Chunk(1<<40, 0)
	require.NoError(t, torch.FirstErr(pieces...))
	assert.Len(t, pieces, 5)
	torch.CloseAll(pieces...)
}

// TestAtenSchemas logs the schema of every op ops_aten.go calls, as a
// record of the overloads (and argument orders) the Go functions rely on.
func TestAtenSchemas(t *testing.T) {
	names := []string{
		"aten::clamp", "aten::clamp.Tensor", "aten::var.correction", "aten::var_mean.correction",
		"aten::linalg_vector_norm", "aten::repeat_interleave.self_int", "aten::flatten.using_ints",
		"aten::split.Tensor", "aten::scatter.src", "aten::scatter.value", "aten::where.self",
		"aten::where.ScalarOther", "aten::index.Tensor", "aten::full_like", "aten::topk", "aten::sort",
		"aten::argsort", "aten::multinomial", "aten::conv1d", "aten::embedding", "aten::cross_entropy_loss",
		"aten::nll_loss_nd", "aten::add_.Tensor", "aten::addcmul_", "aten::addcdiv_", "aten::lerp_.Scalar",
		"aten::clamp_", "aten::masked_fill_.Scalar", "aten::_foreach_mul_.Scalar", "aten::_foreach_add_.List",
		"aten::_foreach_addcmul_.Scalar", "aten::_foreach_addcdiv_.Scalar", "aten::_foreach_lerp_.Scalar",
		"aten::_foreach_sqrt", "aten::_foreach_norm.Scalar", "aten::_foreach_zero_",
	}
	sort.Strings(names)
	for _, n := range names {
		name, overload, _ := strings.Cut(n, ".")
		schema, err := torch.NewOp(name, overload).Schema()
		if err != nil {
			t.Logf("%-36s unavailable: %v", n, err)
			continue
		}
		t.Logf("%s", schema)
	}
}
