# golora with the official CUDA build of libtorch.
#
#   make refs                                         # on the host: the reference files (not tracked)
#   docker build -t golora-cuda .                     # copies them in with the tree
#   docker run --rm --gpus all golora-cuda            # go test ./... on the GPU
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
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      build-essential binutils ca-certificates curl git unzip \
 && rm -rf /var/lib/apt/lists/*

RUN curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-amd64.tar.gz" \
      | tar -C /usr/local -xz
ENV PATH=/usr/local/go/bin:/root/go/bin:${PATH}

WORKDIR /src/golora

# Module downloads first, so that they are cached across source changes.
COPY go.mod go.sum ./
RUN go mod download

# libtorch (~2.5 GB unpacked) in its own layer: it only depends on the script.
COPY scripts/install_libtorch.sh scripts/install_libtorch.sh
COPY cgotorch cgotorch
RUN scripts/install_libtorch.sh --cuda=${LIBTORCH_CUDA} --version=${LIBTORCH_VERSION} \
      --no-python-refs --force

COPY . .
# Rebuilds libcgotorch.so only if cgotorch/ changed (a stale cgotorch/build
# copied from the host has different torch.env and is discarded), then
# compiles every package. Tests need a GPU and run with `docker run --gpus all`.
RUN scripts/install_libtorch.sh --cuda=${LIBTORCH_CUDA} --version=${LIBTORCH_VERSION} \
      --no-python-refs \
 && go build ./...

# The tests compare against the PyTorch references made on the host by
# `make refs` before the build (a clean clone has none: run it first).
ENV GOLORA_TEST_DEVICE=cuda
CMD ["go", "test", "-count=1", "./..."]
