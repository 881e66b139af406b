// gemv.cc: F.linear for a single row of input, by golora's own kernel.
//
// Decoding one token at a time multiplies one row x (1×K) by every weight
// matrix W (N×K) of the model: y = W·x + b. That streams all of W from
// memory once per token and does 2 flops per 4 bytes, so its speed is the
// memory bandwidth a core gets. libtorch hands it to BLAS (MKL's sgemv in
// PyPI's wheels), which on this project's machines (AMD Zen 4) reached
// 12.8 GB/s on one core, against 24–26 GB/s for a plain streaming read:
// MKL runs its generic code path on AMD CPUs. The kernel below reads each
// row of W once, front to back, with four vector accumulators, and reaches
// the streaming rate (bench/README.md: decode of a GPT-2-small-sized model).
//
// It is used only where it cannot change what a user sees beyond float
// rounding (its sums run in another order than BLAS's, so results differ
// from at::linear's by a few ulps), and only where it pays:
//   - CPU, float32 input, weight and bias; W contiguous, or the transpose
//     of a contiguous matrix (GPT-2's Conv1D weight, stored in×out, is
//     passed as weight.T(); the kernel then runs down its rows, adding
//     x[k]·row k into y);
//   - exactly one row of input (any leading shape of 1s);
//   - W of at least kMinElements (1 MiB): smaller matrices stay in cache
//     and BLAS is as fast, and the op tests keep comparing libtorch's own
//     kernels;
//   - nothing for autograd to record and CPU autocast off;
//   - AVX-512F, or AVX2 with FMA (checked at run time).
// Anything else returns an undefined tensor and the caller uses at::linear.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <immintrin.h>

#include <cmath>
#include <torch/version.h>

#include "gemv.h"
#include "internal.h"

// GCC 12 warns about the undefined vector _mm512_reduce_add_ps starts from.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

constexpr int64_t kMinElements = int64_t(1) << 18;

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool cpu_autocast() { return at::autocast::is_autocast_enabled(at::kCPU); }
#else
bool cpu_autocast() { return at::autocast::is_cpu_enabled(); }
#endif

// Rows n0..n1 of y = W·x (+ b): each row of W, K floats, is a dot product
// with x, read once from front to back.
__attribute__((target("avx512f"))) void rows_avx512(const float *W, const float *x,
                                                  const float *b, float *y,
                                                  int64_t n0, int64_t n1, int64_t K) {
  for (int64_t n = n0; n < n1; n++) {
    const float *w = W + n * K;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
    }
    for (; k + 16 <= K; k += 16)
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; k < K; k++) s += w[k] * x[k];
    y[n] = b ? s + b[n] : s;
  }
}

__attribute__((target("avx2,fma"))) void rows_avx2(const float *W, const float *x,
                                                 const float *b, float *y,
                                                 int64_t n0, int64_t n1, int64_t K) {
  for (int64_t n = n0; n < n1; n++) {
    const float *w = W + n * K;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8)
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; k < K; k++) s += w[k] * x[k];
    y[n] = b ? s + b[n] : s;
  }
}

// Columns n0..n1 of y = x·Wio (+ b) for Wio = Wᵀ stored K×N (GPT-2's
// Conv1D layout, which transformers multiplies as addmm(b, x, Wio)): y's
// block stays in cache while the rows of Wio stream past, eight at a time
// (a third faster than four here, in line with one-row streaming).
__attribute__((target("avx512f"))) void cols_avx512(const float *Wio, const float *x,
                                                  const float *b, float *y,
                                                  int64_t n0, int64_t n1, int64_t K,
                                                  int64_t N) {
  for (int64_t n = n0; n < n1; n++) y[n] = 0;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const float *r = Wio + k * N;
    __m512 xv[8];
    for (int i = 0; i < 8; i++) xv[i] = _mm512_set1_ps(x[k + i]);
    int64_t n = n0;
    for (; n + 16 <= n1; n += 16) {
      __m512 a = _mm512_loadu_ps(y + n);
      for (int i = 0; i < 8; i++) a = _mm512_fmadd_ps(_mm512_loadu_ps(r + i * N + n), xv[i], a);
      _mm512_storeu_ps(y + n, a);
    }
    for (; n < n1; n++) {
      float a = y[n];
      for (int i = 0; i < 8; i++) a = std::fma(r[i * N + n], x[k + i], a);
      y[n] = a;
    }
  }
  for (; k < K; k++) {
    const float *r = Wio + k * N;
    for (int64_t n = n0; n < n1; n++) y[n] = std::fma(r[n], x[k], y[n]);
  }
  if (b)
    for (int64_t n = n0; n < n1; n++) y[n] += b[n];
}

__attribute__((target("avx2,fma"))) void cols_avx2(const float *Wio, const float *x,
                                                 const float *b, float *y,
                                                 int64_t n0, int64_t n1, int64_t K,
                                                 int64_t N) {
  for (int64_t n = n0; n < n1; n++) y[n] = 0;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const float *r = Wio + k * N;
    __m256 xv[8];
    for (int i = 0; i < 8; i++) xv[i] = _mm256_set1_ps(x[k + i]);
    int64_t n = n0;
    for (; n + 8 <= n1; n += 8) {
      __m256 a = _mm256_loadu_ps(y + n);
      for (int i = 0; i < 8; i++) a = _mm256_fmadd_ps(_mm256_loadu_ps(r + i * N + n), xv[i], a);
      _mm256_storeu_ps(y + n, a);
    }
    for (; n < n1; n++) {
      float a = y[n];
      for (int i = 0; i < 8; i++) a = std::fma(r[i * N + n], x[k + i], a);
      y[n] = a;
    }
  }
  for (; k < K; k++) {
    const float *r = Wio + k * N;
    for (int64_t n = n0; n < n1; n++) y[n] = std::fma(r[n], x[k], y[n]);
  }
  if (b)
    for (int64_t n = n0; n < n1; n++) y[n] += b[n];
}

using ColsFn = void (*)(const float *, const float *, const float *, float *,
                        int64_t, int64_t, int64_t, int64_t);

using RowsFn = void (*)(const float *, const float *, const float *, float *,
                        int64_t, int64_t, int64_t);

// 0: no kernel (GOLORA_GEMV=off, or neither AVX-512F nor AVX2+FMA);
// 1: AVX2 with FMA; 2: AVX-512F.
int pick_level() {
  if (const char *env = std::getenv("GOLORA_GEMV"); env && std::string(env) == "off")
    return 0;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

const int level = pick_level();
const RowsFn kernel = level == 2 ? rows_avx512 : level == 1 ? rows_avx2 : nullptr;
const ColsFn kernel_t = level == 2 ? cols_avx512 : level == 1 ? cols_avx2 : nullptr;

}  // namespace

namespace cg {

at::Tensor linear_one_row(const at::Tensor &x, const at::Tensor &w,
                          const at::Tensor &b) {
  if (kernel == nullptr || !x.defined() || !w.defined()) return {};
  if (x.dim() < 1 || w.dim() != 2) return {};
  const int64_t N = w.size(0), K = w.size(1);
  if (N * K < kMinElements || x.size(-1) != K || x.numel() != K) return {};
  // W itself (N×K, rows contiguous) or the transpose of a contiguous K×N
  // matrix (Conv1D's in×out weight passed as weight.T()).
  const bool rows = w.is_contiguous();
  const bool cols = !rows && w.stride(0) == 1 && w.stride(1) == N;
  if (!rows && !cols) return {};
  if (!x.device().is_cpu() || !w.device().is_cpu() ||
      x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat ||
      w.is_conj() || w.is_neg())
    return {};
  if (b.defined() && (!b.device().is_cpu() || b.scalar_type() != at::kFloat ||
                      b.dim() != 1 || b.size(0) != N))
    return {};
  if (at::GradMode::is_enabled() &&
      (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad())))
    return {};
  if (cpu_autocast()) return {};
  at::Tensor xc = x.contiguous();
  at::Tensor bc = b.defined() ? b.contiguous() : b;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  at::Tensor y = at::empty(shape, x.options());
  const float *W = w.data_ptr<float>(), *X = xc.data_ptr<float>();
  const float *B = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float *Y = y.data_ptr<float>();
  if (rows) {
    // Rows in blocks of at least 1 MiB of W per task: the split between
    // libtorch's intra-op threads (one on a single thread).
    const int64_t grain = std::max<int64_t>(1, kMinElements / K);
    at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) { kernel(W, X, B, Y, n0, n1, K); });
  } else {
    // Column blocks of at least 256 (a multiple of 16), each task reading
    // its slice of every row of Wᵀ.
    const int64_t grain = std::max<int64_t>(256, kMinElements / K / 16 * 16);
    at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) { kernel_t(W, X, B, Y, n0, n1, K, N); });
  }
  return y;
}

}  // namespace cg
