#!/usr/bin/python3
"""Generate the PyTorch reference of lora/mixed_precision_test.go: LoRA
fine-tuning in mixed precision on the CPU, frozen base weights in
bfloat16, LoRA parameters (and the SGD update) in float32, the forward
under torch.autocast("cpu", dtype=torch.bfloat16).

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 lora/testdata/gen_mixed.py

It writes lora/testdata/mixed_bf16.safetensors.

The recipe (the Go test replays it op for op):

    torch.manual_seed(SEED)
    l1 = Linear(32, 64, bias=True, r=4, alpha=8)   # gen_lora.py's class: the spec's
    l2 = Linear(64, 16, bias=True, r=4, alpha=8)   # forward, golora's seeded init
    for l in (l1, l2):                               # frozen base to bfloat16,
        l.weight.data = l.weight.data.bfloat16()     # like Go's SetData; lora_a
        l.bias.data = l.bias.data.bfloat16()         # and lora_b stay float32
        l.lora_b.copy_(B0)                           # non-zero, so that step 0
                                                     # trains A too
    for step in range(STEPS):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = l2(torch.relu(l1(x)))                # x float32 -> y bfloat16
            loss = F.mse_loss(y, target)             # autocast: float32
        loss.backward()                              # outside the region
        with torch.no_grad():
            for p in (l1.lora_a, l1.lora_b, l2.lora_a, l2.lora_b):
                p.add_(p.grad, alpha=-LR)            # plain SGD in float32
                p.grad = None

Under autocast, linear and matmul (the base F.linear and both products of
x @ A.T @ B.T) cast their float32 operands to bfloat16 and return
bfloat16; the scaling, the sum and relu run in bfloat16 on bfloat16
inputs; mse_loss is on autocast's CPU float32 list, so y is cast back and
the loss is float32. The gradients reach A and B through the casts and
arrive in float32.

File layout: "__metadata__" holds "config" (JSON: seed, sizes, r, alpha,
scaling, batch, lr, steps, autocast dtype), "generator" and
"torch_version". Tensors:

  init.l{1,2}.{weight,bias}   the frozen base, bfloat16 (seeded draws in
                              float32 rounded once to bfloat16)
  init.l{1,2}.lora_a          the seeded lora_a, float32
  init.l{1,2}.lora_b          B0, the lora_b set before training, float32
  x, target                   float32, from a private generator
  loss                        float32 [STEPS]: the loss of each step
  step<k>.h                   relu(l1(x)) of step k, bfloat16
  step<k>.y                   the output of step k, bfloat16
  step<k>.grad.l{1,2}.lora_{a,b}
                              the gradients of step k, float32
  step<k>.l{1,2}.lora_{a,b}   the parameters after step k's update, float32
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "internal", "reftest"))
sys.path.insert(0, HERE)
import refs  # noqa: E402
from gen_lora import Linear  # noqa: E402  (the spec's class, shared)

SEED = 20250612
IN, HIDDEN, OUT = 32, 64, 16
R, ALPHA = 4, 8.0
BATCH = 8
LR = 0.1
STEPS = 5
B0_SCALE = 0.25  # lora_b before training: N(0, 1) * B0_SCALE

LAYERS = ("l1", "l2")
LORA = ("lora_a", "lora_b")


def main():
    refs.setup()
    torch.manual_seed(SEED)
    l1 = Linear(IN, HIDDEN, True, R, ALPHA)
    l2 = Linear(HIDDEN, OUT, True, R, ALPHA)
    layers = {"l1": l1, "l2": l2}

    draws = refs.Draws(SEED + 1)
    x = draws.randn((BATCH, IN), torch.float32)
    target = draws.randn((BATCH, OUT), torch.float32)
    out = []
    for name, l in layers.items():
        # The frozen base in bfloat16, converted in place as Go's
        # Tensor.SetData does; the parameter objects (and their
        # requires_grad=False) stay.
        l.weight.data = l.weight.data.to(torch.bfloat16)
        l.bias.data = l.bias.data.to(torch.bfloat16)
        with torch.no_grad():
            l.lora_b.copy_(draws.randn(tuple(l.lora_b.shape), torch.float32) * B0_SCALE)
        out += [(f"init.{name}.weight", l.weight.detach().clone()),
                (f"init.{name}.bias", l.bias.detach().clone()),
                (f"init.{name}.lora_a", l.lora_a.detach().clone()),
                (f"init.{name}.lora_b", l.lora_b.detach().clone())]
    out += [("x", x), ("target", target)]

    lora_params = [(f"{n}.{p}", getattr(l, p)) for n, l in layers.items() for p in LORA]
    losses = []
    for step in range(STEPS):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = torch.relu(l1(x))
            y = l2(h)
            loss = F.mse_loss(y, target)
        assert h.dtype == y.dtype == torch.bfloat16, (h.dtype, y.dtype)
        assert loss.dtype == torch.float32, loss.dtype
        loss.backward()
        for l in layers.values():
            assert l.weight.dtype == l.bias.dtype == torch.bfloat16
            assert l.weight.grad is None and l.bias.grad is None
        losses.append(loss.detach().reshape(1))
        out += [(f"step{step}.h", h.detach()), (f"step{step}.y", y.detach())]
        out += [(f"step{step}.grad.{n}", p.grad.clone()) for n, p in lora_params]
        with torch.no_grad():
            for n, p in lora_params:
                assert p.dtype == p.grad.dtype == torch.float32, n
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        out += [(f"step{step}.{n}", p.detach().clone()) for n, p in lora_params]
        print(f"step {step}: loss {loss.item():.6f}")
    out.append(("loss", torch.cat(losses)))

    config = {
        "seed": SEED, "in": IN, "hidden": HIDDEN, "out": OUT, "r": R,
        "alpha": ALPHA, "scaling": l1.scaling, "batch": BATCH, "lr": LR,
        "steps": STEPS, "autocast_dtype": "bfloat16",
    }
    path = os.path.join(HERE, "mixed_bf16.safetensors")
    refs.write_safetensors(path, out, {
        "config": json.dumps(config),
        "generator": "lora/testdata/gen_mixed.py",
        "torch_version": torch.__version__,
    })
    print(f"{os.path.relpath(path)}: {STEPS} steps, {len(out)} tensors")


if __name__ == "__main__":
    main()
