#!/usr/bin/python3
"""PyTorch twin of optim/bench_test.go's BenchmarkAdamWStep: one
torch.optim.AdamW step over 8 float32 tensors of 64x8 with gradients set,
the step alone, timed with timeit.

    /usr/bin/python3 optim/testdata/bench_twin.py [--threads N] [--samples N] [--budget S]

It times AdamW as PyTorch runs it by default on the CPU (foreach=False:
the single-tensor loop that golora fuses into one C call) and, for
reference, with foreach=True (the multi-tensor ops). Each row is timed in
--samples samples of about --budget seconds; it prints the fastest sample
(the least disturbed by other load) and the median, in microseconds per
step.
"""

import argparse
import statistics
import timeit

import torch


def setup(n, shape, foreach):
    torch.manual_seed(0)
    ps = [torch.randn(shape, requires_grad=True) for _ in range(n)]
    for p in ps:
        p.grad = torch.randn(shape)
    opt = torch.optim.AdamW(ps, lr=1e-3, foreach=foreach)
    opt.step()  # allocate the state
    return opt


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
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: libtorch's default)")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for foreach in (False, True):
        opt = setup(8, (64, 8), foreach)
        best, med = measure(opt.step, args.samples, args.budget)
        print(f"AdamW.step 8x(64x8) float32 foreach={foreach!s:5}  best {best * 1e6:8.1f} us  median {med * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
