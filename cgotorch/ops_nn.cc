// ops_nn.cc: layers and losses (linear, embedding, LoRA paths, layer norm,
// dropout, conv2d, attention, cross entropy, mse).
#include <cmath>
#include <limits>

#include "gemv.h"
#include "internal.h"

using cg::T;

namespace cg {
// lora_node.cc
at::Tensor lora_linear_node(const at::Tensor &X, const at::Tensor &W,
                            const at::Tensor &b, const at::Tensor &A,
                            const at::Tensor &B, double s);
}  // namespace cg

namespace {

at::Tensor linear(const at::Tensor &x, const at::Tensor &w,
                  const at::Tensor &b) {
  if (x.dim() == 0)
    throw std::invalid_argument("linear: input must have at least 1 dim");
  if (w.dim() != 2)
    throw std::invalid_argument("linear: weight must be 2-D, got " +
                                std::to_string(w.dim()) + "-D");
  if (x.size(-1) != w.size(1))
    throw std::invalid_argument(
        "linear: input last dim is " + std::to_string(x.size(-1)) +
        " but weight expects in_features=" + std::to_string(w.size(1)) +
        " (weight shape " + c10::str(w.sizes()) + ")");
  // at::linear is Python's F.linear: it fuses the bias into addmm for a
  // 2-D input and for a contiguous 3-D one (viewed as 2-D), where the C++
  // frontend's functional::linear multiplies first and adds the bias
  // after, which rounds differently (up to 2e-6 per projection in BERT).
  // One row by a large weight (decoding a token) takes golora's own
  // matrix-vector kernel, which streams the weight at memory speed.
  if (at::Tensor y = cg::linear_one_row(x, w, b); y.defined()) return y;
  return at::linear(x, w, b);
}

void check_indices(const at::Tensor &idx, int64_t rows) {
  auto st = idx.scalar_type();
  if (st != at::kLong && st != at::kInt)
    throw std::invalid_argument(
        std::string("embedding: indices must be int64 or int32, got ") +
        c10::toString(st));
  if (idx.numel() > 0) {
    // One host copy of [min, max]: a single device sync on CUDA, where an
    // out-of-range index would otherwise be a fatal device-side assert.
    auto mm = at::aminmax(idx);
    at::Tensor both = at::stack({std::get<0>(mm), std::get<1>(mm)}).to(at::kCPU);
    int64_t lo = both[0].item<int64_t>();
    int64_t hi = both[1].item<int64_t>();
    if (lo < 0 || hi >= rows)
      throw std::invalid_argument(
          "embedding: index out of range: indices span [" +
          std::to_string(lo) + ", " + std::to_string(hi) + "] but there are " +
          std::to_string(rows) + " embeddings");
  }
}

int64_t reduction(int r) {
  switch (r) {
    case 0: return at::Reduction::None;
    case 1: return at::Reduction::Mean;
    case 2: return at::Reduction::Sum;
  }
  throw std::invalid_argument("unknown reduction " + std::to_string(r));
}

}  // namespace

extern "C" {

cg_err cg_linear(cg_tensor x, cg_tensor w, cg_tensor b, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(linear(T(x), T(w), cg::opt(b)));
  CG_CATCH
}

cg_err cg_embedding(cg_tensor weight, cg_tensor indices, cg_tensor *out) {
  CG_TRY
  const at::Tensor &w = T(weight);
  if (w.dim() != 2)
    throw std::invalid_argument("embedding: weight must be 2-D");
  check_indices(T(indices), w.size(0));
  *out = cg::wrap(torch::embedding(w, T(indices)));
  CG_CATCH
}

// LoRA linear: F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·α/r, A (r×in), B (out×r).
cg_err cg_lora_linear(cg_tensor x, cg_tensor w, cg_tensor b, cg_tensor a,
                      cg_tensor bm, double scaling, cg_tensor *out) {
  CG_TRY
  const at::Tensor &X = T(x);
  const at::Tensor &A = T(a);
  const at::Tensor &B = T(bm);
  // One autograd node instead of seven, when that is exact
  // (lora_linear_node checks every shape and returns an undefined tensor
  // for anything it does not handle, errors included).
  if (X.dim() >= 1) {
    at::Tensor y = cg::lora_linear_node(X, T(w), cg::opt(b), A, B, scaling);
    if (y.defined()) {
      *out = cg::wrap(std::move(y));
      return nullptr;
    }
  }
  at::Tensor base = linear(X, T(w), cg::opt(b));  // checks the shapes
  at::Tensor delta = X.matmul(A.t()).matmul(B.t()).mul(scaling);
  *out = cg::wrap(base.add(delta));
  CG_CATCH
}

// LoRA embedding: F.embedding(x, W0) + F.embedding(x, Aᵀ)·Bᵀ·α/r,
// A (r×num), B (dim×r).
cg_err cg_lora_embedding(cg_tensor x, cg_tensor w, cg_tensor a, cg_tensor bm,
                         double scaling, cg_tensor *out) {
  CG_TRY
  const at::Tensor &W = T(w);
  const at::Tensor &I = T(x);
  check_indices(I, W.size(0));
  at::Tensor base = torch::embedding(W, I);
  at::Tensor delta =
      torch::embedding(T(a).t(), I).matmul(T(bm).t()).mul(scaling);
  *out = cg::wrap(base.add(delta));
  CG_CATCH
}

cg_err cg_layer_norm(cg_tensor x, const int64_t *shape, int ndim, cg_tensor w,
                     cg_tensor b, double eps, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(at::layer_norm(T(x), cg::ints(shape, ndim), cg::opt(w),
                                 cg::opt(b), eps));
  CG_CATCH
}

cg_err cg_dropout(cg_tensor x, double p, int train, cg_tensor *out) {
  CG_TRY
  if (!(p >= 0 && p <= 1))
    throw std::invalid_argument("dropout: p must be in [0, 1], got " +
                                std::to_string(p));
  *out = cg::wrap(at::dropout(T(x), p, train != 0));
  CG_CATCH
}

cg_err cg_conv2d(cg_tensor x, cg_tensor w, cg_tensor b, const int64_t *stride,
                 const int64_t *padding, const int64_t *dilation,
                 int64_t groups, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(at::conv2d(T(x), T(w), cg::opt(b), cg::ints(stride, 2),
                             cg::ints(padding, 2), cg::ints(dilation, 2),
                             groups));
  CG_CATCH
}

cg_err cg_sdpa(cg_tensor q, cg_tensor k, cg_tensor v, cg_tensor mask,
               double dropout, int is_causal, cg_tensor *out) {
  CG_TRY
  const at::Tensor &Q = T(q);
  const at::Tensor &K = T(k);
  const at::Tensor &V = T(v);
  at::Tensor M = cg::opt(mask);
  if (M.defined() && is_causal)
    throw std::invalid_argument(
        "scaled_dot_product_attention: give a mask or is_causal, not both");
#if TORCH_VERSION_MAJOR >= 2
  *out = cg::wrap(at::scaled_dot_product_attention(
      Q, K, V, M.defined() ? c10::optional<at::Tensor>(M) : c10::nullopt,
      dropout, is_causal != 0));
#else
  // Composed form: softmax(Q·Kᵀ/√E + mask)·V, as PyTorch 2 defines it.
  if (Q.dim() < 2)
    throw std::invalid_argument(
        "scaled_dot_product_attention: query must have at least 2 dims");
  double scale = 1.0 / std::sqrt(static_cast<double>(Q.size(-1)));
  at::Tensor s = Q.matmul(K.transpose(-2, -1)).mul(scale);
  const double ninf = -std::numeric_limits<double>::infinity();
  if (is_causal) {
    at::Tensor keep = torch::ones({Q.size(-2), K.size(-2)},
                                  at::TensorOptions().dtype(at::kBool).device(Q.device()))
                          .tril();
    s = s.masked_fill(keep.logical_not(), ninf);
  }
  if (M.defined()) {
    if (M.scalar_type() == at::kBool)
      s = s.masked_fill(M.logical_not(), ninf);
    else
      s = s.add(M);
  }
  at::Tensor p = s.softmax(-1);
  if (dropout > 0) p = at::dropout(p, dropout, true);
  *out = cg::wrap(p.matmul(V));
#endif
  CG_CATCH
}

cg_err cg_cross_entropy(cg_tensor logits, cg_tensor target,
                        int64_t ignore_index, int red, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(at::cross_entropy_loss(T(logits), T(target), {},
                                         reduction(red), ignore_index));
  CG_CATCH
}

cg_err cg_mse_loss(cg_tensor a, cg_tensor b, int red, cg_tensor *out) {
  CG_TRY
  if (T(a).sizes() != T(b).sizes())
    throw std::invalid_argument("mse_loss: input shape " +
                                c10::str(T(a).sizes()) + " != target shape " +
                                c10::str(T(b).sizes()));
  *out = cg::wrap(at::mse_loss(T(a), T(b), reduction(red)));
  CG_CATCH
}

}  // extern "C"
