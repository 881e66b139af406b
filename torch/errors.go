package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
)

// Error is an error raised by libtorch or by a check of this package.
type Error struct {
	Op    string // the golora operation, e.g. "MatMul"
	Arg   string // the argument at fault, e.g. "mask", when known
	Msg   string // the message, without C++ backtrace or source location
	Where string // file:line of the innermost caller outside golora's library packages
}

// Error returns "torch: <Op>: <Arg>: <message> (at file.go:12)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("torch: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Arg != "" {
		b.WriteString(e.Arg)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Where != "" {
		b.WriteString(" (at ")
		b.WriteString(e.Where)
		b.WriteString(")")
	}
	return b.String()
}

// newError makes an *Error and records where the user's code called in.
func newError(op, arg, msg string) *Error {
	return &Error{Op: op, Arg: arg, Msg: msg, Where: caller()}
}

// check converts a cg_err into a Go error and frees the C string.
func check(op string, e C.cg_err) error {
	if e == nil {
		return nil
	}
	msg := C.GoString(e)
	C.cg_free_error(e)
	return newError(op, "", msg)
}

func errorf(op, format string, args ...any) error {
	return newError(op, "", fmt.Sprintf(format, args...))
}

// argErrorf is errorf naming the argument at fault.
func argErrorf(op, arg, format string, args ...any) error {
	return newError(op, arg, fmt.Sprintf(format, args...))
}

// caller returns file:line of the innermost frame outside golora's library
// (non-test files): the line of user code that called the failing op.
func caller() string {
	var pcs [32]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.File != "" && !inThisPackage(f) {
			return filepath.Base(f.File) + fmt.Sprintf(":%d", f.Line)
		}
		if !more {
			return ""
		}
	}
}

func inThisPackage(f runtime.Frame) bool {
	if strings.HasPrefix(f.Function, "sync.") || strings.HasPrefix(f.Function, "runtime.") {
		return true // an op resolved inside sync.Once, a deferred call
	}
	// Where names the caller's line, so frames of golora's library
	// packages (torch, module, lora, ...) are skipped; its programs
	// (examples/, cmd/) and tests are callers like any other.
	const lib = "github.com/golora/golora/"
	if !strings.HasPrefix(f.Function, lib) || strings.HasSuffix(f.File, "_test.go") {
		return false
	}
	rest := f.Function[len(lib):]
	return !strings.HasPrefix(rest, "examples/") && !strings.HasPrefix(rest, "cmd/")
}

// AsError returns err as an *Error when it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func argIndex(name string, i int) string { return name + "[" + itoa(i) + "]" }

func itoa(i int) string { return fmt.Sprint(i) }
