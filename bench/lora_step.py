#!/usr/bin/python3
"""PyTorch twin of bench/lorastep: one LoRA training step, timed.

    /usr/bin/python3 bench/lora_step.py -dim D -layers L -batch B -rank R -steps N [-device cpu|cuda]
        [-repeats K] [-warmup W] [-threads T] [-dtype float32|float64] [-seed S]
        [-full] [-mem] [-phases] [-foreach]

It takes the same arguments as `go run ./bench/lorastep`, in the same
order, and prints the same one-line format, ending in `us/step`.

The step: L LoRA Linear layers of d x d with bias (the seed's formulation:
F.linear(x, W0, b) + (x @ A.T @ B.T) * alpha/r, alpha = r), ReLU between
them, MSE loss against a fixed target, backward, torch.optim.AdamW(lr=1e-3)
over A and B only (W0 and b frozen), then zero_grad(set_to_none=True).

The weights are drawn like golora's lora.NewLinear (seeded: per layer
W0 kaiming_uniform(a=sqrt(5)), b uniform(+-1/sqrt(d)), A kaiming_uniform;
B zeros; then x and the target from randn), so the final loss printed by
both programs agrees to float32 rounding: a check that they run the same
computation.

Timing: W warm-up steps, then K repeats of N steps; each repeat's time is
divided by N. The line shows the process's CPU time per step of the repeat
that used least (cpu=, time.process_time: less sensitive than wall time to
other load on a shared machine), the fastest and the median repeat in wall
time, and ends in the fastest (the least disturbed) followed by us/step.

-full trains the same model without adapters (nn.Linear layers, every
weight and bias trainable): full fine-tuning, for the memory comparison.
-mem prints a line before the timing line with the trainable parameters,
the optimizer-state bytes (exp_avg, exp_avg_sq and step of every
parameter, measured from the optimizer's state) and the process's peak
RSS (VmHWM). -phases prints the time per phase (forward, backward, step,
zero_grad). -foreach passes foreach=True to AdamW (the default in 1.13 on
the CPU is the per-parameter loop).
"""

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Linear(nn.Module):
    """The seed's LoRA Linear (../shared/spec/lora-reference-notebook.txt),
    with W0 and b initialised like nn.Linear instead of left empty."""

    def __init__(self, in_features, out_features, bias, r, alpha=None, dtype=None):
        super().__init__()
        if alpha is None:
            alpha = r
        self.weight = nn.Parameter(torch.empty((out_features, in_features), dtype=dtype))
        self.weight.requires_grad = False
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype))
            self.bias.requires_grad = False
        else:
            self.bias = None
        self.scaling = alpha / r
        self.lora_a = nn.Parameter(torch.empty((r, in_features), dtype=dtype))
        self.lora_b = nn.Parameter(torch.empty((out_features, r), dtype=dtype))
        with torch.no_grad():
            # nn.Linear.reset_parameters, the order lora.NewLinear draws in.
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                bound = 1 / math.sqrt(in_features)
                nn.init.uniform_(self.bias, -bound, bound)
            nn.init.kaiming_uniform_(self.lora_a, a=5 ** 0.5)
            nn.init.zeros_(self.lora_b)

    def forward(self, x):
        result = F.linear(x, self.weight, bias=self.bias)
        result += (x @ self.lora_a.T @ self.lora_b.T) * self.scaling
        return result


def fail(msg):
    print(f"lora_step.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-dim", type=int, default=64, help="d: every layer is d x d")
    ap.add_argument("-layers", type=int, default=4, help="L: number of layers")
    ap.add_argument("-batch", type=int, default=8, help="B: rows of the batch")
    ap.add_argument("-rank", type=int, default=8, help="r: LoRA rank")
    ap.add_argument("-steps", type=int, default=1000, help="N: timed steps per repeat")
    ap.add_argument("-device", default="cpu", help="cpu or cuda")
    ap.add_argument("-repeats", type=int, default=1, help="K: repeats of N steps")
    ap.add_argument("-warmup", type=int, default=-1, help="untimed steps first (-1: N/10, at least 3)")
    ap.add_argument("-threads", type=int, default=0, help="torch.set_num_threads (0: libtorch's default)")
    ap.add_argument("-dtype", default="float32", help="float32 or float64")
    ap.add_argument("-seed", type=int, default=0)
    ap.add_argument("-full", action="store_true", help="full fine-tuning: no adapters, all weights trainable")
    ap.add_argument("-mem", action="store_true", help="print parameters, optimizer state and peak RSS")
    ap.add_argument("-phases", action="store_true", help="print the time of each phase of the step")
    ap.add_argument("-foreach", action="store_true", help="AdamW(foreach=True)")
    a = ap.parse_args()
    for name in ("dim", "layers", "batch", "rank", "steps", "repeats"):
        if getattr(a, name) <= 0:
            fail(f"-{name} must be positive, got {getattr(a, name)}")
    if a.threads < 0:
        fail(f"-threads must be >= 0, got {a.threads}")
    if a.device not in ("cpu", "cuda") and not a.device.startswith("cuda:"):
        fail(f"-device must be cpu or cuda, got {a.device!r}")
    if a.device != "cpu" and not torch.cuda.is_available():
        fail(f"-device {a.device}: CUDA is not available")
    if a.dtype not in ("float32", "float64"):
        fail(f"-dtype must be float32 or float64, got {a.dtype!r}")
    if a.warmup < 0:
        a.warmup = max(3, a.steps // 10)
    return a


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024  # kB
    return 0


def main():
    a = parse()
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    dev = torch.device(a.device)
    rss0 = status("VmRSS:")
    torch.manual_seed(a.seed)

    layers = []
    for _ in range(a.layers):
        if a.full:
            layers.append(nn.Linear(a.dim, a.dim, bias=True, dtype=dtype))
        else:
            layers.append(Linear(a.dim, a.dim, True, a.rank, dtype=dtype))
    model = nn.ModuleList(layers).to(dev)
    x = torch.randn(a.batch, a.dim, dtype=dtype).to(dev)
    target = torch.randn(a.batch, a.dim, dtype=dtype).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    kw = {"foreach": True} if a.foreach else {}
    opt = torch.optim.AdamW(params, lr=1e-3, **kw)
    last = len(layers) - 1
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step():
        y = x
        for i, layer in enumerate(layers):
            y = layer(y)
            if i < last:
                y = torch.relu(y)
        loss = F.mse_loss(y, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    phase = [0.0] * 4  # forward, backward, step, zero_grad

    def step_phases():
        t0 = time.perf_counter()
        y = x
        for i, layer in enumerate(layers):
            y = layer(y)
            if i < last:
                y = torch.relu(y)
        loss = F.mse_loss(y, target)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        phase[0] += t1 - t0
        phase[1] += t2 - t1
        phase[2] += t3 - t2
        phase[3] += t4 - t3
        return loss

    run = step_phases if a.phases else step
    for _ in range(a.warmup):
        run()
    phase = [0.0] * 4
    sync()
    per, cpu = [], []
    for _ in range(a.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            run()
        sync()
        per.append((time.perf_counter() - t0) / a.steps * 1e6)
        cpu.append((time.process_time() - c0) / a.steps * 1e6)
    # One more step, untimed, to read its loss (lorastep does the same).
    lossv = step().item()

    if a.mem:
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in params)
        state = 0
        for st in opt.state.values():
            for v in st.values():
                if torch.is_tensor(v):
                    state += v.numel() * v.element_size()
        print(f"mem py {'full' if a.full else 'lora'}: params={total} trainable={trainable} "
              f"opt_state_bytes={state} rss_start_MiB={rss0 / 2**20:.1f} "
              f"peak_rss_MiB={status('VmHWM:') / 2**20:.1f}")
    if a.phases:
        n = a.steps * a.repeats
        names = ("forward", "backward", "step", "zero_grad")
        print("phases py: " + " ".join(f"{k}={v / n * 1e6:.1f}" for k, v in zip(names, phase)) + " us/step")
    mode = "full" if a.full else "lora"
    fwd = "foreach" if a.foreach else "loop"
    print(f"py d={a.dim} L={a.layers} B={a.batch} r={a.rank} steps={a.steps}x{a.repeats} "
          f"{a.device} {a.dtype} threads={torch.get_num_threads()} {mode} opt={fwd} "
          f"loss={lossv:.6g} cpu={min(cpu):.1f} min={min(per):.1f} median={statistics.median(per):.1f} | "
          f"{min(per):.1f} us/step")


if __name__ == "__main__":
    main()
