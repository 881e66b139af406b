// optim.cc: fused optimizer steps, zero_grad and gradient clipping, one C
// call each over a whole parameter list.
//
// The steps are PyTorch's single-tensor algorithms (what torch.optim runs
// on the CPU, where foreach is off by default) transcribed op for op, with
// the same scalar arithmetic in double precision as Python's floats, so
// that a trajectory equals PyTorch's bit for bit when the gradients do:
//
//   SGD    torch/optim/sgd.py   _single_tensor_sgd
//   Adam   torch/optim/adam.py  _single_tensor_adam   (not capturable)
//   AdamW  torch/optim/adamw.py _single_tensor_adamw  (2.x: Adam with
//                                decoupled_weight_decay)
//
// Where the libtorch lines differ, the one this file is compiled against
// decides (CG_ADAM_LERP, CG_ADAM_POW_HALF below).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include "internal.h"

using cg::T;

#define CG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// PyTorch 2.1 (pytorch#104796, "use lerp whenever possible") updates
// Adam's first moment with exp_avg.lerp_(grad, 1 - beta1); 1.13 and 2.0
// with exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1).
#define CG_ADAM_LERP CG_TORCH_AT_LEAST(2, 1)
// Up to 2.3 the bias correction's square root is math.sqrt(bias_correction2)
// (_dispatch_sqrt); later lines compute bias_correction2 ** 0.5, which is
// C's pow(x, 0.5) and differs from sqrt in the last bit for some x.
#define CG_ADAM_POW_HALF CG_TORCH_AT_LEAST(2, 4)

struct cg_optim_s {
  int kind;
  std::vector<std::vector<at::Tensor>> state;  // [param][CG_STATE_N]
};

namespace {

const char *slot_name(int slot) {
  switch (slot) {
    case CG_STATE_STEP: return "step";
    case CG_STATE_EXP_AVG: return "exp_avg";
    case CG_STATE_EXP_AVG_SQ: return "exp_avg_sq";
    case CG_STATE_MAX_EXP_AVG_SQ: return "max_exp_avg_sq";
    case CG_STATE_MOMENTUM: return "momentum_buffer";
  }
  return "?";
}

// fail throws the message for parameter i, remembering i for the caller.
[[noreturn]] void fail(int *bad, int i, const std::string &msg) {
  if (bad != nullptr) *bad = i;
  throw std::invalid_argument(msg);
}

std::string describe(const at::Tensor &t) {
  std::string s = cg::dtype_name(t.scalar_type());
  s += " ";
  s += c10::str(t.sizes());
  s += " on ";
  s += t.device().str();
  return s;
}

bool same_kind(const at::Tensor &a, const at::Tensor &b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         a.device() == b.device();
}

// check_step validates every parameter that will be updated before any is:
// its gradient and its state match it.
void check_step(cg_optim o, const std::vector<at::Tensor> &ps, int *bad) {
  for (size_t i = 0; i < ps.size(); i++) {
    const at::Tensor &p = ps[i];
    const at::Tensor &g = p.grad();
    if (!g.defined()) continue;
    if (g.is_sparse())
      fail(bad, i, "sparse gradients are not supported");
    if (!same_kind(p, g))
      fail(bad, i, "its gradient is " + describe(g) + " but it is " +
                       describe(p));
    const std::vector<at::Tensor> &st = o->state[i];
    for (int s = CG_STATE_EXP_AVG; s < CG_STATE_N; s++) {
      if (st[s].defined() && !same_kind(p, st[s]))
        fail(bad, i, std::string("its state ") + slot_name(s) + " is " +
                         describe(st[s]) + " but it is " + describe(p) +
                         " (moved after the optimizer's first step?)");
    }
  }
}

float &step_of(std::vector<at::Tensor> &st) {
  at::Tensor &s = st[CG_STATE_STEP];
  if (!s.defined()) s = at::zeros({}, at::TensorOptions().dtype(at::kFloat));
  return *s.data_ptr<float>();
}

void sgd_one(const at::Tensor &param, const at::Tensor &g,
             std::vector<at::Tensor> &st, const cg_optim_group &h) {
  at::Tensor d_p = h.maximize ? g.neg() : g;
  if (h.weight_decay != 0) d_p = d_p.add(param, h.weight_decay);
  if (h.momentum != 0) {
    at::Tensor &buf = st[CG_STATE_MOMENTUM];
    if (!buf.defined()) {
      buf = d_p.clone().detach();
    } else {
      buf.mul_(h.momentum).add_(d_p, 1 - h.dampening);
    }
    if (h.nesterov) {
      d_p = d_p.add(buf, h.momentum);
    } else {
      d_p = buf;
    }
  }
  const_cast<at::Tensor &>(param).add_(d_p, -h.lr);
}

void adam_one(bool decoupled, const at::Tensor &cparam, const at::Tensor &g,
              std::vector<at::Tensor> &st, const cg_optim_group &h) {
  at::Tensor &param = const_cast<at::Tensor &>(cparam);
  at::Tensor grad = h.maximize ? g.neg() : g;
  at::Tensor &exp_avg = st[CG_STATE_EXP_AVG];
  at::Tensor &exp_avg_sq = st[CG_STATE_EXP_AVG_SQ];
  if (!exp_avg.defined()) {
    exp_avg = at::zeros_like(param, at::MemoryFormat::Preserve);
    exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Preserve);
  }
  if (h.amsgrad && !st[CG_STATE_MAX_EXP_AVG_SQ].defined())
    st[CG_STATE_MAX_EXP_AVG_SQ] =
        at::zeros_like(param, at::MemoryFormat::Preserve);

  float &step_t = step_of(st);
  step_t += 1;  // step_t += 1 on a float32 tensor

  if (decoupled) {
    // AdamW: 1.13 multiplies by 1 - lr*wd unconditionally, 2.x when
    // wd != 0; x * 1.0 == x, so both are this.
    if (h.weight_decay != 0) param.mul_(1 - h.lr * h.weight_decay);
  } else if (h.weight_decay != 0) {
    grad = grad.add(param, h.weight_decay);
  }

#if CG_ADAM_LERP
  exp_avg.lerp_(grad, 1 - h.beta1);
#else
  exp_avg.mul_(h.beta1).add_(grad, 1 - h.beta1);
#endif
  exp_avg_sq.mul_(h.beta2).addcmul_(grad, grad, 1 - h.beta2);

  // Python floats: step = step_t.item(), then plain double arithmetic.
  double step = static_cast<double>(step_t);
  double bias_correction1 = 1 - std::pow(h.beta1, step);
  double bias_correction2 = 1 - std::pow(h.beta2, step);
  double step_size = h.lr / bias_correction1;
#if CG_ADAM_POW_HALF
  volatile double half = 0.5;  // keep pow: the compiler may not turn it into sqrt
  double bias_correction2_sqrt = std::pow(bias_correction2, half);
#else
  double bias_correction2_sqrt = std::sqrt(bias_correction2);
#endif

  // denom = (v.sqrt() / bias_correction2_sqrt).add_(eps), with the
  // division in place: the same kernels and values, one temporary less.
  at::Tensor denom;
  if (h.amsgrad) {
    at::Tensor &mx = st[CG_STATE_MAX_EXP_AVG_SQ];
    at::maximum_out(mx, mx, exp_avg_sq);
    denom = mx.sqrt();
  } else {
    denom = exp_avg_sq.sqrt();
  }
  denom.div_(bias_correction2_sqrt).add_(h.eps);
  param.addcdiv_(exp_avg, denom, -step_size);
}

// ---- A one-pass Adam/AdamW kernel, used only where it is exact ----------
//
// adam_one runs PyTorch's algorithm as ~9 ATen ops per parameter; for the
// small float32 tensors of LoRA that is dispatch-bound (~150 µs a step for
// 8 parameters of 512 values). adam_raw does the same arithmetic in one
// pass over the raw data. Each ATen op rounds to float32 once per element,
// but whether its kernel fuses a multiply and an add into one FMA (the
// vectorized add and lerp kernels call fmadd; the compiler may contract
// addcmul's a + s·b·c) depends on the libtorch build. So the kernel comes in
// variants, one per choice, and calibrate() runs every variant against
// adam_one on this libtorch, on sizes that exercise the vector body and the
// scalar tail, values over many magnitudes and several steps; the first
// variant whose parameters and both moments equal adam_one's bit for bit
// is used, and when none does adam_one stays. Built with
// -ffp-contract=off, so nothing fuses that the variant does not ask for.

struct RawVariant {
  bool fma_m;     // exp_avg: m·β1 + (1-β1)·g as one FMA (add_ with alpha), or lerp's w·(g-m) + m
  bool fma_v;     // exp_avg_sq: v·β2 + ((1-β2)·g)·g as one FMA (addcmul)
  bool div_last;  // addcdiv: p + (s·m)/d, else p + s·(m/d)
};

struct RawScalars {
  bool wd;
  float c_wd, b1, a1, b2, a2, bc2s, eps, ns;
  bool lerp;
};

template <bool FM, bool FV, bool DL, bool FMA_OK>
__attribute__((target("avx2,fma"))) void adam_raw_fma(float *__restrict p, float *__restrict m, float *__restrict v,
                                                       const float *__restrict g, int64_t n, RawScalars k) {
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float pi = k.wd ? p[i] * k.c_wd : p[i];
    float mi;
    if (k.lerp) {
      float diff = gi - m[i];
      mi = FM ? __builtin_fmaf(k.a1, diff, m[i]) : m[i] + k.a1 * diff;
    } else {
      float mb = m[i] * k.b1;
      mi = FM ? __builtin_fmaf(gi, k.a1, mb) : mb + k.a1 * gi;
    }
    float vb = v[i] * k.b2;
    float t = k.a2 * gi;
    float vi = FV ? __builtin_fmaf(t, gi, vb) : vb + t * gi;
    float d = std::sqrt(vi) / k.bc2s + k.eps;
    float u = DL ? (k.ns * mi) / d : k.ns * (mi / d);
    p[i] = pi + u;
    m[i] = mi;
    v[i] = vi;
  }
}

using RawFn = void (*)(float *, float *, float *, const float *, int64_t, RawScalars);

template <bool FM, bool FV, bool DL>
RawFn raw_fn() {
  return &adam_raw_fma<FM, FV, DL, true>;
}

const RawFn kRawFns[8] = {raw_fn<true, true, true>(),   raw_fn<true, false, true>(),
                          raw_fn<false, true, true>(),  raw_fn<false, false, true>(),
                          raw_fn<true, true, false>(),  raw_fn<true, false, false>(),
                          raw_fn<false, true, false>(), raw_fn<false, false, false>()};

// The scalars adam_one computes, as the float32 values its kernels use.
RawScalars raw_scalars(bool decoupled, const cg_optim_group &h, double step) {
  RawScalars k{};
  k.wd = decoupled && h.weight_decay != 0;
  k.c_wd = static_cast<float>(1 - h.lr * h.weight_decay);
  k.b1 = static_cast<float>(h.beta1);
  k.a1 = static_cast<float>(1 - h.beta1);
  k.b2 = static_cast<float>(h.beta2);
  k.a2 = static_cast<float>(1 - h.beta2);
  double bias_correction1 = 1 - std::pow(h.beta1, step);
  double bias_correction2 = 1 - std::pow(h.beta2, step);
  double step_size = h.lr / bias_correction1;
#if CG_ADAM_POW_HALF
  volatile double half = 0.5;
  double bias_correction2_sqrt = std::pow(bias_correction2, half);
#else
  double bias_correction2_sqrt = std::sqrt(bias_correction2);
#endif
  k.bc2s = static_cast<float>(bias_correction2_sqrt);
  k.eps = static_cast<float>(h.eps);
  k.ns = static_cast<float>(-step_size);
#if CG_ADAM_LERP
  k.lerp = true;
#else
  k.lerp = false;
#endif
  return k;
}

// calibrate returns the index of the exact variant, or -1.
int calibrate() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return -1;
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20261123);
  cg_optim_group h{};
  h.lr = 1e-3;
  h.beta1 = 0.9;
  h.beta2 = 0.999;
  h.eps = 1e-8;
  h.weight_decay = 0.01;
  for (int variant = 0; variant < 8; variant++) {
    bool ok = true;
    for (int64_t n : {1, 5, 8, 15, 16, 17, 31, 64, 100, 513}) {
      for (int trial = 0; trial < 2 && ok; trial++) {
        h.weight_decay = trial == 0 ? 0.01 : 0.0;
        auto opts = at::TensorOptions().dtype(at::kFloat);
        at::Tensor scale = at::pow(10.0, at::randint(-6, 3, {n}, gen, opts));
        at::Tensor p0 = at::randn({n}, gen, opts).mul_(scale);
        at::Tensor pa = p0.clone(), pb = p0.clone();
        std::vector<at::Tensor> st(CG_STATE_N);
        st[CG_STATE_STEP] = at::zeros({}, opts);
        at::Tensor mb = at::zeros({n}, opts), vb = at::zeros({n}, opts);
        for (int step = 1; step <= 4 && ok; step++) {
          at::Tensor g = at::randn({n}, gen, opts).mul_(at::pow(10.0, at::randint(-5, 2, {n}, gen, opts)));
          adam_one(true, pa, g, st, h);
          RawScalars k = raw_scalars(true, h, static_cast<double>(step));
          kRawFns[variant](pb.data_ptr<float>(), mb.data_ptr<float>(), vb.data_ptr<float>(), g.data_ptr<float>(), n, k);
          ok = at::equal(pa, pb) && at::equal(st[CG_STATE_EXP_AVG], mb) && at::equal(st[CG_STATE_EXP_AVG_SQ], vb);
        }
      }
      if (!ok) break;
    }
    if (ok) return variant;
  }
  return -1;
}

// raw_variant is calibrate()'s answer, computed once (GOLORA_FUSED_ADAM=0
// turns the fast path off).
int raw_variant() {
  static const int v = [] {
    const char *env = std::getenv("GOLORA_FUSED_ADAM");
    if (env != nullptr && std::string(env) == "0") return -1;
    return calibrate();
  }();
  return v;
}

// adam_fast runs adam_raw when it applies (float32, CPU, contiguous, no
// amsgrad, no maximize, no coupled weight decay) and is exact here; it
// returns false when the caller must run adam_one.
bool adam_fast(bool decoupled, const at::Tensor &param, const at::Tensor &g,
               std::vector<at::Tensor> &st, const cg_optim_group &h) {
  if (h.amsgrad || h.maximize || (!decoupled && h.weight_decay != 0)) return false;
  if (param.scalar_type() != at::kFloat || g.scalar_type() != at::kFloat) return false;
  if (!param.is_cpu() || !g.is_cpu() || !param.is_contiguous() || !g.is_contiguous()) return false;
  if (param.sizes() != g.sizes()) return false;
  at::Tensor &exp_avg = st[CG_STATE_EXP_AVG];
  at::Tensor &exp_avg_sq = st[CG_STATE_EXP_AVG_SQ];
  if (exp_avg.defined() &&
      (exp_avg.scalar_type() != at::kFloat || exp_avg_sq.scalar_type() != at::kFloat ||
       !exp_avg.is_contiguous() || !exp_avg_sq.is_contiguous() || !exp_avg.is_cpu() ||
       !exp_avg_sq.is_cpu() || exp_avg.sizes() != param.sizes() || exp_avg_sq.sizes() != param.sizes()))
    return false;
  int variant = raw_variant();
  if (variant < 0) return false;
  if (!exp_avg.defined()) {
    exp_avg = at::zeros_like(param, at::MemoryFormat::Preserve);
    exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Preserve);
  }
  float &step_t = step_of(st);
  step_t += 1;
  RawScalars k = raw_scalars(decoupled, h, static_cast<double>(step_t));
  at::Tensor &p = const_cast<at::Tensor &>(param);
  // Every element's update is independent of the others and of where it
  // falls in a vector or the tail (calibrate checks every length), so
  // splitting the tensor over libtorch's intra-op threads, as PyTorch's
  // elementwise ops are, gives the same bits.
  float *pp = p.data_ptr<float>(), *mp = exp_avg.data_ptr<float>(), *vp = exp_avg_sq.data_ptr<float>();
  const float *gp = g.data_ptr<float>();
  const auto fn = kRawFns[variant];
  at::parallel_for(0, p.numel(), at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    fn(pp + begin, mp + begin, vp + begin, gp + begin, end - begin, k);
  });
  // The tensors changed in place behind ATen's back: bump their versions,
  // as the in-place ops would have.
  p.unsafeGetTensorImpl()->bump_version();
  exp_avg.unsafeGetTensorImpl()->bump_version();
  exp_avg_sq.unsafeGetTensorImpl()->bump_version();
  return true;
}

std::vector<at::Tensor> tensors_of(const cg_tensor *ts, int n) {
  if (n < 0) throw std::invalid_argument("negative tensor count");
  if (n > 0 && ts == nullptr) throw std::invalid_argument("null tensor list");
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    if (ts[i] == nullptr)
      throw std::invalid_argument("null tensor handle at index " +
                                  std::to_string(i));
    out.push_back(ts[i]->t);
  }
  return out;
}

}  // namespace

extern "C" {

cg_err cg_optim_new(int kind, const cg_tensor *params, int n, int *bad,
                    cg_optim *out) {
  if (bad != nullptr) *bad = -1;
  CG_TRY
  if (kind != CG_OPTIM_SGD && kind != CG_OPTIM_ADAM && kind != CG_OPTIM_ADAMW)
    throw std::invalid_argument("unknown optimizer kind " +
                                std::to_string(kind));
  std::vector<at::Tensor> ps = tensors_of(params, n);
  std::unordered_set<const c10::TensorImpl *> seen;
  for (int i = 0; i < n; i++) {
    const at::Tensor &p = ps[i];
    if (!p.defined()) fail(bad, i, "undefined tensor");
    if (!p.is_leaf()) fail(bad, i, "can't optimize a non-leaf tensor");
    if (!p.requires_grad())
      fail(bad, i, "the tensor is frozen (requires_grad is false)");
    if (p.is_sparse() || !p.is_floating_point())
      fail(bad, i, "can't optimize a " + describe(p) +
                       " tensor: parameters must be dense floating point");
    if (!seen.insert(p.unsafeGetTensorImpl()).second)
      fail(bad, i, "the tensor is given twice (the same tensor under two names?)");
  }
  cg_optim o = new cg_optim_s;
  o->kind = kind;
  o->state.assign(n, std::vector<at::Tensor>(CG_STATE_N));
  *out = o;
  CG_CATCH
}

void cg_optim_free(cg_optim o) { delete o; }

cg_err cg_optim_step(cg_optim o, const cg_tensor *params, int n,
                     const int *group_of, const cg_optim_group *groups,
                     int ngroups, int *bad) {
  if (bad != nullptr) *bad = -1;
  CG_TRY
  if (o == nullptr) throw std::invalid_argument("null optimizer");
  if (n != static_cast<int>(o->state.size()))
    throw std::invalid_argument("the optimizer has " +
                                std::to_string(o->state.size()) +
                                " parameters but the step was given " +
                                std::to_string(n));
  std::vector<at::Tensor> ps = tensors_of(params, n);
  for (int i = 0; i < n; i++) {
    if (group_of == nullptr || group_of[i] < 0 || group_of[i] >= ngroups)
      fail(bad, i, "bad group index");
  }
  at::NoGradGuard no_grad;
  check_step(o, ps, bad);
  for (int i = 0; i < n; i++) {
    const at::Tensor &p = ps[i];
    const at::Tensor &g = p.grad();
    if (!g.defined()) continue;
    const cg_optim_group &h = groups[group_of[i]];
    switch (o->kind) {
      case CG_OPTIM_SGD: sgd_one(p, g, o->state[i], h); break;
      case CG_OPTIM_ADAM:
        if (!adam_fast(false, p, g, o->state[i], h)) adam_one(false, p, g, o->state[i], h);
        break;
      case CG_OPTIM_ADAMW:
        if (!adam_fast(true, p, g, o->state[i], h)) adam_one(true, p, g, o->state[i], h);
        break;
    }
  }
  CG_CATCH
}

cg_err cg_optim_get_state(cg_optim o, int i, cg_tensor *out) {
  CG_TRY
  if (o == nullptr) throw std::invalid_argument("null optimizer");
  if (i < 0 || i >= static_cast<int>(o->state.size()))
    throw std::invalid_argument("parameter index out of range");
  const std::vector<at::Tensor> &st = o->state[i];
  for (int s = 0; s < CG_STATE_N; s++)
    out[s] = st[s].defined() ? cg::wrap(st[s]) : nullptr;
  CG_CATCH
}

cg_err cg_optim_set_state(cg_optim o, const cg_tensor *params, int n,
                          const cg_tensor *state, int *bad) {
  if (bad != nullptr) *bad = -1;
  CG_TRY
  if (o == nullptr) throw std::invalid_argument("null optimizer");
  if (n != static_cast<int>(o->state.size()))
    throw std::invalid_argument("the optimizer has " +
                                std::to_string(o->state.size()) +
                                " parameters but was given " +
                                std::to_string(n));
  std::vector<at::Tensor> ps = tensors_of(params, n);
  // Check everything, then copy everything into new tensors, then swap:
  // an error at any point leaves the old state as it was.
  for (int i = 0; i < n; i++) {
    for (int s = 0; s < CG_STATE_N; s++) {
      cg_tensor h = state[i * CG_STATE_N + s];
      if (h == nullptr) continue;
      const at::Tensor &t = h->t;
      if (!t.defined()) fail(bad, i, std::string(slot_name(s)) + ": undefined tensor");
      if (s == CG_STATE_STEP) {
        if (t.numel() != 1 || t.dim() > 1 || t.is_complex() || t.scalar_type() == at::kBool)
          fail(bad, i, "step: want a real scalar, got " + describe(t));
        continue;
      }
      if (t.sizes() != ps[i].sizes())
        fail(bad, i, std::string(slot_name(s)) + ": shape " +
                         c10::str(t.sizes()) + " but the parameter's is " +
                         c10::str(ps[i].sizes()));
      if (!t.is_floating_point())
        fail(bad, i, std::string(slot_name(s)) + ": want floating point, got " +
                         describe(t));
    }
  }
  at::NoGradGuard no_grad;
  std::vector<std::vector<at::Tensor>> next(n, std::vector<at::Tensor>(CG_STATE_N));
  for (int i = 0; i < n; i++) {
    for (int s = 0; s < CG_STATE_N; s++) {
      cg_tensor h = state[i * CG_STATE_N + s];
      if (h == nullptr) continue;
      const at::Tensor &t = h->t;
      if (s == CG_STATE_STEP) {
        next[i][s] = t.detach()
                         .reshape({})
                         .to(at::TensorOptions().dtype(at::kFloat).device(at::kCPU),
                             /*non_blocking=*/false, /*copy=*/true);
        continue;
      }
      // Like PyTorch's load_state_dict: floating state takes the
      // parameter's dtype and device. A fresh contiguous copy, never an
      // alias of the caller's tensor.
      at::Tensor c = at::empty_like(ps[i], at::MemoryFormat::Preserve);
      c.copy_(t.detach());
      next[i][s] = c;
    }
  }
  o->state.swap(next);
  CG_CATCH
}

cg_err cg_optim_state_bytes(cg_optim o, int64_t *out) {
  CG_TRY
  if (o == nullptr) throw std::invalid_argument("null optimizer");
  int64_t n = 0;
  for (const auto &st : o->state)
    for (const auto &t : st)
      if (t.defined()) n += static_cast<int64_t>(t.numel() * t.element_size());
  *out = n;
  CG_CATCH
}

cg_err cg_zero_grads(const cg_tensor *ts, int n, int set_to_none) {
  CG_TRY
  std::vector<at::Tensor> ps = tensors_of(ts, n);
  for (at::Tensor &t : ps) {
    if (!t.grad().defined()) continue;
    if (set_to_none) {
      t.mutable_grad().reset();
    } else {
      // PyTorch's zero_grad(set_to_none=False): detach a grad that has a
      // grad_fn, else stop its autograd tracking, then zero it.
      at::Tensor &g = t.mutable_grad();
      if (g.grad_fn()) {
        g.detach_();
      } else {
        g.requires_grad_(false);
      }
      g.zero_();
    }
  }
  CG_CATCH
}

cg_err cg_clip_grad_norm(const cg_tensor *ts, int n, double max_norm,
                         double norm_type, double *total) {
  CG_TRY
  std::vector<at::Tensor> ps = tensors_of(ts, n);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const at::Tensor &p : ps)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) {
    *total = 0;
    return nullptr;
  }
  at::Device dev = grads[0].device();
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  at::Tensor total_norm;
#if TORCH_VERSION_MAJOR < 2
  // 1.13: max|g| for the infinity norm, else torch.norm(g, p) over all
  // dims (aten::norm), then the same over the stack of the norms.
  if (std::isinf(norm_type) && norm_type > 0) {
    for (const at::Tensor &g : grads)
      norms.push_back(g.detach().abs().max().to(dev));
    total_norm = norms.size() == 1 ? norms[0] : at::stack(norms).max();
  } else {
    for (const at::Tensor &g : grads) {
      std::vector<int64_t> dims(g.dim());
      for (int64_t d = 0; d < g.dim(); d++) dims[d] = d;
      norms.push_back(at::norm(g.detach(), norm_type, dims, false).to(dev));
    }
    at::Tensor st = at::stack(norms);
    total_norm = at::norm(st, norm_type, std::vector<int64_t>{0}, false);
  }
#else
  // 2.x: the gradients grouped by (device, dtype) in order of first
  // appearance (_group_tensors_by_device_and_dtype), linalg.vector_norm
  // of each (_foreach_norm, which on the CPU is that loop), then the norm
  // of their stack on the first gradient's device.
  std::vector<std::pair<at::Device, at::ScalarType>> keys;
  for (const at::Tensor &g : grads) {
    std::pair<at::Device, at::ScalarType> k{g.device(), g.scalar_type()};
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  for (const auto &k : keys)
    for (const at::Tensor &g : grads)
      if (g.device() == k.first && g.scalar_type() == k.second)
        norms.push_back(at::linalg_vector_norm(g.detach(), norm_type).to(dev));
  total_norm = at::linalg_vector_norm(at::stack(norms), norm_type);
#endif
  // Python's max_norm / (total_norm + 1e-6) is Tensor.__rtruediv__:
  // reciprocal() * max_norm.
  at::Tensor clip_coef = (total_norm + 1e-6).reciprocal() * max_norm;
  at::Tensor clamped = at::clamp(clip_coef, c10::nullopt, at::Scalar(1.0));
  for (const at::Tensor &g : grads)
    const_cast<at::Tensor &>(g).detach().mul_(clamped.to(g.device()));
  *total = total_norm.item<double>();
  CG_CATCH
}

cg_err cg_clip_grad_value(const cg_tensor *ts, int n, double clip) {
  CG_TRY
  std::vector<at::Tensor> ps = tensors_of(ts, n);
  at::NoGradGuard no_grad;
  for (const at::Tensor &p : ps) {
    const at::Tensor &g = p.grad();
    if (!g.defined()) continue;
    const_cast<at::Tensor &>(g).clamp_(-clip, clip);
  }
  CG_CATCH
}

}  // extern "C"
