#!/usr/bin/env bash
# scripts/interop_lib.sh PYTHON: build libcgotorch.so against the libtorch
# inside PYTHON's torch (the interop venv's PyPI wheel) into
# cgotorch/build/py-<version>/ (the folder scripts/test_with_pytorch.sh
# uses too; make keeps it up to date), and print that folder on the last
# line of stdout. make interop runs the interop tests with it on
# LD_LIBRARY_PATH, so that golora and the Python judges (transformers,
# PEFT, torchrun's TCPStore) run on the very same libtorch.
set -euo pipefail
py=${1:?usage: interop_lib.sh PYTHON}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "interop_lib: $*" >&2; }
. "$repo/scripts/pytorch_build.sh"
version=$("$py" -c 'import sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]; import torch; print(torch.__version__)') ||
	{ log "$py cannot import torch"; exit 1; }
build=$repo/cgotorch/build/py-${version//[^A-Za-z0-9._-]/_}
pytorch_build "$py" "$build" >&2
echo "$build"
