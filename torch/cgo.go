// Package torch is golora's tensor API over libtorch.
//
// It is the only package of golora that uses cgo. It links libcgotorch.so
// (built by scripts/install_libtorch.sh) and nothing of libtorch itself, so
// one Go binary runs on any libtorch build, CPU or CUDA, that libcgotorch.so
// was built against.
//
// # Model code that reads like PyTorch
//
// Every op is one call that returns a *Tensor, so calls chain:
//
//	h := x.Linear(w, b).Gelu().Add(x)
//
// Errors are values that stick, as with bufio.Writer: an op that fails
// returns a failed tensor carrying an *Error that names the op, the
// argument and the caller's file:line, and every op on a failed tensor does
// nothing and passes that first error on. Check once, at the end, with
// t.Err() or Scope.Done.
//
// Memory is owned by a Scope, an arena: a tensor made by an op joins the
// scope of its first operand that has one, so everything computed from a
// scoped input is freed when the scope closes:
//
//	s := torch.NewScope()
//	defer s.Close()                 // frees every intermediate, also on error or panic
//	x := s.Own(batch)               // x and all results computed from it belong to s
//	y := model.Forward(x)
//	out, err := s.Done(y)           // frees all but y; y moves to s's parent (or to the caller)
//
// A training loop opens one scope per step. Parameters, optimizer state and
// whatever is explicitly kept (Keep, Done) live outside it. Tensors that
// belong to no scope are freed by Close, or, as a safety net, by the garbage
// collector: libtorch's memory is invisible to Go's GC, so the package counts
// the bytes that unowned handles hold and starts a collection when they grow.
//
// Why this design: a wrapper type per chain, or an (out, error) pair per op,
// would put an `if err` or a `Close` on every line (a GPT-2 attention forward
// took 86 lines that way, against PyTorch's 9). A goroutine-local "current
// scope" would break when goroutines move between OS threads. Putting the
// owner on the operand keeps the chain a plain method call and the
// ownership explicit.
//
// # Sharing between goroutines
//
// A *Tensor may be used by several goroutines at once: ops take a read lock
// on their operands, and Close takes the write lock, so Close racing a use
// either waits for it or makes it fail with "use of closed tensor". A
// *Scope may be shared too (its methods lock). In-place ops (Mul_, Add_,
// ...) on a tensor that another goroutine reads are data races inside
// libtorch, as in PyTorch: synchronise those yourself.
//
// # Ops
//
// The common ops have dedicated C entry points; the long tail goes through
// libtorch's dispatcher by schema name (see Call), so adding an op is one
// line of Go and no change to the C ABI.
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
const ABIVersion = 5

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

// Must returns v, or panics if err is not nil. It is the convenience form
// of the calls that return an error: data := torch.Must(torch.ToSlice[float32](t)).
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
