package module

import (
	"fmt"
	"math"

	"github.com/golora/golora/torch"
)

var (
	opAddmm = torch.NewOp("aten::addmm", "")
	opMm    = torch.NewOp("aten::mm", "")
)

// Conv1D is GPT-2's projection (transformers.pytorch_utils.Conv1D): a
// linear layer whose weight is stored transposed, in×out, so y = x·W + b
// with W (in×out) and b (out). GPT-2's c_attn, c_proj and c_fc are
// Conv1Ds; their checkpoints store the weight in this layout (PEFT calls it
// fan_in_fan_out).
type Conv1D struct {
	Base
	Weight *torch.Tensor // in×out
	Bias   *torch.Tensor // out, or nil

	in, out int64
}

// NewConv1D returns a Conv1D initialised like transformers' Conv1D:
// W ~ N(0, 0.02²) and b = 0. Options choose dtype and device.
func NewConv1D(in, out int64, opts ...torch.Option) (*Conv1D, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("module: NewConv1D: in and out features must be positive, got in=%d out=%d", in, out)
	}
	w := torch.Empty([]int64{in, out}, opts...)
	b := torch.Empty([]int64{out}, opts...)
	err := firstErr(w, b)
	if err == nil {
		err = w.Normal_(0, 0.02)
	}
	if err == nil {
		err = b.Zeros_()
	}
	var c *Conv1D
	if err == nil {
		c, err = Conv1DFrom(w, b)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("module: NewConv1D: %w", err)
	}
	return c, nil
}

// Conv1DFrom wraps a pre-trained weight (in×out) and bias (out, or nil);
// the Conv1D takes ownership of both and marks them trainable. On error the
// caller keeps them.
func Conv1DFrom(weight, bias *torch.Tensor) (*Conv1D, error) {
	ws, err := weight.Size()
	if err != nil {
		return nil, fmt.Errorf("module: Conv1DFrom: weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("module: Conv1DFrom: weight must be 2-D (in×out), got shape %v", ws)
	}
	if bias != nil {
		bs, err := bias.Size()
		if err != nil {
			return nil, fmt.Errorf("module: Conv1DFrom: bias: %w", err)
		}
		if len(bs) != 1 || bs[0] != ws[1] {
			return nil, fmt.Errorf("module: Conv1DFrom: bias shape %v does not match out features %d (weight is in×out %v)", bs, ws[1], ws)
		}
	}
	if err := markTrainable(weight, bias); err != nil {
		return nil, fmt.Errorf("module: Conv1DFrom: %w", err)
	}
	c := &Conv1D{Weight: weight, Bias: bias, in: ws[0], out: ws[1]}
	c.Param("weight", &c.Weight)
	c.Param("bias", &c.Bias)
	return c, nil
}

// InFeatures returns the input width (W's first dim).
func (c *Conv1D) InFeatures() int64 {
	switch {
	case c == nil:
		return 0
	case c.in > 0:
		return c.in
	}
	return c.Weight.SizeOf(0)
}

// OutFeatures returns the output width (W's second dim).
func (c *Conv1D) OutFeatures() int64 {
	switch {
	case c == nil:
		return 0
	case c.out > 0:
		return c.out
	}
	return c.Weight.SizeOf(1)
}

// Forward returns x·W + b for x of shape (…, in), computed as transformers
// does: addmm(b, x.view(-1, in), W).view(…, out). The result joins x's
// scope.
func (c *Conv1D) Forward(x *torch.Tensor) *torch.Tensor {
	shape, err := x.Size()
	if err != nil {
		return x.View(-1) // carries x's error
	}
	if len(shape) == 0 {
		return torch.Linear(x, c.Weight, c.Bias) // a clear shape error from the op
	}
	out := append(append([]int64(nil), shape[:len(shape)-1]...), c.OutFeatures())
	x2 := x.Reshape(-1, shape[len(shape)-1])
	var y *torch.Tensor
	if numelOf(shape[:len(shape)-1]) == 1 && c.InFeatures()*c.OutFeatures() >= oneRowMin {
		y = c.oneRow(x2)
	} else if c.Bias != nil {
		y = opAddmm.Call1("Conv1D", c.Bias, x2, c.Weight, 1.0, 1.0)
	} else {
		y = opMm.Call1("Conv1D", x2, c.Weight)
	}
	return y.View(out...)
}

// oneRowMin is the size of weight (elements, 1 MiB of float32) from which
// libcgotorch computes a linear layer on one row of input with its own
// matrix-vector kernel (cgotorch/gemv.cc), streaming the weight at memory
// speed: the case of decoding one token.
const oneRowMin = 1 << 18

// oneRow is Forward for one row of input: F.linear(x, Wᵀ, b), which is
// addmm(b, x, W) wherever libtorch computes it (the same values as the
// general case, bit for bit), and takes golora's kernel on CPU in float32
// without autograd. Wᵀ is a view, borrowed for the call.
func (c *Conv1D) oneRow(x2 *torch.Tensor) *torch.Tensor {
	s := torch.NewScope()
	defer s.Close()
	y := torch.Linear(x2, s.Borrow(c.Weight).T(), c.Bias)
	if y.Scope() == s { // x2 has no scope: y must not go with the view's
		s.Keep(y)
	}
	return y
}

func numelOf(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Conv2d is nn.Conv2d: W (out × in/groups × kh × kw), b (out) or nil, with
// stride, padding, dilation and groups in Opts.
type Conv2d struct {
	Base
	Weight *torch.Tensor
	Bias   *torch.Tensor
	Opts   torch.Conv2dOptions
}

// NewConv2d returns a Conv2d initialised like nn.Conv2d: W from
// kaiming_uniform(a=√5), then b from U(±1/√fan_in), fan_in = in/groups·kh·kw,
// drawn in that order from the default generator.
func NewConv2d(in, out int64, kernel [2]int64, bias bool, o torch.Conv2dOptions, opts ...torch.Option) (*Conv2d, error) {
	groups := o.Groups
	if groups == 0 {
		groups = 1
	}
	switch {
	case in <= 0 || out <= 0:
		return nil, fmt.Errorf("module: NewConv2d: in and out channels must be positive, got in=%d out=%d", in, out)
	case kernel[0] <= 0 || kernel[1] <= 0:
		return nil, fmt.Errorf("module: NewConv2d: kernel size must be positive, got %v", kernel)
	case groups < 0 || in%groups != 0 || out%groups != 0:
		return nil, fmt.Errorf("module: NewConv2d: groups %d must divide in=%d and out=%d", groups, in, out)
	case o.Stride[0] < 0 || o.Stride[1] < 0:
		return nil, fmt.Errorf("module: NewConv2d: stride must not be negative, got %v", o.Stride)
	case o.Padding[0] < 0 || o.Padding[1] < 0:
		return nil, fmt.Errorf("module: NewConv2d: padding must not be negative, got %v", o.Padding)
	case o.Dilation[0] < 0 || o.Dilation[1] < 0:
		return nil, fmt.Errorf("module: NewConv2d: dilation must not be negative, got %v", o.Dilation)
	}
	w := torch.Empty([]int64{out, in / groups, kernel[0], kernel[1]}, opts...)
	var b *torch.Tensor
	if bias {
		b = torch.Empty([]int64{out}, opts...)
	}
	err := firstErr(w, b)
	if err == nil {
		err = w.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU)
	}
	if err == nil && b != nil {
		fanIn := float64(in / groups * kernel[0] * kernel[1])
		bound := 1 / math.Sqrt(fanIn)
		err = b.Uniform_(-bound, bound)
	}
	var c *Conv2d
	if err == nil {
		c, err = Conv2dFrom(w, b, o)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, fmt.Errorf("module: NewConv2d: %w", err)
	}
	return c, nil
}

// Conv2dFrom wraps a pre-trained weight (out × in/groups × kh × kw) and
// bias (out, or nil); the Conv2d takes ownership of both and marks them
// trainable. On error the caller keeps them.
func Conv2dFrom(weight, bias *torch.Tensor, o torch.Conv2dOptions) (*Conv2d, error) {
	ws, err := weight.Size()
	if err != nil {
		return nil, fmt.Errorf("module: Conv2dFrom: weight: %w", err)
	}
	if len(ws) != 4 {
		return nil, fmt.Errorf("module: Conv2dFrom: weight must be 4-D (out×in/groups×kh×kw), got shape %v", ws)
	}
	if bias != nil {
		bs, err := bias.Size()
		if err != nil {
			return nil, fmt.Errorf("module: Conv2dFrom: bias: %w", err)
		}
		if len(bs) != 1 || bs[0] != ws[0] {
			return nil, fmt.Errorf("module: Conv2dFrom: bias shape %v does not match out channels %d", bs, ws[0])
		}
	}
	if o.Groups < 0 || (o.Groups > 0 && ws[0]%o.Groups != 0) {
		return nil, fmt.Errorf("module: Conv2dFrom: groups %d must divide out channels %d", o.Groups, ws[0])
	}
	if err := markTrainable(weight, bias); err != nil {
		return nil, fmt.Errorf("module: Conv2dFrom: %w", err)
	}
	c := &Conv2d{Weight: weight, Bias: bias, Opts: o}
	c.Param("weight", &c.Weight)
	c.Param("bias", &c.Bias)
	return c, nil
}

// InChannels returns in = W's second dim × groups.
func (c *Conv2d) InChannels() int64 {
	if c == nil {
		return 0
	}
	g := c.Opts.Groups
	if g == 0 {
		g = 1
	}
	return c.Weight.SizeOf(1) * g
}

// OutChannels returns W's first dim.
func (c *Conv2d) OutChannels() int64 {
	if c == nil {
		return 0
	}
	return c.Weight.SizeOf(0)
}

// KernelSize returns (kh, kw).
func (c *Conv2d) KernelSize() [2]int64 {
	if c == nil {
		return [2]int64{}
	}
	return [2]int64{c.Weight.SizeOf(2), c.Weight.SizeOf(3)}
}

// Forward applies the convolution to x (N, C, H, W). The result joins x's
// scope.
func (c *Conv2d) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.Conv2d(x, c.Weight, c.Bias, c.Opts)
}
