package lora

import (
	"fmt"

	"github.com/golora/golora/torch"
)

// Option configures NewLinear and NewEmbedding.
type Option func(*config)

type config struct {
	alpha    float64
	hasAlpha bool
	weight   *torch.Tensor
	bias     *torch.Tensor
	given    bool
	opts     []torch.Option
}

// WithAlpha sets α, the numerator of the scaling α/r. Without it α = r,
// so the scaling is 1.
func WithAlpha(alpha float64) Option {
	return func(c *config) { c.alpha, c.hasAlpha = alpha, true }
}

// WithWeights gives the pre-trained (frozen) weight and bias instead of
// initialising them. The layer takes ownership of both. For NewEmbedding
// the bias must be nil. lora_a then takes the dtype and device of weight.
func WithWeights(weight, bias *torch.Tensor) Option {
	return func(c *config) { c.weight, c.bias, c.given = weight, bias, true }
}

// WithDType makes the layer's tensors of type d (default float32) when no
// weights are given.
func WithDType(d torch.DType) Option {
	return func(c *config) { c.opts = append(c.opts, torch.WithDType(d)) }
}

// WithDevice makes the layer's tensors on device d (default CPU) when no
// weights are given.
func WithDevice(d torch.Device) Option {
	return func(c *config) { c.opts = append(c.opts, torch.WithDevice(d)) }
}

// resolveAlpha validates r and α and returns α (r when unset).
func (c *config) resolveAlpha(op string, r int64) (float64, error) {
	if r <= 0 {
		return 0, fmt.Errorf("lora: %s: rank r must be positive, got %d", op, r)
	}
	if !c.hasAlpha {
		return float64(r), nil
	}
	if !(c.alpha > 0) {
		return 0, fmt.Errorf("lora: %s: alpha must be positive, got %v", op, c.alpha)
	}
	return c.alpha, nil
}

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// likeOpts returns creation options matching t's dtype and device.
func likeOpts(t *torch.Tensor) []torch.Option {
	return []torch.Option{torch.WithDType(t.DType()), torch.WithDevice(t.Device())}
}

// adapterPair creates A (rows×cols) initialised by initA and B (out×r) of
// zeros, both trainable, with the dtype and device of like.
func adapterPair(aShape, bShape []int64, like *torch.Tensor, initA func(*torch.Tensor) error) (a, b *torch.Tensor, err error) {
	opts := likeOpts(like)
	if a, err = torch.Empty(aShape, opts...); err != nil {
		return nil, nil, err
	}
	if err = initA(a); err == nil {
		b, err = torch.Zeros(bShape, opts...)
	}
	if err == nil {
		err = a.SetRequiresGrad(true)
	}
	if err == nil {
		err = b.SetRequiresGrad(true)
	}
	if err != nil {
		torch.CloseAll(a, b)
		return nil, nil, err
	}
	return a, b, nil
}
