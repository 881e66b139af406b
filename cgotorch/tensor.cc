// tensor.cc: handle lifetime, creation, readout and conversion.
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

using cg::T;

namespace cg {
std::atomic<int64_t> live_bytes{0};
}

namespace {

// checked_sizes validates a shape from C and the byte count of its data.
at::IntArrayRef checked_sizes(const int64_t *shape, int ndim, at::ScalarType st,
                              size_t nbytes) {
  auto sizes = cg::ints(shape, ndim);
  bool empty = false;
  for (auto s : sizes) {
    if (s < 0)
      throw std::invalid_argument("negative dimension " + std::to_string(s) +
                                  " in shape " + c10::str(sizes));
    empty = empty || s == 0;
  }
  uint64_t want = empty ? 0 : c10::elementSize(st);
  for (auto s : sizes) {
    if (empty) break;
    if (want > UINT64_MAX / static_cast<uint64_t>(s))
      throw std::invalid_argument("shape " + c10::str(sizes) + " is too large");
    want *= static_cast<uint64_t>(s);
  }
  if (want != nbytes)
    throw std::invalid_argument("data has " + std::to_string(nbytes) +
                                " bytes but shape " + c10::str(sizes) +
                                " needs " + std::to_string(want));
  return sizes;
}

}  // namespace

extern "C" {

void cg_tensor_free(cg_tensor t) {
  if (t == nullptr) return;
  if (t->bytes != 0)
    cg::live_bytes.fetch_sub(t->bytes, std::memory_order_relaxed);
  delete t;
}

void cg_tensor_free_n(const cg_tensor *ts, int n) {
  for (int i = 0; i < n; i++) cg_tensor_free(ts[i]);
}

int64_t cg_live_bytes(void) {
  return cg::live_bytes.load(std::memory_order_relaxed);
}

cg_err cg_from_bytes(const void *data, size_t nbytes, const int64_t *shape,
                     int ndim, int dtype, cg_tensor *out) {
  CG_TRY
  auto st = cg::dtype_of(dtype);
  auto sizes = cg::ints(shape, ndim);
  for (auto s : sizes)
    if (s < 0)
      throw std::invalid_argument("negative dimension " + std::to_string(s) +
                                  " in shape " + c10::str(sizes));
  at::Tensor t = torch::empty(sizes, at::TensorOptions().dtype(st));
  size_t want = t.numel() * t.element_size();
  if (want != nbytes)
    throw std::invalid_argument("data has " + std::to_string(nbytes) +
                                " bytes but shape " + c10::str(sizes) +
                                " needs " + std::to_string(want));
  if (nbytes > 0) std::memcpy(t.data_ptr(), data, nbytes);
  *out = cg::wrap(std::move(t));
  CG_CATCH
}

cg_err cg_to_bytes(cg_tensor h, void *buf, size_t nbytes) {
  CG_TRY
  at::Tensor t = T(h).detach().to(at::kCPU).contiguous();
  size_t have = t.numel() * t.element_size();
  if (have != nbytes)
    throw std::invalid_argument("tensor has " + std::to_string(have) +
                                " bytes, buffer has " +
                                std::to_string(nbytes));
  if (nbytes > 0) std::memcpy(buf, t.data_ptr(), nbytes);
  CG_CATCH
}

cg_err cg_new_filled(int kind, const int64_t *shape, int ndim, int dtype,
                     int device_type, int device_index, double value,
                     cg_tensor *out) {
  CG_TRY
  auto opts = at::TensorOptions()
                  .dtype(cg::dtype_of(dtype))
                  .device(cg::device_of(device_type, device_index));
  auto sizes = cg::ints(shape, ndim);
  at::Tensor t;
  switch (kind) {
    case 0: t = torch::zeros(sizes, opts); break;
    case 1: t = torch::ones(sizes, opts); break;
    case 2: t = torch::empty(sizes, opts); break;
    case 3: t = torch::rand(sizes, opts); break;
    case 4: t = torch::randn(sizes, opts); break;
    case 5: t = torch::full(sizes, value, opts); break;
    default: throw std::invalid_argument("unknown fill kind");
  }
  *out = cg::wrap(std::move(t));
  CG_CATCH
}

cg_err cg_arange(double start, double end, double step, int dtype,
                 int device_type, int device_index, cg_tensor *out) {
  CG_TRY
  auto opts = at::TensorOptions()
                  .dtype(cg::dtype_of(dtype))
                  .device(cg::device_of(device_type, device_index));
  *out = cg::wrap(torch::arange(start, end, step, opts));
  CG_CATCH
}

cg_err cg_shape(cg_tensor h, int64_t *sizes, int cap, int *ndim) {
  CG_TRY
  const at::Tensor &t = T(h);
  int d = static_cast<int>(t.dim());
  for (int i = 0; i < d && i < cap; i++) sizes[i] = t.size(i);
  *ndim = d;
  CG_CATCH
}

cg_err cg_dtype(cg_tensor h, int *out) {
  CG_TRY
  *out = cg::code_of(T(h).scalar_type());
  CG_CATCH
}

cg_err cg_device(cg_tensor h, int *device_type, int *device_index) {
  CG_TRY
  auto d = T(h).device();
  if (d.is_cpu()) {
    *device_type = CG_CPU;
    *device_index = 0;
  } else if (d.is_cuda()) {
    *device_type = CG_CUDA;
    *device_index = d.index();
  } else {
    throw std::invalid_argument("unsupported device " + d.str());
  }
  CG_CATCH
}

cg_err cg_item_double(cg_tensor h, double *out) {
  CG_TRY
  *out = T(h).item<double>();
  CG_CATCH
}

cg_err cg_item_int64(cg_tensor h, int64_t *out) {
  CG_TRY
  *out = T(h).item<int64_t>();
  CG_CATCH
}

cg_err cg_to_device(cg_tensor h, int device_type, int device_index,
                    cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).to(cg::device_of(device_type, device_index)));
  CG_CATCH
}

cg_err cg_to_dtype(cg_tensor h, int dtype, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).to(cg::dtype_of(dtype)));
  CG_CATCH
}

cg_err cg_clone(cg_tensor h, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).clone());
  CG_CATCH
}

cg_err cg_copy_(cg_tensor dst, cg_tensor src) {
  CG_TRY
  torch::NoGradGuard guard;
  T(dst).copy_(T(src));
  CG_CATCH
}

cg_err cg_shallow_clone(cg_tensor h, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h));
  CG_CATCH
}

cg_err cg_nbytes(cg_tensor h, int64_t *out) {
  CG_TRY
  const at::Tensor &t = T(h);
  *out = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  CG_CATCH
}

cg_err cg_set_data(cg_tensor dst, cg_tensor src) {
  CG_TRY
  at::Tensor &d = T(dst);
  const at::Tensor &s = T(src);
  if (!d.defined() || !s.defined())
    throw std::invalid_argument("set_data needs two defined tensors");
  // Variable::set_data (what Python's `p.data = x` runs) swaps the
  // TensorImpl's storage, sizes, dtype and device in place, so every handle
  // and autograd graph leaf that shares dst's TensorImpl sees the new data;
  // requires_grad and .grad stay (a stale .grad of another dtype or device
  // is the caller's to drop). It refuses only tensors of different kinds
  // (dense vs sparse); dtype and CPU<->CUDA changes are allowed in 1.13 and
  // 2.x alike. Version counters are not shared with src.
  d.set_data(s);
  // dst's handle now references src's storage: account for it.
  int64_t n = cg::storage_bytes(d);
  cg::live_bytes.fetch_add(n - dst->bytes, std::memory_order_relaxed);
  dst->bytes = n;
  CG_CATCH
}

cg_err cg_from_bytes_to(const void *data, size_t nbytes, const int64_t *shape,
                        int ndim, int src_dtype, int dtype, int device_type,
                        int device_index, cg_tensor *out) {
  // The chunked copy without eviction: the same one copy (or conversion)
  // into the target as a whole-tensor clone, done a few MiB at a time.
  return cg_from_mapped_to(data, nbytes, shape, ndim, src_dtype, dtype,
                           device_type, device_index, 0, out);
}

cg_err cg_from_mapped_to(const void *data, size_t nbytes, const int64_t *shape,
                         int ndim, int src_dtype, int dtype, int device_type,
                         int device_index, int evict, cg_tensor *out) {
  CG_TRY
  auto src_st = cg::dtype_of(src_dtype);
  auto opts = at::TensorOptions()
                  .dtype(cg::dtype_of(dtype))
                  .device(cg::device_of(device_type, device_index));
  auto sizes = checked_sizes(shape, ndim, src_st, nbytes);
  at::Tensor r = torch::empty(sizes, opts);
  if (nbytes != 0) {
    if (data == nullptr) throw std::invalid_argument("null data pointer");
    // Copy (converting if asked) 8 MiB of source at a time into the flat
    // destination; once a chunk is copied, drop its whole pages from the
    // resident set, so that at most one chunk of the mapping is resident
    // beside the copy. The pages stay in the page cache.
    const int64_t esz = static_cast<int64_t>(c10::elementSize(src_st));
    const int64_t numel = static_cast<int64_t>(nbytes) / esz;
    const int64_t chunk = std::max<int64_t>(1, (int64_t{8} << 20) / esz);
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t base = reinterpret_cast<uintptr_t>(data);
    uintptr_t evicted = base & ~(page - 1);  // pages below this are dropped
    at::Tensor flat = r.view({numel});
    for (int64_t e0 = 0; e0 < numel; e0 += chunk) {
      int64_t n = std::min(chunk, numel - e0);
      auto *p = static_cast<char *>(const_cast<void *>(data)) + e0 * esz;
      at::Tensor blob = torch::from_blob(p, {n}, at::TensorOptions().dtype(src_st));
      flat.narrow(0, e0, n).copy_(blob);
      if (evict != 0) {
        uintptr_t end = reinterpret_cast<uintptr_t>(p + n * esz);
        // whole pages only, except at the very end of the data
        uintptr_t hi = e0 + n == numel ? (end + page - 1) & ~(page - 1) : end & ~(page - 1);
        if (hi > evicted) {
          madvise(reinterpret_cast<void *>(evicted), hi - evicted, MADV_DONTNEED);
          evicted = hi;
        }
      }
    }
  }
  *out = cg::wrap(std::move(r));
  CG_CATCH
}

}  // extern "C"
