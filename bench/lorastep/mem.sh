#!/usr/bin/env bash
# Memory of LoRA against full fine-tuning, in golora and in PyTorch: for
# each model width, ROUNDS runs of each mode on each side, alternating,
# with -mem (trainable parameters, optimizer-state bytes, RSS at start and
# peak RSS). A few training steps are enough: the peak is reached in the
# first one that allocates the optimizer state. Go runs twice: as is, and
# with -lockthread (every libtorch call from one OS thread, as in Python).
#
#   bench/lorastep/mem.sh [ROUNDS] [DIM...]      (defaults: 3 rounds, 2048 4096)
#
# Every run: -layers 4 -batch 256 -rank 8 -steps 3 -warmup 1. PYTHON and
# LORASTEP_BIN as for run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shift || true
dims=("$@")
[[ ${#dims[@]} -gt 0 ]] || dims=(2048 4096)
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${LORASTEP_BIN:-$tmp/lorastep}
[[ -n ${LORASTEP_BIN:-} ]] || go build -o "$bin" ./bench/lorastep

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
for d in "${dims[@]}"; do
	args=(-dim "$d" -layers 4 -batch 256 -rank 8 -steps 3 -warmup 1 -mem)
	for ((i = 1; i <= rounds; i++)); do
		for mode in "" -full; do
			# shellcheck disable=SC2086
			"$bin" "${args[@]}" $mode | sed -n 1p | sed "s/^/d=$d /"
			# shellcheck disable=SC2086
			"$bin" "${args[@]}" $mode -lockthread | sed -n 1p | sed "s/^/d=$d /; s/mem go/mem go-lockthread/"
			# shellcheck disable=SC2086
			"$py" bench/lora_step.py "${args[@]}" $mode | sed -n 1p | sed "s/^/d=$d /"
		done
	done
done | tee "$tmp/mem"
python3 - "$tmp/mem" <<'PY'
import collections, re, statistics, sys
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    m = re.match(r"d=(\d+) mem (\S+) (\w+): params=(\d+) trainable=(\d+) opt_state_bytes=(\d+) "
                 r"rss_start_MiB=([\d.]+) peak_rss_MiB=([\d.]+)", line)
    if not m:
        continue
    d, side, mode, params, train, state, start, peak = m.groups()
    r = runs.setdefault((int(d), side, mode), {"params": int(params), "trainable": int(train),
                                               "state": int(state), "start": [], "peak": []})
    r["start"].append(float(start))
    r["peak"].append(float(peak))
print("| d | side | mode | params | trainable | optimizer state | RSS at start | peak RSS (min / median / max) | peak - start (median) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for (d, side, mode), r in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][2] == "full")):
    st, pk = statistics.median(r["start"]), r["peak"]
    print(f"| {d} | {side} | {mode} | {r['params']:,} | {r['trainable']:,} | {r['state'] / 2**20:.2f} MiB | "
          f"{st:.0f} MiB | {min(pk):.0f} / {statistics.median(pk):.0f} / {max(pk):.0f} MiB | "
          f"{statistics.median(pk) - st:.0f} MiB |")
PY
