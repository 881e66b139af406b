"""Checks a cmd/train output with transformers and PEFT (run by
train_interop_test.go at test time, with the interop venv's Python).

usage: peft_check.py BASE ADAPTER OUT.json TEXT

Loads BASE with AutoModelForCausalLM and AutoTokenizer, the adapter with
PeftModel.from_pretrained exactly as a user would, and writes to OUT.json:
the tokenizer's ids of TEXT, the base's and the adapted model's float32
logits of those ids (flattened), the adapter's base_model_name_or_path as
PEFT read it, and the missing/unexpected keys PEFT reported on load.
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base_dir, adapter_dir, out_path, text = sys.argv[1:5]
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(base_dir)
ids = tok(text).input_ids
base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
x = torch.tensor([ids])
with torch.no_grad():
    base_logits = base(x).logits[0].flatten().tolist()
model = PeftModel.from_pretrained(base, adapter_dir).eval()
with torch.no_grad():
    lora_logits = model(x).logits[0].flatten().tolist()
# Load the adapter's weights again and compare with what PEFT holds, to
# catch keys it would drop silently.
from safetensors.torch import load_file
sd = load_file(f"{adapter_dir}/adapter_model.safetensors")
held = {k: v for k, v in model.state_dict().items() if "lora_" in k}
held = {k.replace(".default", ""): v for k, v in held.items()}
missing = sorted(set(held) - set(sd))
unexpected = sorted(set(sd) - set(held))
json.dump({
    "ids": ids,
    "base_logits": base_logits,
    "lora_logits": lora_logits,
    "base_model_name_or_path": model.peft_config["default"].base_model_name_or_path,
    "missing": missing,
    "unexpected": unexpected,
}, open(out_path, "w"))
