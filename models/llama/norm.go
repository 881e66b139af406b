package llama

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// RMSNorm is transformers' LlamaRMSNorm: the input, converted to float32,
// is divided by the root mean square of its last dim (plus Eps), converted
// back to the input's dtype and scaled by Weight (ones at first):
//
//	x32 := x.float(); x32 *= rsqrt(mean(x32², -1) + eps); return weight * x32.to(x.dtype)
type RMSNorm struct {
	module.Base
	Weight *torch.Tensor
	Eps    float64
}

// NewRMSNorm returns an RMSNorm over dim features with a weight of ones.
func NewRMSNorm(dim int64, eps float64, opts ...torch.Option) (*RMSNorm, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("llama: NewRMSNorm: dim %d: must be positive", dim)
	}
	if !(eps > 0) {
		return nil, fmt.Errorf("llama: NewRMSNorm: eps %g: must be positive", eps)
	}
	w := torch.Ones([]int64{dim}, opts...)
	if err := w.Err(); err != nil {
		return nil, err
	}
	if err := w.SetRequiresGrad(true); err != nil {
		w.Close()
		return nil, err
	}
	n := &RMSNorm{Weight: w, Eps: eps}
	n.Param("weight", &n.Weight)
	return n, nil
}

// Forward normalises x (…, dim). The result joins x's scope.
func (n *RMSNorm) Forward(x *torch.Tensor) *torch.Tensor {
	dt := x.DType()
	x32 := x
	if dt != torch.Float32 {
		x32 = x.To(torch.Float32)
	}
	variance := x32.PowScalar(2).MeanDims([]int64{-1}, true)
	h := x32.Mul(variance.AddScalar(n.Eps).Rsqrt())
	if dt != torch.Float32 {
		h = h.To(dt)
	}
	// weight * h in transformers; the product is the same either way, and
	// x's side first keeps the result in x's scope.
	return h.Mul(n.Weight)
}
