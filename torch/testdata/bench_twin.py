#!/usr/bin/python3
"""Python twin of torch/bench_test.go: the same ops, timed with timeit.

Run from the repository root with Debian's PyTorch:

    /usr/bin/python3 torch/testdata/bench_twin.py

Prints ns/op for a 4x4 mm, a 4x4 add and a 1024x1024 float32 mm (with
GFLOP/s), each the best of several timeit repeats, as `go test -bench`
reports its figures.
"""

import timeit

import torch


def bench(name, stmt, number, repeat=7, flops=None):
    timeit.timeit(stmt, number=max(1, number // 10))  # warm up
    best = min(timeit.repeat(stmt, number=number, repeat=repeat)) / number
    line = f"{name:<24} {best * 1e9:12.1f} ns/op"
    if flops:
        line += f" {flops / best / 1e9:10.2f} GFLOP/s"
    print(line)


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    a4, b4 = torch.randn(4, 4), torch.randn(4, 4)
    a1k, b1k = torch.randn(1024, 1024), torch.randn(1024, 1024)
    bench("DispatchMM4x4", lambda: torch.mm(a4, b4), 200_000)
    bench("DispatchAdd", lambda: torch.add(a4, b4), 200_000)
    bench("MM1024", lambda: torch.mm(a1k, b1k), 20, repeat=5, flops=2 * 1024 ** 3)


if __name__ == "__main__":
    main()
