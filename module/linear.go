package module

import (
	"fmt"
	"math"

	"github.com/golora/golora/torch"
)

// Linear is nn.Linear: y = x·Wᵀ + b, W (out×in), b (out) or nil.
type Linear struct {
	Base
	Weight *torch.Tensor
	Bias   *torch.Tensor
}

// NewLinear returns a Linear initialised like nn.Linear: W from
// kaiming_uniform(a=√5) (U(±1/√in)), then b from U(±1/√in), drawn in that
// order from the default generator. Options choose dtype and device.
func NewLinear(in, out int64, bias bool, opts ...torch.Option) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("module: NewLinear: in and out features must be positive, got in=%d out=%d", in, out)
	}
	w, err := torch.Empty([]int64{out, in}, opts...)
	if err != nil {
		return nil, fmt.Errorf("module: NewLinear: %w", err)
	}
	var b *torch.Tensor
	if bias {
		if b, err = torch.Empty([]int64{out}, opts...); err != nil {
			w.Close()
			return nil, fmt.Errorf("module: NewLinear: %w", err)
		}
	}
	if err := InitLinear(w, b); err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("module: NewLinear: %w", err)
	}
	return LinearFrom(w, b)
}

// InitLinear initialises w (out×in) and b (out, may be nil) in place the
// way nn.Linear.reset_parameters does.
func InitLinear(w, b *torch.Tensor) error {
	if err := w.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU); err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	fanIn := w.Shape()[1]
	bound := 0.0
	if fanIn > 0 {
		bound = 1 / math.Sqrt(float64(fanIn))
	}
	return b.Uniform_(-bound, bound)
}

// LinearFrom wraps a pre-trained weight (out×in) and bias (out, or nil);
// the Linear takes ownership of both and marks them trainable, as
// nn.Parameter does (Freeze undoes that).
func LinearFrom(weight, bias *torch.Tensor) (*Linear, error) {
	ws := weight.Shape()
	if len(ws) != 2 {
		return nil, fmt.Errorf("module: LinearFrom: weight must be 2-D (out×in), got shape %v", ws)
	}
	if bias != nil {
		if bs := bias.Shape(); len(bs) != 1 || bs[0] != ws[0] {
			return nil, fmt.Errorf("module: LinearFrom: bias shape %v does not match out_features %d", bs, ws[0])
		}
	}
	if err := markTrainable(weight, bias); err != nil {
		return nil, fmt.Errorf("module: LinearFrom: %w", err)
	}
	l := &Linear{Weight: weight, Bias: bias}
	l.Param("weight", &l.Weight)
	l.Param("bias", &l.Bias)
	return l, nil
}

// InFeatures returns the input width (W's second dim).
func (l *Linear) InFeatures() int64 { return l.Weight.Shape()[1] }

// OutFeatures returns the output width (W's first dim).
func (l *Linear) OutFeatures() int64 { return l.Weight.Shape()[0] }

// Forward returns x·Wᵀ + b for x of shape (…, in).
func (l *Linear) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Linear(x, l.Weight, l.Bias)
}
