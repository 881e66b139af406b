package module

import (
	"fmt"

	"github.com/golora/golora/torch"
)

// LayerNorm is nn.LayerNorm over the trailing dims in Shape, with a
// weight of ones and a bias of zeros.
type LayerNorm struct {
	Base
	Shape  []int64
	Eps    float64
	Weight *torch.Tensor
	Bias   *torch.Tensor
}

// NewLayerNorm returns a LayerNorm over the trailing dims shape with
// eps 1e-5 and an elementwise affine transform, like nn.LayerNorm.
func NewLayerNorm(shape []int64, opts ...torch.Option) (*LayerNorm, error) {
	for _, d := range shape {
		if d <= 0 {
			return nil, fmt.Errorf("module: NewLayerNorm: dims must be positive, got %v", shape)
		}
	}
	w, b := torch.Ones(shape, opts...), torch.Zeros(shape, opts...)
	err := firstErr(w, b)
	if err == nil {
		err = markTrainable(w, b)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("module: NewLayerNorm: %w", err)
	}
	n := &LayerNorm{Shape: append([]int64(nil), shape...), Eps: 1e-5, Weight: w, Bias: b}
	n.Param("weight", &n.Weight)
	n.Param("bias", &n.Bias)
	return n, nil
}

// Forward normalises x over the trailing dims, then scales and shifts.
// The result joins x's scope.
func (n *LayerNorm) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.LayerNorm(x, n.Shape, n.Weight, n.Bias, n.Eps)
}

// Dropout is nn.Dropout: in training mode it zeroes elements with
// probability P and scales the rest by 1/(1-P); in eval mode it is the
// identity.
type Dropout struct {
	Base
	P float64
}

// NewDropout returns a Dropout with probability p in [0, 1].
func NewDropout(p float64) (*Dropout, error) {
	if !(p >= 0 && p <= 1) {
		return nil, fmt.Errorf("module: NewDropout: p must be in [0, 1], got %v", p)
	}
	return &Dropout{P: p}, nil
}

// Forward applies dropout in training mode, drawing from the default
// generator. In eval mode it returns a new handle to x. The result joins
// x's scope.
func (d *Dropout) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.Dropout(x, d.P, d.Training())
}
