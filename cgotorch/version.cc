// version.cc: ABI version, errors, dtype/device codes, CUDA, threads, seeds.
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "internal.h"

namespace cg {

at::ScalarType dtype_of(int code) {
  switch (code) {
    case CG_UINT8: return at::kByte;
    case CG_INT32: return at::kInt;
    case CG_INT64: return at::kLong;
    case CG_FLOAT16: return at::kHalf;
    case CG_FLOAT32: return at::kFloat;
    case CG_FLOAT64: return at::kDouble;
    case CG_BOOL: return at::kBool;
    case CG_BFLOAT16: return at::kBFloat16;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(code));
}

int code_of(at::ScalarType st) {
  switch (st) {
    case at::kByte: return CG_UINT8;
    case at::kInt: return CG_INT32;
    case at::kLong: return CG_INT64;
    case at::kHalf: return CG_FLOAT16;
    case at::kFloat: return CG_FLOAT32;
    case at::kDouble: return CG_FLOAT64;
    case at::kBool: return CG_BOOL;
    case at::kBFloat16: return CG_BFLOAT16;
    default: break;
  }
  throw std::invalid_argument(std::string("unsupported dtype ") +
                              c10::toString(st));
}

const char *dtype_name(at::ScalarType st) {
  switch (st) {
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kHalf: return "float16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBool: return "bool";
    case at::kBFloat16: return "bfloat16";
    case at::kComplexFloat: return "complex64";
    case at::kComplexDouble: return "complex128";
    default: return c10::toString(st);
  }
}

at::Device device_of(int type, int index) {
  if (type == CG_CPU) return at::Device(at::kCPU);
  if (type == CG_CUDA) {
    if (!torch::cuda::is_available())
      throw std::invalid_argument(
          "CUDA device requested but CUDA is not available (libcgotorch is "
          "built against a CPU libtorch or no GPU is visible)");
    if (index < 0 || index >= (int)torch::cuda::device_count())
      throw std::invalid_argument(
          "CUDA device index " + std::to_string(index) + " out of range (" +
          std::to_string(torch::cuda::device_count()) + " devices)");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

at::IntArrayRef ints(const int64_t *p, int n) {
  if (n < 0) throw std::invalid_argument("negative length");
  if (n > 0 && p == nullptr) throw std::invalid_argument("null int array");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

}  // namespace cg

extern "C" {

int cg_abi_version(void) { return CG_ABI_VERSION; }

void cg_free_error(cg_err err) { std::free(const_cast<char *>(err)); }

cg_err cg_torch_version(const char **out) {
  CG_TRY
  *out = cg::dup(TORCH_VERSION);
  CG_CATCH
}

cg_err cg_cuda_is_available(int *out) {
  CG_TRY
  *out = torch::cuda::is_available() ? 1 : 0;
  CG_CATCH
}

cg_err cg_cuda_device_count(int *out) {
  CG_TRY
  *out = static_cast<int>(torch::cuda::device_count());
  CG_CATCH
}

cg_err cg_cuda_synchronize(int device) {
  CG_TRY
  cg::device_of(CG_CUDA, device);  // validates
  torch::cuda::synchronize(device);
  CG_CATCH
}

cg_err cg_set_num_threads(int n) {
  CG_TRY
  if (n <= 0) throw std::invalid_argument("thread count must be positive");
  at::set_num_threads(n);
  CG_CATCH
}

cg_err cg_get_num_threads(int *out) {
  CG_TRY
  *out = at::get_num_threads();
  CG_CATCH
}

cg_err cg_manual_seed(uint64_t seed) {
  CG_TRY
  // torch::manual_seed seeds the CPU generator and, when present, every
  // CUDA generator, like Python's torch.manual_seed.
  torch::manual_seed(seed);
  CG_CATCH
}

}  // extern "C"
