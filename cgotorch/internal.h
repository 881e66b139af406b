// internal.h: helpers shared by the cgotorch translation units. Not part of
// the C ABI.
#ifndef GOLORA_CGOTORCH_INTERNAL_H
#define GOLORA_CGOTORCH_INTERNAL_H

#include <torch/torch.h>

#include <cstring>
#include <string>

#include "cgotorch.h"

// A cg_tensor handle owns one at::Tensor on the heap.
struct cg_tensor_s {
  at::Tensor t;
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

inline cg_tensor wrap(at::Tensor t) { return new cg_tensor_s{std::move(t)}; }

// T returns the tensor behind a handle, failing on a null handle.
inline at::Tensor &T(cg_tensor h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return h->t;
}

// opt returns the tensor behind a nullable handle, or an undefined tensor.
inline at::Tensor opt(cg_tensor h) { return h == nullptr ? at::Tensor() : h->t; }

at::ScalarType dtype_of(int code);
int code_of(at::ScalarType st);
at::Device device_of(int type, int index);
at::IntArrayRef ints(const int64_t *p, int n);

}  // namespace cg

// CG_TRY / CG_CATCH wrap every entry point so that no C++ exception
// escapes; c10::Error loses its C++ backtrace.
#define CG_TRY try {
#define CG_CATCH                                                   \
  }                                                                \
  catch (const c10::Error &e) {                                    \
    return cg::dup(e.what_without_backtrace());                    \
  }                                                                \
  catch (const std::exception &e) {                                \
    return cg::dup(e.what());                                      \
  }                                                                \
  catch (...) {                                                    \
    return cg::dup("unknown C++ exception");                       \
  }                                                                \
  return nullptr;

#endif
