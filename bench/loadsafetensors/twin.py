"""Python twin of bench/loadsafetensors: safetensors.torch.load_file on the
same file, timed, with the process's peak RSS (VmHWM)."""
import sys
import time

from safetensors.torch import load_file


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    return "unknown"


base = status("VmRSS:")
start = time.perf_counter()
ts = load_file(sys.argv[1])
el = time.perf_counter() - start
total = sum(t.numel() * t.element_size() for t in ts.values())
print(f"python: loaded {len(ts)} tensors, {total / (1 << 20):.0f} MiB in {el:.3f} s, RSS before {base}, "
      f"RSS after load {status('VmRSS:')}", end="")
# load_file may map the file lazily: read every byte once, as Go's copy
# does, and time load + first read together
s = sum(float(t.sum()) for t in ts.values())
el2 = time.perf_counter() - start
print(f"; load + first full read {el2:.3f} s, peak RSS {status('VmHWM:')}")
