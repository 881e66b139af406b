package module

import (
	"fmt"
	"strconv"

	"github.com/golora/golora/torch"
)

// Sequential runs its layers in order; they are named "0", "1", … like
// nn.Sequential, and each can be replaced through SetChild.
type Sequential struct {
	Base
	Layers []Layer
}

// NewSequential returns a Sequential of the given layers.
func NewSequential(layers ...Layer) *Sequential {
	s := &Sequential{}
	for _, l := range layers {
		s.Append(l)
	}
	return s
}

// Append adds a layer at the end.
func (s *Sequential) Append(l Layer) {
	i := len(s.Layers)
	s.Layers = append(s.Layers, l)
	Child(&s.Base, strconv.Itoa(i), &s.Layers[i])
	// Re-point earlier slots: append may have moved the backing array.
	for j := range s.children {
		j := j
		s.children[j].get = func() Module { return s.Layers[j] }
		s.children[j].set = func(m Module) error {
			l, ok := m.(Layer)
			if !ok {
				return fmt.Errorf("module: Sequential layer %d: %T is not a Layer", j, m)
			}
			s.Layers[j] = l
			return nil
		}
	}
}

// Forward feeds x through every layer, closing the intermediate results.
func (s *Sequential) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	cur := x
	for i, l := range s.Layers {
		next, err := l.Forward(cur)
		if cur != x {
			cur.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("module: Sequential layer %d: %w", i, err)
		}
		cur = next
	}
	if cur == x {
		return x.Alias()
	}
	return cur, nil
}
