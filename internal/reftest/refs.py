"""Shared helpers of the PyTorch reference generators.

The generators (torch/testdata/gen_refs.py, module/testdata/gen_module.py,
lora/testdata/gen_lora.py) run from the repository root with Debian's
PyTorch (1.13.1), e.g. `/usr/bin/python3 lora/testdata/gen_lora.py`, and
import this module with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "internal", "reftest"))
    import refs

The Go side of the same tests is the package in this folder
(github.com/golora/golora/internal/reftest). This file is not a generator:
it must not be named gen_*.py nor live in a testdata folder (the Makefile
runs every */testdata/gen_*.py).

What it holds:

  setup()              deterministic settings (one thread: reductions in a
                       fixed order) and a warning off PyTorch 1.13
  here(file)           the folder of a generator, where it writes its files
  Draws(seed)          inputs from a private seeded generator, so that they
                       neither disturb nor depend on the default generator
                       that seeded ops and torch.manual_seed(seed) use;
                       besides randn, rand and randint it draws the inputs
                       the op generators share (pos, nonzero, halves, ints,
                       boolmask)
  CaseFile             the op cases of torch/testdata/gen_refs.py and
                       gen_ops_aten.py: inputs, outputs, loss weights and
                       gradients, with their "cases" metadata
  RED, sdpa_ref(),     reference implementations those two share
  conv_ref()
  write_state_dict()   a module's state_dict() as a safetensors file
  write_safetensors()  our own safetensors writer (the safetensors package
                       is not needed): 8-byte little-endian header length,
                       JSON header padded with spaces to a multiple of 8,
                       then the data back to back
"""

import json
import math
import os
import struct
import sys

import torch

# make refs (and so make test) generates the reference files with this
# PyTorch, Debian 12's python3-torch in /usr/bin/python3, the torch of the
# libtorch-dev that libcgotorch.so is built on. The files are not committed
# (.gitignore): they are regenerated on every run. Seeded draws differ
# between libtorch versions, so a run against another libtorch regenerates
# them with its own PyTorch (make test-pytorch, scripts/gpu_check.sh).
DEFAULT_TORCH = "1.13"

# safetensors dtype names of the dtypes the generators write.
ST_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def setup():
    """Make the generator deterministic: one intra-op thread, so that
    reductions run in a fixed order. Say so (on stderr) when this PyTorch
    is not the one make refs uses by default."""
    torch.set_num_threads(1)
    if not torch.__version__.startswith(DEFAULT_TORCH):
        print(f"note: generating with torch {torch.__version__}, not Debian's {DEFAULT_TORCH}: "
              f"test these files only against a libcgotorch.so built on this torch",
              file=sys.stderr)


def here(file):
    """The absolute folder of file (pass a generator's __file__)."""
    return os.path.dirname(os.path.abspath(file))


class Draws:
    """Seeded inputs from a private torch.Generator: drawing them never
    touches the default generator, so seeded ops (torch.manual_seed) and
    the inputs are independent of each other."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def randn(self, shape, dtype, draw_dtype=None):
        """Standard normal values of dtype. With draw_dtype, they are drawn
        in that dtype and converted (drawing in float64 gives float32 and
        float64 cases the same values up to rounding)."""
        if draw_dtype is None:
            return torch.randn(shape, generator=self.gen, dtype=dtype)
        return torch.randn(shape, generator=self.gen, dtype=draw_dtype).to(dtype)

    def rand(self, shape, dtype=None):
        """Uniform values in [0, 1)."""
        return torch.rand(shape, generator=self.gen, dtype=dtype)

    def randint(self, low, high, shape, dtype=None):
        """Integers in [low, high)."""
        if dtype is None:
            return torch.randint(low, high, shape, generator=self.gen)
        return torch.randint(low, high, shape, generator=self.gen, dtype=dtype)

    def pos(self, shape, dtype):
        """Values in [0.5, 2.5): safe for sqrt, rsqrt, log, pow bases,
        divisors."""
        return self.rand(shape, dtype) * 2 + 0.5

    def nonzero(self, shape, dtype):
        """Values with |x| in [0.5, 2.5) and a random sign."""
        sign = self.randint(0, 2, shape).to(dtype) * 2 - 1
        return sign * self.pos(shape, dtype)

    def halves(self, shape, dtype):
        """Multiples of 0.5 in [-2, 2]: ties for comparisons, eq, min and
        max."""
        return self.randint(-4, 5, shape).to(dtype) / 2

    def ints(self, high, shape, dtype=torch.int64):
        """Indices in [0, high)."""
        return self.randint(0, high, shape, dtype)

    def boolmask(self, shape, p=0.5):
        """A bool mask, True with probability p."""
        return self.rand(shape) < p


def tensor_bytes(t):
    """The raw little-endian bytes of t's elements, row-major."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Write tensors (a list of (name, tensor), in file order) and metadata
    (a dict of strings, stored as "__metadata__") in the safetensors format.
    The file is written under a temporary name and renamed into place."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    seen = set()
    for name, t in tensors:
        assert name not in seen, name
        seen.add(name)
        b = tensor_bytes(t)
        header[name] = {
            "dtype": ST_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # pad so the data starts 8-aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_state_dict(path, module, source):
    """Write module's state_dict() to path, with the metadata PyTorch's
    safetensors files carry and the generator (source) that wrote it."""
    write_safetensors(path, list(module.state_dict().items()), {"format": "pt", "source": source})


# ---------------------------------------------------------------------------
# Op cases: torch/testdata/gen_refs.py and gen_ops_aten.py, read by
# torch/ref_test.go and torch/ops_aten_test.go (refSuite).

RED = {"none": "none", "mean": "mean", "sum": "sum"}


def sdpa_ref(ins, p):
    """softmax(q k^T / sqrt(E) + mask) v, as PyTorch 2 defines
    F.scaled_dot_product_attention (PyTorch 1.13 has none); with
    p["groups"] > 1, k and v have fewer heads and are expanded with
    repeat_interleave on dim 1 (grouped-query attention)."""
    q, k, v = ins[0], ins[1], ins[2]
    g = p.get("groups", 1)
    if g > 1:
        k = k.repeat_interleave(g, 1)
        v = v.repeat_interleave(g, 1)
    s = q.matmul(k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if p.get("causal"):
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        s = s.masked_fill(keep.logical_not(), float("-inf"))
    if len(ins) == 4:
        m = ins[3]
        if m.dtype == torch.bool:
            s = s.masked_fill(m.logical_not(), float("-inf"))
        else:
            s = s + m
    return (s.softmax(-1).matmul(v),)


def conv_ref(conv):
    """The reference of a convolution op: conv (F.conv1d, F.conv2d) of
    input, weight and, with p["bias"], the bias ins[2]."""
    def f(ins, p):
        b = ins[2] if p["bias"] else None
        return (conv(ins[0], ins[1], b, p["stride"], p["padding"], p["dilation"], p["groups"]),)
    return f


class CaseFile:
    """The op cases of a reference file. Each case runs an op of ops
    (name -> f(inputs, params) -> tuple of outputs) and stores its inputs,
    its outputs, a fixed random weight per differentiable float output
    (drawn from draws) and the gradients of the float inputs after backward
    of loss = sum_j (out_j * w_j).sum(), as "<case>.in.<i>",
    "<case>.out.<j>", "<case>.w.<j>" and "<case>.grad.<i>". write() stores
    the "cases" metadata: a JSON list of {name, op, params, n_in, n_out,
    grad, exact, cpu_only[, truth]}."""

    def __init__(self, generator, ops, nograd_ops, draws, dt=None):
        self.generator = generator  # the generator's path, in the metadata
        self.ops = ops
        self.nograd_ops = nograd_ops  # ops with no gradient to check
        self.draws = draws
        self.dt = dt  # the file's float dtype, for truth cases
        self.tensors = []
        self.cases = []
        self.names = set()

    def case(self, name, op, inputs, params=None, nograd=(), exact=False, cpu_only=False, truth=None):
        """Add a case. Every float input not in nograd is differentiated
        (none for an op of nograd_ops), and then some output must be.
        truth (None leaves it out of the metadata) computes the reference
        in float64 and rounds its float outputs to the file's dtype."""
        assert name not in self.names, name
        self.names.add(name)
        params = params or {}
        grad = [] if op in self.nograd_ops else [
            i for i, t in enumerate(inputs) if t.is_floating_point() and i not in nograd]
        ins = []
        for i, t in enumerate(inputs):
            x = t.clone()
            if truth and x.is_floating_point():
                x = x.to(torch.float64)
            ins.append(x.requires_grad_(i in grad))
        outs = self.ops[op](ins, params)
        for i, t in enumerate(inputs):
            self.tensors.append((f"{name}.in.{i}", t))
        loss = None
        for j, o in enumerate(outs):
            if truth and o.is_floating_point():
                self.tensors.append((f"{name}.out.{j}", o.detach().to(self.dt)))
            else:
                self.tensors.append((f"{name}.out.{j}", o.detach()))
            if o.is_floating_point() and o.requires_grad:
                w = self.draws.randn(tuple(o.shape), self.dt if truth else o.dtype)
                self.tensors.append((f"{name}.w.{j}", w))
                term = (o * w.to(o.dtype)).sum()
                loss = term if loss is None else loss + term
        stored = []
        if grad:
            assert loss is not None, name
            loss.backward()
            for i in grad:
                g = ins[i].grad
                assert g is not None, (name, i)
                self.tensors.append((f"{name}.grad.{i}", g.to(inputs[i].dtype)))
                stored.append(i)
        case = {
            "name": name, "op": op, "params": params,
            "n_in": len(inputs), "n_out": len(outs), "grad": stored,
            "exact": exact, "cpu_only": cpu_only,
        }
        if truth is not None:
            case["truth"] = truth
        self.cases.append(case)

    def suffixed(self, dt, **defaults):
        """case() with the dtype's suffix (_f32, _f64) appended to the
        name and defaults for its keyword arguments."""
        s = {torch.float32: "f32", torch.float64: "f64"}[dt]

        def c(name, *a, **kw):
            self.case(f"{name}_{s}", *a, **{**defaults, **kw})
        return c

    def write(self, path, extra_meta=None):
        """Write the cases to path, with extra_meta after the generator's
        metadata."""
        meta = {"cases": json.dumps(self.cases, separators=(",", ":")),
                "generator": self.generator,
                "torch_version": torch.__version__}
        meta.update(extra_meta or {})
        write_safetensors(path, self.tensors, meta)
        print(f"{os.path.basename(path)}: {len(self.cases)} cases, {len(self.tensors)} tensors")
