// init.cc: in-place initialisers. torch::nn::init runs them without
// autograd and draws from the default generator, as Python's nn.init does.
#include "internal.h"

using cg::T;

namespace {

torch::nn::init::NonlinearityType nonlin(int code) {
  switch (code) {
    case 0: return torch::kLeakyReLU;
    case 1: return torch::kReLU;
    case 2: return torch::kLinear;
    case 3: return torch::kTanh;
    case 4: return torch::kSigmoid;
  }
  throw std::invalid_argument("unknown nonlinearity code " +
                              std::to_string(code));
}

torch::nn::init::FanModeType fan(int code) {
  if (code == 0) return torch::kFanIn;
  if (code == 1) return torch::kFanOut;
  throw std::invalid_argument("unknown fan mode code " + std::to_string(code));
}

}  // namespace

extern "C" {

cg_err cg_uniform_(cg_tensor h, double lo, double hi) {
  CG_TRY
  if (!(lo <= hi))
    throw std::invalid_argument("uniform_: low must not exceed high");
  torch::nn::init::uniform_(T(h), lo, hi);
  CG_CATCH
}

cg_err cg_normal_(cg_tensor h, double mean, double std) {
  CG_TRY
  if (!(std >= 0))
    throw std::invalid_argument("normal_: std must be non-negative");
  torch::nn::init::normal_(T(h), mean, std);
  CG_CATCH
}

cg_err cg_fill_(cg_tensor h, double value) {
  CG_TRY
  torch::nn::init::constant_(T(h), value);
  CG_CATCH
}

cg_err cg_kaiming_(cg_tensor h, int normal, double a, int mode,
                   int nonlinearity) {
  CG_TRY
  if (normal)
    torch::nn::init::kaiming_normal_(T(h), a, fan(mode), nonlin(nonlinearity));
  else
    torch::nn::init::kaiming_uniform_(T(h), a, fan(mode), nonlin(nonlinearity));
  CG_CATCH
}

cg_err cg_xavier_(cg_tensor h, int normal, double gain) {
  CG_TRY
  if (normal)
    torch::nn::init::xavier_normal_(T(h), gain);
  else
    torch::nn::init::xavier_uniform_(T(h), gain);
  CG_CATCH
}

}  // extern "C"
