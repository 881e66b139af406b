#!/usr/bin/env bash
# Runs bench/decode (Go) and its twin bench/decode_twin.py (transformers)
# alternately, ROUNDS times for each configuration, on the same libtorch
# (the one inside PYTHON's torch), each side loading the same checkpoint,
# and prints the min and the median of each side's prefill tokens/s and
# decode ms/token, and the ratios Go / transformers (of times: below 1 is
# Go faster).
#
#   bench/decode/run.sh [ROUNDS] [extra flags for both sides]
#
# Environment:
#   PYTHON          the interpreter with torch and transformers (default /tmp/venv/bin/python3)
#   CGOTORCH_BUILD  a libcgotorch.so folder already built against PYTHON's
#                   torch (default: build one with scripts/pytorch_build.sh
#                   into cgotorch/build/py-<version>/)
#   DECODE_CKPT     a folder to keep the random checkpoints in between runs
#                   (default: a temporary one)
#   CONFIGS         the configurations, ';'-separated, each
#                   "CHECKPOINT flags...", CHECKPOINT one of llama-tiny,
#                   gpt2-tiny, gpt2-gpt2-small, llama-gpt2-small (default:
#                   the first three, see below)
#
# The checkpoints are written once by decode_twin.py -save (transformers'
# save_pretrained) and read by both sides. Both print their generated
# tokens' checksum (tokens=): run.sh says so when the two sides disagree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
rounds=5
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
	rounds=$1
	shift
fi
py=${PYTHON:-/tmp/venv/bin/python3}
CONFIGS=${CONFIGS:-"llama-tiny -prompt 32 -new 128 -repeats 10;gpt2-tiny -prompt 32 -new 128 -repeats 10;gpt2-gpt2-small -prompt 128 -new 32 -repeats 3"}
IFS=';' read -r -a configs <<<"$CONFIGS"
log() { echo "# run.sh: $*" >&2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# libcgotorch.so against PYTHON's libtorch.
build=${CGOTORCH_BUILD:-}
if [[ -z $build ]]; then
	# shellcheck source=scripts/pytorch_build.sh
	. "$repo/scripts/pytorch_build.sh"
	version=$("$py" -c 'import torch; print(torch.__version__)')
	build=$repo/cgotorch/build/py-${version//[^A-Za-z0-9._-]/_}
	# at low priority (the measurements are not)
	(renice -n 10 -p "$BASHPID" >/dev/null && pytorch_build "$py" "$build") >&2
fi
build=$(cd "$build" && pwd)
libdir=$("$py" -c 'import os, sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]; import torch; print(os.path.join(os.path.dirname(os.path.abspath(torch.__file__)), "lib"))')
bin=$tmp/decode
CGO_LDFLAGS="-L$build" nice go build -o "$bin" ./bench/decode
export LD_LIBRARY_PATH=$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Check that the binary picks this libcgotorch.so and PYTHON's libtorch.
ldd "$bin" >"$tmp/ldd"
grep -q "libcgotorch.so => $build/libcgotorch.so" "$tmp/ldd" || { cat "$tmp/ldd" >&2; log "the binary does not load $build/libcgotorch.so"; exit 1; }
grep -q "libtorch_cpu.so => $(readlink -f "$libdir")/libtorch_cpu.so\|libtorch_cpu.so => $libdir/libtorch_cpu.so" "$tmp/ldd" ||
	{ cat "$tmp/ldd" >&2; log "the binary does not load $libdir/libtorch_cpu.so"; exit 1; }

ckpt=${DECODE_CKPT:-$tmp/ckpt}
mkdir -p "$ckpt"
for cf in "${configs[@]}"; do
	name=${cf%% *}
	[[ -f $ckpt/$name/config.json ]] && continue
	arch=${name%%-*}
	size=${name#*-}
	log "writing $ckpt/$name"
	"$py" bench/decode_twin.py -arch "$arch" -size "$size" -save "$ckpt/$name" >/dev/null 2>&1
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# go: $bin with $build/libcgotorch.so; py: $py; libtorch $libdir"
field() { grep -o "[^_a-z]$1=[0-9.]*" <<<" $2" | cut -d= -f2; }
for ((i = 1; i <= rounds; i++)); do
	for cf in "${configs[@]}"; do
		name=${cf%% *}
		read -r -a flags <<<"${cf#"$name"}"
		flags+=("$@")
		gline=$("$bin" -model "$ckpt/$name" "${flags[@]}")
		pline=$("$py" bench/decode_twin.py -model "$ckpt/$name" "${flags[@]}" 2>/dev/null)
		echo "$name $gline"
		echo "$name $pline"
		for side in go py; do
			[[ $side == go ]] && line=$gline || line=$pline
			printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$side" "$(field prefill_tok_s "$line")" \
				"$(field decode_ms_per_token "$line")" "$(field cpu_ms_per_token "$line")" >>"$tmp/results"
		done
		[[ $(field tokens "$gline") == "$(field tokens "$pline")" ]] || log "$name: the generated tokens differ between Go and transformers"
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp/results" <<'PY'
import collections, statistics, sys
r = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    name, side, pre, dec, cpu = line.split()
    r[name][side].append((float(pre), float(dec), float(cpu)))
print("ratios are Go's time / transformers' time (prefill: transformers' tok/s / Go's); "
      "min, median, median of the per-round ratios")
for name, s in r.items():
    g, p = s["go"], s["py"]
    n = len(g)
    print(f"{name} ({n} rounds)")
    for i, what, faster in ((0, "prefill tok/s", max), (1, "decode ms/token", min), (2, "decode cpu ms/token", min)):
        gv, pv = [x[i] for x in g], [x[i] for x in p]
        gb, pb = faster(gv), faster(pv)
        gm, pm = statistics.median(gv), statistics.median(pv)
        if i == 0:
            ratios = (pb / gb, pm / gm, statistics.median(b / a for a, b in zip(gv, pv)))
        else:
            ratios = (gb / pb, gm / pm, statistics.median(a / b for a, b in zip(gv, pv)))
        print(f"  {what:20s} go best {gb:10.4g} median {gm:10.4g} | py best {pb:10.4g} median {pm:10.4g} | "
              f"ratio {ratios[0]:.3f} {ratios[1]:.3f} {ratios[2]:.3f}")
PY
