package torch_test

import (
	"fmt"
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
// result is compared with the float64 truth: atenTolTruth32 (helpers_test.go).

// atenSuite replays the cases of gen_ops_aten.py's files. Results are
// compared with atenCompare; empty_like has arbitrary values.
var atenSuite = &refSuite{
	regen:     "/usr/bin/python3 torch/testdata/gen_ops_aten.py",
	ops:       atenOps,
	shapeOnly: map[string]bool{"empty_like": true},
	compare:   atenCompare,
}

func (p refParams) castDType() torch.DType {
	return named(p, "dtype", map[string]torch.DType{"bfloat16": torch.BFloat16, "float16": torch.Float16})
}

// atenSeeded reseeds the default generator first, as the generator does.
func atenSeeded(f refOp) refOp {
	return func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		require.NoError(env.t, torch.ManualSeed(uint64(p.i("seed"))))
		return f(env, in, p)
	}
}

// atenInplace runs an in-place op on a clone of in[0] and checks that it
// returns its receiver.
func atenInplace(f func(x *torch.Tensor, in []*torch.Tensor, p refParams) *torch.Tensor) refOp {
	return func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		x := in[0].Clone()
		r := f(x, in[1:], p)
		require.NoError(env.t, r.Err())
		require.Same(env.t, x, r, "an in-place op returns its receiver")
		return one(x)
	}
}

// atenLists splits the inputs of a _foreach case into its lists of n.
func atenLists(in []*torch.Tensor, p refParams) [][]*torch.Tensor {
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
func atenForeach(multi func(ls [][]*torch.Tensor, p refParams) ([]*torch.Tensor, error),
	single func(k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor) refOp {
	return func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		ls := atenLists(in, p)
		got, err := multi(ls, p)
		require.NoError(env.t, err)
		require.NoError(env.t, torch.FirstErr(got...))
		require.Len(env.t, got, len(ls[0]))
		for k := range ls[0] {
			want := single(k, ls, p)
			require.NoError(env.t, want.Err())
			label := fmt.Sprintf("_foreach result %d against the per-tensor op", k)
			if dev := in[0].Device(); dev.IsCUDA() {
				reftest.RequireClose(env.t, label, got[k], want, reftest.Tolerance(want.DType(), dev))
			} else {
				reftest.RequireBitwise(env.t, label, got[k], want)
			}
		}
		return got
	}
}

// atenForeachInplace is atenForeach for the in-place _foreach ops: multi
// updates the clones of the first list, single the clone of one entry.
func atenForeachInplace(multi func(dst []*torch.Tensor, ls [][]*torch.Tensor, p refParams) error,
	single func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor) refOp {
	return atenForeach(
		func(ls [][]*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
			dst := atenClones(ls[0])
			return dst, multi(dst, ls, p)
		},
		func(k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return single(ls[0][k].Clone(), k, ls, p)
		})
}

func atenSDPA(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
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
	return one(torch.ScaledDotProductAttention(q, k, v, mask, 0, p.b("causal")))
}

// atenOps maps the op names of gen_ops_aten.py to golora calls.
var atenOps = map[string]refOp{
	// Maths.
	"cos":        unaryOp((*torch.Tensor).Cos),
	"sin":        unaryOp((*torch.Tensor).Sin),
	"rsqrt":      unaryOp((*torch.Tensor).Rsqrt),
	"reciprocal": unaryOp((*torch.Tensor).Reciprocal),
	"square":     unaryOp((*torch.Tensor).Square),
	"abs":        unaryOp((*torch.Tensor).Abs),
	"clamp": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Clamp(p.f("min"), p.f("max")))
	},
	"clamp_min": floatOp("min", (*torch.Tensor).ClampMin),
	"clamp_max": floatOp("max", (*torch.Tensor).ClampMax),
	"clamp_tensor": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		bounds := optionalInputs(in, p, "min", "max")
		return one(in[0].ClampTensor(bounds[0], bounds[1]))
	},
	"minimum":    binaryOp((*torch.Tensor).Minimum),
	"maximum":    binaryOp((*torch.Tensor).Maximum),
	"min":        unaryOp((*torch.Tensor).Min),
	"pow_tensor": binaryOp((*torch.Tensor).PowTensor),
	"min_dim":    dimPairOp((*torch.Tensor).MinDim),
	"cumsum":     intOp("dim", (*torch.Tensor).Cumsum),
	"var": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Var(p.ints("dims"), p.i("correction"), p.b("keepdim")))
	},
	"var_mean": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return two(in[0].VarMean(p.ints("dims"), p.i("correction"), p.b("keepdim")))
	},
	"mean_dims": dimsOp((*torch.Tensor).MeanDims),
	"norm": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Norm(p.f("p"), p.ints("dims"), p.b("keepdim")))
	},

	// Comparisons and logic.
	"eq":          binaryOp((*torch.Tensor).Eq),
	"ne":          binaryOp((*torch.Tensor).Ne),
	"lt":          binaryOp((*torch.Tensor).Lt),
	"le":          binaryOp((*torch.Tensor).Le),
	"gt":          binaryOp((*torch.Tensor).Gt),
	"ge":          binaryOp((*torch.Tensor).Ge),
	"eq_scalar":   scalarOp((*torch.Tensor).EqScalar),
	"ne_scalar":   scalarOp((*torch.Tensor).NeScalar),
	"lt_scalar":   scalarOp((*torch.Tensor).LtScalar),
	"le_scalar":   scalarOp((*torch.Tensor).LeScalar),
	"gt_scalar":   scalarOp((*torch.Tensor).GtScalar),
	"ge_scalar":   scalarOp((*torch.Tensor).GeScalar),
	"logical_and": binaryOp((*torch.Tensor).LogicalAnd),
	"logical_or":  binaryOp((*torch.Tensor).LogicalOr),
	"logical_not": unaryOp((*torch.Tensor).LogicalNot),

	// Shapes.
	"expand": intsOp("size", (*torch.Tensor).Expand),
	"repeat": intsOp("repeats", (*torch.Tensor).Repeat),
	"repeat_interleave": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].RepeatInterleave(p.i("n"), p.i("dim")))
	},
	"unsqueeze":   intOp("dim", (*torch.Tensor).Unsqueeze),
	"squeeze":     unaryOp((*torch.Tensor).Squeeze),
	"squeeze_dim": intOp("dim", (*torch.Tensor).SqueezeDim),
	"flatten": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Flatten(p.i("start"), p.i("end")))
	},
	"chunk": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return in[0].Chunk(p.i("n"), p.i("dim"))
	},
	"split": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return in[0].Split(p.i("size"), p.i("dim"))
	},
	"split_sizes": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return in[0].SplitSizes(p.ints("sizes"), p.i("dim"))
	},
	"gather": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Gather(p.i("dim"), in[1]))
	},
	"scatter": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Scatter(p.i("dim"), in[1], in[2]))
	},
	"scatter_value": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].ScatterValue(p.i("dim"), in[1], p.f("value")))
	},
	"where": func(_ refEnv, in []*torch.Tensor, _ refParams) []*torch.Tensor {
		return one(torch.Where(in[0], in[1], in[2]))
	},
	"where_scalar": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.WhereScalar(in[0], in[1], p.f("value")))
	},
	"triu":    intOp("diagonal", (*torch.Tensor).Triu),
	"tril":    intOp("diagonal", (*torch.Tensor).Tril),
	"one_hot": intOp("n", (*torch.Tensor).OneHot),
	"index": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
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
		return one(in[0].Index(idx...))
	},

	// Creation like another tensor.
	"zeros_like": unaryOp((*torch.Tensor).ZerosLike),
	"ones_like":  unaryOp((*torch.Tensor).OnesLike),
	"full_like":  floatOp("value", (*torch.Tensor).FullLike),
	"empty_like": unaryOp((*torch.Tensor).EmptyLike), // shape and dtype only (atenSuite.shapeOnly)
	"rand_like":  atenSeeded(unaryOp((*torch.Tensor).RandLike)),
	"randn_like": atenSeeded(unaryOp((*torch.Tensor).RandnLike)),

	// Sampling.
	"topk": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return two(in[0].Topk(p.i("k"), p.i("dim"), p.b("largest")))
	},
	"sort": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return two(in[0].Sort(p.i("dim"), p.b("descending")))
	},
	"argsort": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Argsort(p.i("dim"), p.b("descending")))
	},
	"multinomial": atenSeeded(func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].Multinomial(p.i("n"), p.b("replacement")))
	}),

	// Networks.
	"gelu_tanh": unaryOp((*torch.Tensor).GeluTanh),
	"conv1d": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		var b *torch.Tensor
		if p.b("bias") {
			b = in[2]
		}
		return one(torch.Conv1d(in[0], in[1], b, p.i("stride"), p.i("padding"), p.i("dilation"), p.i("groups")))
	},
	"embedding_padded": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(torch.EmbeddingPadded(in[0], in[1], p.i("padding_idx")))
	},
	"cross_entropy_with": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		o := torch.CrossEntropyOptions{Reduction: p.reduction(), IgnoreIndex: p.i("ignore_index"),
			LabelSmoothing: p.f("label_smoothing")}
		if p.b("weight") {
			o.Weight = in[2]
		}
		return one(torch.CrossEntropyWith(in[0], in[1], o))
	},
	"nll_loss": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		var w *torch.Tensor
		if p.b("weight") {
			w = in[2]
		}
		return one(torch.NLLLoss(in[0], in[1], w, p.reduction(), p.i("ignore_index")))
	},
	"sdpa": atenSDPA,

	// In place.
	"mul_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, _ refParams) *torch.Tensor { return x.Mul_(o[0]) }),
	"mul_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p refParams) *torch.Tensor {
		return x.MulScalar_(p.f("s"))
	}),
	"add_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Add_(o[0], p.f("alpha"))
	}),
	"add_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p refParams) *torch.Tensor {
		return x.AddScalar_(p.f("s"))
	}),
	"sub_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Sub_(o[0], p.f("alpha"))
	}),
	"div_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, _ refParams) *torch.Tensor { return x.Div_(o[0]) }),
	"div_scalar_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p refParams) *torch.Tensor {
		return x.DivScalar_(p.f("s"))
	}),
	"addcmul_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Addcmul_(o[0], o[1], p.f("value"))
	}),
	"addcdiv_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Addcdiv_(o[0], o[1], p.f("value"))
	}),
	"lerp_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Lerp_(o[0], p.f("weight"))
	}),
	"sqrt_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, _ refParams) *torch.Tensor { return x.Sqrt_() }),
	"zero_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, _ refParams) *torch.Tensor { return x.Zero_() }),
	"clamp_": atenInplace(func(x *torch.Tensor, _ []*torch.Tensor, p refParams) *torch.Tensor {
		return x.Clamp_(p.f("min"), p.f("max"))
	}),
	"masked_fill_": atenInplace(func(x *torch.Tensor, o []*torch.Tensor, p refParams) *torch.Tensor {
		return x.MaskedFill_(o[0], p.f("value"))
	}),

	// _foreach, checked against the per-tensor ops as well.
	"foreach_mul_": atenForeachInplace(
		func(dst []*torch.Tensor, _ [][]*torch.Tensor, p refParams) error {
			return torch.ForeachMul_(dst, p.f("s"))
		},
		func(x *torch.Tensor, _ int, _ [][]*torch.Tensor, p refParams) *torch.Tensor {
			return x.MulScalar_(p.f("s"))
		}),
	"foreach_add_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p refParams) error {
			return torch.ForeachAdd_(dst, ls[1], p.f("alpha"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return x.Add_(ls[1][k], p.f("alpha"))
		}),
	"foreach_addcmul_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p refParams) error {
			return torch.ForeachAddcmul_(dst, ls[1], ls[2], p.f("value"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return x.Addcmul_(ls[1][k], ls[2][k], p.f("value"))
		}),
	"foreach_addcdiv_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p refParams) error {
			return torch.ForeachAddcdiv_(dst, ls[1], ls[2], p.f("value"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return x.Addcdiv_(ls[1][k], ls[2][k], p.f("value"))
		}),
	"foreach_lerp_": atenForeachInplace(
		func(dst []*torch.Tensor, ls [][]*torch.Tensor, p refParams) error {
			return torch.ForeachLerp_(dst, ls[1], p.f("weight"))
		},
		func(x *torch.Tensor, k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return x.Lerp_(ls[1][k], p.f("weight"))
		}),
	"foreach_zero_": atenForeachInplace(
		func(dst []*torch.Tensor, _ [][]*torch.Tensor, _ refParams) error { return torch.ForeachZero_(dst) },
		func(x *torch.Tensor, _ int, _ [][]*torch.Tensor, _ refParams) *torch.Tensor { return x.Zero_() }),
	"foreach_sqrt": atenForeach(
		func(ls [][]*torch.Tensor, _ refParams) ([]*torch.Tensor, error) {
			return torch.ForeachSqrt(ls[0]), nil
		},
		func(k int, ls [][]*torch.Tensor, _ refParams) *torch.Tensor { return ls[0][k].Sqrt() }),
	"foreach_norm": atenForeach(
		func(ls [][]*torch.Tensor, p refParams) ([]*torch.Tensor, error) {
			return torch.ForeachNorm(ls[0], p.f("p")), nil
		},
		func(k int, ls [][]*torch.Tensor, p refParams) *torch.Tensor {
			return ls[0][k].Norm(p.f("p"), nil, false)
		}),

	// Casts.
	"to": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].To(p.castDType()))
	},
	"cast_roundtrip": func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(in[0].To(p.castDType()).To(in[0].DType()))
	},
}

// atenRequireExact fails t unless got has want's dtype and shape and the
// same elements: integers and bools by value, floats by bit pattern
// (exactSlice).
func atenRequireExact(t testing.TB, label string, got, want *torch.Tensor) {
	t.Helper()
	require.Equalf(t, want.DType(), got.DType(), "%s: dtype", label)
	require.Equalf(t, want.Shape(), got.Shape(), "%s: shape", label)
	g, w := exactSlice(t, got), exactSlice(t, want)
	if bad, first := mismatches(g, w); bad > 0 {
		require.FailNowf(t, "not bitwise equal", "%s: %d of %d elements differ; first at flat index %d: got bits %#x, want %#x",
			label, bad, len(w), first, g[first], w[first])
	}
}

// atenCompare compares one result: bitwise for exact cases and for
// non-float dtypes, else within tol and finite (reftest.RequireClose). It
// returns the relative error (0 when exact).
func atenCompare(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64 {
	t.Helper()
	if exact || !want.DType().IsFloat() {
		atenRequireExact(t, label, got, want)
		return 0
	}
	return reftest.RequireClose(t, label, got, want, tol)
}

func TestAtenRefFloat32(t *testing.T) { atenSuite.runFile(t, "ops_aten_float32.safetensors") }

func TestAtenRefFloat64(t *testing.T) { atenSuite.runFile(t, "ops_aten_float64.safetensors") }

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
	var exported []string
	for _, fd := range opsAtenFuncs(t) {
		if fd.Name.IsExported() {
			exported = append(exported, fd.Name.Name)
		}
	}
	require.NotEmpty(t, exported)

	for _, name := range []string{"ops_aten_float32.safetensors", "ops_aten_float64.safetensors"} {
		seen := atenSuite.countOps(t, name)
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
