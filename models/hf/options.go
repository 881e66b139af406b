package hf

import "github.com/golora/golora/torch"

// Options say how a checkpoint is loaded: the dtype of its floating-point
// tensors and the device they go to. The zero value is not meaningful;
// use NewOptions, whose defaults are float32 on the CPU.
type Options struct {
	DType  torch.DType
	Device torch.Device
}

// Option sets one field of Options.
type Option func(*Options)

// WithDType converts the checkpoint's floating-point tensors to d
// (Float32, BFloat16 or Float16) while loading; integer buffers keep
// their type.
func WithDType(d torch.DType) Option { return func(o *Options) { o.DType = d } }

// WithDevice puts the model on dev.
func WithDevice(dev torch.Device) Option { return func(o *Options) { o.Device = dev } }

// NewOptions applies opts over the defaults: float32 on the CPU. A nil
// option is skipped.
func NewOptions(opts ...Option) Options {
	o := Options{DType: torch.Float32, Device: torch.CPU}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Validate reports an unsupported dtype or an unavailable device.
func (o Options) Validate() error {
	switch o.DType {
	case torch.Float32, torch.BFloat16, torch.Float16:
	default:
		return errorf("WithDType(%v): unsupported (supported: float32, bfloat16, float16)", o.DType)
	}
	if o.Device.IsCUDA() && (!torch.CUDAIsAvailable() || o.Device.Index >= torch.CUDADeviceCount() || o.Device.Index < 0) {
		return errorf("WithDevice(%v): no such CUDA device", o.Device)
	}
	return nil
}
