// Package torch is golora's tensor API over libtorch.
//
// It is the only package of golora that uses cgo. It links libcgotorch.so
// (built by scripts/install_libtorch.sh) and nothing of libtorch itself, so
// one Go binary runs on any libtorch build, CPU or CUDA, that libcgotorch.so
// was built against.
//
// Every operation returns its error; libtorch's C++ exceptions surface as
// *Error values. Tensors own C++ memory: Close them when done (a finalizer
// is only a safety net), and use LiveTensors in tests to find leaks. Must
// turns any fallible call into a panicking one for scripts and examples.
package torch

/*
#cgo CFLAGS: -I${SRCDIR}/../cgotorch
#cgo LDFLAGS: -lcgotorch
#include <stdlib.h>
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"sync"
)

// ABIVersion is the version of the C ABI this package was written against.
// A libcgotorch.so reporting another version is refused.
const ABIVersion = 1

var abiErr = abiError(int(C.cg_abi_version()))

// abiError returns the error for a libcgotorch.so reporting ABI version v.
func abiError(v int) error {
	if v != ABIVersion {
		return fmt.Errorf("torch: libcgotorch.so has ABI version %d but this golora needs %d; "+
			"the installed library is stale: rerun scripts/install_libtorch.sh", v, ABIVersion)
	}
	return nil
}

// CheckABI reports whether the loaded libcgotorch.so matches this package.
// Every function that creates a tensor returns this error too.
func CheckABI() error { return abiErr }

// Error is an error raised by libtorch or by a check of this package.
type Error struct {
	Op  string // the golora operation, e.g. "MatMul"
	Msg string // libtorch's message, without the C++ backtrace
}

// Error returns "torch: <Op>: <message>".
func (e *Error) Error() string { return "torch: " + e.Op + ": " + e.Msg }

// check converts a cg_err into a Go error and frees the C string.
func check(op string, e C.cg_err) error {
	if e == nil {
		return nil
	}
	msg := C.GoString(e)
	C.cg_free_error(e)
	return &Error{Op: op, Msg: msg}
}

func errorf(op, format string, args ...any) error {
	return &Error{Op: op, Msg: fmt.Sprintf(format, args...)}
}

// Must returns v, or panics if err is not nil. It is the convenience form
// of any fallible call: y := torch.Must(x.MatMul(w)).
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var versionOnce = sync.OnceValue(func() string {
	var s *C.char
	if err := check("Version", C.cg_torch_version(&s)); err != nil {
		return "unknown"
	}
	defer C.cg_free_error(s)
	return C.GoString(s)
})

// Version returns the version of libtorch that libcgotorch.so was built
// against as its headers state it, such as "2.11.0" (Debian's 1.13.1
// package reports "1.13.0").
func Version() string { return versionOnce() }
