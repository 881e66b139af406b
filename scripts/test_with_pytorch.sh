#!/usr/bin/env bash
# Runs the whole test suite against the libtorch inside another PyTorch
# install (for example a venv with PyPI's torch 2.x wheel), leaving the
# installed libcgotorch.so and the reference files in the tree alone.
#
#   scripts/test_with_pytorch.sh /path/to/venv/bin/python3 [go test flags]
#
# It builds libcgotorch.so against that PyTorch into
# cgotorch/build/py-<version>/, copies the tree to a temporary folder,
# regenerates the reference files there with that Python, and runs go test
# with the new library on the link and load paths.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit $(($# < 1))
fi
py=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "test_with_pytorch: $*"; }
# shellcheck source=scripts/pytorch_build.sh
. "$repo/scripts/pytorch_build.sh"

version=$("$py" -c 'import torch; print(torch.__version__)') || { log "$py cannot import torch"; exit 1; }
build=$repo/cgotorch/build/py-${version//[^A-Za-z0-9._-]/_}
pytorch_build "$py" "$build"
scratch_tree "$py"
cd "$tree"
log "go test against $build/libcgotorch.so"
CGO_LDFLAGS="-L$build" LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	go test -count=1 "$@" ./...
