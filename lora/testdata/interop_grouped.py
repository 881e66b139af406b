#!/usr/bin/env python3
"""References for lora/grouped_interop_test.go: LoRA on a grouped Conv2d
(groups=2), written with the real PEFT (0.21.2). Run from the repository
root with the interop venv's Python (make interop).

PEFT builds lora_A as a Conv2d over all in channels with the base's kernel,
stride and padding ([r, in, kh, kw]) and lora_B as a 1x1 Conv2d with the
base's groups ([out, r/groups, 1, 1]). Writes peft_grouped/:

  base.safetensors       the base conv (conv.weight, conv.bias)
  adapter/               save_pretrained of the adapter (random values)
  refs.safetensors       x, y (the adapted output), g and grad.<name> (the
                         gradients of (y*g).sum() for lora_A and lora_B)

With an argument DIR (the Go test's output: DIR/base.safetensors,
DIR/adapter/, DIR/x.safetensors) it instead loads Go's adapter with
PeftModel.from_pretrained and writes DIR/y.safetensors.
"""
import os
import shutil
import sys
import warnings

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from peft import LoraConfig, PeftModel, get_peft_model

warnings.simplefilter("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)

    def forward(self, x):
        return self.conv(x)


def main():
    torch.set_num_threads(1)
    if len(sys.argv) == 2:
        d = sys.argv[1]
        net = Net()
        net.load_state_dict(load_file(os.path.join(d, "base.safetensors")))
        pm = PeftModel.from_pretrained(net, os.path.join(d, "adapter"))
        pm.eval()
        with torch.no_grad():
            y = pm(load_file(os.path.join(d, "x.safetensors"))["x"])
        save_file({"y": y.contiguous()}, os.path.join(d, "y.safetensors"))
        return
    out = os.path.join(HERE, "peft_grouped")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(0)
    net = Net()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(out, "base.safetensors"))
    pm = get_peft_model(net, LoraConfig(r=4, lora_alpha=8, target_modules=["conv"]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    pm.eval()
    x = torch.randn(2, 4, 7, 7, generator=g)
    y = pm(x)
    gy = torch.randn(y.shape, generator=g)
    (y * gy).sum().backward()
    refs = {"x": x, "y": y.detach(), "g": gy}
    for n, p in pm.named_parameters():
        if p.grad is not None:
            refs["grad." + n] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(out, "refs.safetensors"))
    pm.save_pretrained(os.path.join(out, "adapter"))


if __name__ == "__main__":
    main()
