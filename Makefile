# golora: LoRA fine-tuning for Go on libtorch.
#
# Quick start (fresh Debian 12 as root, nothing exported):
#   make example    # installs libtorch + libcgotorch.so, runs the LoRA fine-tuning demo (go run ./cmd/train)
#   make test       # regenerates the PyTorch references, then go vet + go test -race,
#                   # then fails if the run changed the git work tree
#
# Variables:
#   INSTALL_FLAGS  extra flags for scripts/install_libtorch.sh (e.g. --cuda=cu126)
#   PYTHON_REFS    Python with torch that runs the reference generators
#   PYTHON_INTEROP Python of the interop venv (default: scripts/interop_venv.sh makes one)
#   TESTFLAGS      extra flags for go test (e.g. -run=TestLinear -v)

SHELL := /bin/bash
# install must finish before refs (it installs python3-torch) and tests.
.NOTPARALLEL:

GO ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
PYTHON_REFS ?= /usr/bin/python3
PYTHON_INTEROP ?=
INSTALL_FLAGS ?=
TESTFLAGS ?=

FIND_GO_FILES = find . \( -name '.?*' -o -name vendor -o -name testdata \) -prune \
	-o -type f -name '*.go' -print

.PHONY: help install refs interop interop-refs test tree-save test-pytorch gpu-bundle vet example bench fmt-check check-clean fuzz

help:
	@echo "make install    find/fetch libtorch, build and install libcgotorch.so (scripts/install_libtorch.sh)"
	@echo "make example    install, then go run ./cmd/train (the LoRA fine-tuning demo; go run ./examples/quickstart for the small one)"
	@echo "make refs       regenerate every PyTorch reference file (*/testdata/gen_*.py) with $(PYTHON_REFS)"
	@echo "make interop    the interop suite against real PyTorch 2.x, transformers, PEFT, tokenizers (pinned venv)"
	@echo "make test       install, refs, go vet, go test -race; fails if the run changed the git work tree"
	@echo "make check-clean  fail unless git status --porcelain is empty (.ci/run, after make test)"
	@echo "make test-pytorch PYTHON_TORCH=...  the suite against another PyTorch's libtorch (e.g. a PyPI wheel in a venv)"
	@echo "make gpu-bundle test binaries in .gpu/ for scripts/gpu_check.sh on a GPU machine"
	@echo "make bench      go test -run=NONE -bench=. -benchmem ./..."
	@echo "make fuzz       every go test -fuzz target for FUZZTIME each (default 20s; scripts/fuzz.sh)"
	@echo "make fmt-check  fail if gofmt would change a file"

install:
	scripts/install_libtorch.sh $(INSTALL_FLAGS)

# Every generator runs every time (nothing is skipped: a reference file is
# only as good as the PyTorch that wrote it), in parallel, one process per
# generator (each uses one thread, so its output does not depend on the load).
# The reference files are not committed (.gitignore). The torch check runs
# with the current directory off sys.path: from the repository root a Python
# without torch would import the Go folder torch/ as a namespace package.
refs:
	@set -euo pipefail; \
	if ! v=$$($(PYTHON_REFS) -c 'import sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]; import torch; print(torch.__version__)' 2>/dev/null); then \
		echo "refs: $(PYTHON_REFS) cannot import torch; run 'make install' (installs python3-torch)" \
			"or pass PYTHON_REFS=/path/to/python-with-torch" >&2; \
		exit 1; \
	fi; \
	echo "refs: torch $$v"; \
	scripts/run_generators.sh $(PYTHON_REFS) 'gen_*.py'

# The interop suite: golora against the real PyTorch 2.x, transformers, PEFT
# and tokenizers of a pinned venv (scripts/interop_venv.sh; about 2 minutes
# and 5.9 GB the first time, cached in ~/.cache/golora afterwards, or
# PYTHON_INTEROP=/path/to/python to use another). golora runs on that venv's
# libtorch (scripts/interop_lib.sh builds libcgotorch.so against it), so both
# sides share every kernel and torchrun's store. The generators
# */testdata/interop_*.py write their reference files (gitignored) with it,
# then the Go tests built with the interop tag and named TestInterop* run,
# some of them calling that Python themselves ($$GOLORA_INTEROP_PYTHON).
interop: tree-save install
	@set -euo pipefail; \
	py="$(PYTHON_INTEROP)"; [ -n "$$py" ] || py=$$(scripts/interop_venv.sh | tail -n1); \
	lib=$$(scripts/interop_lib.sh "$$py" | tail -n1); \
	scripts/run_generators.sh "$$py" 'interop_*.py'; \
	$(GO) vet -tags interop ./...; \
	echo "GOLORA_INTEROP_PYTHON=$$py LD_LIBRARY_PATH=$$lib go test -tags interop -run '^TestInterop' ./..."; \
	GOLORA_INTEROP_PYTHON="$$py" CGO_LDFLAGS="-L$$lib" LD_LIBRARY_PATH="$$lib$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		$(GO) test -tags interop -count=1 -run '^TestInterop' $(TESTFLAGS) ./...
	@scripts/check_tree.sh same

# Only the interop generators (make interop runs them first).
interop-refs:
	@set -euo pipefail; \
	py="$(PYTHON_INTEROP)"; [ -n "$$py" ] || py=$$(scripts/interop_venv.sh | tail -n1); \
	scripts/run_generators.sh "$$py" 'interop_*.py'

vet:
	$(GO) vet ./...

# tree-save comes first (prerequisites run in order: .NOTPARALLEL), so that
# the last step sees everything the run wrote into the work tree.
test: tree-save install refs
	$(GO) vet ./...
	$(GO) test -race -count=1 $(TESTFLAGS) ./...
	@scripts/check_tree.sh same

tree-save:
	@scripts/check_tree.sh save

check-clean:
	@scripts/check_tree.sh clean

example: install
	$(GO) run ./cmd/train

bench:
	$(GO) test -run=NONE -bench=. -benchmem ./...

# Runs the suite against another PyTorch's libtorch, e.g. a venv with the
# PyPI wheel: make test-pytorch PYTHON_TORCH=/path/to/venv/bin/python3
test-pytorch:
	@test -n "$(PYTHON_TORCH)" || { echo "set PYTHON_TORCH=/path/to/python-with-torch" >&2; exit 1; }
	scripts/test_with_pytorch.sh "$(PYTHON_TORCH)" $(TESTFLAGS)

# Test binaries for a GPU machine without Go (see scripts/gpu_check.sh).
GPU_PKGS ?= torch module lora optim optim/schedule internal/safetensors
gpu-bundle:
	@mkdir -p .gpu
	@for p in $(GPU_PKGS); do \
		echo "gpu-bundle: .gpu/$$(echo $$p | sed 's|/|__|g').test"; \
		$(GO) test -c -o .gpu/$$(echo $$p | sed 's|/|__|g').test ./$$p || exit 1; \
	done

fmt-check:
	@set -euo pipefail; \
	files=$$($(FIND_GO_FILES) | xargs -r $(GOFMT) -l); \
	if [ -n "$$files" ]; then \
		echo "fmt-check: these files need gofmt -w:" >&2; \
		echo "$$files" >&2; \
		exit 1; \
	fi; \
	echo "fmt-check: ok"

# Every fuzz target (go test -fuzz) for a bounded time each: FUZZTIME
# (default 20s), FUZZ (a regexp of target names). A crasher fails the run
# and is left in pkg/testdata/fuzz/<Target>/ to commit as a regression
# case (the seeds there run with every go test).
fuzz: install
	scripts/fuzz.sh
