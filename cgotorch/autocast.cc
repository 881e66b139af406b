// autocast.cc: libtorch's autocast state (per thread), for the Go guard
// torch.Autocast, which pins its goroutine to one OS thread.
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "internal.h"

namespace {

// libtorch 2.4 replaced the per-device functions (set_cpu_enabled, ...)
// with ones taking a device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define CG_AUTOCAST_BY_DEVICE 1
#endif

at::DeviceType autocast_device(int device_type) {
  if (device_type == CG_CPU) return at::kCPU;
  if (device_type == CG_CUDA) return at::kCUDA;
  throw std::invalid_argument("unknown device type " +
                              std::to_string(device_type));
}

bool get_enabled(at::DeviceType d) {
#ifdef CG_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == at::kCPU ? at::autocast::is_cpu_enabled()
                       : at::autocast::is_enabled();
#endif
}

at::ScalarType get_dtype(at::DeviceType d) {
#ifdef CG_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == at::kCPU ? at::autocast::get_autocast_cpu_dtype()
                       : at::autocast::get_autocast_gpu_dtype();
#endif
}

void set_state(at::DeviceType d, bool on, at::ScalarType st) {
#ifdef CG_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(d, on);
  at::autocast::set_autocast_dtype(d, st);
#else
  if (d == at::kCPU) {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(st);
  } else {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(st);
  }
#endif
}

}  // namespace

extern "C" {

cg_err cg_autocast_get(int device_type, int *enabled, int *dtype) {
  CG_TRY
  auto d = autocast_device(device_type);
  *enabled = get_enabled(d) ? 1 : 0;
  *dtype = cg::code_of(get_dtype(d));
  CG_CATCH
}

cg_err cg_autocast_enter(int device_type, int enabled, int dtype) {
  CG_TRY
  auto d = autocast_device(device_type);
  auto st = cg::dtype_of(dtype);
  if (enabled && st != at::kBFloat16 && st != at::kHalf)
    throw std::invalid_argument(std::string("autocast dtype must be bfloat16 or float16, got ") +
                                c10::toString(st));
  set_state(d, enabled != 0, st);
  at::autocast::increment_nesting();
  CG_CATCH
}

cg_err cg_autocast_exit(int device_type, int prev_enabled, int prev_dtype) {
  CG_TRY
  auto d = autocast_device(device_type);
  // As torch.autocast.__exit__: the cast-weight cache lives for the
  // outermost region only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_state(d, prev_enabled != 0, cg::dtype_of(prev_dtype));
  CG_CATCH
}

}  // extern "C"
