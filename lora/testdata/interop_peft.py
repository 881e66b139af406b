#!/usr/bin/env python3
"""References for lora/peft_interop_test.go, written with the real PEFT
(0.21.2, torch 2.x, transformers): run from the repository root with the
interop venv's Python (make interop-refs).

It builds peft_net.Net with a fixed seed, saves its weights
(peft/base.safetensors), creates LoRA adapters with PEFT, gives every
adapter tensor random values (so that every adapter changes the output),
saves each with save_pretrained under peft/<case>/ and records the outputs
for fixed inputs in peft/refs.safetensors (the lists it used in
peft/refs.json):

  x.ids, x.img           the inputs (batch of 4)
  y.base                 the base model's output
  y.<case>               the output with the case's adapter(s) active
  y.two.second           case "two" with only adapter "second" active
  g.<case>, grad.<case>.<param>  for default and dora: the gradient of
                         (y·g).sum() for every adapter tensor (PEFT's names)
  merged.dora.<path>     the weight of each DoRA layer after merge_adapter()
  y.two.mixed            case "two" with adapter_names=MIXED (one per sample)
  y.twosave.<adapter>    adapters "default" and "second", each with its own
                         copy of the classifier (modules_to_save), active in
                         turn; y.twosave.disabled under disable_adapter()
  init.<init>.<key>      after get_peft_model with init_lora_weights=<init>
                         (seed 7): every lora_* tensor and base_layer.weight
  y.weighted.<combo>     add_weighted_adapter(["default", "other"], WEIGHTS,
                         combination_type=combo) of case "weighted"

Cases: default (Linear, Embedding, Conv1D, Conv2d), rslora (with dropout,
evaluated in eval mode), dora (Linear, Embedding, Conv1D, Conv2d), save
(modules_to_save=["classifier"]), bias (bias="lora_only", the trained
biases saved), two (adapters "default" and "second"), weighted.
"""
import json
import os
import shutil
import sys

# PEFT writes target_modules from a Python set, whose order follows the
# string hash: fix the hash seed so that every run writes the same bytes.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peft_net import new_net  # noqa: E402

from peft import LoraConfig, get_peft_model  # noqa: E402

MIXED = ["default", "second", "__base__", "default"]
WEIGHTED = ["linear", "cat", "svd"]
WEIGHTS = [0.7, -0.4]
SVD_RANK = 3
ALL_KINDS = ["q_proj", "v_proj", "embed_tokens", "c_attn", "conv"]
INITS = {"true": ALL_KINDS, "false": ALL_KINDS, "gaussian": ALL_KINDS,
         "orthogonal": ["q_proj", "c_attn"], "pissa": ["q_proj", "c_attn"]}
INIT_VALUES = {"true": True, "false": False, "gaussian": "gaussian", "orthogonal": "orthogonal", "pissa": "pissa"}

CASES = {
    "default": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "embed_tokens", "c_attn", "conv"]),
    "rslora": dict(r=8, lora_alpha=16, use_rslora=True, lora_dropout=0.1,
                   target_modules=["q_proj", "k_proj", "o_proj"]),
    "dora": dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "v_proj", "embed_tokens", "c_attn", "conv"]),
    "save": dict(r=2, lora_alpha=4, target_modules=["v_proj"], modules_to_save=["classifier"]),
    "bias": dict(r=2, lora_alpha=4, target_modules=["q_proj", "c_attn"], bias="lora_only"),
}


def randomise(pm, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_magnitude_vector" in n:
                p.mul_(1 + 0.2 * torch.rand(p.shape, generator=g))
            elif "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif "modules_to_save" in n or (n.endswith("bias") and p.requires_grad):
                p.add_(torch.randn(p.shape, generator=g) * 0.3)


def main():
    torch.set_num_threads(1)
    out = os.path.join(HERE, "peft")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    net = new_net(0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(out, "base.safetensors"))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32, (4, 6), generator=g)
    img = torch.randn(4, 3, 5, 5, generator=g)
    refs = {"x.ids": ids, "x.img": img}
    with torch.no_grad():
        refs["y.base"] = net(ids, img)

    for i, (case, kw) in enumerate(CASES.items()):
        pm = get_peft_model(new_net(0), LoraConfig(**kw))
        randomise(pm, 100 + i)
        pm.eval()
        with torch.no_grad():
            refs["y." + case] = pm(ids, img)
        pm.save_pretrained(os.path.join(out, case))
        if case in ("dora", "default"):
            # Gradients of (y·g).sum() for every adapter tensor (DoRA's
            # weight norm is detached in PEFT's forward).
            gy = torch.randn(refs["y." + case].shape, generator=torch.Generator().manual_seed(5))
            refs["g." + case] = gy
            pm.zero_grad()
            (pm(ids, img) * gy).sum().backward()
            for k, p in pm.named_parameters():
                if p.grad is not None:
                    refs["grad.%s.%s" % (case, k)] = p.grad.detach().clone()
        if case == "dora":
            # PEFT's merge of a DoRA adapter: the merged base weights.
            pm.merge_adapter()
            for k, v in pm.state_dict().items():
                if k.endswith("base_layer.weight"):
                    refs["merged.dora." + k[len("base_model.model."):-len(".base_layer.weight")]] = v.detach().clone()
            pm.unmerge_adapter()

    # Two named adapters in one model; save_pretrained writes "second" in
    # a subdirectory.
    pm = get_peft_model(new_net(0), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    pm.add_adapter("second", LoraConfig(r=2, lora_alpha=4, target_modules=["k_proj", "embed_tokens", "q_proj"]))
    randomise(pm, 200)
    pm.eval()
    with torch.no_grad():
        pm.set_adapter("default")
        refs["y.two"] = pm(ids, img)
        refs["y.two.mixed"] = pm(ids, img, adapter_names=MIXED)
        pm.set_adapter("second")
        refs["y.two.second"] = pm(ids, img)
    pm.save_pretrained(os.path.join(out, "two"), selected_adapters=["default", "second"])

    # Two adapters, each with its own copy of the classifier
    # (modules_to_save): switching adapters switches heads.
    pm = get_peft_model(new_net(0), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"],
                                               modules_to_save=["classifier"]))
    pm.add_adapter("second", LoraConfig(r=2, lora_alpha=4, target_modules=["v_proj"], modules_to_save=["classifier"]))
    randomise(pm, 400)
    pm.eval()
    with torch.no_grad():
        pm.set_adapter("default")
        refs["y.twosave.default"] = pm(ids, img)
        pm.set_adapter("second")
        refs["y.twosave.second"] = pm(ids, img)
        with pm.disable_adapter():
            refs["y.twosave.disabled"] = pm(ids, img)
    pm.save_pretrained(os.path.join(out, "twosave"), selected_adapters=["default", "second"])

    # add_weighted_adapter: "linear", "cat" and "svd" of two adapters of
    # rank 4 with a negative weight; the two are saved, the combinations
    # recorded.
    pm = get_peft_model(new_net(0), LoraConfig(r=4, lora_alpha=8,
                                               target_modules=["q_proj", "v_proj", "embed_tokens", "conv"]))
    pm.add_adapter("other", LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "c_attn", "conv"]))
    randomise(pm, 300)
    for combo in WEIGHTED:
        pm.add_weighted_adapter(["default", "other"], WEIGHTS, "w_" + combo, combination_type=combo,
                                svd_rank=SVD_RANK if combo == "svd" else None)
    pm.eval()
    with torch.no_grad():
        for combo in WEIGHTED:
            pm.set_adapter("w_" + combo)
            refs["y.weighted." + combo] = pm(ids, img)
    pm.save_pretrained(os.path.join(out, "weighted"), selected_adapters=["default", "other"])

    # PEFT's initialisations, seeded: the adapters' A and B (and the base
    # weights PiSSA rewrites) right after get_peft_model, per init.
    for init, targets in INITS.items():
        net = new_net(0)
        torch.manual_seed(7)
        pm = get_peft_model(net, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                            init_lora_weights=INIT_VALUES[init]))
        for k, v in pm.state_dict().items():
            if "lora_" in k or "base_layer.weight" in k:
                refs["init.%s.%s" % (init, k)] = v.detach().clone()

    meta = {"inits": json.dumps(list(INITS)),
            "mixed": json.dumps(MIXED), "cases": json.dumps(list(CASES) + ["two"]),
            "weights": json.dumps(WEIGHTS), "svd_rank": str(SVD_RANK)}
    # The metadata goes to refs.json: safetensors writes its metadata map
    # in hash order, which would change the file's bytes from run to run.
    save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(out, "refs.safetensors"))
    with open(os.path.join(out, "refs.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
