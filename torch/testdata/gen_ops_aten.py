#!/usr/bin/python3
"""Generate the reference files that torch/ops_aten_test.go checks the
dispatcher ops of torch/ops_aten.go (and their neighbours: Abs, Maximum,
Tril, GeluTanh, ScaledDotProductAttention, casts) against.

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 torch/testdata/gen_ops_aten.py

It also runs under a PyPI torch 2.x (for a libcgotorch.so built on it). It
writes, under torch/testdata/:

  ops_aten_float32.safetensors, ops_aten_float64.safetensors
      one case per op and variant: its inputs, its forward outputs, a fixed
      random weight per float output, and the gradients of the float inputs
      after backward of loss = sum_j (out_j * w_j).sum() -- the protocol of
      gen_refs.py. Seeded draws (rand_like, randn_like, multinomial) reseed
      the default generator with torch.manual_seed(seed) and must be matched
      bit for bit. In-place and _foreach cases store the values after the op
      (no gradients). Casts store PyTorch's bfloat16/float16 roundings.

Every file's "__metadata__" holds "cases": a JSON list of
{name, op, params, n_in, n_out, grad, exact, cpu_only, truth}. Tensors are
named "<case>.in.<i>", "<case>.out.<j>", "<case>.w.<j>", "<case>.grad.<i>".
"truth" marks cases whose reference is computed in float64 by an explicit
formula (attention: PyTorch 1.13 has no F.scaled_dot_product_attention)
and rounded to the case's dtype, rather than by the same libtorch kernel;
the Go side gives those float32 results a wider bound. The case file
(refs.CaseFile) and the input draws are gen_refs.py's: internal/reftest/refs.py.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402

HERE = refs.here(__file__)

D = refs.Draws(20250101)
randn, pos, nonzero, halves, ints, boolmask = D.randn, D.pos, D.nonzero, D.halves, D.ints, D.boolmask


def perm_rows(rows, n, k):
    """rows x k int64 indices, each row k distinct values of [0, n)."""
    return torch.stack([torch.randperm(n, generator=D.gen)[:k] for _ in range(rows)])


# ---------------------------------------------------------------------------
# Reference implementations, one per Go op name: f(inputs, params) -> tuple.

def pnorm(p):
    return math.inf if p == "inf" else p


def index_ref(ins, p):
    x, idx = ins[0], list(ins[1:])
    key = []
    for k in range(p["n"]):
        key.append(slice(None) if k in p["nones"] else idx.pop(0))
    return (x[tuple(key)],)


def seeded(fn):
    def f(ins, p):
        torch.manual_seed(p["seed"])
        return fn(ins, p)
    return f


def inplace(fn):
    """Apply the in-place op to a clone, without autograd."""
    def f(ins, p):
        with torch.no_grad():
            x = ins[0].detach().clone()
            r = fn(x, [t.detach() for t in ins[1:]], p)
            assert r is x
        return (x,)
    return f


def foreach(fn, lists):
    """The per-tensor reference of a _foreach op over `lists` lists of n
    tensors each (inputs laid out list after list); fn(tensors_k, p)
    returns the k-th result."""
    def f(ins, p):
        n = p["n"]
        assert len(ins) == n * lists
        out = []
        with torch.no_grad():
            for k in range(n):
                ts = [ins[j * n + k].detach().clone() for j in range(lists)]
                out.append(fn(ts, p))
        return tuple(out)
    return f


def ce_ref(ins, p):
    w = ins[2] if p["weight"] else None
    return (F.cross_entropy(ins[0], ins[1], weight=w, ignore_index=p["ignore_index"],
                            reduction=refs.RED[p["reduction"]], label_smoothing=p["label_smoothing"]),)


def nll_ref(ins, p):
    w = ins[2] if p["weight"] else None
    return (F.nll_loss(ins[0], ins[1], weight=w, ignore_index=p["ignore_index"], reduction=refs.RED[p["reduction"]]),)


def clamp_tensor_ref(ins, p):
    mn = ins[1] if p["min"] else None
    mx = ins[1 + int(p["min"])] if p["max"] else None
    return (torch.clamp(ins[0], mn, mx),)


CAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}

OPS = {
    # Maths.
    "cos": lambda i, p: (i[0].cos(),),
    "sin": lambda i, p: (i[0].sin(),),
    "rsqrt": lambda i, p: (i[0].rsqrt(),),
    "reciprocal": lambda i, p: (i[0].reciprocal(),),
    "square": lambda i, p: (i[0].square(),),
    "abs": lambda i, p: (i[0].abs(),),
    "clamp": lambda i, p: (i[0].clamp(p["min"], p["max"]),),
    "clamp_min": lambda i, p: (i[0].clamp(min=p["min"]),),
    "clamp_max": lambda i, p: (i[0].clamp(max=p["max"]),),
    "clamp_tensor": clamp_tensor_ref,
    "minimum": lambda i, p: (torch.minimum(i[0], i[1]),),
    "maximum": lambda i, p: (torch.maximum(i[0], i[1]),),
    "min": lambda i, p: (i[0].min(),),
    "min_dim": lambda i, p: tuple(i[0].min(p["dim"], keepdim=p["keepdim"])),
    "pow_tensor": lambda i, p: (i[0].pow(i[1]),),
    "cumsum": lambda i, p: (i[0].cumsum(p["dim"]),),
    "var": lambda i, p: (torch.var(i[0], p["dims"], correction=p["correction"], keepdim=p["keepdim"]),),
    "var_mean": lambda i, p: tuple(torch.var_mean(i[0], p["dims"], correction=p["correction"], keepdim=p["keepdim"])),
    "mean_dims": lambda i, p: (i[0].mean(p["dims"], keepdim=p["keepdim"]),),
    "norm": lambda i, p: (torch.linalg.vector_norm(i[0], pnorm(p["p"]), p["dims"], p["keepdim"]),),

    # Comparisons and logic.
    "eq": lambda i, p: (i[0].eq(i[1]),),
    "ne": lambda i, p: (i[0].ne(i[1]),),
    "lt": lambda i, p: (i[0].lt(i[1]),),
    "le": lambda i, p: (i[0].le(i[1]),),
    "gt": lambda i, p: (i[0].gt(i[1]),),
    "ge": lambda i, p: (i[0].ge(i[1]),),
    "eq_scalar": lambda i, p: (i[0].eq(p["s"]),),
    "ne_scalar": lambda i, p: (i[0].ne(p["s"]),),
    "lt_scalar": lambda i, p: (i[0].lt(p["s"]),),
    "le_scalar": lambda i, p: (i[0].le(p["s"]),),
    "gt_scalar": lambda i, p: (i[0].gt(p["s"]),),
    "ge_scalar": lambda i, p: (i[0].ge(p["s"]),),
    "logical_and": lambda i, p: (torch.logical_and(i[0], i[1]),),
    "logical_or": lambda i, p: (torch.logical_or(i[0], i[1]),),
    "logical_not": lambda i, p: (torch.logical_not(i[0]),),

    # Shapes.
    "expand": lambda i, p: (i[0].expand(*p["size"]),),
    "repeat": lambda i, p: (i[0].repeat(*p["repeats"]),),
    "repeat_interleave": lambda i, p: (i[0].repeat_interleave(p["n"], p["dim"]),),
    "unsqueeze": lambda i, p: (i[0].unsqueeze(p["dim"]),),
    "squeeze": lambda i, p: (i[0].squeeze(),),
    "squeeze_dim": lambda i, p: (i[0].squeeze(p["dim"]),),
    "flatten": lambda i, p: (i[0].flatten(p["start"], p["end"]),),
    "chunk": lambda i, p: tuple(i[0].chunk(p["n"], p["dim"])),
    "split": lambda i, p: tuple(i[0].split(p["size"], p["dim"])),
    "split_sizes": lambda i, p: tuple(i[0].split(p["sizes"], p["dim"])),
    "gather": lambda i, p: (i[0].gather(p["dim"], i[1]),),
    "scatter": lambda i, p: (i[0].scatter(p["dim"], i[1], i[2]),),
    "scatter_value": lambda i, p: (i[0].scatter(p["dim"], i[1], p["value"]),),
    "where": lambda i, p: (torch.where(i[0], i[1], i[2]),),
    "where_scalar": lambda i, p: (torch.where(i[0], i[1], torch.tensor(p["value"], dtype=i[1].dtype)),),
    "triu": lambda i, p: (i[0].triu(p["diagonal"]),),
    "tril": lambda i, p: (i[0].tril(p["diagonal"]),),
    "one_hot": lambda i, p: (F.one_hot(i[0], p["n"]),),
    "index": index_ref,

    # Creation like another tensor.
    "zeros_like": lambda i, p: (torch.zeros_like(i[0]),),
    "ones_like": lambda i, p: (torch.ones_like(i[0]),),
    "full_like": lambda i, p: (torch.full_like(i[0], p["value"]),),
    # Uninitialised values: stored as zeros so that the file is reproducible;
    # the Go side compares dtype and shape only.
    "empty_like": lambda i, p: (torch.empty_like(i[0]).zero_(),),
    "rand_like": seeded(lambda i, p: (torch.rand_like(i[0]),)),
    "randn_like": seeded(lambda i, p: (torch.randn_like(i[0]),)),

    # Sampling.
    "topk": lambda i, p: tuple(i[0].topk(p["k"], p["dim"], p["largest"], True)),
    "sort": lambda i, p: tuple(i[0].sort(p["dim"], p["descending"])),
    "argsort": lambda i, p: (i[0].argsort(p["dim"], p["descending"]),),
    "multinomial": seeded(lambda i, p: (torch.multinomial(i[0], p["n"], p["replacement"]),)),

    # Networks.
    "gelu_tanh": lambda i, p: (F.gelu(i[0], approximate="tanh"),),
    "conv1d": refs.conv_ref(F.conv1d),
    "embedding_padded": lambda i, p: (F.embedding(i[0], i[1], padding_idx=p["padding_idx"]),),
    "cross_entropy_with": ce_ref,
    "nll_loss": nll_ref,
    "sdpa": refs.sdpa_ref,

    # In place.
    "mul_": inplace(lambda x, o, p: x.mul_(o[0])),
    "mul_scalar_": inplace(lambda x, o, p: x.mul_(p["s"])),
    "add_": inplace(lambda x, o, p: x.add_(o[0], alpha=p["alpha"])),
    "add_scalar_": inplace(lambda x, o, p: x.add_(p["s"])),
    "sub_": inplace(lambda x, o, p: x.sub_(o[0], alpha=p["alpha"])),
    "div_": inplace(lambda x, o, p: x.div_(o[0])),
    "div_scalar_": inplace(lambda x, o, p: x.div_(p["s"])),
    "addcmul_": inplace(lambda x, o, p: x.addcmul_(o[0], o[1], value=p["value"])),
    "addcdiv_": inplace(lambda x, o, p: x.addcdiv_(o[0], o[1], value=p["value"])),
    "lerp_": inplace(lambda x, o, p: x.lerp_(o[0], p["weight"])),
    "sqrt_": inplace(lambda x, o, p: x.sqrt_()),
    "zero_": inplace(lambda x, o, p: x.zero_()),
    "clamp_": inplace(lambda x, o, p: x.clamp_(p["min"], p["max"])),
    "masked_fill_": inplace(lambda x, o, p: x.masked_fill_(o[0], p["value"])),

    # _foreach, by their per-tensor definition.
    "foreach_mul_": foreach(lambda t, p: t[0].mul_(p["s"]), 1),
    "foreach_add_": foreach(lambda t, p: t[0].add_(t[1], alpha=p["alpha"]), 2),
    "foreach_addcmul_": foreach(lambda t, p: t[0].addcmul_(t[1], t[2], value=p["value"]), 3),
    "foreach_addcdiv_": foreach(lambda t, p: t[0].addcdiv_(t[1], t[2], value=p["value"]), 3),
    "foreach_lerp_": foreach(lambda t, p: t[0].lerp_(t[1], p["weight"]), 2),
    "foreach_sqrt": foreach(lambda t, p: t[0].sqrt(), 1),
    "foreach_norm": foreach(lambda t, p: torch.linalg.vector_norm(t[0], pnorm(p["p"])), 1),
    "foreach_zero_": foreach(lambda t, p: t[0].zero_(), 1),

    # Casts.
    "to": lambda i, p: (i[0].to(CAST[p["dtype"]]),),
    "cast_roundtrip": lambda i, p: (i[0].to(CAST[p["dtype"]]).to(i[0].dtype),),
}

# Ops with no gradient to check: in-place and _foreach ops (run without
# autograd), and ops whose outputs are not differentiable (bool, integer,
# creation, seeded draws, casts compared bit for bit).
NOGRAD_OPS = {op for op in OPS if op.endswith("_") or op.startswith("foreach_")} | {
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like",
    "argsort", "multinomial", "one_hot", "to"} | {op + "_scalar" for op in ["eq", "ne", "lt", "le", "gt", "ge"]}


def cast_inputs(dt):
    """Values that exercise rounding to bfloat16 and float16: exact ones,
    ties (round half to even), just above and below ties, subnormals of
    both formats, overflow, infinities, NaN and signed zeros."""
    v = [0.0, -0.0, 1.0, -2.5, 0.1, 1.0 / 3.0, math.pi, -math.e, 1e-3, 123.456,
         1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -8 - 2 ** -20,  # bf16 ties and near ties
         1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20, -(1 + 2 ** -11),  # fp16 ties
         65504.0, 65519.0, 65520.0, 1e5, -1e5, 3.0e38, 3.4e38, -3.3e38,  # fp16 max/overflow, bf16 range
         6e-8, 3e-8, 1e-7, 6.1e-5, 5.9e-5,  # fp16 subnormals
         1e-39, -2e-40, 1.2e-38,  # bf16 subnormals (float32 subnormals too)
         math.inf, -math.inf, math.nan]
    return torch.tensor(v, dtype=torch.float64).to(dt)


def cases(f, dt):
    c = f.suffixed(dt, truth=False)  # every case says whether its reference is a float64 truth

    # Maths.
    c("cos", "cos", [randn((3, 5), dt) * 3])
    c("sin", "sin", [randn((3, 5), dt) * 3])
    c("rsqrt", "rsqrt", [pos((3, 5), dt)])
    c("reciprocal", "reciprocal", [nonzero((3, 5), dt)])
    c("square", "square", [randn((3, 5), dt)])
    c("abs", "abs", [nonzero((3, 5), dt)])
    c("clamp", "clamp", [randn((4, 5), dt)], {"min": -0.5, "max": 0.7})
    c("clamp_min", "clamp_min", [randn((4, 5), dt)], {"min": -0.25})
    c("clamp_max", "clamp_max", [randn((4, 5), dt)], {"max": 0.3})
    c("clamp_tensor", "clamp_tensor", [randn((4, 5), dt), randn((4, 5), dt) - 1, randn((5,), dt) + 1],
      {"min": True, "max": True})
    c("clamp_tensor_min", "clamp_tensor", [randn((4, 5), dt), randn((1, 5), dt)], {"min": True, "max": False})
    c("clamp_tensor_max", "clamp_tensor", [randn((4, 5), dt), randn((4, 1), dt)], {"min": False, "max": True})
    c("minimum", "minimum", [randn((3, 4), dt), randn((3, 4), dt)])
    c("minimum_ties", "minimum", [halves((3, 4), dt), halves((3, 4), dt)])
    c("minimum_bcast", "minimum", [randn((2, 3, 4), dt), randn((4,), dt)])
    c("maximum", "maximum", [randn((3, 4), dt), randn((3, 4), dt)])
    c("maximum_ties", "maximum", [halves((3, 4), dt), halves((3, 4), dt)])
    c("min", "min", [randn((3, 4), dt)])
    for kd in [False, True]:
        k = "keep" if kd else "nokeep"
        c(f"min_dim_{k}", "min_dim", [randn((3, 4, 5), dt)], {"dim": 1, "keepdim": kd})
    c("pow_tensor", "pow_tensor", [pos((3, 4), dt), randn((3, 4), dt)])
    c("pow_tensor_bcast", "pow_tensor", [pos((3, 4), dt), randn((4,), dt)])
    c("cumsum_0", "cumsum", [randn((4, 5), dt)], {"dim": 0})
    c("cumsum_last", "cumsum", [randn((2, 3, 6), dt)], {"dim": -1})
    for kd in [False, True]:
        k = "keep" if kd else "nokeep"
        for corr in [0, 1]:
            c(f"var_all_c{corr}_{k}", "var", [randn((3, 4, 5), dt)], {"dims": None, "correction": corr, "keepdim": kd})
            c(f"var_dim_c{corr}_{k}", "var", [randn((3, 4, 5), dt)], {"dims": [1], "correction": corr, "keepdim": kd})
            c(f"var_mean_c{corr}_{k}", "var_mean", [randn((3, 4, 5), dt) + 2], {"dims": [0, 2], "correction": corr, "keepdim": kd})
        c(f"var_mean_all_{k}", "var_mean", [randn((3, 4), dt)], {"dims": None, "correction": 1, "keepdim": kd})
        c(f"mean_dims_{k}", "mean_dims", [randn((3, 4, 5), dt)], {"dims": [-1], "keepdim": kd})
        c(f"norm2_dim_{k}", "norm", [randn((3, 4, 5), dt)], {"p": 2.0, "dims": [1, 2], "keepdim": kd})
    c("norm2_all", "norm", [randn((3, 4, 5), dt)], {"p": 2.0, "dims": None, "keepdim": False})
    c("norm1_last", "norm", [nonzero((3, 4), dt)], {"p": 1.0, "dims": [-1], "keepdim": True})
    c("norm3_all", "norm", [randn((3, 4), dt)], {"p": 3.0, "dims": None, "keepdim": False})
    c("norm_inf", "norm", [randn((3, 4), dt)], {"p": "inf", "dims": [0], "keepdim": False})

    # Comparisons (halves: ties), tensor and scalar forms, broadcasting.
    for op in ["eq", "ne", "lt", "le", "gt", "ge"]:
        c(op, op, [halves((3, 4), dt), halves((3, 4), dt)])
        c(f"{op}_bcast", op, [halves((2, 3, 4), dt), halves((3, 1), dt)])
        c(f"{op}_scalar", f"{op}_scalar", [halves((3, 4), dt)], {"s": 0.5})
    c("logical_and", "logical_and", [boolmask((3, 4)), boolmask((3, 4))])
    c("logical_or", "logical_or", [boolmask((3, 4)), boolmask((3, 4))])
    c("logical_not", "logical_not", [boolmask((3, 4))])
    c("logical_and_float", "logical_and", [halves((3, 4), dt), halves((4,), dt)])
    c("logical_or_float", "logical_or", [halves((3, 4), dt), halves((3, 4), dt)])
    c("logical_not_float", "logical_not", [halves((3, 4), dt)])

    # Shapes.
    c("expand", "expand", [randn((3, 1), dt)], {"size": [3, 4]})
    c("expand_new_dims", "expand", [randn((1, 4), dt)], {"size": [2, 3, -1]})
    c("repeat", "repeat", [randn((2, 3), dt)], {"repeats": [2, 1, 3]})
    c("repeat_interleave_0", "repeat_interleave", [randn((3, 2), dt)], {"n": 2, "dim": 0})
    c("repeat_interleave_heads", "repeat_interleave", [randn((2, 2, 3, 4), dt)], {"n": 3, "dim": 1})
    c("repeat_interleave_last", "repeat_interleave", [randn((2, 3), dt)], {"n": 2, "dim": -1})
    c("unsqueeze_0", "unsqueeze", [randn((3, 4), dt)], {"dim": 0})
    c("unsqueeze_last", "unsqueeze", [randn((3, 4), dt)], {"dim": -1})
    c("squeeze", "squeeze", [randn((1, 3, 1, 4), dt)])
    c("squeeze_dim", "squeeze_dim", [randn((3, 1, 4), dt)], {"dim": 1})
    c("squeeze_dim_noop", "squeeze_dim", [randn((3, 2, 4), dt)], {"dim": 1})
    c("flatten_all", "flatten", [randn((2, 3, 4), dt)], {"start": 0, "end": -1})
    c("flatten_mid", "flatten", [randn((2, 3, 4, 5), dt)], {"start": 1, "end": 2})
    c("chunk_even", "chunk", [randn((6, 4), dt)], {"n": 3, "dim": 0})
    c("chunk_uneven", "chunk", [randn((3, 7), dt)], {"n": 3, "dim": 1})
    c("chunk_fewer", "chunk", [randn((6, 2), dt)], {"n": 4, "dim": 0})  # 3 chunks of 2
    c("split", "split", [randn((7, 3), dt)], {"size": 3, "dim": 0})
    c("split_last", "split", [randn((2, 8), dt)], {"size": 4, "dim": -1})
    c("split_sizes", "split_sizes", [randn((3, 9), dt)], {"sizes": [2, 3, 4], "dim": 1})
    c("gather_1", "gather", [randn((3, 5), dt), ints(5, (3, 4))], {"dim": 1})
    c("gather_0", "gather", [randn((4, 3), dt), ints(4, (2, 3))], {"dim": 0})
    c("scatter", "scatter", [randn((3, 5), dt), perm_rows(3, 5, 3), randn((3, 3), dt)], {"dim": 1})
    c("scatter_0", "scatter", [randn((4, 2), dt), perm_rows(2, 4, 3).t().contiguous(), randn((3, 2), dt)], {"dim": 0})
    c("scatter_value", "scatter_value", [randn((3, 5), dt), perm_rows(3, 5, 2)], {"dim": 1, "value": -1.5})
    c("where", "where", [boolmask((3, 4)), randn((3, 4), dt), randn((3, 4), dt)])
    c("where_bcast", "where", [boolmask((3, 1)), randn((3, 4), dt), randn((4,), dt)])
    c("where_scalar", "where_scalar", [boolmask((3, 4)), randn((3, 4), dt)], {"value": 0.25})
    for d in [0, 1, -1]:
        c(f"triu_{d}".replace("-", "m"), "triu", [randn((4, 5), dt)], {"diagonal": d})
        c(f"tril_{d}".replace("-", "m"), "tril", [randn((2, 4, 4), dt)], {"diagonal": d})
    c("one_hot", "one_hot", [ints(5, (2, 3))], {"n": 5})
    c("one_hot_infer", "one_hot", [torch.tensor([0, 3, 1, 3])], {"n": -1})
    c("index_rows", "index", [randn((5, 3), dt), torch.tensor([4, 0, 2, 2])], {"n": 1, "nones": []})
    c("index_cols", "index", [randn((3, 5), dt), torch.tensor([[1, 4], [0, 0]])], {"n": 2, "nones": [0]})
    c("index_pairs", "index", [randn((4, 5), dt), torch.tensor([0, 3, 3]), torch.tensor([4, 1, 1])], {"n": 2, "nones": []})
    c("index_bool", "index", [randn((3, 4), dt), boolmask((3, 4))], {"n": 1, "nones": []})

    # Creation like another tensor.
    c("zeros_like", "zeros_like", [randn((2, 3), dt)])
    c("ones_like", "ones_like", [randn((2, 3), dt)])
    c("full_like", "full_like", [randn((2, 3), dt)], {"value": 0.1})
    c("zeros_like_i64", "zeros_like", [ints(9, (4,))])
    c("ones_like_bool", "ones_like", [boolmask((2, 2))])
    c("full_like_i64", "full_like", [ints(9, (3, 2))], {"value": 7})
    c("empty_like", "empty_like", [randn((2, 3, 4), dt)])
    for seed in [0, 42]:
        c(f"rand_like_s{seed}", "rand_like", [randn((5, 7), dt)], {"seed": seed}, exact=True, cpu_only=True)
        c(f"randn_like_s{seed}", "randn_like", [randn((5, 7), dt)], {"seed": seed}, exact=True, cpu_only=True)

    # Sampling.
    c("topk_largest", "topk", [randn((3, 7), dt)], {"k": 3, "dim": -1, "largest": True})
    c("topk_smallest_dim0", "topk", [randn((6, 4), dt)], {"k": 2, "dim": 0, "largest": False})
    c("sort_asc", "sort", [randn((3, 6), dt)], {"dim": -1, "descending": False})
    c("sort_desc_dim0", "sort", [randn((5, 3), dt)], {"dim": 0, "descending": True})
    c("argsort_asc", "argsort", [randn((3, 6), dt)], {"dim": -1, "descending": False})
    c("argsort_desc", "argsort", [randn((4, 5), dt)], {"dim": 0, "descending": True})
    probs = D.rand((4, 6), dt) + 0.05
    probs[1, 2] = 0  # never drawn
    for seed in [0, 7]:
        for rep in [True, False]:
            r = "rep" if rep else "norep"
            c(f"multinomial_{r}_s{seed}", "multinomial", [probs], {"n": 5 if rep else 4, "replacement": rep, "seed": seed},
              exact=True, cpu_only=True)
    c("multinomial_1d", "multinomial", [D.rand((9,), dt)], {"n": 20, "replacement": True, "seed": 3},
      exact=True, cpu_only=True)

    # Networks.
    c("gelu_tanh", "gelu_tanh", [randn((3, 5), dt) * 2])
    conv = [
        ("conv1d_basic", 1, 0, 1, 1, True),
        ("conv1d_stride_pad", 2, 1, 1, 1, True),
        ("conv1d_dilation", 1, 2, 2, 1, True),
        ("conv1d_groups", 1, 1, 1, 2, True),
        ("conv1d_depthwise_nobias", 1, 2, 1, 4, False),  # causal-conv shape (Mamba)
    ]
    for name, st, pad, dil, grp, bias in conv:
        ins = [randn((2, 4, 9), dt), randn((4 if grp == 4 else 6, 4 // grp, 3), dt)]
        if bias:
            ins.append(randn((6,), dt))
        c(name, "conv1d", ins, {"stride": st, "padding": pad, "dilation": dil, "groups": grp, "bias": bias})
    idx = torch.tensor([[0, 2, 5, 2], [5, 5, 1, 3]])
    for pi in [0, 2, 5, -1]:
        c(f"embedding_padded_{pi}".replace("-", "m"), "embedding_padded", [idx, randn((6, 3), dt)], {"padding_idx": pi})
    tgt = torch.tensor([0, 3, -100, 4, 1, -100, 2], dtype=torch.int64)
    for red in ["mean", "sum", "none"]:
        for ls in [0.0, 0.1]:
            c(f"cross_entropy_ls{int(ls * 10)}_{red}", "cross_entropy_with", [randn((7, 5), dt), tgt],
              {"weight": False, "reduction": red, "ignore_index": -100, "label_smoothing": ls})
        c(f"cross_entropy_weight_ls_{red}", "cross_entropy_with", [randn((7, 5), dt), tgt, pos((5,), dt)],
          {"weight": True, "reduction": red, "ignore_index": -100, "label_smoothing": 0.2}, nograd=(2,))
    c("cross_entropy_ignore3_ls", "cross_entropy_with", [randn((7, 5), dt), tgt.clamp(min=0)],
      {"weight": False, "reduction": "mean", "ignore_index": 3, "label_smoothing": 0.05})
    c("cross_entropy_3d_ls", "cross_entropy_with", [randn((2, 5, 3), dt), torch.tensor([[0, 4, -100], [2, 2, 1]])],
      {"weight": False, "reduction": "mean", "ignore_index": -100, "label_smoothing": 0.1})
    c("cross_entropy_probs", "cross_entropy_with", [randn((4, 5), dt), randn((4, 5), dt).softmax(-1)],
      {"weight": False, "reduction": "mean", "ignore_index": -100, "label_smoothing": 0.0}, nograd=(1,))
    for red in ["mean", "sum", "none"]:
        c(f"nll_loss_{red}", "nll_loss", [randn((7, 5), dt).log_softmax(-1), tgt],
          {"weight": False, "reduction": red, "ignore_index": -100})
    c("nll_loss_weight", "nll_loss", [randn((7, 5), dt).log_softmax(-1), tgt, pos((5,), dt)],
      {"weight": True, "reduction": "mean", "ignore_index": -100}, nograd=(2,))
    c("nll_loss_3d_ignore", "nll_loss", [randn((2, 5, 3), dt), torch.tensor([[0, 4, 1], [2, 2, 1]])],
      {"weight": False, "reduction": "mean", "ignore_index": 2})

    # Attention: the reference is the explicit formula in float64.
    B, H, L, S, E = 2, 4, 5, 6, 8
    c("sdpa_plain", "sdpa", [randn((B, H, L, E), dt), randn((B, H, S, E), dt), randn((B, H, S, E), dt)],
      {"causal": False}, truth=True)
    c("sdpa_causal", "sdpa", [randn((B, H, L, E), dt), randn((B, H, L, E), dt), randn((B, H, L, E), dt)],
      {"causal": True}, truth=True)
    m = boolmask((L, S), 0.6)
    m[:, 0] = True  # every query attends somewhere
    c("sdpa_boolmask", "sdpa", [randn((B, H, L, E), dt), randn((B, H, S, E), dt), randn((B, H, S, E), dt), m],
      {"causal": False}, truth=True)
    mb = boolmask((B, 1, L, S), 0.6)
    mb[..., 0] = True
    c("sdpa_boolmask_bcast", "sdpa", [randn((B, H, L, E), dt), randn((B, H, S, E), dt), randn((B, H, S, E), dt), mb],
      {"causal": False}, truth=True)
    c("sdpa_floatmask", "sdpa", [randn((B, H, L, E), dt), randn((B, H, S, E), dt), randn((B, H, S, E), dt), randn((L, S), dt)],
      {"causal": False}, nograd=(3,), truth=True)
    c("sdpa_gqa", "sdpa", [randn((B, H, L, E), dt), randn((B, 2, S, E), dt), randn((B, 2, S, E), dt)],
      {"causal": False, "groups": 2}, truth=True)
    c("sdpa_gqa_causal", "sdpa", [randn((B, H, L, E), dt), randn((B, 1, L, E), dt), randn((B, 1, L, E), dt)],
      {"causal": True, "groups": 4}, truth=True)
    c("sdpa_gqa_boolmask", "sdpa", [randn((B, H, L, E), dt), randn((B, 2, S, E), dt), randn((B, 2, S, E), dt), m],
      {"causal": False, "groups": 2}, truth=True)

    # In place.
    c("mul_", "mul_", [randn((3, 4), dt), randn((3, 4), dt)])
    c("mul_bcast_", "mul_", [randn((3, 4), dt), randn((4,), dt)])
    c("mul_scalar_", "mul_scalar_", [randn((3, 4), dt)], {"s": 0.9})
    c("add_", "add_", [randn((3, 4), dt), randn((3, 4), dt)], {"alpha": -0.01})
    c("add_scalar_", "add_scalar_", [randn((3, 4), dt)], {"s": 1.5})
    c("sub_", "sub_", [randn((3, 4), dt), randn((3, 1), dt)], {"alpha": 2.0})
    c("div_", "div_", [randn((3, 4), dt), nonzero((3, 4), dt)])
    c("div_scalar_", "div_scalar_", [randn((3, 4), dt)], {"s": 3.0})
    c("addcmul_", "addcmul_", [randn((3, 4), dt), randn((3, 4), dt), randn((3, 4), dt)], {"value": 0.1})
    c("addcdiv_", "addcdiv_", [randn((3, 4), dt), randn((3, 4), dt), pos((3, 4), dt)], {"value": -0.001})
    c("lerp_", "lerp_", [randn((3, 4), dt), randn((3, 4), dt)], {"weight": 0.1})
    c("sqrt_", "sqrt_", [pos((3, 4), dt)])
    c("zero_", "zero_", [randn((3, 4), dt)])
    c("clamp_", "clamp_", [randn((3, 4), dt)], {"min": -0.5, "max": 0.5})
    c("masked_fill_", "masked_fill_", [randn((3, 4), dt), boolmask((3, 4))], {"value": -1e9})
    c("masked_fill_bcast_", "masked_fill_", [randn((2, 3, 4), dt), boolmask((3, 1))], {"value": 0.5})

    # _foreach over tensors of different shapes (a parameter list).
    shapes = [(3, 4), (5,), (2, 3, 2), (1,)]
    n = len(shapes)

    def lst(fn):
        return [fn(sh, dt) for sh in shapes]

    c("foreach_mul_", "foreach_mul_", lst(randn), {"n": n, "s": 0.9})
    c("foreach_add_", "foreach_add_", lst(randn) + lst(randn), {"n": n, "alpha": -0.05})
    c("foreach_addcmul_", "foreach_addcmul_", lst(randn) + lst(randn) + lst(randn), {"n": n, "value": 0.001})
    c("foreach_addcdiv_", "foreach_addcdiv_", lst(randn) + lst(randn) + lst(pos), {"n": n, "value": -0.01})
    c("foreach_lerp_", "foreach_lerp_", lst(randn) + lst(randn), {"n": n, "weight": 0.1})
    c("foreach_sqrt", "foreach_sqrt", lst(pos), {"n": n})
    c("foreach_norm2", "foreach_norm", lst(randn), {"n": n, "p": 2.0})
    c("foreach_norm1", "foreach_norm", lst(randn), {"n": n, "p": 1.0})
    c("foreach_zero_", "foreach_zero_", lst(randn), {"n": n})

    # Casts: PyTorch's roundings to bfloat16 and float16, bit for bit.
    for name in ["bfloat16", "float16"]:
        c(f"to_{name}", "to", [cast_inputs(dt)], {"dtype": name}, exact=True)
        c(f"to_{name}_rand", "to", [randn((64,), dt) * 100], {"dtype": name}, exact=True)
        c(f"cast_roundtrip_{name}", "cast_roundtrip", [randn((4, 5), dt) * 10], {"dtype": name})


def main():
    refs.setup()  # one thread: reductions in a fixed order
    for dt, fname in [(torch.float32, "ops_aten_float32.safetensors"), (torch.float64, "ops_aten_float64.safetensors")]:
        f = refs.CaseFile("torch/testdata/gen_ops_aten.py", OPS, NOGRAD_OPS, D, dt)
        cases(f, dt)
        f.write(os.path.join(HERE, fname), {"dtype": str(dt).replace("torch.", "")})


if __name__ == "__main__":
    main()
