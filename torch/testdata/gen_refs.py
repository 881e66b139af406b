#!/usr/bin/python3
"""Generate the reference files that torch/ref_test.go checks golora against.

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 torch/testdata/gen_refs.py

It writes, under torch/testdata/:

  ops_float32.safetensors, ops_float64.safetensors
      one case per op of the Go API: its inputs, its forward outputs, a fixed
      random weight per float output, and the gradients of the float inputs
      after backward of loss = sum_j (out_j * w_j).sum().
  seeded.safetensors
      seeded draws (randn, rand, normal_, uniform_, kaiming_*, xavier_*)
      under several seeds, shapes and dtypes; golora must match bit for bit.
  interop.safetensors
      a small file with every dtype and metadata, to prove that a file written
      by another implementation loads in Go.

Every file's "__metadata__" holds "cases": a JSON list of
{name, op, params, n_in, n_out, grad, exact, cpu_only}. Tensors are named
"<case>.in.<i>", "<case>.out.<j>", "<case>.w.<j>" and "<case>.grad.<i>".

The output is deterministic: inputs come from a private seeded generator,
and seeded ops reseed the default generator (torch.manual_seed) themselves.
The case file (refs.CaseFile, shared with gen_ops_aten.py), the input
draws, the safetensors writer and the deterministic setup are shared with
the other generators: internal/reftest/refs.py.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)


# ---------------------------------------------------------------------------
# Inputs: drawn from a private generator so that the seeded ops (which use
# the default generator) do not disturb them.

D = refs.Draws(20240607)
randn, pos, nonzero, halves, ints, boolmask = D.randn, D.pos, D.nonzero, D.halves, D.ints, D.boolmask


# ---------------------------------------------------------------------------
# Reference implementations, one per Go op name. Each takes the input list
# (float inputs that are differentiated have requires_grad set) and the
# params, and returns a tuple of outputs.

def layer_norm_ref(ins, p):
    i = 1
    w = b = None
    if p["weight"]:
        w = ins[i]
        i += 1
    if p["bias"]:
        b = ins[i]
    return (F.layer_norm(ins[0], p["shape"], w, b, p["eps"]),)


def dropout_ref(ins, p):
    if "seed" in p:
        torch.manual_seed(p["seed"])
    return (F.dropout(ins[0], p["p"], p["train"]),)


def lora_linear_ref(ins, p):
    x, w, a, bm = ins[:4]
    b = ins[4] if p["bias"] else None
    return (F.linear(x, w, b) + x.matmul(a.t()).matmul(bm.t()) * p["scaling"],)


def lora_embedding_ref(ins, p):
    idx, w, a, bm = ins
    return (F.embedding(idx, w) + F.embedding(idx, a.t()).matmul(bm.t()) * p["scaling"],)


def add_scaled_ref(ins, p):
    out = ins[0].detach().clone()
    with torch.no_grad():
        out.add_(ins[1], alpha=p["alpha"])
    return (out,)


OPS = {
    "linear": lambda i, p: (F.linear(i[0], i[1], i[2] if len(i) > 2 else None),),
    "lora_linear": lora_linear_ref,
    "embedding": lambda i, p: (F.embedding(i[0], i[1]),),
    "lora_embedding": lora_embedding_ref,
    "matmul": lambda i, p: (i[0].matmul(i[1]),),
    "mm": lambda i, p: (i[0].mm(i[1]),),
    "t": lambda i, p: (i[0].t(),),
    "transpose": lambda i, p: (i[0].transpose(p["d0"], p["d1"]),),
    "permute": lambda i, p: (i[0].permute(*p["dims"]),),
    "reshape": lambda i, p: (i[0].reshape(*p["shape"]),),
    "view": lambda i, p: (i[0].view(*p["shape"]),),
    "contiguous": lambda i, p: (i[0].transpose(p["d0"], p["d1"]).contiguous(),),
    "narrow": lambda i, p: (i[0].narrow(p["dim"], p["start"], p["length"]),),
    "slice": lambda i, p: (i[0][(slice(None),) * p["dim"] + (slice(p["start"], p["end"], p["step"]),)],),
    "index_select": lambda i, p: (i[0].index_select(p["dim"], i[1]),),
    "cat": lambda i, p: (torch.cat(i, p["dim"]),),
    "stack": lambda i, p: (torch.stack(i, p["dim"]),),
    "add": lambda i, p: (i[0] + i[1],),
    "sub": lambda i, p: (i[0] - i[1],),
    "mul": lambda i, p: (i[0] * i[1],),
    "div": lambda i, p: (i[0] / i[1],),
    "pow": lambda i, p: (i[0].pow(i[1]),),
    "maximum": lambda i, p: (torch.maximum(i[0], i[1]),),
    "eq": lambda i, p: (i[0].eq(i[1]),),
    "add_scalar": lambda i, p: (i[0] + p["s"],),
    "sub_scalar": lambda i, p: (i[0] - p["s"],),
    "mul_scalar": lambda i, p: (i[0] * p["s"],),
    "div_scalar": lambda i, p: (i[0] / p["s"],),
    "pow_scalar": lambda i, p: (i[0].pow(p["s"]),),
    "neg": lambda i, p: (i[0].neg(),),
    "abs": lambda i, p: (i[0].abs(),),
    "sqrt": lambda i, p: (i[0].sqrt(),),
    "exp": lambda i, p: (i[0].exp(),),
    "log": lambda i, p: (i[0].log(),),
    "tanh": lambda i, p: (i[0].tanh(),),
    "sigmoid": lambda i, p: (i[0].sigmoid(),),
    "relu": lambda i, p: (i[0].relu(),),
    "gelu": lambda i, p: (F.gelu(i[0]),),
    "gelu_tanh": lambda i, p: (F.gelu(i[0], approximate="tanh"),),
    "silu": lambda i, p: (F.silu(i[0]),),
    "sum": lambda i, p: (i[0].sum(),),
    "mean": lambda i, p: (i[0].mean(),),
    "max": lambda i, p: (i[0].max(),),
    "sum_dims": lambda i, p: (i[0].sum(p["dims"], keepdim=p["keepdim"]),),
    "mean_dims": lambda i, p: (i[0].mean(p["dims"], keepdim=p["keepdim"]),),
    "max_dim": lambda i, p: tuple(i[0].max(p["dim"], keepdim=p["keepdim"])),
    "argmax": lambda i, p: (i[0].argmax(),),
    "argmax_dim": lambda i, p: (i[0].argmax(p["dim"], keepdim=p["keepdim"]),),
    "softmax": lambda i, p: (i[0].softmax(p["dim"]),),
    "log_softmax": lambda i, p: (i[0].log_softmax(p["dim"]),),
    "layer_norm": layer_norm_ref,
    "dropout": dropout_ref,
    "conv2d": refs.conv_ref(F.conv2d),
    "tril": lambda i, p: (i[0].tril(p["diagonal"]),),
    "masked_fill": lambda i, p: (i[0].masked_fill(i[1], p["value"]),),
    "sdpa": refs.sdpa_ref,
    "cross_entropy": lambda i, p: (F.cross_entropy(i[0], i[1], ignore_index=p["ignore_index"], reduction=refs.RED[p["reduction"]]),),
    "mse_loss": lambda i, p: (F.mse_loss(i[0], i[1], reduction=refs.RED[p["reduction"]]),),
    "clone": lambda i, p: (i[0].clone(),),
    "add_scaled": add_scaled_ref,
    "arange": lambda i, p: (torch.arange(p["start"], p["end"], p["step"], dtype=DTYPES[p["dtype"]]),),
    "full": lambda i, p: (torch.full(p["shape"], p["value"], dtype=DTYPES[p["dtype"]]),),
}

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64, "int32": torch.int32}


# Ops with no gradient to check: their outputs are not differentiable, or
# (add_scaled) run without autograd.
NOGRAD_OPS = {"eq", "argmax", "argmax_dim", "add_scaled"}


def new_file():
    return refs.CaseFile("torch/testdata/gen_refs.py", OPS, NOGRAD_OPS, D)


def op_cases(f, dt):
    c = f.suffixed(dt)

    # Layers.
    c("linear_bias", "linear", [randn((2, 3, 4), dt), randn((5, 4), dt), randn((5,), dt)])
    c("linear_nobias", "linear", [randn((3, 4), dt), randn((5, 4), dt)])
    c("lora_linear_bias", "lora_linear", [randn((2, 3, 4), dt), randn((5, 4), dt), randn((2, 4), dt), randn((5, 2), dt), randn((5,), dt)],
      {"bias": True, "scaling": 2.0})
    c("lora_linear_nobias", "lora_linear", [randn((3, 4), dt), randn((5, 4), dt), randn((2, 4), dt), randn((5, 2), dt)],
      {"bias": False, "scaling": 0.5})
    c("embedding_i64", "embedding", [ints(7, (2, 5)), randn((7, 3), dt)])
    c("embedding_i32", "embedding", [ints(7, (4,), torch.int32), randn((7, 3), dt)])
    c("lora_embedding", "lora_embedding", [ints(7, (2, 5)), randn((7, 3), dt), randn((2, 7), dt), randn((3, 2), dt)], {"scaling": 4.0})

    # Matrix products.
    c("matmul_2d", "matmul", [randn((3, 4), dt), randn((4, 5), dt)])
    c("matmul_3d", "matmul", [randn((2, 3, 4), dt), randn((2, 4, 5), dt)])
    c("matmul_bcast", "matmul", [randn((2, 3, 4), dt), randn((4, 5), dt)])
    c("matmul_bcast4d", "matmul", [randn((2, 1, 3, 4), dt), randn((3, 4, 2), dt)])
    c("matmul_vec", "matmul", [randn((3, 4), dt), randn((4,), dt)])
    c("mm", "mm", [randn((3, 4), dt), randn((4, 5), dt)])

    # Shape ops.
    c("t", "t", [randn((3, 4), dt)])
    c("transpose", "transpose", [randn((2, 3, 4), dt)], {"d0": 0, "d1": 2})
    c("transpose_neg", "transpose", [randn((2, 3, 4), dt)], {"d0": -1, "d1": -2})
    c("permute", "permute", [randn((2, 3, 4), dt)], {"dims": [2, 0, 1]})
    c("reshape", "reshape", [randn((2, 3, 4), dt)], {"shape": [4, -1]})
    c("view", "view", [randn((2, 3, 4), dt)], {"shape": [6, 4]})
    c("contiguous", "contiguous", [randn((2, 3, 4), dt)], {"d0": 1, "d1": 2})
    c("narrow", "narrow", [randn((4, 6), dt)], {"dim": 1, "start": 1, "length": 3})
    c("slice_step", "slice", [randn((4, 9), dt)], {"dim": 1, "start": 1, "end": 8, "step": 3})
    c("slice_dim0", "slice", [randn((7, 3), dt)], {"dim": 0, "start": 0, "end": 7, "step": 2})
    c("index_select_i64", "index_select", [randn((5, 3), dt), torch.tensor([4, 0, 2, 2], dtype=torch.int64)], {"dim": 0})
    c("index_select_i32", "index_select", [randn((3, 5), dt), torch.tensor([1, 3], dtype=torch.int32)], {"dim": 1})
    c("cat", "cat", [randn((2, 3), dt), randn((1, 3), dt), randn((4, 3), dt)], {"dim": 0})
    c("cat_dim1", "cat", [randn((2, 3), dt), randn((2, 2), dt)], {"dim": -1})
    c("stack", "stack", [randn((2, 3), dt), randn((2, 3), dt), randn((2, 3), dt)], {"dim": 1})

    # Elementwise binary, tensor and scalar forms, with broadcasting.
    c("add", "add", [randn((3, 4), dt), randn((3, 4), dt)])
    c("add_bcast", "add", [randn((2, 3, 4), dt), randn((4,), dt)])
    c("sub", "sub", [randn((3, 4), dt), randn((3, 4), dt)])
    c("sub_bcast", "sub", [randn((3, 1), dt), randn((1, 4), dt)])
    c("mul", "mul", [randn((3, 4), dt), randn((3, 4), dt)])
    c("mul_bcast", "mul", [randn((2, 3, 4), dt), randn((3, 1), dt)])
    c("div", "div", [randn((3, 4), dt), nonzero((3, 4), dt)])
    c("div_bcast", "div", [randn((3, 4), dt), nonzero((4,), dt)])
    c("pow", "pow", [pos((3, 4), dt), randn((3, 4), dt)])
    c("maximum", "maximum", [randn((3, 4), dt), randn((3, 4), dt)])
    c("eq", "eq", [halves((3, 4), dt), halves((3, 4), dt)])
    c("add_scalar", "add_scalar", [randn((3, 4), dt)], {"s": 2.5})
    c("sub_scalar", "sub_scalar", [randn((3, 4), dt)], {"s": -1.25})
    c("mul_scalar", "mul_scalar", [randn((3, 4), dt)], {"s": 0.3})
    c("div_scalar", "div_scalar", [randn((3, 4), dt)], {"s": 3.0})
    c("pow_scalar", "pow_scalar", [pos((3, 4), dt)], {"s": 1.7})
    c("pow_scalar_int", "pow_scalar", [randn((3, 4), dt)], {"s": 3.0})

    # Elementwise unary.
    for op in ["neg", "abs", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "exp"]:
        c(op, op, [randn((3, 5), dt)])
    c("sqrt", "sqrt", [pos((3, 5), dt)])
    c("log", "log", [pos((3, 5), dt)])

    # Reductions.
    c("sum", "sum", [randn((3, 4, 5), dt)])
    c("mean", "mean", [randn((3, 4, 5), dt)])
    c("max", "max", [randn((3, 4), dt)])
    for kd in [False, True]:
        k = "keep" if kd else "nokeep"
        c(f"sum_dims_{k}", "sum_dims", [randn((3, 4, 5), dt)], {"dims": [0, 2], "keepdim": kd})
        c(f"sum_dim_{k}", "sum_dims", [randn((3, 4, 5), dt)], {"dims": [-1], "keepdim": kd})
        c(f"mean_dims_{k}", "mean_dims", [randn((3, 4, 5), dt)], {"dims": [1, 2], "keepdim": kd})
        c(f"mean_dim_{k}", "mean_dims", [randn((3, 4, 5), dt)], {"dims": [0], "keepdim": kd})
        c(f"max_dim_{k}", "max_dim", [randn((3, 4, 5), dt)], {"dim": 1, "keepdim": kd})
        c(f"argmax_dim_{k}", "argmax_dim", [randn((3, 4, 5), dt)], {"dim": -1, "keepdim": kd})
    c("argmax", "argmax", [randn((3, 4, 5), dt)])
    c("softmax", "softmax", [randn((2, 3, 5), dt) * 3], {"dim": -1})
    c("softmax_dim1", "softmax", [randn((2, 3, 5), dt)], {"dim": 1})
    c("log_softmax", "log_softmax", [randn((2, 3, 5), dt) * 3], {"dim": -1})
    c("log_softmax_dim0", "log_softmax", [randn((2, 3, 5), dt)], {"dim": 0})

    # Normalisation, dropout, convolution.
    c("layer_norm_affine", "layer_norm", [randn((2, 3, 8), dt), randn((8,), dt), randn((8,), dt)],
      {"shape": [8], "eps": 1e-5, "weight": True, "bias": True})
    c("layer_norm_plain", "layer_norm", [randn((2, 3, 8), dt) * 2 + 1], {"shape": [8], "eps": 1e-5, "weight": False, "bias": False})
    c("layer_norm_2d_weight", "layer_norm", [randn((2, 3, 8), dt), randn((3, 8), dt)],
      {"shape": [3, 8], "eps": 1e-6, "weight": True, "bias": False})
    c("dropout_eval", "dropout", [randn((4, 6), dt)], {"p": 0.3, "train": False})
    for seed in [0, 42]:
        for p in [0.3, 0.5]:
            c(f"dropout_train_s{seed}_p{int(p * 10)}", "dropout", [randn((8, 16), dt)],
              {"p": p, "train": True, "seed": seed}, exact=True, cpu_only=True)
    conv = [
        ("conv2d_basic", 1, 0, 1, 1, True),
        ("conv2d_stride_pad", 2, 1, 1, 1, True),
        ("conv2d_dilation", 1, 2, 2, 1, True),
        ("conv2d_groups", 1, 1, 1, 2, True),
        ("conv2d_nobias", 2, 0, 1, 2, False),
    ]
    for name, st, pad, dil, grp, bias in conv:
        ins = [randn((2, 4, 7, 7), dt), randn((6, 4 // grp, 3, 3), dt)]
        if bias:
            ins.append(randn((6,), dt))
        c(name, "conv2d", ins, {"stride": [st, st], "padding": [pad, pad], "dilation": [dil, dil], "groups": grp, "bias": bias})
    c("conv2d_asym", "conv2d", [randn((1, 2, 6, 8), dt), randn((3, 2, 2, 3), dt), randn((3,), dt)],
      {"stride": [1, 2], "padding": [0, 1], "dilation": [2, 1], "groups": 1, "bias": True})

    # Masks and attention.
    c("tril", "tril", [randn((4, 5), dt)], {"diagonal": 0})
    c("tril_neg", "tril", [randn((2, 4, 4), dt)], {"diagonal": -1})
    c("tril_pos", "tril", [randn((4, 5), dt)], {"diagonal": 1})
    c("masked_fill", "masked_fill", [randn((3, 4), dt), boolmask((3, 4))], {"value": -7.5})
    c("masked_fill_bcast", "masked_fill", [randn((2, 3, 4), dt), boolmask((3, 1))], {"value": 0.25})
    q, k, v = randn((2, 3, 5, 8), dt), randn((2, 3, 6, 8), dt), randn((2, 3, 6, 8), dt)
    c("sdpa_nomask", "sdpa", [q, k, v], {"causal": False})
    m = boolmask((5, 6), 0.6)
    m[:, 0] = True  # every query attends somewhere
    c("sdpa_boolmask", "sdpa", [randn((2, 3, 5, 8), dt), randn((2, 3, 6, 8), dt), randn((2, 3, 6, 8), dt), m], {"causal": False})
    c("sdpa_floatmask", "sdpa", [randn((2, 5, 8), dt), randn((2, 6, 8), dt), randn((2, 6, 8), dt), randn((5, 6), dt)],
      {"causal": False}, nograd=(3,))
    c("sdpa_causal", "sdpa", [randn((2, 3, 5, 8), dt), randn((2, 3, 5, 8), dt), randn((2, 3, 5, 8), dt)], {"causal": True})

    # Losses.
    tgt = torch.tensor([0, 3, -100, 4, 1, -100, 2], dtype=torch.int64)
    for red in ["mean", "sum", "none"]:
        c(f"cross_entropy_{red}", "cross_entropy", [randn((7, 5), dt), tgt], {"ignore_index": -100, "reduction": red})
    c("cross_entropy_ignore2", "cross_entropy", [randn((7, 5), dt), tgt.clamp(min=0)], {"ignore_index": 2, "reduction": "mean"})
    c("cross_entropy_3d", "cross_entropy", [randn((2, 5, 3), dt), torch.tensor([[0, 4, -100], [2, 2, 1]])],
      {"ignore_index": -100, "reduction": "mean"})
    for red in ["mean", "sum", "none"]:
        c(f"mse_loss_{red}", "mse_loss", [randn((3, 4), dt), randn((3, 4), dt)], {"reduction": red})

    # Copies and creation.
    c("clone", "clone", [randn((3, 4), dt)])
    c("add_scaled", "add_scaled", [randn((3, 4), dt), randn((3, 4), dt)], {"alpha": -0.01})
    dn = {torch.float32: "float32", torch.float64: "float64"}[dt]
    c("arange", "arange", [], {"start": -1.5, "end": 2.0, "step": 0.25, "dtype": dn})
    c("full", "full", [], {"shape": [2, 3], "value": 0.1, "dtype": dn})


def int_cases(f):
    f.case("arange_i64", "arange", [], {"start": 2, "end": 17, "step": 3, "dtype": "int64"})
    f.case("full_i32", "full", [], {"shape": [3], "value": 7, "dtype": "int32"})


# ---------------------------------------------------------------------------
# Seeded draws: golora must reproduce these bit for bit after ManualSeed.

def seeded_cases(f):
    seeds = [0, 1, 42, 1234]
    shapes = [[3, 4], [17, 33], [4, 5, 6]]
    dts = [("f32", torch.float32), ("f64", torch.float64)]

    def add(name, op, params, fn):
        torch.manual_seed(params["seed"])
        out = fn()
        f.tensors.append((f"{name}.out.0", out))
        f.cases.append({"name": name, "op": op, "params": params, "n_in": 0, "n_out": 1,
                        "grad": [], "exact": True, "cpu_only": True})

    for seed in seeds:
        for si, shape in enumerate(shapes):
            for dn, dt in dts:
                tag = f"s{seed}_{'x'.join(map(str, shape))}_{dn}"
                base = {"seed": seed, "shape": shape, "dtype": str(dt).replace("torch.", "")}
                add(f"randn_{tag}", "randn", base, lambda: torch.randn(shape, dtype=dt))
                add(f"rand_{tag}", "rand", base, lambda: torch.rand(shape, dtype=dt))

                def init(fn):
                    def g():
                        t = torch.empty(shape, dtype=dt)
                        fn(t)
                        return t
                    return g

                add(f"normal_{tag}", "normal_", {**base, "mean": 0.5, "std": 2.0},
                    init(lambda t: torch.nn.init.normal_(t, 0.5, 2.0)))
                add(f"uniform_{tag}", "uniform_", {**base, "lo": -0.75, "hi": 1.5},
                    init(lambda t: torch.nn.init.uniform_(t, -0.75, 1.5)))
                add(f"kaiming_uniform_linear_{tag}", "kaiming_uniform_",
                    {**base, "a": math.sqrt(5), "mode": "fan_in", "nonlinearity": "leaky_relu"},
                    init(lambda t: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), mode="fan_in", nonlinearity="leaky_relu")))
                add(f"kaiming_uniform_relu_{tag}", "kaiming_uniform_",
                    {**base, "a": 0.0, "mode": "fan_out", "nonlinearity": "relu"},
                    init(lambda t: torch.nn.init.kaiming_uniform_(t, a=0, mode="fan_out", nonlinearity="relu")))
                add(f"kaiming_normal_{tag}", "kaiming_normal_",
                    {**base, "a": 0.0, "mode": "fan_in", "nonlinearity": "relu"},
                    init(lambda t: torch.nn.init.kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="relu")))
                add(f"kaiming_normal_leaky_fanout_{tag}", "kaiming_normal_",
                    {**base, "a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"},
                    init(lambda t: torch.nn.init.kaiming_normal_(t, a=0.1, mode="fan_out", nonlinearity="leaky_relu")))
                add(f"xavier_uniform_{tag}", "xavier_uniform_", {**base, "gain": 1.0},
                    init(lambda t: torch.nn.init.xavier_uniform_(t, gain=1.0)))
                add(f"xavier_normal_{tag}", "xavier_normal_", {**base, "gain": 0.5},
                    init(lambda t: torch.nn.init.xavier_normal_(t, gain=0.5)))
    # A conv-shaped weight (fan includes the receptive field).
    for seed in [0, 42]:
        shape = [6, 4, 3, 3]
        base = {"seed": seed, "shape": shape, "dtype": "float32"}
        add(f"kaiming_uniform_conv_s{seed}", "kaiming_uniform_",
            {**base, "a": math.sqrt(5), "mode": "fan_in", "nonlinearity": "leaky_relu"},
            lambda: torch.nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5)))
        add(f"xavier_uniform_conv_s{seed}", "xavier_uniform_", {**base, "gain": 1.0},
            lambda: torch.nn.init.xavier_uniform_(torch.empty(shape)))


def interop(path):
    t = [
        ("f32", torch.tensor([[1.5, -2.0, 0.25], [3.0, 0.0, -0.125]], dtype=torch.float32)),
        ("f64", torch.tensor([1.0 / 3.0, -1e300, 2.5], dtype=torch.float64)),
        ("f16", torch.tensor([0.5, -1.0, 65504.0], dtype=torch.float16)),
        ("bf16", torch.tensor([1.0, -2.5, 3.0e38], dtype=torch.bfloat16)),
        ("i64", torch.tensor([[-(2 ** 62), 0], [7, 2 ** 62]], dtype=torch.int64)),
        ("i32", torch.tensor([-7, 0, 2 ** 31 - 1], dtype=torch.int32)),
        ("u8", torch.tensor([0, 1, 255], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True, True], dtype=torch.bool)),
        ("scalar", torch.tensor(42.0, dtype=torch.float32)),
        ("empty", torch.zeros((0, 3), dtype=torch.float32)),
    ]
    write_safetensors(path, t, {"format": "pt", "writer": "gen_refs.py", "note": "héllo ✓"})
    print(f"{os.path.basename(path)}: {len(t)} tensors")


def main():
    refs.setup()  # one thread: reductions in a fixed order
    for dt, fname in [(torch.float32, "ops_float32.safetensors"), (torch.float64, "ops_float64.safetensors")]:
        f = new_file()
        op_cases(f, dt)
        if dt == torch.float32:
            int_cases(f)
        f.write(os.path.join(HERE, fname), {"dtype": str(dt).replace("torch.", "")})
    f = new_file()
    seeded_cases(f)
    f.write(os.path.join(HERE, "seeded.safetensors"))
    interop(os.path.join(HERE, "interop.safetensors"))


if __name__ == "__main__":
    main()
