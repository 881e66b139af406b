#!/usr/bin/python3
"""Python twin of torch/bench_test.go: the same ops, timed with timeit.

Run from the repository root with Debian's PyTorch:

    /usr/bin/python3 torch/testdata/bench_twin.py

prints ns/op for a 4x4 mm, a 4x4 add and a 1024x1024 float32 mm (with
GFLOP/s), each the best of several timeit repeats, as `go test -bench`
reports its figures. Beside wall time it reports the CPU time of the
process per op (cpu-ns/op, as bench_test.go does): on a loaded machine
wall time also counts the time other processes held the CPU.

To compare with Go in one run, build the Go benchmarks first and pass the
binary; the script then alternates rounds of Go and Python (so that both
sides see the same machine load), and reports the minimum of each side and
the ratio Go/Python:

    go test -c -o /tmp/torch.test ./torch
    /usr/bin/python3 torch/testdata/bench_twin.py --go /tmp/torch.test --rounds 9

Each Go round runs the test binary once (`-test.bench` with
`-test.benchtime Nx`, N = --number), so a round of either side times N calls
of each op after a warm-up.
"""

import argparse
import os
import re
import subprocess
import time
import timeit

import torch

DISPATCH = ("DispatchMM4x4", "DispatchAdd")


class Stamp:
    """A timeit timer reading that holds wall and CPU time together."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter_ns(), time.process_time_ns()

    def __sub__(self, other):
        return (self.wall - other.wall, self.cpu - other.cpu)


def py_round(stmts, number, env):
    """Times number calls of each statement once; returns (wall, cpu) ns/op
    by name."""
    out = {}
    for name, stmt in stmts.items():
        t = timeit.Timer(stmt, globals=env, timer=Stamp)
        t.timeit(number=max(1, number // 10))  # warm up
        wall, cpu = t.timeit(number=number)
        out[name] = (wall / number, cpu / number)
    return out


def go_round(binary, names, number):
    """Runs the Go benchmarks names once; returns (wall, cpu) ns/op by
    name."""
    pattern = "^Benchmark(" + "|".join(names) + ")$"
    res = subprocess.run(
        [os.path.abspath(binary), "-test.run", "NONE", "-test.bench", pattern,
         "-test.benchtime", f"{number}x", "-test.count", "1"],
        cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
        capture_output=True, text=True, check=True)
    out = {}
    for line in res.stdout.splitlines():
        m = re.match(r"Benchmark(\w+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op.*?\s([\d.]+) cpu-ns/op", line)
        if m:
            out[m.group(1)] = (float(m.group(3)), float(m.group(4)))
    missing = set(names) - set(out)
    if missing:
        raise SystemExit(f"go benchmarks {sorted(missing)} missing from:\n{res.stdout}{res.stderr}")
    return out


def compare(args, stmts, env):
    """Alternates Go and Python rounds and prints the minima and ratios."""
    go, py = {n: [] for n in DISPATCH}, {n: [] for n in DISPATCH}
    for r in range(args.rounds):
        sides = [("go", go), ("py", py)]
        if r % 2:
            sides.reverse()  # neither side always runs first
        for side, acc in sides:
            got = go_round(args.go, DISPATCH, args.number) if side == "go" else py_round(stmts, args.number, env)
            for n in DISPATCH:
                acc[n].append(got[n])
        print(f"round {r + 1:2}: " + "   ".join(
            f"{n} go {go[n][-1][0]:5.0f} ({go[n][-1][1]:5.0f} cpu)  py {py[n][-1][0]:5.0f} ({py[n][-1][1]:5.0f} cpu)"
            for n in DISPATCH), flush=True)
    print()
    print(f"{'':16} {'wall ns/op, minimum':^30} {'CPU ns/op, minimum':^30}")
    print(f"{'benchmark':<16} {'Go':>8} {'Python':>8} {'Go/Py':>8}    {'Go':>8} {'Python':>8} {'Go/Py':>8}")
    for n in DISPATCH:
        gw, pw = min(x[0] for x in go[n]), min(x[0] for x in py[n])
        gc, pc = min(x[1] for x in go[n]), min(x[1] for x in py[n])
        print(f"{n:<16} {gw:8.0f} {pw:8.0f} {gw / pw:8.2f}    {gc:8.0f} {pc:8.0f} {gc / pc:8.2f}")
    print(f"({args.rounds} alternating rounds of {args.number} calls per op and side; "
          f"load average {os.getloadavg()[0]:.1f} at the end)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--go", help="Go test binary of ./torch (go test -c): alternate Go and Python rounds")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per side (default 7)")
    ap.add_argument("--number", type=int, default=200_000, help="calls per op and round (default 200000)")
    ap.add_argument("--no-mm1024", action="store_true", help="skip the 1024x1024 mm")
    args = ap.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    a4, b4 = torch.randn(4, 4), torch.randn(4, 4)
    # Statements as strings, so that timeit inlines the call in its loop
    # (a lambda would add a Python call to every op).
    env = {"torch": torch, "a4": a4, "b4": b4}
    stmts = {"DispatchMM4x4": "torch.mm(a4, b4)", "DispatchAdd": "torch.add(a4, b4)"}
    if args.go:
        compare(args, stmts, env)
        return
    for name in stmts:
        runs = [py_round({name: stmts[name]}, args.number, env)[name] for _ in range(args.rounds)]
        print(f"{name:<24} {min(r[0] for r in runs):12.1f} ns/op {min(r[1] for r in runs):12.1f} cpu-ns/op")
    if not args.no_mm1024:
        a1k, b1k = torch.randn(1024, 1024), torch.randn(1024, 1024)
        stmt = lambda: torch.mm(a1k, b1k)  # noqa: E731
        timeit.timeit(stmt, number=2)
        best = min(timeit.repeat(stmt, number=20, repeat=5)) / 20
        print(f"{'MM1024':<24} {best * 1e9:12.1f} ns/op {2 * 1024 ** 3 / best / 1e9:10.2f} GFLOP/s")


if __name__ == "__main__":
    main()
