// warnings.cc: libtorch warnings (TORCH_WARN) routed to a C callback.
//
// libtorch keeps its warning handler in a thread_local, in 1.13
// (c10::Warning::set_warning_handler, although its comment says "global")
// as in 2.x (c10::WarningUtils::set_warning_handler): both store the pointer
// through __tls_get_addr, and a thread that never set one uses a built-in
// handler that prints to stderr. Installing a handler on one thread would
// therefore miss every warning raised on another, and Go runs its calls on
// whichever OS thread it likes. So cg_set_warning_handler only records the
// callback globally; CG_TRY (internal.h) installs the one process-wide
// handler object on the calling thread at the start of every entry point
// (a relaxed atomic load when no callback was ever set; then one call to
// get_warning_handler). Warnings raised by libtorch inside an entry point
// therefore reach the callback whichever OS thread runs it; autograd's
// worker threads collect theirs and replay them on the thread that called
// backward, so those arrive too. Warnings raised on libtorch's intra-op
// worker threads (inside at::parallel_for bodies, rare) still go to stderr,
// as they do in Python, because libtorch offers no hook to reach those
// threads; if one did reach the handler, calling the callback from it is
// safe (fn may be called from any thread).
#include <torch/version.h>

#include "internal.h"

namespace cg {

std::atomic<bool> warn_handler_on{false};

namespace {

std::atomic<cg_warning_fn> warn_fn{nullptr};

#if TORCH_VERSION_MAJOR >= 2
namespace wu = c10::WarningUtils;
#else
namespace wu = c10::Warning;
#endif

class Handler : public c10::WarningHandler {
 public:
#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning &w) override {
    cg_warning_fn fn = warn_fn.load(std::memory_order_acquire);
    if (fn == nullptr) {
      c10::WarningHandler::process(w);  // libtorch's own: stderr
      return;
    }
    bool deprecation =
        std::holds_alternative<c10::DeprecationWarning>(w.type());
    deliver(fn, w.msg(), deprecation);
  }
#else
  void process(const c10::SourceLocation &loc, const std::string &msg,
               const bool verbatim) override {
    cg_warning_fn fn = warn_fn.load(std::memory_order_acquire);
    if (fn == nullptr) {
      c10::WarningHandler::process(loc, msg, verbatim);  // stderr
      return;
    }
    // 1.13 has no warning categories: everything is a UserWarning.
    deliver(fn, msg, false);
  }
#endif

 private:
  static void deliver(cg_warning_fn fn, const std::string &msg,
                      bool deprecation) {
    // The message carries no location (that is a separate field), but
    // clean it like errors in case it quotes one.
    std::string m;
    try {
      m = clean(msg.c_str());
    } catch (...) {
      m = msg;
    }
    fn(m.c_str(), deprecation ? 1 : 0);
  }
};

// Never destroyed: other threads may hold it as their handler until exit.
Handler *handler() {
  static Handler *h = new Handler();
  return h;
}

}  // namespace

void adopt_warning_handler_slow() noexcept {
  Handler *h = handler();
  if (wu::get_warning_handler() != h) wu::set_warning_handler(h);
}

}  // namespace cg

extern "C" {

cg_err cg_set_warning_handler(cg_warning_fn fn) {
  CG_TRY
  cg::handler();  // construct before publishing
  cg::warn_fn.store(fn, std::memory_order_release);
  // Once set, the handler stays installed (threads pick it up in CG_TRY);
  // with fn NULL it hands warnings to libtorch's default, which prints
  // them to stderr.
  cg::warn_handler_on.store(true, std::memory_order_release);
  cg::adopt_warning_handler_slow();
  CG_CATCH
}

}  // extern "C"
