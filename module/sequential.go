package module

import (
	"fmt"
	"strconv"

	"github.com/golora/golora/torch"
)

// Sequential runs its layers in order; they are named "0", "1", … like
// nn.Sequential, and each can be replaced through SetChild by any Layer.
// Add layers with NewSequential or Append (a layer put into Layers by
// hand is not registered).
type Sequential struct {
	Base
	Layers []Layer
}

// NewSequential returns a Sequential of the given layers.
func NewSequential(layers ...Layer) *Sequential {
	s := &Sequential{}
	s.Append(layers...)
	return s
}

// Append adds layers at the end.
func (s *Sequential) Append(layers ...Layer) {
	for _, l := range layers {
		i := len(s.Layers)
		s.Layers = append(s.Layers, l)
		name := strconv.Itoa(i)
		// The slot indexes Layers when used, so it stays right when
		// append moves the backing array.
		s.addChild(name, func() Module {
			if i < len(s.Layers) && !isNil(s.Layers[i]) {
				return s.Layers[i]
			}
			return nil
		}, typedSetter(name, func(v Layer) { s.Layers[i] = v }))
	}
}

// addChild registers a child slot with its accessors.
func (b *Base) addChild(name string, get func() Module, set func(Module) error) {
	b.mustBeNew("Child", name, false)
	b.children = append(b.children, childSlot{name: name, get: get, set: set})
}

// Forward feeds x through every layer (nil ones are skipped) and returns
// the last result, or x itself when there is no layer. It closes nothing:
// the intermediates belong to the scope of x, and x stays the caller's.
// A failed layer's error passes through the rest unchanged (sticky), so
// it names the op and line that failed.
func (s *Sequential) Forward(x *torch.Tensor) *torch.Tensor {
	for _, l := range s.Layers {
		if !isNil(l) {
			x = l.Forward(x)
		}
	}
	return x
}

// Len returns the number of layers.
func (s *Sequential) Len() int { return len(s.Layers) }

// At returns layer i; it panics when i is out of range, as indexing does.
func (s *Sequential) At(i int) Layer {
	if i < 0 || i >= len(s.Layers) {
		panic(fmt.Sprintf("module: Sequential.At(%d) with %d layers", i, len(s.Layers)))
	}
	return s.Layers[i]
}
