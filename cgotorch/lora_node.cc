// lora_node.cc: the LoRA linear layer as one autograd node.
//
// y = F.linear(x, W0, b) + (x·Aᵀ·Bᵀ)·s, with W0 (out×in) and b frozen, A
// (r×in) and B (out×r) trained, s = α/r. Composed from ATen ops, autograd
// records seven nodes per layer (addmm, two transposes, two mm, mul, add);
// here the forward runs the same ops without recording and one node,
// LoraLinearBackward, computes exactly what those seven would: with gm =
// g·s (g the output's gradient, flattened to N×out),
//   dB = gmᵀ·(x·Aᵀ)          (out×r)
//   d(x·Aᵀ) = gm·B           (N×r)
//   dA = d(x·Aᵀ)ᵀ·x          (r×in)
//   dx = g·W0 + d(x·Aᵀ)·A    (N×in)
// each product the same mm, operands in the same order and layout, as
// PyTorch's mm/addmm backward formulas pick for these row-major operands,
// so the gradients are the same bits.
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include "autograd_node.h"
#include <torch/csrc/autograd/saved_variable.h>

#include "internal.h"

namespace {

using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

struct LoraLinearBackward : public torch::autograd::Node {
  SavedVariable x_, a_, b_;
  at::Tensor xa_;  // x·Aᵀ from the forward, no history
  at::Tensor w_;   // the frozen W0, for dx
  double s_ = 1;

  std::string name() const override { return "LoraLinearBackward"; }

  void release_variables() override {
    x_.reset_data();
    a_.reset_data();
    b_.reset_data();
    xa_.reset();
    w_.reset();
  }

  variable_list apply(variable_list &&grads) override {
    variable_list res(3);  // x, A, B
    const at::Tensor &g = grads[0];
    if (!g.defined()) return res;
    if (!xa_.defined())
      throw std::runtime_error(
          "LoraLinearBackward: backward through the graph a second time needs retain_graph");
    auto self = cg::self_ptr<torch::autograd::Node>(this);
    at::Tensor X = x_.unpack(self);
    at::Tensor A = a_.unpack(self);
    at::Tensor B = b_.unpack(self);
    const int64_t out = g.size(-1), r = A.size(0), in = A.size(1);
    at::Tensor gm2 = g.mul(s_).reshape({-1, out});  // MulBackward, then the matmul's fold
    at::Tensor xa2 = xa_.reshape({-1, r});
    at::Tensor gxa2 = gm2.mm(B);  // mm_mat1_backward: grad·mat2ᵀ, mat2 = Bᵀ
    if (should_compute_output(2)) res[2] = gm2.t().mm(xa2);  // mm_mat2_backward (mat2 column-major), then TBackward
    if (should_compute_output(1)) res[1] = gxa2.t().mm(X.reshape({-1, in}));
    if (should_compute_output(0)) {
      at::Tensor dx_base = g.reshape({-1, out}).mm(w_);  // addmm/mm backward for mat1
      res[0] = dx_base.add(gxa2.mm(A)).view(X.sizes());
    }
    return res;
  }
};

}  // namespace

namespace cg {

// lora_linear_node computes F.linear(x, w, b) + (x·Aᵀ·Bᵀ)·s with one
// autograd node, when that gives the same bits as the composed ops: grad
// mode on, no autocast, w and b frozen, A and B float and trained, x 2-D or
// contiguous 3-D, every size above 1 (PyTorch's mm backward switches to a
// column-major formula for size-1 edges). Otherwise it returns an
// undefined tensor and the caller composes the ops.
at::Tensor lora_linear_node(const at::Tensor &X, const at::Tensor &W,
                            const at::Tensor &b, const at::Tensor &A,
                            const at::Tensor &B, double s) {
  if (!at::GradMode::is_enabled()) return {};
  if (!A.requires_grad() || !B.requires_grad()) return {};
  if (W.requires_grad() || (b.defined() && b.requires_grad())) return {};
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (at::autocast::is_autocast_enabled(at::kCPU) || at::autocast::is_autocast_enabled(at::kCUDA)) return {};
#else
  if (at::autocast::is_enabled() || at::autocast::is_cpu_enabled()) return {};
#endif
  if (!(X.dim() == 2 || (X.dim() == 3 && X.is_contiguous()))) return {};
  if (A.dim() != 2 || B.dim() != 2 || W.dim() != 2) return {};
  if (!A.is_contiguous() || !B.is_contiguous() || !W.is_contiguous()) return {};
  auto st = X.scalar_type();
  if (st != at::kFloat && st != at::kDouble) return {};
  if (A.scalar_type() != st || B.scalar_type() != st || W.scalar_type() != st) return {};
  const int64_t in = X.size(-1), n = X.numel() / std::max<int64_t>(in, 1);
  const int64_t r = A.size(0), out = B.size(0);
  if (A.size(1) != in || B.size(1) != r || W.size(0) != out || W.size(1) != in) return {};
  if (b.defined() && (b.dim() != 1 || b.size(0) != out || b.scalar_type() != st)) return {};
  if (X.device() != W.device() || A.device() != W.device() || B.device() != W.device() ||
      (b.defined() && b.device() != W.device()))
    return {};
  if (n <= 1 || in <= 1 || r <= 1 || out <= 1) return {};

  at::Tensor y, xa;
  {
    at::NoGradGuard no_grad;
    y = at::linear(X, W, b);  // F.linear's rounding (addmm for 2-D and contiguous 3-D)
    xa = X.matmul(A.t());
    y = y.add(xa.matmul(B.t()).mul(s));
  }
  auto node = cg::make_node<LoraLinearBackward>();
  node->set_next_edges(torch::autograd::collect_next_edges(X, A, B));
  node->x_ = SavedVariable(X, false);
  node->a_ = SavedVariable(A, false);
  node->b_ = SavedVariable(B, false);
  node->xa_ = xa;
  node->w_ = W.detach();
  node->s_ = s;
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace cg
