// dist.cc: c10d, PyTorch's distributed engine: a store (TCPStore or
// FileStore) and a process group (Gloo; NCCL where this libtorch has it),
// with the collectives data-parallel training needs. Built with Gloo when
// the Makefile finds its headers (USE_C10D_GLOO, Debian's libgloo-dev);
// otherwise every entry point says that this build has no distributed
// support.
#include "internal.h"

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <torch/version.h>

#include <chrono>
#include <cstdlib>

using cg::T;

#ifdef USE_C10D_GLOO
// The common base of ProcessGroupGloo and ProcessGroupNCCL: ProcessGroup in
// libtorch 1.x, Backend in 2.x.
#if TORCH_VERSION_MAJOR >= 2
using PGBase = c10d::Backend;
#else
using PGBase = c10d::ProcessGroup;
#endif
struct cg_pg_s {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PGBase> pg;
  std::chrono::milliseconds timeout;
  int rank = 0, world = 1;
};
#else
struct cg_pg_s {};
#endif

namespace {

#ifndef USE_C10D_GLOO
[[noreturn]] void no_dist() {
  throw std::runtime_error(
      "this libcgotorch.so was built without distributed support (no Gloo "
      "headers at build time: install libgloo-dev and rerun "
      "scripts/install_libtorch.sh)");
}
#endif

#ifdef USE_C10D_GLOO
template <typename W>
void wait(const W &work, std::chrono::milliseconds timeout, const char *what) {
  if (!work->wait(timeout))
    throw std::runtime_error(std::string(what) + ": timed out after " +
                             std::to_string(timeout.count()) + " ms");
}

// Buckets of at most cap bytes, each of tensors of one dtype and device,
// in order: a LoRA model's gradients are one bucket.
std::vector<std::vector<at::Tensor>> buckets(const std::vector<at::Tensor> &ts,
                                             int64_t cap) {
  std::vector<std::vector<at::Tensor>> out;
  int64_t size = 0;
  for (const auto &t : ts) {
    int64_t n = t.numel() * t.element_size();
    if (out.empty() || size + n > cap || out.back().front().scalar_type() != t.scalar_type() ||
        out.back().front().device() != t.device()) {
      out.emplace_back();
      size = 0;
    }
    out.back().push_back(t);
    size += n;
  }
  return out;
}

std::vector<at::Tensor> tensors(const cg_tensor *hs, int n, const char *what) {
  if (n < 0) throw std::invalid_argument(std::string(what) + ": negative count");
  std::vector<at::Tensor> ts;
  ts.reserve(n);
  for (int i = 0; i < n; i++) {
    const at::Tensor &t = T(hs[i]);
    if (!t.defined()) throw std::invalid_argument(std::string(what) + ": undefined tensor");
    if (!t.is_contiguous())
      throw std::invalid_argument(std::string(what) + ": tensor " + std::to_string(i) +
                                  " is not contiguous");
    ts.push_back(t);
  }
  return ts;
}

// coalesced runs op on one flat buffer per bucket and copies the result
// back into the tensors, in place.
template <typename F>
void coalesced(std::vector<at::Tensor> ts, int64_t cap, F op) {
  at::NoGradGuard no_grad;
  for (auto &b : buckets(ts, cap)) {
    std::vector<at::Tensor> flat_parts;
    for (auto &t : b) flat_parts.push_back(t.reshape({-1}));
    at::Tensor flat = at::cat(flat_parts);
    op(flat);
    int64_t off = 0;
    for (auto &t : b) {
      int64_t n = t.numel();
      t.copy_(flat.narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }
}
#endif

}  // namespace

extern "C" {

int cg_dist_backends(void) {
  int b = 0;
#ifdef USE_C10D_GLOO
  b |= CG_DIST_GLOO;
#endif
#ifdef USE_C10D_NCCL
  b |= CG_DIST_NCCL;
#endif
  return b;
}

cg_err cg_pg_new(int backend, int store_kind, const char *store_addr, int port,
                 int is_server, int rank, int world, int64_t timeout_ms, cg_pg *out) {
  CG_TRY
#ifndef USE_C10D_GLOO
  (void)backend, (void)store_kind, (void)store_addr, (void)port, (void)is_server, (void)rank,
      (void)world, (void)timeout_ms, (void)out;
  no_dist();
#else
  if (world <= 0 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) +
                                " is out of range for world size " + std::to_string(world));
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  if (store_addr == nullptr || *store_addr == 0)
    throw std::invalid_argument("empty store address");
  auto timeout = std::chrono::milliseconds(timeout_ms);
  auto h = std::make_unique<cg_pg_s>();
  h->timeout = timeout;
  h->rank = rank;
  h->world = world;
  if (store_kind == CG_STORE_FILE) {
    // store_addr is the file's path (every rank on one host, or a shared
    // file system).
    h->store = c10::make_intrusive<c10d::FileStore>(std::string(store_addr), world);
  } else if (store_kind == CG_STORE_TCP) {
    if (port <= 0 || port > 65535)
      throw std::invalid_argument("store port " + std::to_string(port) + " is out of range");
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = is_server != 0;
    if (is_server) o.numWorkers = static_cast<std::size_t>(world);
    o.waitWorkers = false;
    o.timeout = timeout;
    h->store = c10::make_intrusive<c10d::TCPStore>(std::string(store_addr), o);
  } else {
    throw std::invalid_argument("unknown store kind " + std::to_string(store_kind));
  }
  h->store->setTimeout(timeout);
  if (backend == CG_DIST_GLOO) {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char *ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    h->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(h->store, rank, world, opts);
  } else if (backend == CG_DIST_NCCL) {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    h->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(h->store, rank, world, opts);
#else
    throw std::invalid_argument("this libtorch has no NCCL (a CUDA libtorch built with NCCL has)");
#endif
  } else {
    throw std::invalid_argument("unknown backend " + std::to_string(backend));
  }
  *out = h.release();
#endif
  CG_CATCH
}

void cg_pg_free(cg_pg pg) {
#ifdef USE_C10D_GLOO
  try {
    delete pg;
  } catch (...) {
  }
#else
  (void)pg;
#endif
}

cg_err cg_pg_allreduce(cg_pg pg, const cg_tensor *ts, int n, int average,
                       int64_t bucket_bytes) {
  CG_TRY
#ifndef USE_C10D_GLOO
  (void)pg, (void)ts, (void)n, (void)average, (void)bucket_bytes;
  no_dist();
#else
  if (pg == nullptr) throw std::invalid_argument("null process group");
  coalesced(tensors(ts, n, "all_reduce"), bucket_bytes, [&](at::Tensor &flat) {
    std::vector<at::Tensor> v{flat};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = pg->timeout;
    wait(pg->pg->allreduce(v, o), pg->timeout, "all_reduce");
    if (average) flat.div_(pg->world);  // Gloo has no AVG: sum, then divide
  });
#endif
  CG_CATCH
}

cg_err cg_pg_broadcast(cg_pg pg, const cg_tensor *ts, int n, int root,
                       int64_t bucket_bytes) {
  CG_TRY
#ifndef USE_C10D_GLOO
  (void)pg, (void)ts, (void)n, (void)root, (void)bucket_bytes;
  no_dist();
#else
  if (pg == nullptr) throw std::invalid_argument("null process group");
  if (root < 0 || root >= pg->world)
    throw std::invalid_argument("broadcast: root " + std::to_string(root) +
                                " is out of range for world size " + std::to_string(pg->world));
  coalesced(tensors(ts, n, "broadcast"), bucket_bytes, [&](at::Tensor &flat) {
    std::vector<at::Tensor> v{flat};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = pg->timeout;
    wait(pg->pg->broadcast(v, o), pg->timeout, "broadcast");
  });
#endif
  CG_CATCH
}

cg_err cg_pg_allgather(cg_pg pg, cg_tensor t, cg_tensor *outs) {
  CG_TRY
#ifndef USE_C10D_GLOO
  (void)pg, (void)t, (void)outs;
  no_dist();
#else
  if (pg == nullptr) throw std::invalid_argument("null process group");
  at::Tensor in = T(t).contiguous();
  std::vector<std::vector<at::Tensor>> o(1);
  for (int i = 0; i < pg->world; i++) o[0].push_back(at::empty_like(in));
  std::vector<at::Tensor> v{in};
  c10d::AllgatherOptions opt;
  opt.timeout = pg->timeout;
  wait(pg->pg->allgather(o, v, opt), pg->timeout, "all_gather");
  for (int i = 0; i < pg->world; i++) outs[i] = cg::wrap(o[0][i]);
#endif
  CG_CATCH
}

cg_err cg_pg_barrier(cg_pg pg) {
  CG_TRY
#ifndef USE_C10D_GLOO
  (void)pg;
  no_dist();
#else
  if (pg == nullptr) throw std::invalid_argument("null process group");
  c10d::BarrierOptions o;
  o.timeout = pg->timeout;
  wait(pg->pg->barrier(o), pg->timeout, "barrier");
#endif
  CG_CATCH
}

}  // extern "C"
