// terminate.cc: a terminate handler that fails loudly.
//
// Every entry point of the C ABI catches every C++ exception (CG_TRY /
// CG_CATCH in internal.h) and returns it as an error, so none should ever
// reach std::terminate. If one does (a bug in libcgotorch, or an exception
// thrown on a libtorch worker thread), the process must not die with a bare
// "terminate called after throwing..." or, worse, unwind into Go's frames:
// this handler, installed when the library is loaded, names golora, the
// exception's type and message, and aborts.
#include "terminate.h"

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace {

[[noreturn]] void golora_terminate() noexcept {
  std::fputs("golora: fatal: a C++ exception escaped libcgotorch (a bug in golora: please report it)\n",
             stderr);
  if (std::exception_ptr e = std::current_exception()) {
    const std::type_info *ti = abi::__cxa_current_exception_type();
    int status = 0;
    char *name = ti ? abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status) : nullptr;
    std::fprintf(stderr, "golora: exception type: %s\n",
                 name ? name : (ti ? ti->name() : "unknown"));
    std::free(name);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception &x) {
      std::fprintf(stderr, "golora: exception message: %s\n", x.what());
    } catch (...) {
      std::fputs("golora: exception message: (not a std::exception)\n", stderr);
    }
  } else {
    std::fputs("golora: std::terminate called without an active exception\n", stderr);
  }
  std::fflush(stderr);
  std::abort();
}

// Installed at load time, before any entry point can run.
struct Install {
  Install() { std::set_terminate(golora_terminate); }
} install;

// escape throws through a noexcept boundary: the C++ runtime calls
// std::terminate without unwinding into the caller (Go).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wterminate"
void escape(const char *what) noexcept {
  throw std::runtime_error(what == nullptr ? "" : what);
}
#pragma GCC diagnostic pop

}  // namespace

extern "C" {

int cg_terminate_handler_installed(void) {
  return std::get_terminate() == golora_terminate ? 1 : 0;
}

void cg_test_escape_exception(const char *what) { escape(what); }

}  // extern "C"
