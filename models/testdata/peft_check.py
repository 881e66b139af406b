#!/usr/bin/env python3
"""Loads an adapter that Go saved with lora.SaveAdapter onto a real
transformers checkpoint with PEFT, as a user would, and writes PEFT's logits
(lora_interop_test.go, TestInteropGoAdaptersLoadInPEFT).

Usage:
  peft_check.py BASE ADAPTER IDS OUT [--adapters NAME,...] [--mixed NAME,...]

  BASE     a Hugging Face checkpoint directory
  ADAPTER  the adapter directory: PeftModel.from_pretrained(
           AutoModelForCausalLM.from_pretrained(BASE), ADAPTER); with
           --adapters, each further name is loaded from ADAPTER/<name> with
           load_adapter, as save_pretrained lays several adapters out
  IDS      a safetensors file with int64 input_ids [B, T]
  OUT      written: float32 logits [B, T, V] with "default" active,
           logits.<name> with each further adapter active, and mixed:
           forward(adapter_names=--mixed), one adapter per sample

Fails (exit 1, the reasons on stderr) unless, for every adapter, the file's
keys are exactly those PEFT's state dict has for it (no missing, no
unexpected key: get_peft_model_state_dict, and set_peft_model_state_dict's
own report), PEFT read the file's values, PEFT warned about no missing
adapter key, and every LoRA layer changes the output (turning it off
changes the logits).
"""

import argparse
import os
import sys
import warnings

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

torch.set_num_threads(1)
hf_logging.disable_progress_bar()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("adapter")
    p.add_argument("ids")
    p.add_argument("out")
    p.add_argument("--adapters", default="default")
    p.add_argument("--mixed", default="")
    a = p.parse_args()
    names = a.adapters.split(",")
    if names[0] != "default":
        sys.exit("peft_check.py: --adapters must start with default")

    problems = []
    base = AutoModelForCausalLM.from_pretrained(a.base, attn_implementation="eager", dtype=torch.float32).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(base, a.adapter, adapter_name="default")
        for n in names[1:]:
            res = pm.load_adapter(os.path.join(a.adapter, n), adapter_name=n)
            if res.missing_keys or res.unexpected_keys:
                problems.append(f"{n}: load_adapter: missing {res.missing_keys}, unexpected {res.unexpected_keys}")
    for w in caught:
        if "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower():
            problems.append(f"PEFT warned: {w.message}")
    pm.eval()

    for n in names:
        d = a.adapter if n == "default" else os.path.join(a.adapter, n)
        f = load_file(os.path.join(d, "adapter_model.safetensors"))
        # What PEFT itself would save for this adapter (the base embedding
        # weights that save_embedding_layers="auto" adds are not adapter keys).
        sd = get_peft_model_state_dict(pm, adapter_name=n, save_embedding_layers=False)
        if set(f) - set(sd):
            problems.append(f"{n}: unexpected keys in the file: {sorted(set(f) - set(sd))}")
        if set(sd) - set(f):
            problems.append(f"{n}: keys missing from the file: {sorted(set(sd) - set(f))}")
        for k in sorted(set(f) & set(sd)):
            if f[k].shape != sd[k].shape:
                problems.append(f"{n}: {k}: shape {list(f[k].shape)}, PEFT's {list(sd[k].shape)}")
            elif not torch.equal(f[k], sd[k].to(f[k].dtype)):
                problems.append(f"{n}: {k}: PEFT holds other values than the file")
        # PEFT's own loader's report on the file, filtered as load_adapter
        # filters it (adapter keys only).
        res = set_peft_model_state_dict(pm, f, adapter_name=n)
        miss = [k for k in res.missing_keys if "lora_" in k and n in k]
        if miss or res.unexpected_keys:
            problems.append(f"{n}: set_peft_model_state_dict: missing {miss}, unexpected {res.unexpected_keys}")

    ids = load_file(a.ids)["input_ids"]
    out = {}
    with torch.no_grad():
        for n in names:
            pm.set_adapter(n)
            y = pm(input_ids=ids).logits.float()
            out["logits" if n == "default" else "logits." + n] = y
            # Every LoRA layer of this adapter changes the output.
            layers = [(k, m) for k, m in pm.named_modules() if isinstance(m, LoraLayer) and (n in m.lora_A or n in m.lora_embedding_A)]
            if not layers:
                problems.append(f"{n}: PEFT has no LoRA layer for it")
            for k, m in layers:
                m._disable_adapters = True
                y0 = pm(input_ids=ids).logits.float()
                m._disable_adapters = False
                if (y0 - y).abs().max() <= 1e-6 * y.abs().max():
                    problems.append(f"{n}: LoRA layer {k} does not change the output")
        if a.mixed:
            pm.set_adapter("default")
            out["mixed"] = pm(input_ids=ids, adapter_names=a.mixed.split(",")).logits.float()

    if problems:
        for m in problems:
            print("peft_check.py:", m, file=sys.stderr)
        sys.exit(1)
    save_file({k: v.contiguous() for k, v in out.items()}, a.out)
    print(f"peft_check.py: {names} loaded with no missing or unexpected key; {len(out)} outputs")


if __name__ == "__main__":
    main()
