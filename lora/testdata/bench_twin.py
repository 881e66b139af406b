#!/usr/bin/python3
"""PyTorch twin of lora/bench_test.go: the same training step of the spec's
LoRA Linear class, timed with timeit.

    /usr/bin/python3 lora/testdata/bench_twin.py [--threads N] [--samples N] [--budget S]

For each shape (in x out, r, batch) it times, per iteration:

  fwd+bwd   y = layer(x); y.sum().backward(); layer.zero_grad(set_to_none=True)
  fwd       y = layer(x)            (autograd recording on, as in training)
  merged    F.linear(x, W0 + B.A.scaling, b)   (inference after merging)

float32, seeded weights, a non-zero lora_b, x without requires_grad: the
same setup as bench_test.go. Each row is timed in --samples samples of
about --budget seconds; it prints the fastest sample (the least disturbed
by other load) and the median, in microseconds per iteration.
"""

import argparse
import os
import statistics
import sys
import timeit

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_lora import Linear  # noqa: E402  the spec's class, seeded like golora

SHAPES = [(16, 16, 4, 1), (64, 64, 8, 64), (1024, 1024, 8, 64)]


def setup(fin, fout, r, batch):
    torch.manual_seed(0)
    layer = Linear(fin, fout, True, r)
    with torch.no_grad():
        layer.lora_b.copy_(torch.randn(fout, r))
    x = torch.randn(batch, fin)
    return layer, x


def step(layer, x):
    y = layer(x)
    y.sum().backward()
    layer.zero_grad(set_to_none=True)


def measure(fn, samples, budget):
    """Per-call seconds of the fastest and the median of samples runs of
    about budget seconds each."""
    fn()  # warm up
    t = timeit.Timer(fn)
    n, took = t.autorange()
    n = max(1, int(n * budget / max(took, 1e-9)))
    runs = sorted(x / n for x in t.repeat(repeat=samples, number=n))
    return runs[0], statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--budget", type=float, default=0.2, help="seconds per sample")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    for fin, fout, r, batch in SHAPES:
        name = f"{fin}x{fout}_r{r}_b{batch}"
        layer, x = setup(fin, fout, r, batch)
        with torch.no_grad():
            merged_w = layer.weight + layer.lora_b @ layer.lora_a * layer.scaling
        rows = [
            ("fwd+bwd", lambda: step(layer, x)),
            ("fwd", lambda: layer(x)),
            ("merged", lambda: F.linear(x, merged_w, layer.bias)),
        ]
        for what, fn in rows:
            lo, med = measure(fn, args.samples, args.budget)
            print(f"{name:18s} {what:8s} min {lo * 1e6:10.1f} us  median {med * 1e6:10.1f} us")


if __name__ == "__main__":
    main()
