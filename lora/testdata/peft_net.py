"""The small PyTorch model that the PEFT interop tests share
(interop_peft.py writes references with it, peft_load.py loads Go's
adapters into it; lora/peft_interop_test.go builds the same in Go).

Its module paths mirror a transformer's: model.embed_tokens,
model.layers.N.self_attn.{q,k,v,o}_proj, GPT-2's Conv1D at
transformer.h.0.attn.c_attn, a Conv2d "conv" and a head "classifier".

forward(ids [B,T] int64, img [B,3,H,W]) returns [B, T*5 + 4*H*W]: the
classifier's logits and the conv's output, flattened per sample.
"""
import torch
import torch.nn as nn
from transformers.pytorch_utils import Conv1D

VOCAB, DIM, NCLS = 32, 16, 5


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(DIM, DIM)
        self.k_proj = nn.Linear(DIM, DIM)
        self.v_proj = nn.Linear(DIM, DIM, bias=False)
        self.o_proj = nn.Linear(DIM, DIM)

    def forward(self, h):
        return self.o_proj(self.q_proj(h) * torch.sigmoid(self.k_proj(h)) + self.v_proj(h))


class DecLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attn()

    def forward(self, h):
        return h + self.self_attn(h)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, DIM)
        self.layers = nn.ModuleList([DecLayer(), DecLayer()])


class C1Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(3 * DIM, DIM)  # weight [DIM, 3*DIM]: in×out


class HBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = C1Attn()


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.h = nn.ModuleList([HBlock()])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.transformer = Transformer()
        self.conv = nn.Conv2d(3, 4, 3, stride=1, padding=1)
        self.classifier = nn.Linear(DIM, NCLS)

    def forward(self, ids, img):
        h = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            h = layer(h)
        c = self.transformer.h[0].attn.c_attn(h)
        h = h + c[..., :DIM] * torch.tanh(c[..., DIM:2 * DIM]) + c[..., 2 * DIM:]
        logits = self.classifier(h)
        y = self.conv(img)
        return torch.cat([logits.flatten(1), y.flatten(1)], dim=1)


def new_net(seed=0):
    torch.manual_seed(seed)
    net = Net()
    # Conv1D starts with a zero bias and N(0, 0.02) weights; make it matter.
    with torch.no_grad():
        net.transformer.h[0].attn.c_attn.weight.normal_(0, 0.3)
        net.transformer.h[0].attn.c_attn.bias.normal_(0, 0.1)
    return net.eval()
