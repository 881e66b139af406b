#!/usr/bin/env python3
"""Check gen_schedule.py's copies of transformers' schedule functions
against transformers itself. Not a generator (make refs does not run it):
run it by hand, from the repository root, with a Python that has torch and
transformers, e.g.

    /tmp/venv/bin/python3 optim/schedule/testdata/crosscheck_transformers.py

It does not involve Go. It checks

 1. code: each function gen_schedule.py copies (COPIED_FROM_TRANSFORMERS)
    is the same code as transformers.optimization's function of that name:
    their ASTs, docstrings left out, are equal. A mismatch is reported, not
    fatal by itself (transformers may reformat): check 2 decides.
 2. values: every case of gen_schedule.cases, run once with the copies and
    once with transformers.optimization's own functions (with this Python's
    torch), gives bit-identical learning rates at every step.
 3. file: when optim/schedule/testdata/schedules.safetensors exists (written
    by make refs with Debian's torch), its learning rates equal the ones of
    check 2, bit for bit (torch.optim.lr_scheduler gives the same floats
    across these torch versions).

It exits 1 when check 2 or 3 finds a difference.
"""

import ast
import inspect
import json
import os
import struct
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]  # not the Go folder torch/
sys.path.insert(0, HERE)

import torch  # noqa: E402
import transformers  # noqa: E402
import transformers.optimization as tf_opt  # noqa: E402

import gen_schedule  # noqa: E402


def code_without_docstrings(fn):
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:]
    return ast.dump(tree)


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F64", (name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = list(struct.unpack(f"<{(e - b) // 8}d", data[b:e]))
    return out, header.get("__metadata__", {})


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__} "
          f"(copies from transformers {gen_schedule.TRANSFORMERS_VERSION})")
    ok = True

    same_code = 0
    for name in gen_schedule.COPIED_FROM_TRANSFORMERS:
        theirs = getattr(tf_opt, name, None)
        if theirs is None:
            print(f"code: transformers.optimization has no {name}")
        elif code_without_docstrings(theirs) != code_without_docstrings(getattr(gen_schedule, name)):
            print(f"code: {name} differs from transformers'")
        else:
            same_code += 1
    print(f"code: {same_code}/{len(gen_schedule.COPIED_FROM_TRANSFORMERS)} copied functions are "
          f"transformers' code (docstrings aside)")

    ours = {c["name"]: gen_schedule.run(c) for c in gen_schedule.cases(gen_schedule)}
    theirs_cases = gen_schedule.cases(tf_opt)
    n_tf = n_steps = 0
    for c in theirs_cases:
        got = gen_schedule.run(c)
        want = ours[c["name"]]
        uses_tf = "transformers" in c["reference"]
        n_tf += uses_tf
        n_steps += len(got)
        if got != want:
            ok = False
            bad = [i for i in range(len(got)) if got[i] != want[i]]
            print(f"values: {c['name']}: {len(bad)} steps differ, first at step {bad[0]}: "
                  f"copy {want[bad[0]]!r}, transformers {got[bad[0]]!r}")
    print(f"values: {len(theirs_cases)} cases ({n_tf} through transformers' functions), {n_steps} steps: "
          + ("copies and transformers bit-identical" if ok else "DIFFERENCES"))

    path = os.path.join(HERE, "schedules.safetensors")
    if os.path.exists(path):
        saved, meta = read_safetensors(path)
        diff = 0
        for name, lrs in ours.items():
            if saved.get(name) != lrs:
                diff += 1
                print(f"file: {name} differs from {os.path.relpath(path)} (written with torch {meta.get('torch')})")
        extra = set(saved) - set(ours)
        if extra:
            diff += 1
            print(f"file: unexpected cases {sorted(extra)}")
        ok = ok and diff == 0
        print(f"file: {len(saved)} cases in {os.path.relpath(path)} (torch {meta.get('torch')}): "
              + ("bit-identical to this torch + transformers" if diff == 0 else "DIFFERENCES"))
    else:
        print(f"file: {os.path.relpath(path)} not found (run make refs); skipped")

    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
