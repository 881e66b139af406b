#!/usr/bin/python3
"""References for torch.Checkpoint (torch/checkpoint_test.go).

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 torch/testdata/gen_checkpoint.py

It writes torch/testdata/checkpoint_refs.safetensors: a stack of three
blocks, each y = x + W2·dropout(gelu(W1·x + b1)), whose first and third
blocks run under torch.utils.checkpoint.checkpoint (use_reentrant=True,
preserve_rng_state=True, PyTorch's default), in train mode, the default
generator seeded with 1234 just before the forward:

  x, w              the input (requires grad) and the loss weight:
                    loss = (out * w).sum()
  block.<i>.{w1,b1,w2}   the parameters
  out               the output
  grad.x, grad.block.<i>.{w1,b1,w2}   the gradients
  p                 dropout's probability (a 0-dim tensor)
"""

import os
import sys

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)
refs.setup()
D = refs.Draws(77)

d, h, p = 8, 16, 0.25
blocks = []
for i in range(3):
    blocks.append({
        "w1": D.randn((h, d), torch.float32, draw_dtype=torch.float64).requires_grad_(True),
        "b1": D.randn((h,), torch.float32, draw_dtype=torch.float64).requires_grad_(True),
        "w2": D.randn((d, h), torch.float32, draw_dtype=torch.float64).mul(0.25).requires_grad_(True),
    })
x = D.randn((4, 3, d), torch.float32, draw_dtype=torch.float64).requires_grad_(True)


def block(b):
    def f(t):
        return t + F.linear(F.dropout(F.gelu(F.linear(t, b["w1"], b["b1"])), p, True), b["w2"])
    return f


torch.manual_seed(1234)
y = x
for i, b in enumerate(blocks):
    if i == 1:
        y = block(b)(y)
    else:
        y = cp.checkpoint(block(b), y, use_reentrant=True, preserve_rng_state=True)
w = D.randn(y.shape, torch.float32, draw_dtype=torch.float64)
(y * w).sum().backward()

tensors = [("x", x.detach()), ("w", w), ("out", y.detach()), ("grad.x", x.grad), ("p", torch.tensor(p))]
for i, b in enumerate(blocks):
    for k in ("w1", "b1", "w2"):
        tensors.append(("block.%d.%s" % (i, k), b[k].detach()))
        tensors.append(("grad.block.%d.%s" % (i, k), b[k].grad))
write_safetensors(os.path.join(HERE, "checkpoint_refs.safetensors"), tensors)
