#!/usr/bin/python3
"""Generate the PyTorch references that optim/schedule/reference_test.go
checks golora's learning-rate schedules against.

Run from the repository root with Debian's PyTorch (1.13.1), which has no
transformers:

    /usr/bin/python3 optim/schedule/testdata/gen_schedule.py

It writes optim/schedule/testdata/schedules.safetensors (make refs runs it
with every other */testdata/gen_*.py).

How a reference is made: a real torch optimizer (torch.optim.SGD over one
parameter, lr = the base learning rate) is driven by a real
torch.optim.lr_scheduler scheduler for `steps` steps, in PyTorch's order

    for t in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])   # the lr of step t
        optimizer.step()
        scheduler.step()

so lrs[t] is the learning rate the t-th optimizer step (0-based) uses: the
one golora's Schedule.LR(t) must return, and the one a golora Scheduler has
set after New and t calls of Step.

The transformers schedules. transformers is not installed here, so the
functions of transformers/optimization.py that build them are copied below
verbatim (code unchanged; docstrings cut) from transformers 5.23.0. They
only use torch.optim.lr_scheduler.LambdaLR, math and functools.partial, so
the copies build the very LambdaLR that transformers builds.
optim/schedule/testdata/crosscheck_transformers.py checks, with a Python
that has transformers, that the copies are still the same code as
transformers' own functions (docstrings aside) and give bit-identical
learning rates.

Note on transformers 5.23.0: optimization.py defines
_get_cosine_schedule_with_warmup_lr_lambda twice (lines 134 and 326). The
second definition, with a min_lr_rate parameter defaulting to 0.0, replaces
the first at import, and it is the one get_cosine_schedule_with_warmup's
partial picks up at call time; that is the one copied here. With
min_lr_rate = 0.0 it returns the same value as the first (factor * 1 + 0
is exact).

File layout: one float64 tensor of shape [steps] per case, named after the
case, and "__metadata__" with

  cases        a JSON list of one object per case:
                 name       the tensor's name
                 kind       the golora constructor: constant,
                            constant_warmup, warmup_cosine, warmup_linear,
                            step_decay
                 args       its arguments by golora's names (base_lr, lr,
                            warmup, total, floor, step_size, gamma)
                 steps      the number of learning rates
                 reference  what made them
  torch        the torch version that wrote the file
  transformers the transformers version the copied functions come from
"""

from __future__ import annotations

import json
import math
import os
import sys
from functools import partial

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "internal", "reftest"))
import refs  # noqa: E402

TRANSFORMERS_VERSION = "5.23.0"

# ---------------------------------------------------------------------------
# Copied verbatim from transformers 5.23.0, src/transformers/optimization.py
# (Copyright 2018 The Google AI Language Team Authors and The HuggingFace
# Inc. team; Apache License 2.0). Only the docstrings are left out.
# ---------------------------------------------------------------------------


def _get_constant_lambda(_=None):
    return 1


def get_constant_schedule(optimizer: Optimizer, last_epoch: int = -1):
    return LambdaLR(optimizer, _get_constant_lambda, last_epoch=last_epoch)


def _get_constant_schedule_with_warmup_lr_lambda(current_step: int, *, num_warmup_steps: int):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def get_constant_schedule_with_warmup(optimizer: Optimizer, num_warmup_steps: int, last_epoch: int = -1):
    lr_lambda = partial(_get_constant_schedule_with_warmup_lr_lambda, num_warmup_steps=num_warmup_steps)
    return LambdaLR(optimizer, lr_lambda, last_epoch=last_epoch)


def _get_linear_schedule_with_warmup_lr_lambda(current_step: int, *, num_warmup_steps: int, num_training_steps: int):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps, last_epoch=-1):
    lr_lambda = partial(
        _get_linear_schedule_with_warmup_lr_lambda,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5, last_epoch: int = -1
):
    lr_lambda = partial(
        _get_cosine_schedule_with_warmup_lr_lambda,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


def _get_cosine_schedule_with_warmup_lr_lambda(
    current_step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float, min_lr_rate: float = 0.0
):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def get_cosine_with_min_lr_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
):
    if min_lr is not None and min_lr_rate is not None:
        raise ValueError("Only one of min_lr or min_lr_rate should be set")
    elif min_lr is not None:
        min_lr_rate = min_lr / optimizer.defaults["lr"]
    elif min_lr_rate is None:
        raise ValueError("One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs`")

    lr_lambda = partial(
        _get_cosine_schedule_with_warmup_lr_lambda,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
        min_lr_rate=min_lr_rate,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


# ---------------------------------------------------------------------------
# End of the copy. The names copied, for crosscheck_transformers.py:
COPIED_FROM_TRANSFORMERS = [
    "_get_constant_lambda",
    "get_constant_schedule",
    "_get_constant_schedule_with_warmup_lr_lambda",
    "get_constant_schedule_with_warmup",
    "_get_linear_schedule_with_warmup_lr_lambda",
    "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "_get_cosine_schedule_with_warmup_lr_lambda",
    "get_cosine_with_min_lr_schedule_with_warmup",
]
# ---------------------------------------------------------------------------


def _golora_linear_with_floor_lr_lambda(current_step, *, num_warmup_steps, num_training_steps, min_lr_rate):
    """golora's extension of the linear schedule with a floor (transformers
    has none): transformers' linear factor, floored the way transformers
    floors its cosine (get_cosine_with_min_lr_schedule_with_warmup): the
    warmup is untouched, the decay runs from the base lr to min_lr."""
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    factor = _get_linear_schedule_with_warmup_lr_lambda(
        current_step, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps)
    return factor * (1 - min_lr_rate) + min_lr_rate


def golora_linear_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps, min_lr):
    lr_lambda = partial(
        _golora_linear_with_floor_lr_lambda,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        min_lr_rate=min_lr / optimizer.defaults["lr"],
    )
    return LambdaLR(optimizer, lr_lambda)


# ---------------------------------------------------------------------------
# The cases. Each is (name, kind, args, steps, reference, make) where
# make(optimizer) builds the torch scheduler from the same arguments. The
# same list drives crosscheck_transformers.py (with transformers' functions
# in place of the copies), through the `lib` argument.
# ---------------------------------------------------------------------------


def cases(lib):
    """The cases, with the transformers functions taken from lib (this
    module, or transformers.optimization for the cross-check)."""
    sched = torch.optim.lr_scheduler
    out = []

    def add(name, kind, args, steps, reference, make):
        out.append(dict(name=name, kind=kind, args=args, steps=steps, reference=reference, make=make))

    # Constant.
    add("constant_lambdalr", "constant", {"lr": 1e-3}, 300,
        "transformers get_constant_schedule (LambdaLR)",
        lambda o: lib.get_constant_schedule(o))
    add("constant_constantlr", "constant", {"lr": 0.1}, 300,
        "torch.optim.lr_scheduler.ConstantLR(factor=1.0, total_iters=5)",
        lambda o: sched.ConstantLR(o, factor=1.0, total_iters=5))

    # Constant with warmup.
    for w, lr, steps in [(50, 3e-4, 300), (0, 1e-3, 300), (1, 2e-5, 300), (299, 7e-4, 300), (300, 7e-4, 300)]:
        add(f"constant_warmup_w{w}", "constant_warmup", {"base_lr": lr, "warmup": w}, steps,
            f"transformers get_constant_schedule_with_warmup(num_warmup_steps={w}) (LambdaLR)",
            lambda o, w=w: lib.get_constant_schedule_with_warmup(o, w))

    # Warmup then cosine decay, floor 0: transformers' own schedule. The runs
    # end at step total (inclusive): past it transformers' cosine climbs
    # back up (cos is periodic) where golora holds the floor.
    for w, total, lr in [(30, 300, 3e-4), (0, 300, 1e-3), (1, 300, 5e-5), (300, 300, 2e-4),
                         (299, 300, 2e-4), (10, 299, 1e-3), (3, 7, 0.1), (0, 1, 0.01)]:
        add(f"warmup_cosine_w{w}_t{total}", "warmup_cosine",
            {"base_lr": lr, "warmup": w, "total": total, "floor": 0.0}, total + 1,
            f"transformers get_cosine_schedule_with_warmup(num_warmup_steps={w}, "
            f"num_training_steps={total}) (LambdaLR)",
            lambda o, w=w, total=total: lib.get_cosine_schedule_with_warmup(o, w, total))

    # Warmup then cosine decay to a floor: transformers'
    # get_cosine_with_min_lr_schedule_with_warmup(min_lr=floor).
    for w, total, lr, floor in [(25, 300, 1e-3, 1e-5), (0, 300, 3e-4, 3e-5), (300, 300, 1e-3, 1e-4),
                                (40, 299, 0.1, 0.1), (10, 300, 2e-4, 1.5e-4)]:
        add(f"warmup_cosine_w{w}_t{total}_floor{floor:g}", "warmup_cosine",
            {"base_lr": lr, "warmup": w, "total": total, "floor": floor}, total + 1,
            f"transformers get_cosine_with_min_lr_schedule_with_warmup(num_warmup_steps={w}, "
            f"num_training_steps={total}, min_lr={floor!r}) (LambdaLR)",
            lambda o, w=w, total=total, floor=floor: lib.get_cosine_with_min_lr_schedule_with_warmup(
                o, w, total, min_lr=floor))

    # Warmup then linear decay, floor 0: transformers' own schedule, which
    # holds 0 past total, as golora does, so the runs go past it.
    for w, total, lr, steps in [(30, 300, 3e-4, 300), (0, 300, 1e-3, 300), (1, 250, 5e-5, 300),
                                (300, 300, 2e-4, 301), (100, 200, 1e-3, 300), (0, 1, 0.01, 5)]:
        add(f"warmup_linear_w{w}_t{total}", "warmup_linear",
            {"base_lr": lr, "warmup": w, "total": total, "floor": 0.0}, steps,
            f"transformers get_linear_schedule_with_warmup(num_warmup_steps={w}, "
            f"num_training_steps={total}) (LambdaLR)",
            lambda o, w=w, total=total: lib.get_linear_schedule_with_warmup(o, w, total))

    # Warmup then linear decay to a floor: golora's extension (see
    # _golora_linear_with_floor_lr_lambda), through LambdaLR.
    for w, total, lr, floor, steps in [(30, 250, 1e-3, 1e-5, 300), (0, 300, 3e-4, 3e-5, 300),
                                       (300, 300, 1e-3, 1e-4, 301)]:
        add(f"warmup_linear_w{w}_t{total}_floor{floor:g}", "warmup_linear",
            {"base_lr": lr, "warmup": w, "total": total, "floor": floor}, steps,
            f"golora_linear_with_min_lr_schedule_with_warmup(num_warmup_steps={w}, "
            f"num_training_steps={total}, min_lr={floor!r}) (LambdaLR)",
            lambda o, w=w, total=total, floor=floor: golora_linear_with_min_lr_schedule_with_warmup(
                o, w, total, floor))

    # Step decay: torch's StepLR, whose step() multiplies the previous lr by
    # gamma (its chainable form), so rounding accumulates over the decays.
    for size, gamma, lr in [(30, 0.5, 0.1), (1, 0.99, 1e-3), (7, 0.9, 3e-4), (1000, 0.1, 0.1),
                            (1, 0.97, 1.0), (100, 1.0, 0.05)]:
        add(f"step_decay_s{size}_g{gamma:g}", "step_decay",
            {"base_lr": lr, "step_size": size, "gamma": gamma}, 300,
            f"torch.optim.lr_scheduler.StepLR(step_size={size}, gamma={gamma!r})",
            lambda o, size=size, gamma=gamma: sched.StepLR(o, step_size=size, gamma=gamma))
    return out


def base_lr(case):
    return case["args"]["lr"] if case["kind"] == "constant" else case["args"]["base_lr"]


def run(case):
    """The learning rates of the case's steps, from a real optimizer driven
    by the case's real scheduler, as a list of Python floats."""
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.zeros_like(p)
    opt = torch.optim.SGD([p], lr=base_lr(case))
    sched = case["make"](opt)
    lrs = []
    for _ in range(case["steps"]):
        lr = opt.param_groups[0]["lr"]
        assert isinstance(lr, float), (case["name"], type(lr))
        assert sched.get_last_lr()[0] == lr, (case["name"], sched.get_last_lr(), lr)
        lrs.append(lr)
        opt.step()
        sched.step()
    return lrs


def main():
    refs.setup()
    tensors = []
    meta = []
    for case in cases(sys.modules[__name__]):
        lrs = run(case)
        tensors.append((case["name"], torch.tensor(lrs, dtype=torch.float64)))
        meta.append({k: case[k] for k in ("name", "kind", "args", "steps", "reference")})
    path = os.path.join(refs.here(__file__), "schedules.safetensors")
    refs.write_safetensors(path, tensors, {
        "cases": json.dumps(meta),
        "torch": torch.__version__,
        "transformers": TRANSFORMERS_VERSION,
    })
    print(f"wrote {os.path.relpath(path)}: {len(tensors)} cases")


if __name__ == "__main__":
    main()
