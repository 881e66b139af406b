# golora: LoRA fine-tuning for Go on libtorch.
#
# Quick start (fresh Debian 12 as root, nothing exported):
#   make example    # installs libtorch + libcgotorch.so, runs examples/quickstart
#   make test       # regenerates the PyTorch references, then go vet + go test -race,
#                   # then fails if the run changed the git work tree
#
# Variables:
#   INSTALL_FLAGS  extra flags for scripts/install_libtorch.sh (e.g. --cuda=cu126)
#   PYTHON_REFS    Python with torch that runs the reference generators
#   TESTFLAGS      extra flags for go test (e.g. -run=TestLinear -v)

SHELL := /bin/bash
# install must finish before refs (it installs python3-torch) and tests.
.NOTPARALLEL:

GO ?= go
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
PYTHON_REFS ?= /usr/bin/python3
INSTALL_FLAGS ?=
TESTFLAGS ?=

# Reference generators: */testdata/gen_*.py anywhere in the tree, except in
# hidden directories (.git, .venv, .gpu, ...), vendor/ and node_modules/.
FIND_REF_SCRIPTS = find . \( -name '.?*' -o -name vendor -o -name node_modules \) -prune \
	-o -type f -path '*/testdata/gen_*.py' -print | LC_ALL=C sort
FIND_GO_FILES = find . \( -name '.?*' -o -name vendor -o -name testdata \) -prune \
	-o -type f -name '*.go' -print

.PHONY: help install refs test tree-save test-pytorch gpu-bundle vet example bench fmt-check check-clean

help:
	@echo "make install    find/fetch libtorch, build and install libcgotorch.so (scripts/install_libtorch.sh)"
	@echo "make example    install, then go run ./examples/quickstart"
	@echo "make refs       regenerate every PyTorch reference file (*/testdata/gen_*.py) with $(PYTHON_REFS)"
	@echo "make test       install, refs, go vet, go test -race; fails if the run changed the git work tree"
	@echo "make check-clean  fail unless git status --porcelain is empty (.ci/run, after make test)"
	@echo "make test-pytorch PYTHON_TORCH=...  the suite against another PyTorch's libtorch (e.g. a PyPI wheel in a venv)"
	@echo "make gpu-bundle test binaries in .gpu/ for scripts/gpu_check.sh on a GPU machine"
	@echo "make bench      go test -run=NONE -bench=. -benchmem ./..."
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
	scripts=$$($(FIND_REF_SCRIPTS)); \
	if [ -z "$$scripts" ]; then echo "refs: no */testdata/gen_*.py scripts; nothing to do"; exit 0; fi; \
	if ! v=$$($(PYTHON_REFS) -c 'import sys; sys.path[:] = [p for p in sys.path if p not in ("", ".")]; import torch; print(torch.__version__)' 2>/dev/null); then \
		echo "refs: $(PYTHON_REFS) cannot import torch; run 'make install' (installs python3-torch)" \
			"or pass PYTHON_REFS=/path/to/python-with-torch" >&2; \
		exit 1; \
	fi; \
	echo "refs: $$(echo $$scripts | wc -w) generators with $(PYTHON_REFS) (torch $$v)"; \
	logs=$$(mktemp -d); trap 'rm -rf "$$logs"' EXIT; \
	i=0; pids=(); \
	for s in $$scripts; do \
		$(PYTHON_REFS) "$$s" >"$$logs/$$i" 2>&1 & pids+=($$!); i=$$((i + 1)); \
	done; \
	i=0; failed=""; \
	for s in $$scripts; do \
		rc=0; wait "$${pids[$$i]}" || rc=$$?; \
		if [ $$rc -eq 0 ]; then echo "refs: $$s"; else echo "refs: $$s FAILED (exit $$rc):"; failed+=" $$s"; fi; \
		sed 's/^/    /' "$$logs/$$i"; i=$$((i + 1)); \
	done; \
	if [ -n "$$failed" ]; then echo "refs: failed:$$failed" >&2; exit 1; fi

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
	$(GO) run ./examples/quickstart

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
