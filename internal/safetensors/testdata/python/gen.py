"""Regenerates the safetensors files in this directory with the reference
Python implementation (pip install safetensors==0.8.0 numpy):

    python gen.py

single.safetensors: one tensor of every dtype the Go codec knows, written by
safetensors.serialize_file. sharded/: the same tensors split into two shards
plus a model.safetensors.index.json laid out as transformers writes it
(json.dumps(index, indent=2, sort_keys=True) + "\n"). The Go tests hard-code
the expected values below.
"""

import json
import os

import numpy as np
import safetensors
from safetensors import TensorSpec, serialize_file

HERE = os.path.dirname(os.path.abspath(__file__))


def tensors():
    return {
        "f64": np.array([[0.0, 0.25], [0.5, -0.75]], dtype=np.float64),
        "f32": np.array([[1.5, -2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32),
        "f16": np.array([1.0, 2.0, 0.5], dtype=np.float16),
        # bfloat16 1.0 and -2.0; numpy has no bfloat16, so raw uint16 bits.
        "bf16": np.array([0x3F80, 0xC000], dtype=np.uint16),
        "i64": np.array(42, dtype=np.int64),  # scalar
        "i32": np.array([-1, 2], dtype=np.int32),
        "i16": np.array([3, -4], dtype=np.int16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": np.array([0, 255, 7], dtype=np.uint8),
        "mask": np.array([[True, False], [False, True]]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def save(path, ts, metadata):
    specs = {}
    for name, a in ts.items():
        assert a.flags.c_contiguous
        dtype = "bfloat16" if name == "bf16" else a.dtype.name
        specs[name] = TensorSpec(dtype=dtype, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)
    serialize_file(specs, path, metadata=metadata)
    os.chmod(path, 0o644)


def main():
    ts = tensors()
    md = {"format": "np", "writer": "safetensors " + safetensors.__version__}
    save(os.path.join(HERE, "single.safetensors"), ts, md)

    shard_dir = os.path.join(HERE, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    names = sorted(ts)
    groups = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    total = 0
    for i, group in enumerate(groups, 1):
        fname = "model-%05d-of-%05d.safetensors" % (i, len(groups))
        save(os.path.join(shard_dir, fname), {n: ts[n] for n in group}, {"format": "pt"})
        for n in group:
            weight_map[n] = fname
            total += ts[n].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
