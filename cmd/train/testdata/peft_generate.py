"""Greedy generation with transformers + PEFT from a cmd/train adapter (run
by train_interop_test.go): loads the adapter as a user would, from its
adapter_config.json's base_model_name_or_path, and prints, one per line,
the adapted and the base model's greedy continuation of BOS (at most
MAX_NEW tokens, stopping at EOS) as JSON strings.

usage: peft_generate.py ADAPTER MAX_NEW
"""
import json
import sys

import torch
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer

adapter, max_new = sys.argv[1], int(sys.argv[2])
model = AutoPeftModelForCausalLM.from_pretrained(adapter).eval()
base_dir = model.peft_config["default"].base_model_name_or_path
tok = AutoTokenizer.from_pretrained(base_dir)
x = tok("", return_tensors="pt")
kw = dict(max_new_tokens=max_new, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
with torch.no_grad():
    out = model.generate(**x, **kw)
    print(json.dumps(tok.decode(out[0], skip_special_tokens=True)))
    with model.disable_adapter():
        out = model.generate(**x, **kw)
    print(json.dumps(tok.decode(out[0], skip_special_tokens=True)))
