package torch

/*
#include <stdlib.h>
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Default stands for "the schema's default value" in Call's arguments.
var Default = defaultArg{}

type defaultArg struct{}

// Op is an ATen operator resolved by schema name, such as
// NewOp("aten::cos", "") or NewOp("aten::add", "Tensor"). It is resolved
// on first use and is safe for concurrent use. Most of this package's ops
// are one line over an Op:
//
//	var opCos = NewOp("aten::cos", "")
//	func (t *Tensor) Cos() *Tensor { return opCos.Call1("Cos", t) }
type Op struct {
	name, overload string
	once           sync.Once
	h              C.cg_op
	err            error
	argNames       []string // from the schema, for error messages
	argNeeded      []bool   // from the schema: a Tensor argument that is not optional (nil is an error)
}

// NewOp returns the operator name.overload; it is looked up on first use.
func NewOp(name, overload string) *Op { return &Op{name: name, overload: overload} }

func (o *Op) resolve() (C.cg_op, error) {
	o.once.Do(func() {
		n, ov := C.CString(o.name), C.CString(o.overload)
		defer C.free(unsafe.Pointer(n))
		defer C.free(unsafe.Pointer(ov))
		o.err = check(o.name, C.cg_op_find(n, ov, &o.h))
		if o.err == nil {
			var s *C.char
			if check(o.name, C.cg_op_schema(o.h, &s)) == nil {
				o.argNames = schemaArgNames(C.GoString(s))
				o.argNeeded = schemaTensorNeeded(C.GoString(s))
				C.cg_free_error(s)
			}
		}
	})
	return o.h, o.err
}

// Available reports whether the loaded libtorch has the operator (some
// exist only in newer lines, e.g. aten::_foreach_lerp_).
func (o *Op) Available() bool {
	_, err := o.resolve()
	return err == nil
}

// Schema returns the operator's schema, e.g.
// "aten::cos(Tensor self) -> Tensor".
func (o *Op) Schema() (string, error) {
	h, err := o.resolve()
	if err != nil {
		return "", err
	}
	var s *C.char
	if err := check("Schema", C.cg_op_schema(h, &s)); err != nil {
		return "", err
	}
	defer C.cg_free_error(s)
	return C.GoString(s), nil
}

// Call is the generic form of every op: it calls ATen operator
// name.overload (e.g. "aten::cumsum", "") through libtorch's dispatcher,
// autograd included, and returns its tensor outputs (tensors, tensor lists
// and tuples flattened in order). Arguments follow the schema's order;
// trailing ones left out take their defaults, as does Default. An argument
// is a *Tensor (nil is None), []*Tensor, int, int64, float64, bool,
// []int64, []float64, string, DType or nil (None). Results join the scope
// of the first tensor argument that has one.
func Call(name, overload string, args ...any) ([]*Tensor, error) {
	o := NewOp(name, overload)
	outs := o.CallN(name, 16, args...)
	if len(outs) > 0 && outs[0].err != nil {
		return nil, outs[0].err
	}
	return outs, nil
}

// Call1 calls the op for one tensor result, reported as op in errors.
func (o *Op) Call1(op string, args ...any) *Tensor {
	outs := o.callN(op, 1, args)
	return outs[0]
}

// CallN calls the op for at most max tensor results. On failure it returns
// one failed tensor.
func (o *Op) CallN(op string, max int, args ...any) []*Tensor { return o.callN(op, max, args) }

// Inplace calls an in-place op on self (its first argument) and returns
// self, or a failed tensor.
func (o *Op) Inplace(op string, self *Tensor, args ...any) *Tensor {
	all := append([]any{self}, args...)
	outs := o.callN(op, 1, all)
	if len(outs) == 1 && outs[0].err != nil {
		return outs[0]
	}
	for _, t := range outs {
		t.Close() // the alias handle to self
	}
	return self
}

// Void calls an op for its effect (ops returning nothing, such as the
// in-place _foreach_ ops); it frees any outputs.
func (o *Op) Void(op string, args ...any) error {
	outs := o.callN(op, 16, args)
	if len(outs) == 1 && outs[0].err != nil {
		return outs[0].err
	}
	CloseAll(outs...)
	return nil
}

func (o *Op) callN(op string, max int, args []any) []*Tensor {
	c := begin(op)
	h, err := o.resolve()
	if err != nil {
		c.err = argErrorf(op, "", "%v", err.(*Error).Msg)
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	cargs := make([]C.cg_arg, len(args))
	var cstrs []*C.char
	defer func() {
		for _, s := range cstrs {
			C.free(unsafe.Pointer(s))
		}
	}()
	for i, a := range args {
		ca := &cargs[i]
		name := positional(i)
		if i < len(o.argNames) {
			name = o.argNames[i]
		}
		switch v := a.(type) {
		case defaultArg:
			ca.kind = C.CG_ARG_DEFAULT
		case nil:
			ca.kind = C.CG_ARG_NONE
		case *Tensor:
			ca.kind = C.CG_ARG_TENSOR
			if v == nil && i < len(o.argNeeded) && o.argNeeded[i] {
				c.fail(name, "nil tensor") // not None: the schema's Tensor is not optional
			}
			ca.t = c.opt(name, v)
		case []*Tensor:
			ca.kind = C.CG_ARG_TENSORS
			hs := make([]C.cg_tensor, len(v))
			for j, t := range v {
				hs[j] = c.inAt(name, j, t)
			}
			ca.n = C.int(len(v))
			if len(hs) > 0 {
				pin.Pin(&hs[0])
				ca.tensors = &hs[0]
			}
		case optTensors:
			ca.kind = C.CG_ARG_OPT_TENSORS
			hs := make([]C.cg_tensor, len(v))
			for j, t := range v {
				if t != nil {
					hs[j] = c.inAt(name, j, t)
				}
			}
			ca.n = C.int(len(v))
			if len(hs) > 0 {
				pin.Pin(&hs[0])
				ca.tensors = &hs[0]
			}
		case int:
			ca.kind, ca.i = C.CG_ARG_INT, C.int64_t(v)
		case int64:
			ca.kind, ca.i = C.CG_ARG_INT, C.int64_t(v)
		case float64:
			ca.kind, ca.d = C.CG_ARG_DOUBLE, C.double(v)
		case bool:
			ca.kind, ca.i = C.CG_ARG_BOOL, C.int64_t(cbool(v))
		case []int64:
			ca.kind, ca.n = C.CG_ARG_INTS, C.int(len(v))
			if len(v) > 0 {
				pin.Pin(&v[0])
				ca.ints = (*C.int64_t)(unsafe.Pointer(&v[0]))
			}
		case []float64:
			ca.kind, ca.n = C.CG_ARG_DOUBLES, C.int(len(v))
			if len(v) > 0 {
				pin.Pin(&v[0])
				ca.doubles = (*C.double)(unsafe.Pointer(&v[0]))
			}
		case string:
			ca.kind = C.CG_ARG_STRING
			s := C.CString(v)
			cstrs = append(cstrs, s)
			ca.s = s
		case DType:
			if !v.Valid() {
				c.fail(name, "unsupported dtype %v", v)
			}
			ca.kind, ca.i = C.CG_ARG_DTYPE, C.int64_t(v)
		default:
			c.fail(name, "unsupported argument type %T", a)
		}
	}
	if max < 1 {
		max = 1
	}
	outs := make([]C.cg_tensor, max)
	var n C.int
	if c.ok() {
		var ap *C.cg_arg
		if len(cargs) > 0 {
			ap = &cargs[0]
		}
		c.check(C.cg_op_call(h, ap, C.int(len(cargs)), &outs[0], C.int(max), &n))
	}
	if !c.ok() {
		return c.results([]C.cg_tensor{nil})
	}
	res := make([]*Tensor, 0, int(n))
	c.release()
	for _, oh := range outs[:n] {
		if oh == nil {
			res = append(res, nil)
			continue
		}
		res = append(res, newTensor(oh, c.scope))
	}
	return res
}

// optTensors is a Tensor?[] argument (nil entries are None), as index takes.
type optTensors []*Tensor

// schemaArgNames returns the argument names of a schema such as
// "aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor".
func schemaArgNames(schema string) []string {
	open := strings.IndexByte(schema, '(')
	if open < 0 {
		return nil
	}
	var names []string
	depth, start := 0, open+1
	for i := open + 1; i < len(schema); i++ {
		switch schema[i] {
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				names = appendArgName(names, schema[start:i])
				return names
			}
			depth--
		case ',':
			if depth == 0 {
				names = appendArgName(names, schema[start:i])
				start = i + 1
			}
		}
	}
	return names
}

// schemaTensorNeeded returns, for each argument of schema (as
// schemaArgNames lists them), whether it is a Tensor that may not be None
// ("Tensor self", "Tensor(a!) self"; not "Tensor? weight" nor "Tensor[]").
func schemaTensorNeeded(schema string) []bool {
	open := strings.IndexByte(schema, '(')
	if open < 0 {
		return nil
	}
	var needed []bool
	depth, start := 0, open+1
	add := func(decl string) {
		decl = strings.TrimSpace(decl)
		if decl == "" || decl == "*" {
			return
		}
		f := strings.Fields(decl)
		typ := f[0]
		needed = append(needed, strings.HasPrefix(typ, "Tensor") && !strings.Contains(typ, "?") && !strings.Contains(typ, "[]"))
	}
	for i := open + 1; i < len(schema); i++ {
		switch schema[i] {
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				add(schema[start:i])
				return needed
			}
			depth--
		case ',':
			if depth == 0 {
				add(schema[start:i])
				start = i + 1
			}
		}
	}
	return needed
}

func appendArgName(names []string, decl string) []string {
	decl = strings.TrimSpace(decl)
	if decl == "" || decl == "*" {
		return names
	}
	if eq := strings.IndexByte(decl, '='); eq >= 0 {
		decl = decl[:eq]
	}
	f := strings.Fields(decl)
	return append(names, f[len(f)-1])
}

var positionalNames = func() []string {
	n := make([]string, 32)
	for i := range n {
		n[i] = fmt.Sprintf("argument %d", i)
	}
	return n
}()

// positional names argument i when the schema gave no name.
func positional(i int) string {
	if i < len(positionalNames) {
		return positionalNames[i]
	}
	return "argument"
}
