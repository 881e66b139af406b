// ops_math.cc: elementwise ops, reductions and shape ops.
#include <vector>

#include "internal.h"

using cg::T;


namespace {

// below_autograd is true when no input requires grad (or grad mode is
// off): an out-of-place, non-view op then has nothing for autograd to
// record, and skipping its Autograd and ADInplaceOrView kernels saves
// about 70 ns of dispatch per call (what PyTorch's kernels do themselves
// with AutoDispatchBelowADInplaceOrView). Views and in-place ops must not
// take this path: ADInplaceOrView tracks their version counters and view
// metadata.
inline bool below_autograd(const at::Tensor &a) {
  return !a.requires_grad() || !at::GradMode::is_enabled();
}
inline bool below_autograd(const at::Tensor &a, const at::Tensor &b) {
  return (!a.requires_grad() && !b.requires_grad()) ||
         !at::GradMode::is_enabled();
}

}  // namespace

extern "C" {

static cg_err unary(int op, cg_tensor h, cg_tensor *out) {
  CG_TRY
  const at::Tensor &a = T(h);
  at::Tensor r;
  // CONTIGUOUS may return a and T is a view: they keep the full dispatch.
  c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
  if (op != CG_U_CONTIGUOUS && op != CG_U_T && below_autograd(a))
    below.emplace();
  switch (op) {
    case CG_U_NEG: r = a.neg(); break;
    case CG_U_SQRT: r = a.sqrt(); break;
    case CG_U_EXP: r = a.exp(); break;
    case CG_U_LOG: r = a.log(); break;
    case CG_U_TANH: r = a.tanh(); break;
    case CG_U_SIGMOID: r = a.sigmoid(); break;
    case CG_U_RELU: r = a.relu(); break;
    case CG_U_GELU: r = at::gelu(a); break;
    case CG_U_GELU_TANH: r = at::gelu(a, "tanh"); break;
    case CG_U_SILU: r = at::silu(a); break;
    case CG_U_CONTIGUOUS: r = a.contiguous(); break;
    case CG_U_T:
      if (a.dim() > 2)
        throw std::invalid_argument("T expects a tensor with <= 2 dims, got " +
                                    std::to_string(a.dim()));
      r = a.t();
      break;
    case CG_U_SUM: r = a.sum(); break;
    case CG_U_MEAN: r = a.mean(); break;
    case CG_U_MAX: r = a.max(); break;
    case CG_U_ABS: r = a.abs(); break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  *out = cg::wrap(std::move(r));
  CG_CATCH
}

static cg_err binary(int op, cg_tensor ha, cg_tensor hb, cg_tensor *out) {
  CG_TRY
  const at::Tensor &a = T(ha);
  const at::Tensor &b = T(hb);
  at::Tensor r;
  c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
  if (below_autograd(a, b)) below.emplace();
  switch (op) {
    case CG_B_ADD: r = a.add(b); break;
    case CG_B_SUB: r = a.sub(b); break;
    case CG_B_MUL: r = a.mul(b); break;
    case CG_B_DIV: r = a.div(b); break;
    case CG_B_MATMUL: r = a.matmul(b); break;
    case CG_B_MM: r = a.mm(b); break;
    case CG_B_POW: r = a.pow(b); break;
    case CG_B_EQ: r = a.eq(b); break;
    case CG_B_MAXIMUM: r = at::maximum(a, b); break;
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
  *out = cg::wrap(std::move(r));
  CG_CATCH
}

static cg_err binary_scalar(int op, cg_tensor ha, double s, cg_tensor *out) {
  CG_TRY
  const at::Tensor &a = T(ha);
  at::Tensor r;
  c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
  if (below_autograd(a)) below.emplace();
  switch (op) {
    case CG_B_ADD: r = a.add(s); break;
    case CG_B_SUB: r = a.sub(s); break;
    case CG_B_MUL: r = a.mul(s); break;
    case CG_B_DIV: r = a.div(s); break;
    case CG_B_POW: r = a.pow(s); break;
    default: throw std::invalid_argument("unknown scalar op " + std::to_string(op));
  }
  *out = cg::wrap(std::move(r));
  CG_CATCH
}

cg_result cg_unary(int op, cg_ref a) {
  cg_result r{nullptr, nullptr};
  r.err = unary(op, reinterpret_cast<cg_tensor>(a), &r.out);
  return r;
}

cg_result cg_binary(int op, cg_ref a, cg_ref b) {
  cg_result r{nullptr, nullptr};
  r.err = binary(op, reinterpret_cast<cg_tensor>(a), reinterpret_cast<cg_tensor>(b), &r.out);
  return r;
}

cg_result cg_binary_scalar(int op, cg_ref a, double s) {
  cg_result r{nullptr, nullptr};
  r.err = binary_scalar(op, reinterpret_cast<cg_tensor>(a), s, &r.out);
  return r;
}

cg_err cg_add_scaled_(cg_tensor ha, cg_tensor hb, double alpha) {
  CG_TRY
  torch::NoGradGuard guard;
  T(ha).add_(T(hb), alpha);
  CG_CATCH
}

cg_err cg_reduce_dims(int op, cg_tensor h, const int64_t *dims, int ndims,
                      int keepdim, cg_tensor *out) {
  CG_TRY
  auto d = cg::ints(dims, ndims);
  at::Tensor r;
  if (op == CG_U_SUM)
    r = T(h).sum(d, keepdim != 0);
  else if (op == CG_U_MEAN)
    r = T(h).mean(d, keepdim != 0);
  else
    throw std::invalid_argument("unknown reduction " + std::to_string(op));
  *out = cg::wrap(std::move(r));
  CG_CATCH
}

cg_err cg_max_dim(cg_tensor h, int64_t dim, int keepdim, cg_tensor *values,
                  cg_tensor *indices) {
  CG_TRY
  auto r = T(h).max(dim, keepdim != 0);
  cg_tensor v = cg::wrap(std::get<0>(r));
  *indices = cg::wrap(std::get<1>(r));
  *values = v;
  CG_CATCH
}

cg_err cg_argmax(cg_tensor h, int has_dim, int64_t dim, int keepdim,
                 cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(has_dim ? T(h).argmax(dim, keepdim != 0) : T(h).argmax());
  CG_CATCH
}

cg_err cg_softmax(cg_tensor h, int64_t dim, int log, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(log ? T(h).log_softmax(dim) : T(h).softmax(dim));
  CG_CATCH
}

cg_err cg_transpose(cg_tensor h, int64_t d0, int64_t d1, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).transpose(d0, d1));
  CG_CATCH
}

cg_err cg_permute(cg_tensor h, const int64_t *dims, int ndims, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).permute(cg::ints(dims, ndims)));
  CG_CATCH
}

cg_err cg_reshape(cg_tensor h, const int64_t *shape, int ndim, int view,
                  cg_tensor *out) {
  CG_TRY
  auto s = cg::ints(shape, ndim);
  *out = cg::wrap(view ? T(h).view(s) : T(h).reshape(s));
  CG_CATCH
}

cg_err cg_narrow(cg_tensor h, int64_t dim, int64_t start, int64_t length,
                 cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).narrow(dim, start, length));
  CG_CATCH
}

cg_err cg_slice(cg_tensor h, int64_t dim, int64_t start, int64_t end,
                int64_t step, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).slice(dim, start, end, step));
  CG_CATCH
}

cg_err cg_index_select(cg_tensor h, int64_t dim, cg_tensor index,
                       cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).index_select(dim, T(index)));
  CG_CATCH
}

cg_err cg_cat(const cg_tensor *ts, int n, int64_t dim, int stack,
              cg_tensor *out) {
  CG_TRY
  if (n <= 0) throw std::invalid_argument("expected a non-empty list of tensors");
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  *out = cg::wrap(stack ? torch::stack(v, dim) : torch::cat(v, dim));
  CG_CATCH
}

cg_err cg_tril(cg_tensor h, int64_t diagonal, cg_tensor *out) {
  CG_TRY
  *out = cg::wrap(T(h).tril(diagonal));
  CG_CATCH
}

cg_err cg_masked_fill(cg_tensor h, cg_tensor mask, double value,
                      cg_tensor *out) {
  CG_TRY
  const at::Tensor &m = T(mask);
  // libtorch 1.13 takes any mask dtype: uint8 with a deprecation warning,
  // int64 as a mask, float32 silently filling nothing; 2.x refuses them all
  // ("masked_fill_ only supports boolean masks"). Refuse on both lines.
  if (m.scalar_type() != at::kBool)
    throw std::invalid_argument(std::string("mask must be a bool tensor, got ") +
                                cg::dtype_name(m.scalar_type()));
  *out = cg::wrap(T(h).masked_fill(m, value));
  CG_CATCH
}

cg_err cg_allclose(cg_tensor a, cg_tensor b, double rtol, double atol,
                   int *out) {
  CG_TRY
  *out = T(a).allclose(T(b), rtol, atol) ? 1 : 0;
  CG_CATCH
}

}  // extern "C"
