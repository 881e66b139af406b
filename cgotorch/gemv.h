// gemv.h: golora's matrix-vector kernel for F.linear on one row (gemv.cc).
#ifndef GOLORA_GEMV_H
#define GOLORA_GEMV_H

#include <ATen/core/Tensor.h>

namespace cg {

// linear_one_row is F.linear(x, w, b) by golora's own matrix-vector kernel
// when x is one float32 row on CPU and w is large, or an undefined tensor
// when that does not apply (the caller then uses at::linear).
at::Tensor linear_one_row(const at::Tensor &x, const at::Tensor &w,
                          const at::Tensor &b);

}  // namespace cg

#endif
