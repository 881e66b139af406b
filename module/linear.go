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

	in, out int64 // kept so the accessors need no shape query
}

// NewLinear returns a Linear initialised like nn.Linear: W from
// kaiming_uniform(a=√5) (U(±1/√in)), then b from U(±1/√in), drawn in that
// order from the default generator. Options choose dtype and device.
func NewLinear(in, out int64, bias bool, opts ...torch.Option) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("module: NewLinear: in and out features must be positive, got in=%d out=%d", in, out)
	}
	w := torch.Empty([]int64{out, in}, opts...)
	var b *torch.Tensor
	if bias {
		b = torch.Empty([]int64{out}, opts...)
	}
	err := firstErr(w, b)
	if err == nil {
		err = InitLinear(w, b)
	}
	var l *Linear
	if err == nil {
		l, err = LinearFrom(w, b)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("module: NewLinear: %w", err)
	}
	return l, nil
}

// InitLinear initialises w (out×in) and b (out, may be nil) in place the
// way nn.Linear.reset_parameters does.
func InitLinear(w, b *torch.Tensor) error {
	fanIn, err := w.Size()
	if err != nil {
		return err
	}
	if len(fanIn) != 2 {
		return fmt.Errorf("module: InitLinear: weight must be 2-D (out×in), got shape %v", fanIn)
	}
	if err := w.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU); err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	bound := 0.0
	if fanIn[1] > 0 {
		bound = 1 / math.Sqrt(float64(fanIn[1]))
	}
	return b.Uniform_(-bound, bound)
}

// LinearFrom wraps a pre-trained weight (out×in) and bias (out, or nil);
// the Linear takes ownership of both and marks them trainable, as
// nn.Parameter does (Freeze undoes that). On error the caller keeps them.
func LinearFrom(weight, bias *torch.Tensor) (*Linear, error) {
	ws, err := weight.Size()
	if err != nil {
		return nil, fmt.Errorf("module: LinearFrom: weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("module: LinearFrom: weight must be 2-D (out×in), got shape %v", ws)
	}
	if bias != nil {
		bs, err := bias.Size()
		if err != nil {
			return nil, fmt.Errorf("module: LinearFrom: bias: %w", err)
		}
		if len(bs) != 1 || bs[0] != ws[0] {
			return nil, fmt.Errorf("module: LinearFrom: bias shape %v does not match out_features %d", bs, ws[0])
		}
	}
	if err := markTrainable(weight, bias); err != nil {
		return nil, fmt.Errorf("module: LinearFrom: %w", err)
	}
	l := &Linear{Weight: weight, Bias: bias, in: ws[1], out: ws[0]}
	l.Param("weight", &l.Weight)
	l.Param("bias", &l.Bias)
	return l, nil
}

// InFeatures returns the input width (W's second dim). It answers after
// Close too; for a Linear built without LinearFrom it reads W's shape
// (-1 when W is closed or absent, 0 for a nil Linear).
func (l *Linear) InFeatures() int64 {
	switch {
	case l == nil:
		return 0
	case l.in > 0:
		return l.in
	}
	return l.Weight.SizeOf(1)
}

// OutFeatures returns the output width (W's first dim), like InFeatures.
func (l *Linear) OutFeatures() int64 {
	switch {
	case l == nil:
		return 0
	case l.out > 0:
		return l.out
	}
	return l.Weight.SizeOf(0)
}

// Forward returns x·Wᵀ + b for x of shape (…, in). The result joins x's
// scope.
func (l *Linear) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.Linear(x, l.Weight, l.Bias)
}
