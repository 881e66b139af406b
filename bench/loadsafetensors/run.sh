#!/usr/bin/env bash
# Makes a 1 GiB float32 safetensors file and loads it with golora and with
# Python's safetensors, alternating, three rounds each.
#   bench/loadsafetensors/run.sh [PYTHON_WITH_SAFETENSORS] [MiB]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:-python3}
mb=${2:-1024}
f=$(mktemp -d)/big.safetensors
trap 'rm -rf "$(dirname "$f")"' EXIT
go build -o /tmp/loadsafetensors ./bench/loadsafetensors
/tmp/loadsafetensors -make "$f" -mb "$mb"
sync
for i in 1 2 3; do
	/tmp/loadsafetensors "$f"
	"$py" bench/loadsafetensors/twin.py "$f"
done
