#!/usr/bin/env bash
# Peak RSS of one training step with and without activation checkpointing,
# each in a fresh process, alternating, ROUNDS times (bench/README.md).
#   bench/ckptmem/run.sh [ROUNDS] [flags of ckptmem: -hidden -layers -seq -batch]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
	rounds=$1
	shift
fi
go build -o /tmp/ckptmem ./bench/ckptmem
for ((i = 0; i < rounds; i++)); do
	/tmp/ckptmem -ckpt=false "$@"
	/tmp/ckptmem -ckpt=true "$@"
done
