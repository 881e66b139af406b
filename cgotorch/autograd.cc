// autograd.cc: requires_grad, backward, gradients and grad mode.
#include "internal.h"

using cg::T;

extern "C" {

cg_err cg_set_requires_grad(cg_tensor h, int on) {
  CG_TRY
  T(h).set_requires_grad(on != 0);
  CG_CATCH
}

cg_err cg_requires_grad(cg_tensor h, int *out) {
  CG_TRY
  *out = T(h).requires_grad() ? 1 : 0;
  CG_CATCH
}

cg_err cg_is_leaf(cg_tensor h, int *out) {
  CG_TRY
  *out = T(h).is_leaf() ? 1 : 0;
  CG_CATCH
}

cg_err cg_backward(cg_tensor h, cg_tensor grad, int retain_graph) {
  CG_TRY
  const at::Tensor &t = T(h);
  if (!t.requires_grad())
    throw std::invalid_argument(
        "backward on a tensor that does not require grad and has no grad_fn");
  t.backward(cg::opt(grad), retain_graph != 0 ? c10::optional<bool>(true)
                                              : c10::nullopt);
  CG_CATCH
}

cg_err cg_grad(cg_tensor h, cg_tensor *out, int *defined) {
  CG_TRY
  const at::Tensor &g = T(h).grad();
  if (g.defined()) {
    *out = cg::wrap(g);
    *defined = 1;
  } else {
    *defined = 0;
  }
  CG_CATCH
}

cg_err cg_zero_grad(cg_tensor h, int set_to_none) {
  CG_TRY
  at::Tensor &t = T(h);
  if (!t.grad().defined()) return nullptr;
  if (set_to_none) {
    t.mutable_grad().reset();
  } else {
    t.mutable_grad().detach_();
    t.mutable_grad().zero_();
  }
  CG_CATCH
}

cg_err cg_detach(cg_tensor h, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).detach());
  CG_CATCH
}

cg_err cg_grad_enabled(int *out) {
  CG_TRY
  *out = at::GradMode::is_enabled() ? 1 : 0;
  CG_CATCH
}

cg_err cg_set_grad_enabled(int on) {
  CG_TRY
  at::GradMode::set_enabled(on != 0);
  CG_CATCH
}

}  // extern "C"
