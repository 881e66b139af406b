#!/usr/bin/python3
"""Generate the GPT-2 block references that module/gpt2block_test.go checks
golora against.

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 module/testdata/gen_gpt2block.py

The block is GPT-2's, in the Hugging Face checkpoint layout: Conv1D layers
(weight in x out, y = x @ W + b) named attn.c_attn, attn.c_proj, mlp.c_fc,
mlp.c_proj, LayerNorms ln_1 and ln_2, and the persistent causal-mask buffer
attn.bias (uint8, 1 x 1 x n_ctx x n_ctx) plus the scalar attn.masked_bias
that old GPT-2 checkpoints carry. Its forward pass is nanoGPT's, between
the "block:begin" and "block:end" markers; the Go test counts those lines.

It writes, under module/testdata/:

  gpt2block_refs.safetensors
      for each dtype d in (float32, float64):
        d.x, d.w, d.out, d.grad_x      input, loss weights, output, dL/dx
        d.grad.<name>                  dL/d<name> for every parameter, in
                                       Conv1D layout
      Backward uses loss = (out * w).sum(). "__metadata__" holds n_embd,
      n_head, n_ctx, batch, seq and params (the parameter names in order).

  gpt2block_state_<dtype>.safetensors
      the block's state_dict(): parameters and both buffers.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)
refs.setup()

N_EMBD, N_HEAD, N_CTX, BATCH, SEQ = 16, 4, 8, 2, 5


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 Conv1D: a linear layer with its weight in x out."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(3 * N_EMBD, N_EMBD)
        self.c_proj = Conv1D(N_EMBD, N_EMBD)
        mask = torch.tril(torch.ones((N_CTX, N_CTX), dtype=torch.uint8))
        self.register_buffer("bias", mask.view(1, 1, N_CTX, N_CTX))
        self.register_buffer("masked_bias", torch.tensor(-1e4))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = Conv1D(4 * N_EMBD, N_EMBD)
        self.c_proj = Conv1D(N_EMBD, 4 * N_EMBD)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n_embd, self.n_head = N_EMBD, N_HEAD
        self.ln_1 = nn.LayerNorm(N_EMBD)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(N_EMBD)
        self.mlp = MLP()

    def forward(self, x):
        # block:begin
        B, T, C = x.size()
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.attn.bias[:, :, :T, :T] == 0, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attn.c_proj(y)
        x = x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))
        return x
        # block:end


D = refs.Draws(20240612)
tensors = []
for dt, name in [(torch.float32, "float32"), (torch.float64, "float64")]:
    block = Block().to(dt)
    with torch.no_grad():
        for pn, p in block.named_parameters():
            if pn.endswith("ln_1.weight") or pn.endswith("ln_2.weight"):
                p.copy_(1 + 0.1 * D.randn(p.shape, dt, draw_dtype=torch.float64))
            else:
                p.copy_(0.2 * D.randn(p.shape, dt, draw_dtype=torch.float64))
    params = list(block.named_parameters())
    x = D.randn((BATCH, SEQ, N_EMBD), dt, draw_dtype=torch.float64).requires_grad_()
    out = block(x)
    w = D.randn(out.shape, dt, draw_dtype=torch.float64)
    grads = torch.autograd.grad((out * w).sum(), [x] + [p for _, p in params])
    tensors += [(name + ".x", x), (name + ".w", w), (name + ".out", out), (name + ".grad_x", grads[0])]
    tensors += [(name + ".grad." + pn, g) for (pn, _), g in zip(params, grads[1:])]
    refs.write_state_dict(os.path.join(HERE, "gpt2block_state_%s.safetensors" % name), block,
                          "module/testdata/gen_gpt2block.py")

meta = {
    "n_embd": N_EMBD, "n_head": N_HEAD, "n_ctx": N_CTX, "batch": BATCH, "seq": SEQ,
    "params": json.dumps([pn for pn, _ in params]),
}
write_safetensors(os.path.join(HERE, "gpt2block_refs.safetensors"), tensors, meta)
print("wrote %d reference tensors and two %d-tensor state dicts" % (len(tensors), len(block.state_dict())))
