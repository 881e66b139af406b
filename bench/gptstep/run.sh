#!/usr/bin/env bash
# Runs bench/gptstep (Go) and its twin bench/gpt_step_peft.py (transformers
# + PEFT) alternately, ROUNDS times for each configuration, on the same
# libtorch (the one inside PYTHON's torch), and prints each run's line. A
# third run per configuration is the twin with glibc told to keep freed
# memory (GLIBC_TUNABLES), to show how much of a difference is the CPU
# allocator's policy (see bench/README.md).
#
#   bench/gptstep/run.sh [ROUNDS]
#
# Environment:
#   PYTHON   the interpreter with torch, transformers and peft (default /tmp/venv/bin/python3)
#   SMALL    the small checkpoint's folder (default /tmp/gptsmall; made once with
#            go run ./bench/gptstep -make DIR -hidden 256 -layers 4)
#   LARGE    the large one (default /tmp/gptlarge; -hidden 768 -layers 6)
#   CONFIGS  ';'-separated "NAME MODE BATCH SEQ STEPS" (default: small and large, LoRA and full)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
rounds=${1:-3}
py=${PYTHON:-/tmp/venv/bin/python3}
small=${SMALL:-/tmp/gptsmall}
large=${LARGE:-/tmp/gptlarge}
CONFIGS=${CONFIGS:-"small lora 8 128 5;large lora 4 256 3;large full 4 256 3;small full 8 128 5"}
lib=$(scripts/interop_lib.sh "$py")
CGO_LDFLAGS="-L$lib" go build -o /tmp/gptstep.bin ./bench/gptstep
export LD_LIBRARY_PATH=$lib
for dir in "$small:256:4" "$large:768:6"; do
  IFS=: read -r d h l <<<"$dir"
  [[ -f $d/model.safetensors ]] || /tmp/gptstep.bin -make "$d" -hidden "$h" -layers "$l"
done
tun="glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"
IFS=';' read -r -a configs <<<"$CONFIGS"
for round in $(seq 1 "$rounds"); do
  for cfg in "${configs[@]}"; do
    read -r name mode batch seq steps <<<"$cfg"
    base=$small
    [[ $name == large ]] && base=$large
    args=(-base "$base" -mode "$mode" -batch "$batch" -seq "$seq" -steps "$steps" -r 8)
    echo "round=$round cfg=$name-$mode side=go $(/tmp/gptstep.bin "${args[@]}" 2>&1 | tail -1)"
    echo "round=$round cfg=$name-$mode side=py $("$py" bench/gpt_step_peft.py "${args[@]}" 2>&1 | tail -1)"
    echo "round=$round cfg=$name-$mode side=py-tunables $(GLIBC_TUNABLES=$tun "$py" bench/gpt_step_peft.py "${args[@]}" 2>&1 | tail -1)"
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
