#!/usr/bin/python3
"""References for module.Conv1D and module.Conv2d (module/conv_test.go).

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 module/testdata/gen_conv.py

It writes module/testdata/conv_refs.safetensors:

  conv2d.<case>.{weight,bias}   nn.Conv2d right after torch.manual_seed(seed)
  conv2d.<case>.{x,w,out,grad_x,grad_weight,grad_bias}
                                its forward and the backward of (out * w).sum()
  conv1d.<case>.{weight,bias}   GPT-2's Conv1D (transformers.pytorch_utils,
                                re-stated below: empty(nx, nf), zeros(nf),
                                normal_(std=0.02)) after torch.manual_seed(seed)
  conv1d.<case>.{x,w,out,grad_x,grad_weight,grad_bias}
                                addmm(b, x.view(-1, nx), W).view(..., nf)

"__metadata__" holds JSON lists of the cases ("conv2d", "conv1d").
"""

import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)
refs.setup()
D = refs.Draws(20261123)

tensors = []


def add(name, t):
    tensors.append((name, t.detach().clone()))


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D (transformers 4.x and 5.x)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


def fwd_bwd(name, m, x):
    x = x.clone().requires_grad_(True)
    out = m(x)
    w = D.randn(out.shape, out.dtype, draw_dtype=torch.float64)
    gx, gw, gb = torch.autograd.grad((out * w).sum(), [x, m.weight, m.bias])
    for k, v in [("x", x), ("w", w), ("out", out), ("grad_x", gx), ("grad_weight", gw), ("grad_bias", gb)]:
        add(name + "." + k, v)


conv2d = []
for cin, cout, k, stride, pad, dil, groups, bias, seed in [
    (3, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, 0),
    (4, 6, (3, 2), (2, 1), (0, 1), (1, 1), 2, True, 7),
    (2, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1, False, 42),
    (4, 4, (3, 3), (1, 1), (2, 2), (2, 2), 4, True, 5),
]:
    name = "conv2d.%d_%d_k%dx%d_s%d_g%d_%s" % (cin, cout, k[0], k[1], seed, groups, "b" if bias else "nb")
    torch.manual_seed(seed)
    m = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups, bias=bias)
    add(name + ".weight", m.weight)
    if bias:
        add(name + ".bias", m.bias)
        fwd_bwd(name, m, D.randn((2, cin, 7, 6), torch.float32, draw_dtype=torch.float64))
    conv2d.append({"name": name, "in": cin, "out": cout, "kernel": list(k), "stride": list(stride),
                   "padding": list(pad), "dilation": list(dil), "groups": groups, "bias": bias, "seed": seed})

conv1d = []
for nx, nf, xshape, seed in [(4, 12, (2, 3, 4), 0), (8, 5, (6, 8), 11), (16, 48, (2, 2, 5, 16), 3)]:
    name = "conv1d.%dx%d_s%d" % (nx, nf, seed)
    torch.manual_seed(seed)
    m = Conv1D(nf, nx)
    add(name + ".weight", m.weight)
    add(name + ".bias", m.bias)
    with torch.no_grad():
        m.bias.copy_(D.randn((nf,), torch.float32, draw_dtype=torch.float64))  # a non-zero bias for the forward
    fwd_bwd(name, m, D.randn(xshape, torch.float32, draw_dtype=torch.float64))
    add(name + ".fwd_bias", m.bias)
    conv1d.append({"name": name, "in": nx, "out": nf, "seed": seed})

write_safetensors(os.path.join(HERE, "conv_refs.safetensors"), tensors,
                  {"conv2d": json.dumps(conv2d), "conv1d": json.dumps(conv1d)})
