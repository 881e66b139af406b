package torch

/*
#include "cgotorch.h"
extern void goloraWarning(char *msg, int deprecation);
static cg_err install_warning_handler(void) {
	return cg_set_warning_handler((cg_warning_fn)goloraWarning);
}
*/
import "C"

import (
	"log/slog"
	"sync/atomic"
)

// libtorch's warnings (TORCH_WARN, e.g. a deprecated overload) reach Go as
// log/slog records at level Warn with the attribute source=libtorch,
// instead of raw lines on stderr. SetWarningLogger picks the logger.

var warnLogger atomic.Pointer[slog.Logger]

// SetWarningLogger routes libtorch's warnings to l; nil means
// slog.Default().
func SetWarningLogger(l *slog.Logger) { warnLogger.Store(l) }

//export goloraWarning
func goloraWarning(msg *C.char, deprecation C.int) {
	l := warnLogger.Load()
	if l == nil {
		l = slog.Default()
	}
	l.Warn(C.GoString(msg), "source", "libtorch", "deprecation", deprecation != 0)
}

func init() {
	if abiErr == nil {
		if e := C.install_warning_handler(); e != nil {
			C.cg_free_error(e)
		}
	}
}
