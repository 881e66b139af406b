#!/usr/bin/env bash
# Runs the whole test suite against the libtorch inside another PyTorch
# install (for example a venv with PyPI's torch 2.x wheel), leaving the
# installed libcgotorch.so and the committed reference files alone.
#
#   scripts/test_with_pytorch.sh /path/to/venv/bin/python3 [go test flags]
#
# It builds libcgotorch.so against that PyTorch into
# cgotorch/build/py-<version>/, copies the tracked tree to a temporary
# folder, regenerates the reference files there with that Python, and runs
# go test with the new library on the link and load paths.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit $(($# < 1))
fi
py=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "test_with_pytorch: $*"; }

info=$("$py" - <<'PY'
import torch, torch.utils.cpp_extension as c
print(torch.__version__)
print(" ".join(c.include_paths()))
print(c.library_paths()[0])
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
PY
) || { log "$py cannot import torch"; exit 1; }
{ read -r version; read -r includes; read -r libdir; read -r abi; } <<<"$info"
build=$repo/cgotorch/build/py-${version//[^A-Za-z0-9._-]/_}
log "PyTorch $version: includes $includes, libs $libdir, CXX11 ABI $abi"

make -C "$repo/cgotorch" -j"$(nproc)" BUILD="$build" \
	"TORCH_INCLUDES=$includes" "TORCH_LIBDIR=$libdir" "TORCH_CXX11_ABI=$abi"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$tmp"
cd "$tmp"
find . -path '*/testdata/gen_*.py' | LC_ALL=C sort | while read -r gen; do
	log "$py $gen"
	"$py" "$gen"
done
log "go test against $build/libcgotorch.so"
CGO_LDFLAGS="-L$build" LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	go test -count=1 "$@" ./...
