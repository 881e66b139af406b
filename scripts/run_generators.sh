#!/usr/bin/env bash
# scripts/run_generators.sh PYTHON NAME-GLOB: run every */testdata/NAME-GLOB
# script in the tree (hidden directories, vendor/ and node_modules/ pruned)
# with PYTHON, from the repository root, all in parallel, one process each;
# print each one's output under its name and fail if any failed.
#
#   make refs          scripts/run_generators.sh /usr/bin/python3 'gen_*.py'
#   make interop-refs  scripts/run_generators.sh <venv python> 'interop_*.py'
#
# Each script writes its outputs next to itself; they are gitignored.
set -euo pipefail
py=${1:?usage: run_generators.sh PYTHON NAME-GLOB}
glob=${2:?usage: run_generators.sh PYTHON NAME-GLOB}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t scripts < <(find . \( -name '.?*' -o -name vendor -o -name node_modules \) -prune \
	-o -type f -path "*/testdata/$glob" -print | LC_ALL=C sort)
if ((${#scripts[@]} == 0)); then
	echo "generators: no */testdata/$glob scripts; nothing to do"
	exit 0
fi
echo "generators: ${#scripts[@]} x */testdata/$glob with $py"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for i in "${!scripts[@]}"; do
	"$py" "${scripts[$i]}" >"$logs/$i" 2>&1 &
	pids+=($!)
done
failed=()
for i in "${!scripts[@]}"; do
	rc=0
	wait "${pids[$i]}" || rc=$?
	if ((rc == 0)); then echo "generators: ${scripts[$i]}"; else
		echo "generators: ${scripts[$i]} FAILED (exit $rc):"
		failed+=("${scripts[$i]}")
	fi
	sed 's/^/    /' "$logs/$i"
done
if ((${#failed[@]})); then
	echo "generators: failed: ${failed[*]}" >&2
	exit 1
fi
