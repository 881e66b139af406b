#!/usr/bin/python3
"""Generate the PyTorch references that lora/parity_test.go checks golora's
lora.Linear and lora.Embedding against.

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 lora/testdata/gen_lora.py

It writes lora/testdata/linear.safetensors and lora/testdata/embedding.safetensors.

The two classes below are the ones of the spec (/work/shared/spec,
lora-reference-notebook.txt), copied math for math: the same parameters,
the same forward. The one difference is that the spec leaves the frozen
weight (and bias) uninitialised (torch.empty), which cannot be compared;
here they are initialised the way golora documents it, so that a seeded
Go layer draws the very same numbers:

  Linear (lora.NewLinear):
      torch.manual_seed(seed)
      weight: kaiming_uniform_(a=sqrt(5))                  (like nn.Linear)
      bias:   uniform_(-1/sqrt(in), 1/sqrt(in)) if bias    (like nn.Linear)
      lora_a: kaiming_uniform_(a=sqrt(5))                  (the spec)
      lora_b: zeros                                        (the spec)
  Embedding (lora.NewEmbedding):
      torch.manual_seed(seed)
      weight: normal_(0, 1)                                (like nn.Embedding)
      lora_a: normal_(0, 1)                                (the spec)
      lora_b: zeros                                        (the spec)

Every tensor is created with torch.empty(..., dtype=...) and initialised in
that order, as golora does with torch::empty and nn::init.

File layout: each case is a name prefix "<case>." and "__metadata__"
holds "cases", a JSON list of one object per case:

  Linear:    {name, seed, r, alpha ("default" or a number), scaling,
              in, out, bias, dtype, x_shape}
  Embedding: {name, seed, r, alpha, scaling, num, dim, dtype,
              index_dtype, x_shape}

and, per case, the tensors

  <case>.weight, <case>.bias (Linear with bias), <case>.lora_a
                        the seeded initial values (bitwise references)
  <case>.x              the input (float for Linear, int64/int32 indices
                        for Embedding)
  <case>.y_init         the output at initialisation (lora_b = 0)
  <case>.lora_b         a non-zero lora_b to set before the second pass
  <case>.g              the loss weight: loss = (y * g).sum()
  <case>.y              the output with lora_b set
  <case>.grad.lora_a, <case>.grad.lora_b, <case>.grad.x (Linear only)
                        the gradients after loss.backward()
  <case>.state_dict.<key>
                        the layer's own state_dict() with lora_b set (keys
                        weight, bias, lora_a, lora_b as PyTorch names
                        them); lora/parity_test.go loads it with
                        LoadStateDict into a layer seeded otherwise

The output is deterministic: x, lora_b and g come from a private seeded
generator, the parameters from torch.manual_seed(seed). The safetensors
writer, the private generator and the deterministic setup are shared with
the other generators: internal/reftest/refs.py.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
INDEX_DTYPES = {"int64": torch.int64, "int32": torch.int32}


# ---------------------------------------------------------------------------
# The spec's classes. Only the initialisation of the frozen weight and bias
# is added (the spec leaves them torch.empty); dtype is a keyword so that
# float64 cases can be built.


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool,
                 r: int, alpha: int = None, dtype=torch.float32):
        super().__init__()
        # Set alpha = r if not provided, i.e. scaling alpha / r = 1.
        if alpha is None:
            alpha = r

        # Pre-trained weight W0 (frozen).
        self.weight = nn.Parameter(torch.empty((out_features, in_features), dtype=dtype))
        self.weight.requires_grad = False
        if bias:
            # Bias b0 (frozen).
            self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype))
            self.bias.requires_grad = False
        else:
            self.bias = None

        self.scaling = alpha / r
        self.lora_a = nn.Parameter(torch.empty((r, in_features), dtype=dtype))
        self.lora_b = nn.Parameter(torch.empty((out_features, r), dtype=dtype))

        with torch.no_grad():
            # golora's initialisation of W0 and b0, that of nn.Linear
            # (reset_parameters), drawn before lora_a.
            nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
            if self.bias is not None:
                bound = 1 / math.sqrt(in_features) if in_features > 0 else 0
                nn.init.uniform_(self.bias, -bound, bound)
            # The spec: A like a linear layer's weight, B zero so that
            # delta W = BA is zero at the start.
            nn.init.kaiming_uniform_(self.lora_a, a=5 ** 0.5)
            nn.init.zeros_(self.lora_b)

    def forward(self, x: torch.Tensor):
        # x W0^T + b0
        result = nn.functional.linear(x, self.weight, bias=self.bias)
        result += (x @ self.lora_a.T @ self.lora_b.T) * self.scaling
        return result


class Embedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int,
                 r: int, alpha: int = None, dtype=torch.float32):
        super().__init__()

        if alpha is None:
            alpha = r

        self.weight = nn.Parameter(torch.empty((num_embeddings, embedding_dim), dtype=dtype))
        self.weight.requires_grad = False

        self.scaling = alpha / r
        self.lora_a = nn.Parameter(torch.empty((r, num_embeddings), dtype=dtype))
        self.lora_b = nn.Parameter(torch.empty((embedding_dim, r), dtype=dtype))

        with torch.no_grad():
            # golora's initialisation of W0, that of nn.Embedding, drawn
            # before lora_a.
            nn.init.normal_(self.weight)
            nn.init.normal_(self.lora_a)
            nn.init.zeros_(self.lora_b)

    def forward(self, x: torch.Tensor):
        result = nn.functional.embedding(x, self.weight)
        result += (nn.functional.embedding(x, self.lora_a.T) @ self.lora_b.T) * self.scaling
        return result


# ---------------------------------------------------------------------------
# Inputs come from a private generator so that they never disturb (or
# depend on) the seeded default generator the parameters are drawn from.

D = refs.Draws(20250611)


def randn(shape, dt):
    return D.randn(shape, dt)


def state_dict(case, layer):
    """The layer's state_dict() as (name, tensor) pairs under
    "<case>.state_dict.", copied."""
    return [(f"{case}.state_dict.{k}", v.detach().clone()) for k, v in layer.state_dict().items()]


def alpha_meta(alpha):
    return "default" if alpha is None else alpha


# name, seed, in, out, bias, r, alpha, x shape; each runs in float32 and
# float64. r covers 1, 4, 8, 16; alpha default and custom (16 at r=4, 2.5 at
# r=8, ...); 1-D, 2-D and 3-D inputs; bias on and off.
LINEAR = [
    ("r4_bias_adef_2d", 0, 10, 10, True, 4, None, (8, 10)),
    ("r4_bias_a16_3d", 1, 16, 12, True, 4, 16.0, (2, 5, 16)),
    ("r8_nobias_a2.5_2d", 42, 24, 32, False, 8, 2.5, (6, 24)),
    ("r1_nobias_adef_3d", 7, 9, 5, False, 1, None, (3, 4, 9)),
    ("r16_bias_adef_2d", 1234, 48, 40, True, 16, None, (5, 48)),
    ("r16_nobias_a32_3d", 99, 32, 64, False, 16, 32.0, (2, 3, 32)),
    ("r1_bias_a0.5_2d", 2**40 + 3, 7, 13, True, 1, 0.5, (4, 7)),
    ("r8_bias_a2.5_3d", 31337, 20, 20, True, 8, 2.5, (3, 2, 20)),
    ("r4_nobias_adef_1d", 5, 12, 6, False, 4, None, (12,)),
    ("r8_bias_adef_2d_wide", 2024, 64, 8, True, 8, None, (16, 64)),
]

# name, seed, num, dim, r, alpha, x shape, index dtype; each runs in float32
# and float64. Every x repeats indices and touches rows 0 and num-1.
EMBEDDING = [
    ("r4_adef_1d_i64", 0, 10, 6, 4, None, (12,), "int64"),
    ("r1_a2_1d_i32", 3, 20, 8, 1, 2.0, (9,), "int32"),
    ("r8_adef_2d_i64", 42, 32, 16, 8, None, (3, 7), "int64"),
    ("r4_a16_2d_i32", 11, 7, 5, 4, 16.0, (2, 6), "int32"),
    ("r8_a2.5_2d_i64", 2**33 + 1, 50, 12, 8, 2.5, (4, 5), "int64"),
    ("r1_adef_1d_i64_small", 8, 3, 4, 1, None, (10,), "int64"),
    ("r4_a0.5_2d_i32_wide", 77, 64, 32, 4, 0.5, (2, 16), "int32"),
]


def linear_case(dname, spec):
    name, seed, fin, fout, bias, r, alpha, xshape = spec
    dt = DTYPES[dname]
    case = f"linear_{dname}_{name}"
    torch.manual_seed(seed)
    layer = Linear(fin, fout, bias, r, alpha, dtype=dt)
    assert not layer.weight.requires_grad and layer.lora_a.requires_grad
    if bias:
        assert not layer.bias.requires_grad
    assert [n for n, _ in layer.named_parameters()] == (
        ["weight", "bias", "lora_a", "lora_b"] if bias else ["weight", "lora_a", "lora_b"])

    x = randn(xshape, dt)
    lora_b = randn((fout, r), dt) * 0.5
    yshape = tuple(xshape[:-1]) + (fout,)
    g = randn(yshape, dt)

    out = [(f"{case}.weight", layer.weight.detach().clone())]
    if bias:
        out.append((f"{case}.bias", layer.bias.detach().clone()))
    out.append((f"{case}.lora_a", layer.lora_a.detach().clone()))

    with torch.no_grad():
        y_init = layer(x)
        base = nn.functional.linear(x, layer.weight, layer.bias)
    assert torch.equal(y_init, base), case  # B = 0: exactly the base layer

    with torch.no_grad():
        layer.lora_b.copy_(lora_b)
    state = state_dict(case, layer)
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    (y * g).sum().backward()
    assert layer.weight.grad is None and (layer.bias is None or layer.bias.grad is None)

    out += [
        (f"{case}.x", x),
        (f"{case}.y_init", y_init),
        (f"{case}.lora_b", lora_b),
        (f"{case}.g", g),
        (f"{case}.y", y.detach()),
        (f"{case}.grad.lora_a", layer.lora_a.grad),
        (f"{case}.grad.lora_b", layer.lora_b.grad),
        (f"{case}.grad.x", xg.grad),
    ] + state
    meta = {
        "name": case, "seed": seed, "r": r, "alpha": alpha_meta(alpha),
        "scaling": layer.scaling, "in": fin, "out": fout, "bias": bias,
        "dtype": dname, "x_shape": list(xshape),
    }
    return meta, out


def indices(num, shape, idt):
    n = math.prod(shape)
    idx = D.randint(0, num, (n,), torch.int64)
    # Make sure of repeats and of both ends of the table.
    idx[0] = 0
    idx[-1] = num - 1
    idx[n // 2] = idx[1]
    idx[n // 2 + 1] = num - 1
    return idx.reshape(shape).to(idt)


def embedding_case(dname, spec):
    name, seed, num, dim, r, alpha, xshape, iname = spec
    dt = DTYPES[dname]
    case = f"embedding_{dname}_{name}"
    torch.manual_seed(seed)
    layer = Embedding(num, dim, r, alpha, dtype=dt)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "lora_a", "lora_b"]

    x = indices(num, xshape, INDEX_DTYPES[iname])
    assert x.unique().numel() < x.numel(), case  # repeated indices
    lora_b = randn((dim, r), dt) * 0.5
    g = randn(tuple(xshape) + (dim,), dt)

    out = [
        (f"{case}.weight", layer.weight.detach().clone()),
        (f"{case}.lora_a", layer.lora_a.detach().clone()),
    ]
    with torch.no_grad():
        y_init = layer(x)
        base = nn.functional.embedding(x, layer.weight)
    assert torch.equal(y_init, base), case

    with torch.no_grad():
        layer.lora_b.copy_(lora_b)
    state = state_dict(case, layer)
    y = layer(x)
    (y * g).sum().backward()
    assert layer.weight.grad is None

    out += [
        (f"{case}.x", x),
        (f"{case}.y_init", y_init),
        (f"{case}.lora_b", lora_b),
        (f"{case}.g", g),
        (f"{case}.y", y.detach()),
        (f"{case}.grad.lora_a", layer.lora_a.grad),
        (f"{case}.grad.lora_b", layer.lora_b.grad),
    ] + state
    meta = {
        "name": case, "seed": seed, "r": r, "alpha": alpha_meta(alpha),
        "scaling": layer.scaling, "num": num, "dim": dim, "dtype": dname,
        "index_dtype": iname, "x_shape": list(xshape),
    }
    return meta, out


def build(kind, specs, make):
    cases, tensors = [], []
    for dname in ("float32", "float64"):
        for spec in specs:
            meta, ts = make(dname, spec)
            cases.append(meta)
            tensors += ts
    path = os.path.join(HERE, f"{kind}.safetensors")
    write_safetensors(path, tensors, {
        "cases": json.dumps(cases),
        "generator": "lora/testdata/gen_lora.py",
        "torch": torch.__version__,
    })
    print(f"{os.path.relpath(path)}: {len(cases)} cases, {len(tensors)} tensors")


def main():
    refs.setup()
    build("linear", LINEAR, linear_case)
    build("embedding", EMBEDDING, embedding_case)


if __name__ == "__main__":
    main()
