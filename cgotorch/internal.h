// internal.h: helpers shared by the cgotorch translation units. Not part of
// the C ABI.
#ifndef GOLORA_CGOTORCH_INTERNAL_H
#define GOLORA_CGOTORCH_INTERNAL_H

#include <torch/torch.h>

#include <atomic>
#include <cstring>
#include <string>

#include "cgotorch.h"

// A cg_tensor handle owns one at::Tensor on the heap. bytes is what the
// handle added to cg::live_bytes when it was made (its storage's size then,
// 0 for an undefined tensor); cg_tensor_free takes the same amount off.
struct cg_tensor_s {
  at::Tensor t;
  int64_t bytes;
};

namespace cg {

// dup copies a message to the C heap for the caller to free.
inline cg_err dup(const char *msg) {
  size_t n = std::strlen(msg);
  char *p = static_cast<char *>(std::malloc(n + 1));
  if (p == nullptr) return nullptr;  // out of memory: nothing better to do
  std::memcpy(p, msg, n + 1);
  return p;
}

// live_bytes sums cg_tensor_s::bytes over live handles (tensor.cc).
extern std::atomic<int64_t> live_bytes;

// storage_bytes is the size of t's storage (0 when t is undefined or has
// none); a view counts its whole storage.
inline int64_t storage_bytes(const at::Tensor &t) {
  if (!t.defined()) return 0;
  c10::TensorImpl *impl = t.unsafeGetTensorImpl();
  if (!impl->has_storage()) return 0;
  return static_cast<int64_t>(impl->unsafe_storage().nbytes());
}

inline cg_tensor wrap(at::Tensor t) {
  int64_t n = storage_bytes(t);
  cg_tensor h = new cg_tensor_s{std::move(t), n};
  if (n != 0) live_bytes.fetch_add(n, std::memory_order_relaxed);
  return h;
}

// T returns the tensor behind a handle, failing on a null handle.
inline at::Tensor &T(cg_tensor h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return h->t;
}

// opt returns the tensor behind a nullable handle, or an undefined tensor.
inline at::Tensor opt(cg_tensor h) { return h == nullptr ? at::Tensor() : h->t; }

at::ScalarType dtype_of(int code);
int code_of(at::ScalarType st);
// dtype_name is PyTorch's Python name of a dtype ("float32", "bool").
const char *dtype_name(at::ScalarType st);
at::Device device_of(int type, int index);
at::IntArrayRef ints(const int64_t *p, int n);

// clean drops C++ source locations from a libtorch message: the
// "[enforce fail at file.cpp:NN] cond. " prefix, ' at "file.cpp":NN' of
// internal asserts and "Exception raised from ..." lines with the stack
// frames after them (errors.cc).
std::string clean(const char *msg);
// err is dup(clean(msg)) that never throws (it runs inside catch blocks).
cg_err err(const char *msg) noexcept;

// warn_handler_on is set once cg_set_warning_handler installed a handler;
// adopt_warning_handler then installs it on the calling thread too, since
// libtorch's handler is per thread (warnings.cc).
extern std::atomic<bool> warn_handler_on;
void adopt_warning_handler_slow() noexcept;
inline void adopt_warning_handler() noexcept {
  if (warn_handler_on.load(std::memory_order_relaxed))
    adopt_warning_handler_slow();
}

}  // namespace cg

// CG_TRY / CG_CATCH wrap every entry point so that no C++ exception
// escapes; c10::Error loses its C++ backtrace and messages their C++
// source locations. CG_TRY also routes this thread's libtorch warnings to
// the cg_set_warning_handler callback once one is set.
#define CG_TRY                  \
  cg::adopt_warning_handler(); \
  try {
#define CG_CATCH                                                   \
  }                                                                \
  catch (const c10::Error &e) {                                    \
    return cg::err(e.what_without_backtrace());                    \
  }                                                                \
  catch (const std::exception &e) {                                \
    return cg::err(e.what());                                      \
  }                                                                \
  catch (...) {                                                    \
    return cg::dup("unknown C++ exception");                       \
  }                                                                \
  return nullptr;

#endif
