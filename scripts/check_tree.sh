#!/usr/bin/env bash
# scripts/check_tree.sh: checks that a build or test run leaves the git work
# tree as it found it (generated files belong in .gitignore).
#
#   scripts/check_tree.sh clean   fail unless `git status --porcelain` is
#                                 empty: no tracked file changed, no
#                                 untracked file that .gitignore misses
#                                 (.ci/run, on a fresh clone)
#   scripts/check_tree.sh save    record the state of the tree (every
#                                 changed or untracked path, with a hash
#                                 of its content) in .git/golora-tree-state
#   scripts/check_tree.sh same    fail if the tree differs from the saved
#                                 state, listing the paths that changed
#                                 (make test: your own edits are fine, but
#                                 the run must not add any)
#
# Outside a git work tree (an unpacked tarball, a copy on another machine)
# it says so and succeeds.
set -euo pipefail

log() { printf 'check_tree: %s\n' "$*"; }

mode=${1:-}
case "$mode" in
clean | save | same) ;;
*)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v git >/dev/null || ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	log "not a git work tree; skipped"
	exit 0
fi
state_file=$(git rev-parse --git-path golora-tree-state)

# state: one line per changed or untracked path: "XY <hash> <path>", with the
# hash of the file's current content ("-" when it is gone).
state() {
	local entry xy path h
	git status --porcelain=v1 -z --untracked-files=all |
		while IFS= read -r -d '' entry; do
			xy=${entry:0:2}
			path=${entry:3}
			# a rename or copy is followed by its source path
			[[ "$xy" == [RC]* ]] && IFS= read -r -d '' _
			if [[ -f "$path" || -L "$path" ]]; then
				h=$(git hash-object --no-filters -- "$path" 2>/dev/null || echo '?')
			else
				h=-
			fi
			printf '%s %s %s\n' "$xy" "$h" "$path"
		done | LC_ALL=C sort -k3
}

case "$mode" in
clean)
	dirty=$(git status --porcelain=v1 --untracked-files=all)
	if [[ -n "$dirty" ]]; then
		log "the work tree is not clean (git status --porcelain):" >&2
		printf '%s\n' "$dirty" | sed 's/^/    /' >&2
		log "' M' is a changed tracked file (a generator or test wrote into the tree);" \
			"'??' is an untracked file: add what generates it to .gitignore" >&2
		exit 1
	fi
	log "work tree clean"
	;;
save)
	state >"$state_file"
	;;
same)
	if [[ ! -f "$state_file" ]]; then
		log "no saved state ($state_file); run '$0 save' first" >&2
		exit 1
	fi
	now=$(state)
	if ! changed=$(diff <(cat "$state_file") <(printf '%s\n' "$now" | sed '/^$/d')); then
		log "the run changed the work tree; these paths changed status or content (git status --porcelain now):" >&2
		printf '%s\n' "$changed" | sed -n 's/^[<>] .. [^ ]* //p' | LC_ALL=C sort -u |
			while IFS= read -r path; do
				st=$(git status --porcelain=v1 --untracked-files=all -- "$path" | head -n1)
				printf '    %s\n' "${st:-   $path (now unchanged from HEAD)}"
			done >&2
		log "' M' is a tracked file the build or tests rewrote; '??' is an untracked file:" \
			"add what generates it to .gitignore" >&2
		exit 1
	fi
	rm -f "$state_file"
	log "the run left the work tree as it found it"
	;;
esac
