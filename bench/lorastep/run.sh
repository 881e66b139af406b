#!/usr/bin/env bash
# Runs bench/lorastep and its twin bench/lora_step.py alternately, ROUNDS
# times, with the same arguments and the same libtorch thread count (the
# one golora reports in its first run), and prints the min and the median
# of each side's us/step, wall-clock and CPU time, and the ratios
# Go / PyTorch.
#
#   bench/lorastep/run.sh [ROUNDS] -dim D -layers L -batch B -rank R -steps N [flags of both]
#
# GO_VARIANTS and PY_VARIANTS add variants to every round, separated by
# ';', each a list of flags for one side only, e.g.
#
#   GO_VARIANTS='-fused=false;-zerograd=params;-peropt' PY_VARIANTS='-foreach' \
#       bench/lorastep/run.sh 7 -dim 64 -layers 4 -batch 8 -rank 8 -steps 2000 -repeats 3
#
# Each variant's ratio is taken against the plain PyTorch twin. PYTHON
# selects the interpreter (default /usr/bin/python3: Debian's python3-torch,
# the libtorch that libcgotorch.so is built against); LORASTEP_BIN a
# prebuilt lorastep binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=5
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
	rounds=$1
	shift
fi
py=${PYTHON:-/usr/bin/python3}
IFS=';' read -r -a govars <<<"${GO_VARIANTS:-}"
IFS=';' read -r -a pyvars <<<"${PY_VARIANTS:-}"
govars=("" "${govars[@]}")
pyvars=("" "${pyvars[@]}")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${LORASTEP_BIN:-$tmp/lorastep}
[[ -n ${LORASTEP_BIN:-} ]] || go build -o "$bin" ./bench/lorastep

# record LABEL LINE: prints the line and keeps its wall and CPU figures.
record() {
	echo "$2"
	printf '%s\t%s\t%s\n' "$1" "$(awk '{print $(NF-1)}' <<<"$2")" \
		"$(grep -o 'cpu=[0-9.]*' <<<"$2" | cut -d= -f2)" >>"$tmp/results"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
threads=""
for ((i = 1; i <= rounds; i++)); do
	for v in "${govars[@]}"; do
		# shellcheck disable=SC2086 # a variant is a list of flags
		line=$("$bin" "$@" $v)
		record "go${v:+ $v}" "$line"
		[[ -n $threads ]] || threads=$(grep -o 'threads=[0-9]*' <<<"$line" | cut -d= -f2)
	done
	for v in "${pyvars[@]}"; do
		# shellcheck disable=SC2086
		line=$("$py" bench/lora_step.py "$@" -threads "$threads" $v)
		record "py${v:+ $v}" "$line"
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp/results" <<'PY'
import collections, statistics, sys
wall, cpu = collections.OrderedDict(), collections.OrderedDict()
for line in open(sys.argv[1]):
    label, w, c = line.rstrip("\n").split("\t")
    wall.setdefault(label, []).append(float(w))
    cpu.setdefault(label, []).append(float(c))
n = len(wall["py"])
for name, runs in (("wall", wall), ("cpu", cpu)):
    pmin, pmed = min(runs["py"]), statistics.median(runs["py"])
    print(f"{name} time over {n} alternating rounds, us/step; ratios to py: "
          "of the mins, of the medians, median of the per-round ratios")
    for label, vs in runs.items():
        m, med = min(vs), statistics.median(vs)
        paired = statistics.median(v / p for v, p in zip(vs, runs["py"]))
        print(f"  {label:24s} min {m:10.1f}  median {med:10.1f}   ratio {m / pmin:.3f} {med / pmed:.3f} {paired:.3f}")
PY
