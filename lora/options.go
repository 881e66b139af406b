package lora

import (
	"fmt"
	"math"

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
// initialising them. The layer takes ownership of both once NewLinear or
// NewEmbedding succeeds; on error they stay the caller's. For NewEmbedding
// the bias must be nil. lora_a and lora_b take the dtype and device of
// weight.
func WithWeights(weight, bias *torch.Tensor) Option {
	return func(c *config) { c.weight, c.bias, c.given = weight, bias, true }
}

// WithDType makes the layer's tensors of type d (default float32) when no
// weights are given.
func WithDType(d torch.DType) Option {
	return func(c *config) { c.opts = append(c.opts, torch.WithDType(d)) }
}

// WithDevice makes the layer's tensors on device d (default CPU) when no
// weights are given. Seeded draws equal PyTorch's on the CPU; to reproduce
// them on a GPU, create the layer on the CPU and move it with module.To.
func WithDevice(d torch.Device) Option {
	return func(c *config) { c.opts = append(c.opts, torch.WithDevice(d)) }
}

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// resolveAlpha validates r and α and returns α (r when unset).
func (c *config) resolveAlpha(op string, r int64) (float64, error) {
	if r <= 0 {
		return 0, fmt.Errorf("lora: %s: rank r must be positive, got %d", op, r)
	}
	if !c.hasAlpha {
		return float64(r), nil
	}
	if !(c.alpha > 0) || math.IsInf(c.alpha, 1) {
		return 0, fmt.Errorf("lora: %s: alpha must be positive and finite, got %v", op, c.alpha)
	}
	return c.alpha, nil
}

// shapeOf returns the shape of a given weight, or an error naming it (a
// nil, failed or closed tensor).
func shapeOf(op, what string, t *torch.Tensor) ([]int64, error) {
	if t == nil {
		return nil, fmt.Errorf("lora: %s: WithWeights: %s is nil", op, what)
	}
	s, err := t.Size()
	if err != nil {
		return nil, fmt.Errorf("lora: %s: WithWeights: %s: %w", op, what, err)
	}
	return s, nil
}

// freeze turns gradient tracking off for the non-nil tensors given: the
// pre-trained weights of an adapted layer.
func freeze(ts ...*torch.Tensor) error {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if err := t.SetRequiresGrad(false); err != nil {
			return fmt.Errorf("freezing the pre-trained weights: %w", err)
		}
	}
	return nil
}
