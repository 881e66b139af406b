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
                       that seeded ops and torch.manual_seed(seed) use
  write_safetensors()  our own safetensors writer (the safetensors package
                       is not needed): 8-byte little-endian header length,
                       JSON header padded with spaces to a multiple of 8,
                       then the data back to back
"""

import json
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
