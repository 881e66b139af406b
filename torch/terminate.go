package torch

/*
#cgo CFLAGS: -I${SRCDIR}/../cgotorch
#include <stdlib.h>
#include "terminate.h"
*/
import "C"

import "unsafe"

// Every C entry point catches every C++ exception and returns it as an
// error, so none reaches Go. If one ever escaped (a bug), libcgotorch's
// terminate handler (cgotorch/terminate.cc, installed when the library
// loads) prints "golora: fatal: a C++ exception escaped libcgotorch" with
// the exception's type and message on stderr and aborts the process, rather
// than unwinding into Go's frames. The tests check both halves.

// terminateHandlerInstalled reports whether libcgotorch's terminate handler
// is the process's current one.
func terminateHandlerInstalled() bool { return C.cg_terminate_handler_installed() == 1 }

// escapeCPPException lets a C++ exception with message what escape C: the
// process aborts. For a test's child process only.
func escapeCPPException(what string) {
	cs := C.CString(what)
	defer C.free(unsafe.Pointer(cs))
	C.cg_test_escape_exception(cs)
}
