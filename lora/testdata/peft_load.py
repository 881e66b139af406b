#!/usr/bin/env python3
"""Loads adapters that lora/peft_interop_test.go saved with lora.SaveAdapter
into PEFT (PeftModel.from_pretrained / load_adapter) and reports, as JSON
on stdout:

  keys:    {"<case>/<adapter>": ""} or the mismatch: the file's keys must
           be exactly get_peft_model_state_dict's (no missing, no
           unexpected key) and the loaded values the file's;
  changed: {"<case>": {"<module>": bool}}: whether turning that LoRA layer
           off changes the output (every one must);
  outputs: {"<case>/<run>": [floats]}: the outputs for dir/inputs.safetensors.

Usage: peft_load.py DIR   (DIR holds manifest.json, base.safetensors,
inputs.safetensors and one directory per case).
"""
import json
import os
import sys
import warnings

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peft_net import Net  # noqa: E402

from peft import PeftModel  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402

warnings.simplefilter("ignore")


def main():
    torch.set_num_threads(1)
    d = sys.argv[1]
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    base = load_file(os.path.join(d, "base.safetensors"))
    inp = load_file(os.path.join(d, "inputs.safetensors"))
    ids, img = inp["ids"], inp["img"]
    res = {"outputs": {}, "keys": {}, "changed": {}}
    for case, spec in manifest.items():
        net = Net()
        net.load_state_dict(base)
        net.eval()
        cdir = os.path.join(d, case)
        pm = None
        for a in spec["adapters"]:
            adir = cdir if a == "default" else os.path.join(cdir, a)
            if pm is None:
                pm = PeftModel.from_pretrained(net, adir, adapter_name=a)
            else:
                pm.load_adapter(adir, adapter_name=a)
            f = load_file(os.path.join(adir, "adapter_model.safetensors"))
            sd = get_peft_model_state_dict(pm, adapter_name=a)
            msg = []
            if set(f) - set(sd):
                msg.append("unexpected: %s" % sorted(set(f) - set(sd)))
            if set(sd) - set(f):
                msg.append("missing: %s" % sorted(set(sd) - set(f)))
            for k in set(f) & set(sd):
                if not torch.equal(f[k], sd[k].to(f[k].dtype).cpu()):
                    msg.append("value differs: %s" % k)
            res["keys"][case + "/" + a] = "; ".join(msg)
        pm.eval()
        with torch.no_grad():
            for i, run in enumerate(spec["runs"]):
                key = "%s/%d" % (case, i)
                if run.get("mixed"):
                    pm.set_adapter("default")
                    y = pm(ids, img, adapter_names=run["mixed"])
                else:
                    pm.base_model.set_adapter(run["active"])
                    y = pm(ids, img)
                res["outputs"][key] = y.flatten().tolist()
            # Every LoRA layer changes the output: each adapter active
            # alone (PEFT allows one active adapter per module to save),
            # every layer holding it turned off in turn.
            ch = {}
            for a in spec["adapters"]:
                pm.base_model.set_adapter([a])
                y = pm(ids, img)
                for n, m in pm.named_modules():
                    if isinstance(m, LoraLayer) and (a in m.lora_A or a in m.lora_embedding_A):
                        m._disable_adapters = True
                        ch[n] = ch.get(n, False) or not torch.allclose(pm(ids, img), y, rtol=0, atol=1e-6)
                        m._disable_adapters = False
            res["changed"][case] = ch
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
