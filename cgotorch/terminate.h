/* terminate.h: libcgotorch's C++ terminate handler. Not part of the
 * versioned ABI in cgotorch.h: these entry points exist for golora's own
 * tests (torch/terminate.go), which check that the handler is installed and
 * that it fails loudly. */
#ifndef GOLORA_CGOTORCH_TERMINATE_H
#define GOLORA_CGOTORCH_TERMINATE_H

#ifdef __cplusplus
extern "C" {
#endif

/* cg_terminate_handler_installed returns 1 when std::get_terminate() is
 * libcgotorch's handler, 0 otherwise. */
int cg_terminate_handler_installed(void);

/* cg_test_escape_exception lets a C++ exception escape to its caller, which
 * calls std::terminate: for a test in a child process only. It never
 * returns. */
void cg_test_escape_exception(const char *what);

#ifdef __cplusplus
}
#endif

#endif
