#!/usr/bin/python3
"""Generate the reference files that module/*_test.go check golora against.

Run from the repository root with Debian's PyTorch (1.13.1):

    /usr/bin/python3 module/testdata/gen_module.py

It writes, under module/testdata/:

  module_refs.safetensors
      references from real torch.nn modules:
        linear.<case>.weight / .bias     nn.Linear right after
                                         torch.manual_seed(seed)
        embedding.<case>.weight          nn.Embedding right after
                                         torch.manual_seed(seed)
        layernorm.<case>.{x,weight,bias,w,out,grad_x,grad_weight,grad_bias}
                                         nn.LayerNorm forward and backward
        dropout.<case>.{x,w,out,grad_x}  nn.Dropout in train mode, forward
                                         right after torch.manual_seed(seed)
        seq.<case>.{x,w,out,grad_x}      nn.Sequential of Linears (and a
        seq.<case>.param.<name>          Dropout), built after
        seq.<case>.grad.<name>           torch.manual_seed(seed); forward in
                                         train mode after
                                         torch.manual_seed(seed + 1)
        net.{ids,out}                    forward of the model in
                                         net_state.safetensors
      Its "__metadata__" holds JSON lists of the cases of each kind
      ("linear", "embedding", "layernorm", "dropout", "seq") and "net_order",
      the model's named_parameters() order.
      Backward uses loss = (out * w).sum() with a fixed random w.

  net_state.safetensors
      the state_dict() of a small nested model (Net below), for module.Load:
      embed (Embedding 10x4), pos (a parameter of Net itself), blocks
      (Sequential of Linear 4->8 and Linear 8->4), norm (LayerNorm 4), head
      (Linear 4->3).

  bert_emb_state.safetensors
      the state_dict() of BERT's embeddings (BertEmb below): word and
      position embeddings, a LayerNorm and the persistent int64 buffer
      position_ids (1 x 6); module_refs holds bert.{ids,out}, its forward.

The output is deterministic: inputs come from a private seeded generator,
and seeded constructions reseed the default generator themselves. The
safetensors writer, the private generator and the deterministic setup are
shared with the other generators: internal/reftest/refs.py.
"""

import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "internal", "reftest"))
import refs  # noqa: E402
from refs import write_safetensors  # noqa: E402

HERE = refs.here(__file__)

refs.setup()

DT_NAMES = {torch.float32: "float32", torch.float64: "float64"}
DTYPES = {"float32": torch.float32, "float64": torch.float64}

D = refs.Draws(20240611)


def randn(shape, dt):
    # Drawn in float64 and rounded: float32 and float64 cases share values.
    return D.randn(shape, dt, draw_dtype=torch.float64)


def backward(out, inputs):
    """Backward of (out * w).sum() for a fixed random w; returns w and the
    gradients of inputs."""
    w = randn(out.shape, out.dtype)
    grads = torch.autograd.grad((out * w).sum(), inputs)
    return w, grads


tensors = []
meta = {}


def add(name, t):
    tensors.append((name, t))


# --- nn.Linear init --------------------------------------------------------
linear_cases = []
for in_f, out_f, bias, seed, dt in [
    (3, 4, True, 0, torch.float32),
    (5, 2, False, 1, torch.float32),
    (16, 8, True, 42, torch.float32),
    (1, 1, True, 7, torch.float32),
    (7, 3, True, 123, torch.float64),
    (32, 5, False, 2024, torch.float64),
    (64, 48, True, 31337, torch.float32),
]:
    name = "linear.%dx%d.%s.s%d.%s" % (in_f, out_f, "b" if bias else "nb", seed, DT_NAMES[dt])
    torch.manual_seed(seed)
    m = nn.Linear(in_f, out_f, bias=bias, dtype=dt)
    add(name + ".weight", m.weight)
    if bias:
        add(name + ".bias", m.bias)
    linear_cases.append(
        {"name": name, "in": in_f, "out": out_f, "bias": bias, "seed": seed, "dtype": DT_NAMES[dt]}
    )
meta["linear"] = json.dumps(linear_cases)

# --- nn.Embedding init and lookup ----------------------------------------
embedding_cases = []
for num, dim, seed, dt in [
    (10, 4, 0, torch.float32),
    (7, 3, 5, torch.float64),
    (100, 16, 99, torch.float32),
]:
    name = "embedding.%dx%d.s%d.%s" % (num, dim, seed, DT_NAMES[dt])
    torch.manual_seed(seed)
    m = nn.Embedding(num, dim, dtype=dt)
    ids = D.randint(0, num, (2, 3), torch.int64)
    add(name + ".weight", m.weight)
    add(name + ".ids", ids)
    add(name + ".out", m(ids))
    embedding_cases.append({"name": name, "num": num, "dim": dim, "seed": seed, "dtype": DT_NAMES[dt]})
meta["embedding"] = json.dumps(embedding_cases)

# --- nn.LayerNorm forward and backward -----------------------------------
layernorm_cases = []
for xshape, nshape, dt in [
    ([2, 3, 5], [5], torch.float32),
    ([2, 3, 5], [3, 5], torch.float32),
    ([4, 8], [8], torch.float64),
    ([2, 3, 5], [3, 5], torch.float64),
]:
    name = "layernorm.%s.%s.%s" % (
        "x".join(map(str, xshape)),
        "x".join(map(str, nshape)),
        DT_NAMES[dt],
    )
    m = nn.LayerNorm(nshape, dtype=dt)
    assert m.eps == 1e-5
    with torch.no_grad():
        m.weight.copy_(1 + 0.5 * randn(nshape, dt))
        m.bias.copy_(randn(nshape, dt))
    x = (3 * randn(xshape, dt) + 1).requires_grad_()
    out = m(x)
    w, (gx, gw, gb) = backward(out, [x, m.weight, m.bias])
    for k, v in [
        ("x", x), ("weight", m.weight), ("bias", m.bias), ("w", w), ("out", out),
        ("grad_x", gx), ("grad_weight", gw), ("grad_bias", gb),
    ]:
        add(name + "." + k, v)
    layernorm_cases.append({"name": name, "shape": nshape, "dtype": DT_NAMES[dt]})
meta["layernorm"] = json.dumps(layernorm_cases)

# --- nn.Dropout in train mode --------------------------------------------
dropout_cases = []
for shape, p, seed, dt in [
    ([4, 8], 0.3, 0, torch.float32),
    ([3, 5, 7], 0.5, 11, torch.float64),
    ([64], 0.1, 2, torch.float32),
]:
    name = "dropout.%s.p%g.s%d.%s" % ("x".join(map(str, shape)), p, seed, DT_NAMES[dt])
    m = nn.Dropout(p)
    m.train()
    x = randn(shape, dt).requires_grad_()
    torch.manual_seed(seed)
    out = m(x)
    w, (gx,) = backward(out, [x])
    for k, v in [("x", x), ("w", w), ("out", out), ("grad_x", gx)]:
        add(name + "." + k, v)
    dropout_cases.append({"name": name, "p": p, "seed": seed, "dtype": DT_NAMES[dt]})
meta["dropout"] = json.dumps(dropout_cases)

# --- nn.Sequential forward and backward ----------------------------------
# layers: a list of ("linear", in, out) or ("dropout", p).
seq_cases = []
for tag, layers, batch, seed, dt in [
    ("mlp", [("linear", 4, 6), ("linear", 6, 3)], [5], 3, torch.float32),
    ("mlp", [("linear", 4, 6), ("linear", 6, 3)], [5], 3, torch.float64),
    ("deep", [("linear", 8, 16), ("linear", 16, 16), ("linear", 16, 2)], [2, 3], 17, torch.float32),
    ("drop", [("linear", 4, 6), ("dropout", 0.25), ("linear", 6, 3)], [5], 8, torch.float32),
]:
    name = "seq.%s.s%d.%s" % (tag, seed, DT_NAMES[dt])
    torch.manual_seed(seed)
    mods = []
    for spec in layers:
        if spec[0] == "linear":
            mods.append(nn.Linear(spec[1], spec[2], dtype=dt))
        else:
            mods.append(nn.Dropout(spec[1]))
    m = nn.Sequential(*mods)
    m.train()
    params = list(m.named_parameters())
    x = randn(batch + [layers[0][1]], dt).requires_grad_()
    torch.manual_seed(seed + 1)
    out = m(x)
    w, grads = backward(out, [x] + [p for _, p in params])
    add(name + ".x", x)
    add(name + ".w", w)
    add(name + ".out", out)
    add(name + ".grad_x", grads[0])
    for (pn, p), g in zip(params, grads[1:]):
        add(name + ".param." + pn, p)
        add(name + ".grad." + pn, g)
    seq_cases.append(
        {
            "name": name,
            "layers": [list(s) for s in layers],
            "seed": seed,
            "dtype": DT_NAMES[dt],
            "params": [pn for pn, _ in params],
        }
    )
meta["seq"] = json.dumps(seq_cases)


# --- a nested model's state dict -----------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.pos = nn.Parameter(torch.zeros(4))
        self.blocks = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 4))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)

    def forward(self, ids):
        h = self.embed(ids) + self.pos
        h = self.blocks(h)
        h = self.norm(h)
        return self.head(h)


torch.manual_seed(1234)
net = Net()
with torch.no_grad():
    # Make every tensor non-trivial (LayerNorm starts at ones/zeros).
    for _, p in net.named_parameters():
        p.add_(0.1 * randn(p.shape, p.dtype))
ids = torch.tensor([[1, 2, 3], [9, 0, 4]], dtype=torch.int64)
with torch.no_grad():
    net_out = net(ids)
add("net.ids", ids)
add("net.out", net_out)
meta["net_order"] = json.dumps([n for n, _ in net.named_parameters()])



# --- a persistent int64 buffer: BERT's embeddings ---------------------------
class BertEmb(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(12, 4)
        self.position_embeddings = nn.Embedding(6, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.register_buffer("position_ids", torch.arange(6).expand((1, -1)), persistent=True)

    def forward(self, ids):
        pos = self.position_ids[:, : ids.size(1)]
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos))


torch.manual_seed(77)
bert = BertEmb()
with torch.no_grad():
    bert.LayerNorm.weight.add_(0.1 * randn([4], torch.float32))
    bert.LayerNorm.bias.add_(0.1 * randn([4], torch.float32))
bert_ids = torch.tensor([[3, 1, 4, 1], [5, 9, 2, 6]], dtype=torch.int64)
with torch.no_grad():
    add("bert.ids", bert_ids)
    add("bert.out", bert(bert_ids))

write_safetensors(os.path.join(HERE, "module_refs.safetensors"), tensors, meta)
refs.write_state_dict(os.path.join(HERE, "net_state.safetensors"), net, "module/testdata/gen_module.py")
refs.write_state_dict(os.path.join(HERE, "bert_emb_state.safetensors"), bert, "module/testdata/gen_module.py")
print("wrote %d reference tensors and two state dicts" % len(tensors))
