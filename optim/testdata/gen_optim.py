#!/usr/bin/python3
"""Generate the PyTorch references that optim/ref_test.go checks golora's
optimizers against.

Run from the repository root with Debian's PyTorch (1.13.1), or any other
(the 2.x wheel in a venv works too):

    /usr/bin/python3 optim/testdata/gen_optim.py

It writes optim/testdata/optim_refs.safetensors.

The model is a small LoRA network, two LoRA linear layers with a ReLU
between, whose forward is golora's lora.Linear op for op:

    F.linear(x, W, b) + x.matmul(A.t()).matmul(B.t()).mul(scaling)

    l1: in 6, out 8, r 4, scaling 2   (alpha 8)
    l2: in 8, out 3, r 2, scaling 1   (alpha 2)

and the loss F.mse_loss(model(x), y) (mean). W and b are frozen; A and B
of both layers are trained, and in the cases with "train_bias" the biases
too. The initial values (a non-zero B included), x and y come from a
private seeded generator (refs.Draws), drawn in float64 and converted, so
that the float32 and float64 runs start from the same numbers.

Each case runs 100 steps of

    [set every group's lr, at the steps of "lr_at"]
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x), y); loss.backward()
    [clip_grad_norm_ / clip_grad_value_ over the trained parameters]
    opt.step()

with torch.optim.SGD, Adam or AdamW (foreach=False: the single-tensor
algorithm, PyTorch's default on the CPU) and records every trained
parameter after every step.

File layout. "__metadata__" holds "cases", a JSON list of one object per
case: {name, algo, options (PyTorch's keyword arguments), groups (null, or
a list of {name, params, options}), train_bias, unused, clip (null,
["norm", max_norm, norm_type] or ["value", clip]), lr_at ({step: lr}),
steps, state_at (null or a step)}. norm_type inf is written as the string
"inf". Tensors:

  init.<dtype>.<param>         initial values of l1.weight, l1.bias,
                               l1.lora_a, l1.lora_b, l2.* and "unused"
  x.<dtype>, y.<dtype>         input and target
  <case>.<dtype>.traj.<param>  [steps, *shape]: the trained parameters
                               after each step
  <case>.<dtype>.loss          [steps]: the loss of each step
  <case>.<dtype>.norm          [steps]: clip_grad_norm_'s total norm
  <case>.<dtype>.state.<key>   the optimizer state after step state_at,
                               written in golora's layout (optim/state.go:
                               state.<param>.<slot>); its metadata is the
                               case's "state_meta_<dtype>" object

  clip_mixed.grad.<p>          gradients of float32 a [2], float64 b [3] and
                               float32 c [2, 2]
  clip_mixed.<norm>.total      clip_grad_norm_(max_norm 0.5, norm 2, inf
  clip_mixed.<norm>.grad.<p>   or 1.5) over them: the total norm (float64)
                               and the clipped gradients

"unused" is a trained parameter that takes no part in the loss (cases
with "unused"): it never has a gradient, so it must never move nor get
state.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)
STEPS = 100
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# name, in, out, r, scaling
LAYERS = [("l1", 6, 8, 4, 2.0), ("l2", 8, 3, 2, 1.0)]
BATCH = 5

INF = "inf"

CASES = [
    # SGD
    dict(name="sgd_plain", algo="SGD", options=dict(lr=0.05)),
    dict(name="sgd_momentum", algo="SGD", options=dict(lr=0.05, momentum=0.9), state_at=50),
    dict(name="sgd_nesterov", algo="SGD", options=dict(lr=0.05, momentum=0.9, nesterov=True)),
    dict(name="sgd_dampening", algo="SGD", options=dict(lr=0.05, momentum=0.9, dampening=0.3)),
    dict(name="sgd_weight_decay", algo="SGD", options=dict(lr=0.05, weight_decay=0.1)),
    dict(name="sgd_momentum_weight_decay", algo="SGD", options=dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
    dict(name="sgd_maximize", algo="SGD", options=dict(lr=2e-4, momentum=0.5, maximize=True)),
    # Adam
    dict(name="adam_default", algo="Adam", options=dict(lr=1e-2)),
    dict(name="adam_amsgrad", algo="Adam", options=dict(lr=1e-2, amsgrad=True)),
    dict(name="adam_weight_decay", algo="Adam", options=dict(lr=1e-2, weight_decay=0.1)),
    dict(name="adam_amsgrad_weight_decay", algo="Adam", options=dict(lr=1e-2, amsgrad=True, weight_decay=0.1), state_at=50),
    dict(name="adam_betas_eps", algo="Adam", options=dict(lr=1e-2, betas=(0.8, 0.995), eps=1e-6)),  # 0.995: pow(bc2, 0.5) != sqrt(bc2) at step 69
    dict(name="adam_maximize", algo="Adam", options=dict(lr=1e-3, maximize=True)),
    # AdamW
    dict(name="adamw_default", algo="AdamW", options=dict(lr=1e-2)),
    dict(name="adamw_no_weight_decay", algo="AdamW", options=dict(lr=1e-2, weight_decay=0.0)),
    dict(name="adamw_amsgrad", algo="AdamW", options=dict(lr=1e-2, amsgrad=True)),
    dict(name="adamw_amsgrad_weight_decay", algo="AdamW", options=dict(lr=1e-2, amsgrad=True, weight_decay=0.1), state_at=50),
    dict(name="adamw_unused", algo="AdamW", options=dict(lr=1e-2), unused=True),
    dict(name="adamw_set_lr", algo="AdamW", options=dict(lr=1e-2), lr_at={"30": 3e-3, "60": 0.0, "70": 2e-2}),
    # parameter groups: weight decay off and another lr for the biases
    dict(name="adamw_groups", algo="AdamW", options=dict(lr=1e-2, weight_decay=0.1), train_bias=True,
         groups=[dict(name="no_decay", params=["l1.bias", "l2.bias"], options=dict(weight_decay=0.0, lr=2e-2)),
                 dict(name="default", params=["l1.lora_a", "l1.lora_b", "l2.lora_a", "l2.lora_b"], options={})],
         state_at=50),
    dict(name="sgd_groups", algo="SGD", options=dict(lr=0.05, momentum=0.9), train_bias=True,
         groups=[dict(name="bias", params=["l1.bias", "l2.bias"], options=dict(lr=0.02, momentum=0.0)),
                 dict(name="lora", params=["l1.lora_a", "l1.lora_b", "l2.lora_a", "l2.lora_b"],
                      options=dict(weight_decay=0.05, nesterov=True))]),
    dict(name="adam_groups_amsgrad", algo="Adam", options=dict(lr=1e-2), train_bias=True,
         groups=[dict(name="bias", params=["l1.bias", "l2.bias"], options=dict(amsgrad=True, betas=(0.5, 0.9))),
                 dict(name="lora", params=["l1.lora_a", "l1.lora_b", "l2.lora_a", "l2.lora_b"],
                      options=dict(weight_decay=0.01))]),
    # clipping (the thresholds clip some steps and not others)
    dict(name="adamw_clip_norm", algo="AdamW", options=dict(lr=1e-2), clip=["norm", 0.5, 2.0]),
    dict(name="sgd_clip_norm_inf", algo="SGD", options=dict(lr=0.05, momentum=0.9), clip=["norm", 0.2, INF]),
    dict(name="adam_clip_norm_1", algo="Adam", options=dict(lr=1e-2), clip=["norm", 1.0, 1.0]),
    dict(name="sgd_clip_norm_3", algo="SGD", options=dict(lr=0.05), clip=["norm", 0.3, 3.0]),
    dict(name="adam_clip_value", algo="Adam", options=dict(lr=1e-2), clip=["value", 0.05]),
    dict(name="adamw_groups_clip_norm", algo="AdamW", options=dict(lr=1e-2), train_bias=True, clip=["norm", 0.3, 2.0],
         groups=[dict(name="no_decay", params=["l1.bias", "l2.bias"], options=dict(weight_decay=0.0)),
                 dict(name="default", params=["l1.lora_a", "l1.lora_b", "l2.lora_a", "l2.lora_b"], options={})]),
]

ALGOS = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
SLOTS = ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"]
# PyTorch's hyperparameter keys that golora's optim.param_groups has.
GROUP_KEYS = {"SGD": ["lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize"],
              "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"]}
GROUP_KEYS["AdamW"] = GROUP_KEYS["Adam"]


def initial(dtype):
    """The initial parameters (name -> tensor), x and y."""
    d = refs.Draws(20240607)
    p = {}
    for name, fin, fout, r, _ in LAYERS:
        p[name + ".weight"] = d.randn((fout, fin), dtype, torch.float64) * 0.4
        p[name + ".bias"] = d.randn((fout,), dtype, torch.float64) * 0.1
        p[name + ".lora_a"] = d.randn((r, fin), dtype, torch.float64) * 0.3
        p[name + ".lora_b"] = d.randn((fout, r), dtype, torch.float64) * 0.3
    p["unused"] = d.randn((3,), dtype, torch.float64)
    x = d.randn((BATCH, LAYERS[0][1]), dtype, torch.float64)
    y = d.randn((BATCH, LAYERS[-1][2]), dtype, torch.float64)
    return p, x, y


def forward(p, x):
    h = x
    for i, (name, _, _, _, scaling) in enumerate(LAYERS):
        w, b, a, bm = (p[name + s] for s in (".weight", ".bias", ".lora_a", ".lora_b"))
        h = F.linear(h, w, b) + h.matmul(a.t()).matmul(bm.t()).mul(scaling)
        if i + 1 < len(LAYERS):
            h = h.relu()
    return h


def trained_names(case):
    if case.get("groups"):
        return [n for g in case["groups"] for n in g["params"]]
    names = [f"{l[0]}.{s}" for l in LAYERS for s in ("lora_a", "lora_b")]
    if case.get("unused"):
        names.append("unused")
    return names


def state_dict_golora(case, opt, names):
    """The optimizer's state in golora's layout: tensors and metadata."""
    tensors = []
    index = {id(p): n for n, p in zip(names, [p for g in opt.param_groups for p in g["params"]])}
    for g in opt.param_groups:
        for p in g["params"]:
            st = opt.state.get(p, {})
            for slot in SLOTS:
                v = st.get(slot)
                if v is None:
                    continue
                if slot == "step" and not torch.is_tensor(v):
                    v = torch.tensor(float(v))
                tensors.append((f"state.{index[id(p)]}.{slot}", v.detach().clone()))
    groups = []
    case_groups = case.get("groups") or [dict(name="default")]
    for cg, g in zip(case_groups, opt.param_groups):
        obj = dict(name=cg["name"], params=[index[id(p)] for p in g["params"]])
        for k in GROUP_KEYS[case["algo"]]:
            v = g[k]
            obj[k] = list(v) if isinstance(v, tuple) else v
        groups.append(obj)
    meta = {"optim.format": "1", "optim.algorithm": case["algo"],
            "optim.param_groups": json.dumps(groups)}
    return tensors, meta


def run(case, dtype_name, out):
    dtype = DTYPES[dtype_name]
    init, x, y = initial(dtype)
    p = {n: t.clone() for n, t in init.items()}
    names = trained_names(case)
    for n in names:
        p[n].requires_grad_(True)
    kwargs = dict(case["options"])
    kwargs["foreach"] = False
    if case.get("groups"):
        params = [dict(params=[p[n] for n in g["params"]], **g["options"]) for g in case["groups"]]
    else:
        params = [p[n] for n in names]
    opt = ALGOS[case["algo"]](params, **kwargs)
    trained = [p[n] for n in names]
    traj = {n: [] for n in names}
    losses, norms = [], []
    clip = case.get("clip")
    lr_at = {int(k): v for k, v in case.get("lr_at", {}).items()}
    prefix = f"{case['name']}.{dtype_name}"
    for step in range(STEPS):
        if step in lr_at:
            for g in opt.param_groups:
                g["lr"] = lr_at[step]
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(forward(p, x), y)
        loss.backward()
        if clip is not None:
            if clip[0] == "norm":
                norm_type = math.inf if clip[2] == INF else clip[2]
                norms.append(torch.nn.utils.clip_grad_norm_(trained, clip[1], norm_type).detach().clone())
            else:
                torch.nn.utils.clip_grad_value_(trained, clip[1])
        opt.step()
        losses.append(loss.detach().clone())
        for n in names:
            traj[n].append(p[n].detach().clone())
        if case.get("state_at") == step + 1:
            tensors, meta = state_dict_golora(case, opt, names)
            for k, v in tensors:
                out.append((f"{prefix}.{k}", v))
            case[f"state_meta_{dtype_name}"] = meta
    for n in names:
        tr = torch.stack(traj[n])
        assert torch.isfinite(tr).all(), (case["name"], dtype_name, n)
        out.append((f"{prefix}.traj.{n}", tr))
    out.append((f"{prefix}.loss", torch.stack(losses)))
    if norms:
        out.append((f"{prefix}.norm", torch.stack(norms)))
    # The clip thresholds are meant to clip some steps but not all.
    if clip is not None and clip[0] == "norm":
        clipped = sum(1 for n in norms if float(n) > clip[1])
        assert 0 < clipped < STEPS, (case["name"], dtype_name, clipped)


# clip_mixed: clip_grad_norm_ over gradients of mixed dtypes (PyTorch 2.x
# groups them by dtype before taking the norms).
MIXED = [("a", torch.float32, (2,)), ("b", torch.float64, (3,)), ("c", torch.float32, (2, 2))]
MIXED_NORMS = {"2": 2.0, "inf": math.inf, "1.5": 1.5}


def clip_mixed(out):
    d = refs.Draws(7)
    grads = {name: d.randn(shape, dt, torch.float64) for name, dt, shape in MIXED}
    for name, g in grads.items():
        out.append((f"clip_mixed.grad.{name}", g))
    for norm_name, norm_type in MIXED_NORMS.items():
        ps = []
        for name, dt, shape in MIXED:
            p = torch.zeros(shape, dtype=dt, requires_grad=True)
            p.grad = grads[name].clone()
            ps.append(p)
        total = torch.nn.utils.clip_grad_norm_(ps, 0.5, norm_type)
        out.append((f"clip_mixed.{norm_name}.total", total.detach().to(torch.float64).reshape(1)))
        for (name, _, _), p in zip(MIXED, ps):
            out.append((f"clip_mixed.{norm_name}.grad.{name}", p.grad))


def main():
    refs.setup()
    out = []
    clip_mixed(out)
    for dtype_name, dtype in DTYPES.items():
        init, x, y = initial(dtype)
        for n, t in init.items():
            out.append((f"init.{dtype_name}.{n}", t))
        out.append((f"x.{dtype_name}", x))
        out.append((f"y.{dtype_name}", y))
    for case in CASES:
        for dtype_name in DTYPES:
            run(case, dtype_name, out)
    cases = []
    for c in CASES:
        c = dict(c)
        c.setdefault("groups", None)
        c.setdefault("clip", None)
        c.setdefault("lr_at", {})
        c.setdefault("train_bias", False)
        c.setdefault("unused", False)
        c.setdefault("state_at", None)
        c["steps"] = STEPS
        cases.append(c)
    meta = {"cases": json.dumps(cases), "torch": torch.__version__, "steps": str(STEPS)}
    write_safetensors(os.path.join(HERE, "optim_refs.safetensors"), out, meta)


if __name__ == "__main__":
    main()
