// rng.cc: saving and restoring the default generators' state.
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "internal.h"

namespace {

// generator returns the default generator of a device. The CUDA one comes
// through at::globalContext(), which needs no CUDA headers and so builds
// against a CPU libtorch too; device_of has checked that CUDA is there.
at::Generator generator(int device_type, int device_index) {
  if (device_type == CG_CPU) return at::detail::getDefaultCPUGenerator();
  at::Device d = cg::device_of(device_type, device_index);
  return at::globalContext().defaultGenerator(d);
}

}  // namespace

extern "C" {

cg_err cg_rng_get_state(int device_type, int device_index, cg_tensor *out) {
  CG_TRY
  at::Generator gen = generator(device_type, device_index);
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  *out = cg::wrap(std::move(state));
  CG_CATCH
}

cg_err cg_rng_set_state(int device_type, int device_index, cg_tensor h) {
  CG_TRY
  at::Generator gen = generator(device_type, device_index);
  const at::Tensor &state = cg::T(h);
  if (!state.defined()) throw std::invalid_argument("RNG state is undefined");
  if (state.layout() != at::kStrided || !state.device().is_cpu() ||
      state.scalar_type() != at::kByte)
    throw std::invalid_argument(
        std::string("RNG state must be a CPU uint8 tensor, got ") +
        cg::dtype_name(state.scalar_type()) + " on " + state.device().str());
  std::lock_guard<std::mutex> lock(gen.mutex());
  // Only the size get_state gives is accepted (the CPU generator would
  // also read the legacy THGeneratorState layout; no caller makes one).
  int64_t want = gen.get_state().numel();
  if (state.numel() != want)
    throw std::invalid_argument("RNG state has " +
                                std::to_string(state.numel()) +
                                " bytes, the generator's has " +
                                std::to_string(want));
  gen.set_state(state.contiguous());
  CG_CATCH
}

}  // extern "C"
