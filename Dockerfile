# golora with the official CUDA build of libtorch.
#
#   docker build -t golora-cuda .
#   docker run --rm --gpus all golora-cuda                         # the default LoRA fine-tune (cmd/train) on the GPU
#   docker run --rm --gpus all golora-cuda golora-train --help     # its flags, for real data
#   make refs && docker build -t golora-cuda .                     # with the PyTorch references (made on the host), then:
#   docker run --rm --gpus all -e GOLORA_TEST_DEVICE=cuda -w /src/golora golora-cuda go test -count=1 ./...
#
# Every RUN step calls a script of the repository, and the tests run each
# of those scripts here, without Docker (scripts/scripts_test.go:
# install_go.sh and install_libtorch.sh with --dry-run for every CUDA
# variant, build_programs.sh for real, and the built golora-train run from
# another directory, as the image runs it).
#
# The CUDA variant of libtorch (LIBTORCH_CUDA) matches the CUDA of the base
# image; the zip bundles its own CUDA runtime, cuBLAS and cuDNN, so the host
# needs only an NVIDIA driver recent enough for that CUDA. x86_64 only (the
# official libtorch zips are x86_64).
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-devel-ubuntu22.04
FROM ${CUDA_IMAGE}

ARG GO_VERSION=1.24.6
ARG LIBTORCH_VERSION=2.8.0
ARG LIBTORCH_CUDA=cu126

ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/install_go.sh /tmp/install_go.sh
RUN /tmp/install_go.sh --version=${GO_VERSION}
ENV PATH=/usr/local/go/bin:/root/go/bin:${PATH}

WORKDIR /src/golora

# Module downloads first, so that they are cached across source changes.
COPY go.mod go.sum ./
COPY scripts/build_programs.sh scripts/build_programs.sh
RUN scripts/build_programs.sh --deps

# libtorch (~2.5 GB unpacked) in its own layer: it only depends on the script.
COPY scripts/install_libtorch.sh scripts/install_libtorch.sh
COPY cgotorch cgotorch
RUN scripts/install_libtorch.sh --cuda=${LIBTORCH_CUDA} --version=${LIBTORCH_VERSION} \
      --no-python-refs --force

COPY . .
# Rebuilds libcgotorch.so only if cgotorch/ changed (a stale cgotorch/build
# copied from the host has different torch.env and is discarded), then
# builds cmd/train and cmd/infer as golora-train and golora-infer.
RUN scripts/install_libtorch.sh --cuda=${LIBTORCH_CUDA} --version=${LIBTORCH_VERSION} \
      --no-python-refs
RUN scripts/build_programs.sh /usr/local/bin

# The default: cmd/train's built-in demo (a shipped base, a shipped task)
# on the GPU (--device auto picks cuda:0), writing into /out.
WORKDIR /out
CMD ["golora-train", "--out", "/out/train-out"]
