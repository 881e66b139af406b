#!/usr/bin/env bash
# build_programs.sh: builds golora's programs, cmd/train as golora-train and
# cmd/infer as golora-infer, into DIR (default /usr/local/bin). The
# Dockerfile runs it; the tests run it into a temporary directory
# (scripts/scripts_test.go) and start each program with --help.
#
#   scripts/build_programs.sh [DIR]
#   scripts/build_programs.sh --deps    only download the Go modules (go.mod, go.sum)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${1:-}" == "--deps" ]]; then
	go mod download
	echo "build_programs: Go modules downloaded"
	exit 0
fi
dest=${1:-/usr/local/bin}
mkdir -p "$dest"
go build -o "$dest/golora-train" ./cmd/train
go build -o "$dest/golora-infer" ./cmd/infer
echo "build_programs: $dest/golora-train, $dest/golora-infer"
