// Package module turns tensors into models: a Module interface, a
// registry of named parameters, buffers and submodules, state dicts, and
// the base layers (Linear, Embedding, LayerNorm, Dropout) and containers
// (Sequential, ModuleList, ModuleDict) with PyTorch's initialisation and
// naming.
//
// A layer is a struct that embeds Base and registers its parameters,
// buffers and children in its constructor:
//
//	type MLP struct {
//		module.Base
//		Up, Down module.Layer
//	}
//
//	func NewMLP(d int64) (*MLP, error) {
//		m := &MLP{}
//		... create m.Up and m.Down ...
//		module.Child(&m.Base, "up", &m.Up)
//		module.Child(&m.Base, "down", &m.Down)
//		return m, nil
//	}
//
//	func (m *MLP) Forward(x *torch.Tensor) *torch.Tensor {
//		return m.Down.Forward(m.Up.Forward(x).Gelu())
//	}
//
// Forward passes follow torch's v2 style: they return a *torch.Tensor,
// possibly failed (errors stick and pass through the ops that follow), and
// free nothing themselves: every intermediate joins the scope of the input,
// so the caller's torch.Scope owns the memory and its Done reports the
// first error:
//
//	s := torch.NewScope()
//	defer s.Close()
//	logits, err := s.Done(model.Forward(s.Own(ids)))
//
// Embedding Base also gives a model PyTorch's methods: model.Parameters(true),
// model.NamedParameters(), model.Train(), model.Eval(),
// model.To(torch.CUDA(0)), model.StateDict(), model.LoadStateDict(sd),
// model.Summary(). The package functions of the same names do the same on
// a Module interface value; they accept a nil module (a nil interface or a
// typed nil pointer) and return an empty result or an error, never a panic.
//
// Parameter names are dotted paths like PyTorch's named_parameters:
// "layers.0.attn.q_proj.weight". Children declared with an interface type
// such as Layer can be replaced in place, which is how lora.Apply injects
// adapters without rewriting the model.
//
// The package keeps no goroutine-local or thread-local state (it never
// switches autograd's per-thread grad mode): conversions and loads work on
// detached handles, and Copy_ records no autograd. Random initialisation
// draws from libtorch's global generator (torch.ManualSeed,
// torch.RNGState).
//
// # Concurrency
//
// Independent models (each with its own parameters and optimizer) may be
// built, trained and run in separate goroutines at once, and give bitwise
// the results of the same work done alone, with one caveat: libtorch has
// a single CPU generator per process (and one per CUDA device), shared by
// every goroutine. Random draws are safe from any goroutine, but which
// goroutine gets which numbers depends on the schedule. So, for
// reproducible parallel runs, make seeding and the random initialisation
// one step (hold a sync.Mutex across torch.ManualSeed and the
// constructors, as module's and lora's concurrency tests do, or build the
// models one after the other, or load their weights), and train without
// random ops (dropout 0); a run that needs dropout is reproducible only
// when it is the process's only user of the generator. Grad mode and
// autocast are per OS thread: torch's NoGrad, EnableGrad and
// Autocast pin the goroutine for their duration and restore the
// previous mode, so they never leak into other goroutines.
//
// One model may serve forward passes to many goroutines at once (a
// server's pattern): Forward only reads the registry and the tensors,
// whose handles are themselves safe for concurrent use, so each caller
// gets bitwise the result it would get alone. Run the shared model in
// evaluation mode (Eval, before sharing it), since dropout in training
// mode draws from the shared generator, and preferably in torch's NoGrad.
// What changes a model — Train and Eval, To, LoadStateDict, registering,
// SetChild, an optimizer step, lora's adapter switches — must not overlap
// with other uses of it: training a model while other goroutines run it
// is a data race (on the training flag in Go, on the weights inside
// libtorch) and is not supported as such. Serialise the two with a
// sync.RWMutex, the trainer holding it for writing around each step and
// each Train/Eval switch, the servers for reading around each forward
// pass; or serve a separate copy of the weights.
//
// Closing a model (Close) while other goroutines run it never crashes:
// each pass in flight either completes with the right result or fails
// with torch's "use of closed tensor" error naming the closed argument;
// Close may be called twice, concurrently. A tensor borrowed from a model
// (Alias, Scope.Borrow) stays valid after the model is closed or dropped
// and collected, until the borrowed handle itself is closed.
package module

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/golora/golora/torch"
)

// Module is anything that holds parameters, buffers and submodules. Embed
// Base to implement it.
type Module interface {
	// Registry returns the module's registry of parameters, buffers and
	// children.
	Registry() *Base
}

// Layer is a Module with a single-input forward pass. Forward returns a
// tensor, possibly failed (torch's sticky errors): it never returns an
// error of its own and frees nothing it did not create for itself.
// Models whose forward pass takes several inputs implement MultiLayer.
type Layer interface {
	Module
	Forward(x *torch.Tensor) *torch.Tensor
}

// Base holds a module's registered parameters, buffers and children, in
// registration order, and its training flag. The zero value is ready to
// use and in training mode.
//
// Forward passes only read the registry, so several goroutines may run a
// module at once; registering, SetChild, Train/Eval, To and loading change
// it and must not overlap with other uses of the same module.
type Base struct {
	params   []paramSlot
	buffers  []bufferSlot
	children []childSlot
	eval     bool
}

type paramSlot struct {
	name string
	p    **torch.Tensor
}

type bufferSlot struct {
	name       string
	p          **torch.Tensor
	persistent bool
}

type childSlot struct {
	name string
	get  func() Module
	set  func(Module) error
}

// Registry returns b itself; embedding Base makes a struct a Module.
func (b *Base) Registry() *Base { return b }

// Training reports whether the module is in training mode (the default).
func (b *Base) Training() bool { return b != nil && !b.eval }

// Param registers the tensor field *p as a parameter under name. A nil *p
// (such as an absent bias) is skipped by every traversal. Registering
// through a pointer lets a later assignment to the field be seen; To and
// LoadStateDict change the tensor in place and never replace it.
//
// Param panics when name is empty, contains a dot, or is already taken by
// a parameter, buffer or child of b: these are programming errors.
func (b *Base) Param(name string, p **torch.Tensor) {
	b.mustBeNew("Param", name, p == nil)
	b.params = append(b.params, paramSlot{name, p})
}

// Buffer registers the tensor field *p as a buffer under name: state that
// is not trained, such as BERT's position ids, a running statistic, a RoPE
// cos/sin cache or a causal mask. Buffers never appear in Parameters or
// NamedParameters, are never counted, frozen or made trainable, and move
// with To (a DType target converts floating-point buffers only, as
// PyTorch does).
//
// A persistent buffer is part of the state dict: StateDict returns it,
// LoadStateDict requires it (unless partial) and Save writes it. A
// non-persistent one (persistent false: a cache recomputed at
// construction) is not; a checkpoint key naming it is reported as
// unexpected unless loaded with SkipNonPersistent, IgnoreKeys or a key
// map that drops it.
//
// A buffer must not require grad: Buffer turns requires_grad off on the
// tensor it is given (and panics if that is refused, which happens for a
// tensor computed with autograd recording; register a Detach of it).
// Buffer panics on the same name errors as Param.
func (b *Base) Buffer(name string, p **torch.Tensor, persistent bool) {
	b.mustBeNew("Buffer", name, p == nil)
	if t := *p; t != nil && t.RequiresGrad() {
		if err := t.SetRequiresGrad(false); err != nil {
			panic(fmt.Sprintf("module: buffer %q requires grad and cannot be turned off (%v); register a detached tensor", name, err))
		}
	}
	b.buffers = append(b.buffers, bufferSlot{name, p, persistent})
}

// Child registers the submodule field *field under name. If a later
// SetChild replaces it, the new module must be assignable to F; declare
// the field as an interface such as Layer to allow adapters. A nil field
// is skipped by every traversal. Child panics on the same name errors as
// Param.
func Child[F Module](b *Base, name string, field *F) {
	b.mustBeNew("Child", name, field == nil)
	b.children = append(b.children, childSlot{
		name: name,
		get: func() Module {
			if isNil(*field) {
				return nil
			}
			return *field
		},
		set: typedSetter(name, func(v F) { *field = v }),
	})
}

// typedSetter returns a slot setter that accepts modules assignable to F.
func typedSetter[F Module](name string, assign func(F)) func(Module) error {
	return func(m Module) error {
		v, ok := m.(F)
		if !ok || isNil(m) {
			var zero F
			if isNil(m) {
				return fmt.Errorf("module: child %q cannot be set to a nil module", name)
			}
			return fmt.Errorf("module: child %q is declared as %s and cannot hold %T; declare the field as module.Layer to allow replacement",
				name, typeName[F](zero), m)
		}
		assign(v)
		return nil
	}
}

// typeName names F even when it is an interface type (whose zero value
// formats as <nil>).
func typeName[F any](zero F) string {
	return reflect.TypeOf(&zero).Elem().String()
}

// isNil reports whether m is absent: a nil interface or a typed nil
// pointer (such as an unset *Linear field). Calling Registry on a nil
// *Linear would dereference it, so the pointer is checked first.
func isNil(m Module) bool {
	if m == nil {
		return true
	}
	if v := reflect.ValueOf(m); v.Kind() == reflect.Pointer && v.IsNil() {
		return true
	}
	return m.Registry() == nil
}

// reg returns m's registry, or nil for a nil module.
func reg(m Module) *Base {
	if isNil(m) {
		return nil
	}
	return m.Registry()
}

// errNil is the error of the functions that need a module and got none.
func errNil(fn string) error { return fmt.Errorf("module: %s: nil module", fn) }

func (b *Base) mustBeNew(kind, name string, nilPtr bool) {
	switch {
	case nilPtr:
		panic(fmt.Sprintf("module: %s %q: nil pointer", kind, name))
	case name == "":
		panic(fmt.Sprintf("module: %s: empty name", kind))
	case strings.Contains(name, "."):
		panic(fmt.Sprintf("module: %s %q: a name cannot contain a dot", kind, name))
	case b.has(name):
		panic(fmt.Sprintf("module: %q registered twice", name))
	}
}

func (b *Base) has(name string) bool {
	for _, p := range b.params {
		if p.name == name {
			return true
		}
	}
	for _, p := range b.buffers {
		if p.name == name {
			return true
		}
	}
	for _, c := range b.children {
		if c.name == name {
			return true
		}
	}
	return false
}

// NamedChild is a direct submodule and its name.
type NamedChild struct {
	Name   string
	Module Module
}

// Children returns the direct submodules in registration order (none for
// a nil module).
func Children(m Module) []NamedChild {
	b := reg(m)
	if b == nil {
		return nil
	}
	var out []NamedChild
	for _, c := range b.children {
		if sub := c.get(); sub != nil {
			out = append(out, NamedChild{c.name, sub})
		}
	}
	return out
}

// NamedModule is a module and its dotted path ("" for the root).
type NamedModule struct {
	Name   string
	Module Module
}

// Modules returns m and every descendant, depth first, with dotted paths
// (nothing for a nil module). A module shared by two parents is listed
// under both paths; a module that contains itself is not entered again.
func Modules(m Module) []NamedModule {
	if isNil(m) {
		return nil
	}
	var out []NamedModule
	onPath := map[*Base]bool{}
	var walk func(prefix string, m Module)
	walk = func(prefix string, m Module) {
		b := m.Registry()
		if onPath[b] {
			return
		}
		onPath[b] = true
		out = append(out, NamedModule{prefix, m})
		for _, c := range Children(m) {
			walk(join(prefix, c.Name), c.Module)
		}
		delete(onPath, b)
	}
	walk("", m)
	return out
}

// SetChild replaces the submodule at a dotted path, such as
// "blocks.0.attn.q_proj". The new module must be assignable to the
// declared type of the field (or container element) that holds it.
func SetChild(root Module, path string, m Module) error {
	if isNil(root) {
		return errNil("SetChild")
	}
	parent, name, err := parentOf(root, path)
	if err != nil {
		return err
	}
	for _, c := range parent.Registry().children {
		if c.name == name {
			if err := c.set(m); err != nil {
				return fmt.Errorf("module: SetChild %q: %w", path, err)
			}
			return nil
		}
	}
	return fmt.Errorf("module: SetChild: no child %q", path)
}

func parentOf(root Module, path string) (Module, string, error) {
	parentPath, name := "", path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	if parentPath == "" {
		return root, name, nil
	}
	for _, nm := range Modules(root) {
		if nm.Name == parentPath {
			return nm.Module, name, nil
		}
	}
	return nil, "", fmt.Errorf("module: no module at %q", parentPath)
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// SetTraining puts m and all its descendants in training (true) or
// evaluation (false) mode. A nil module is left alone.
func SetTraining(m Module, on bool) {
	for _, nm := range Modules(m) {
		nm.Module.Registry().eval = !on
	}
}

// Train puts m and its descendants in training mode.
func Train(m Module) { SetTraining(m, true) }

// Eval puts m and its descendants in evaluation mode (dropout off).
func Eval(m Module) { SetTraining(m, false) }
