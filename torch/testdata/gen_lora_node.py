#!/usr/bin/python3
"""References for LoraLinear's single autograd node (torch/lora_node_test.go).

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 torch/testdata/gen_lora_node.py

LoRA training's case: W0 and b frozen, A and B trained, x trained or not.
PyTorch composes F.linear(x, W0, b) + (x @ A.T @ B.T) * s from ATen ops and
its autograd records them one by one; golora's LoraLinear must give the
same output and the same gradients, bit for bit. It writes
torch/testdata/lora_node_refs.safetensors with, per case,
<case>.{x,w,b,a,bm,g,out,grad_x,grad_a,grad_bm} (g is the output's
gradient: backward of (out * g).sum()), and the cases in "__metadata__".
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)
refs.setup()
D = refs.Draws(424242)

tensors, cases = [], []
for name, xshape, out_f, r, bias, xgrad, s, dt in [
    ("b3d", (2, 5, 16), 12, 4, True, False, 2.0, torch.float32),
    ("b3d_xgrad", (2, 5, 16), 12, 4, True, True, 0.5, torch.float32),
    ("nb2d_xgrad", (8, 64), 64, 8, False, True, 1.0, torch.float32),
    ("b2d", (8, 64), 48, 8, True, False, 1.0, torch.float32),
    ("b3d_f64", (3, 4, 10), 7, 3, True, True, 1.5, torch.float64),
    ("rank1_fallback", (2, 3, 6), 5, 1, True, True, 2.0, torch.float32),
]:
    in_f = xshape[-1]
    x = D.randn(xshape, dt, draw_dtype=torch.float64).requires_grad_(xgrad)
    w = D.randn((out_f, in_f), dt, draw_dtype=torch.float64)
    b = D.randn((out_f,), dt, draw_dtype=torch.float64) if bias else None
    a = D.randn((r, in_f), dt, draw_dtype=torch.float64).requires_grad_(True)
    bm = D.randn((out_f, r), dt, draw_dtype=torch.float64).requires_grad_(True)
    out = F.linear(x, w, b) + (x @ a.T @ bm.T) * s
    g = D.randn(out.shape, dt, draw_dtype=torch.float64)
    (out * g).sum().backward()
    c = name
    add = lambda k, t: tensors.append((c + "." + k, t.detach()))  # noqa: E731
    for k, t in [("x", x), ("w", w), ("a", a), ("bm", bm), ("g", g), ("out", out),
                 ("grad_a", a.grad), ("grad_bm", bm.grad)]:
        add(k, t)
    if bias:
        add("b", b)
    if xgrad:
        add("grad_x", x.grad)
    cases.append({"name": name, "bias": bias, "xgrad": xgrad, "s": s})
write_safetensors(os.path.join(HERE, "lora_node_refs.safetensors"), tensors, {"cases": json.dumps(cases)})
