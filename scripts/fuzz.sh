#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for a bounded time.
#
# It finds the Fuzz functions of each package (grep over *_test.go), then
# runs each one on its own:
#
#   go test -run '^$' -fuzz "^Name$" -fuzztime "$FUZZTIME" -parallel "$FUZZPARALLEL" ./pkg
#
# printing one line per target. New corpus entries go to $GOCACHE/fuzz,
# not to the tree; only a failing input is written, to
# pkg/testdata/fuzz/Name/, and then the script names the target and that
# file and exits non-zero (after running the other targets).
#
# Environment: FUZZTIME (default 20s) per target, FUZZPARALLEL (default 2)
# workers, FUZZMINIMIZETIME (default 10s) to minimise an input (Go's
# default, 60s, stalls a target on every new input), FUZZ (a regexp of
# target names to run; default all).
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
parallel=${FUZZPARALLEL:-2}
minimize=${FUZZMINIMIZETIME:-10s}
filter=${FUZZ:-.}

failed=()
total=0
start=$SECONDS
# Every "func FuzzName(f *testing.F)" in a test file, as "dir name".
targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' | sort -u)
while read -r dir name; do
	[[ -z "$name" ]] && continue
	[[ "$name" =~ $filter ]] || continue
	total=$((total + 1))
	log=$(mktemp)
	t0=$SECONDS
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" \
		-parallel "$parallel" "./$dir" >"$log" 2>&1; then
		printf 'ok    %-28s ./%s (%ds)\n' "$name" "$dir" $((SECONDS - t0))
	else
		crasher=$(sed -nE 's/.*Failing input written to (testdata\/fuzz\/[^ ]*).*/\1/p' "$log" | head -1)
		if [[ -n "$crasher" ]]; then
			printf 'FAIL  %-28s ./%s: crasher %s/%s\n' "$name" "$dir" "$dir" "$crasher"
		else
			printf 'FAIL  %-28s ./%s\n' "$name" "$dir"
		fi
		tail -n 40 "$log" | sed 's/^/      /'
		failed+=("$name")
	fi
	rm -f "$log"
done <<<"$targets"

if ((total == 0)); then
	echo "fuzz.sh: no fuzz target matches '$filter'" >&2
	exit 1
fi
echo "fuzz.sh: $total targets, $((SECONDS - start))s"
if ((${#failed[@]} > 0)); then
	echo "fuzz.sh: failed: ${failed[*]}" >&2
	exit 1
fi
