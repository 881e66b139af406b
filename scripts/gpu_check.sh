#!/usr/bin/env bash
# Runs golora's test binaries on a machine that has a GPU and PyTorch but
# no Go (the lent device machine): build them elsewhere with
# `make gpu-bundle` (they land in .gpu/), ship the tree, then run
#
#   scripts/gpu_check.sh [python3] [extra test flags]
#
# It builds libcgotorch.so against that Python's PyTorch (CUDA if it has
# it) into cgotorch/build/gpu/, regenerates the reference files with that
# PyTorch in a scratch copy of the tree, and runs each package's test
# binary from its folder there with GOLORA_TEST_DEVICE=cuda (export it to
# override), so CUDA results are compared with PyTorch's CPU references.
set -euo pipefail

py=${1:-python3}
[[ $# -gt 0 ]] && shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "gpu_check: $*"; }
# shellcheck source=scripts/pytorch_build.sh
. "$repo/scripts/pytorch_build.sh"

command -v g++ >/dev/null || { log "no C++ compiler (g++) on this machine"; exit 1; }
ls "$repo"/.gpu/*.test >/dev/null 2>&1 || { log "no test binaries in .gpu/: run make gpu-bundle first"; exit 1; }
build=$repo/cgotorch/build/gpu
pytorch_build "$py" "$build"
scratch_tree "$py"

export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GOLORA_TEST_DEVICE=${GOLORA_TEST_DEVICE:-cuda}
status=0
for bin in "$repo"/.gpu/*.test; do
	pkg=$(basename "$bin" .test)
	pkg=${pkg//__//}
	log "$pkg on $GOLORA_TEST_DEVICE"
	(cd "$tree/$pkg" && "$bin" -test.count=1 "$@") || status=1
done
exit $status
