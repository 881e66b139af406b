// Package module turns tensors into models: a Module interface, a
// registry of named parameters and submodules, state dicts, and the base
// layers (Linear, Embedding, LayerNorm, Dropout, Sequential) with
// PyTorch's initialisation.
//
// A layer is a struct that embeds Base and registers its parameters and
// children in its constructor:
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
// Embedding Base also gives a model PyTorch's methods: model.Parameters(true),
// model.NamedParameters(), model.Train(), model.Eval(),
// model.To(torch.CUDA(0)), model.StateDict(), model.LoadStateDict(sd),
// model.Summary(). The package functions of the same names do the same on
// a Module interface value.
//
// Parameter names are dotted paths like PyTorch's named_parameters:
// "blocks.0.attn.q_proj.lora_a". Children declared with an interface type
// such as Layer can be replaced in place, which is how lora.Apply injects
// adapters without rewriting the model.
package module

import (
	"fmt"
	"reflect"

	"github.com/golora/golora/torch"
)

// Module is anything that holds parameters and submodules. Embed Base to
// implement it.
type Module interface {
	// Registry returns the module's registry of parameters and children.
	Registry() *Base
}

// Layer is a Module with a single-input forward pass.
type Layer interface {
	Module
	Forward(x *torch.Tensor) (*torch.Tensor, error)
}

// Base holds a module's registered parameters and children, in
// registration order, and its training flag. The zero value is ready to
// use and in training mode.
type Base struct {
	params   []paramSlot
	children []childSlot
	eval     bool
}

type paramSlot struct {
	name string
	p    **torch.Tensor
}

type childSlot struct {
	name string
	get  func() Module
	set  func(Module) error
}

// Registry returns b itself; embedding Base makes a struct a Module.
func (b *Base) Registry() *Base { return b }

// Training reports whether the module is in training mode (the default).
func (b *Base) Training() bool { return !b.eval }

// Param registers the tensor field *p under name. A nil *p (such as an
// absent bias) is skipped by every traversal. Registering through a
// pointer lets To and LoadStateDict replace or refill the field.
func (b *Base) Param(name string, p **torch.Tensor) {
	b.mustBeNew(name)
	b.params = append(b.params, paramSlot{name, p})
}

// Child registers the submodule field *field under name. If a later
// SetChild replaces it, the new module must be assignable to F; declare
// the field as an interface such as Layer to allow adapters.
func Child[F Module](b *Base, name string, field *F) {
	b.mustBeNew(name)
	b.children = append(b.children, childSlot{
		name: name,
		get: func() Module {
			if isNil(*field) {
				return nil
			}
			return *field
		},
		set: func(m Module) error {
			v, ok := m.(F)
			if !ok {
				var zero F
				return fmt.Errorf("module: child %q is declared as %T and cannot hold %T; declare the field as module.Layer to allow replacement", name, zero, m)
			}
			*field = v
			return nil
		},
	})
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

func (b *Base) mustBeNew(name string) {
	if name == "" {
		panic("module: empty parameter or child name")
	}
	for _, p := range b.params {
		if p.name == name {
			panic(fmt.Sprintf("module: %q registered twice", name))
		}
	}
	for _, c := range b.children {
		if c.name == name {
			panic(fmt.Sprintf("module: %q registered twice", name))
		}
	}
}

// NamedChild is a direct submodule and its name.
type NamedChild struct {
	Name   string
	Module Module
}

// Children returns the direct submodules in registration order.
func Children(m Module) []NamedChild {
	var out []NamedChild
	for _, c := range m.Registry().children {
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

// Modules returns m and every descendant, depth first, with dotted paths.
func Modules(m Module) []NamedModule {
	var out []NamedModule
	var walk func(prefix string, m Module)
	walk = func(prefix string, m Module) {
		out = append(out, NamedModule{prefix, m})
		for _, c := range Children(m) {
			walk(join(prefix, c.Name), c.Module)
		}
	}
	walk("", m)
	return out
}

// SetChild replaces the submodule at a dotted path, such as
// "blocks.0.attn.q_proj".
func SetChild(root Module, path string, m Module) error {
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
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			parentPath, name = path[:i], path[i+1:]
			break
		}
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
// evaluation (false) mode.
func SetTraining(m Module, on bool) {
	for _, nm := range Modules(m) {
		nm.Module.Registry().eval = !on
	}
}

// Train puts m and its descendants in training mode.
func Train(m Module) { SetTraining(m, true) }

// Eval puts m and its descendants in evaluation mode (dropout off).
func Eval(m Module) { SetTraining(m, false) }
