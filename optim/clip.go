package optim

import (
	"fmt"
	"math"

	"github.com/golora/golora/torch"
)

// ClipGradNorm is torch.nn.utils.clip_grad_norm_: it computes the total
// normType-norm of the gradients of params (the norm of the per-gradient
// norms, as if all gradients were one vector; math.Inf(1) for the maximum
// norm), and if it exceeds maxNorm scales every gradient in place by
// maxNorm/(total+1e-6). It returns the total norm before clipping.
// Parameters without a gradient are skipped; with none at all the norm is
// 0. The whole computation is one C call with PyTorch's ops in PyTorch's
// order, so the result equals PyTorch's on the same libtorch; on a GPU
// reading the norm back synchronises the device, as .item() does.
//
// maxNorm must be finite and ≥ 0, normType > 0 (+Inf allowed). A
// non-finite total norm (a NaN or infinite gradient) is returned as it is,
// and the gradients are scaled by it as in PyTorch with
// error_if_nonfinite=False: check the result to skip such a step.
func ClipGradNorm(params []*torch.Tensor, maxNorm, normType float64) (totalNorm float64, err error) {
	switch {
	case !finite(maxNorm) || maxNorm < 0:
		return 0, fmt.Errorf("optim: ClipGradNorm: invalid max norm %v (want a finite number ≥ 0)", maxNorm)
	case math.IsNaN(normType) || normType <= 0:
		return 0, fmt.Errorf("optim: ClipGradNorm: invalid norm type %v (want a number > 0, or math.Inf(1))", normType)
	}
	if err := checkList("ClipGradNorm", params); err != nil {
		return 0, err
	}
	total, err := torch.ClipGradNorm(params, maxNorm, normType)
	if err != nil {
		return 0, fmt.Errorf("optim: ClipGradNorm: %w", err)
	}
	return total, nil
}

// ClipGradValue is torch.nn.utils.clip_grad_value_: it clamps every
// gradient of params in place to [-clip, clip], in one C call. Parameters
// without a gradient are skipped. clip must be ≥ 0 and not NaN.
func ClipGradValue(params []*torch.Tensor, clip float64) error {
	if math.IsNaN(clip) || clip < 0 {
		return fmt.Errorf("optim: ClipGradValue: invalid clip value %v (want a number ≥ 0)", clip)
	}
	if err := checkList("ClipGradValue", params); err != nil {
		return err
	}
	if err := torch.ClipGradValue(params, clip); err != nil {
		return fmt.Errorf("optim: ClipGradValue: %w", err)
	}
	return nil
}

// checkList names a nil, failed or closed tensor of params.
func checkList(fn string, params []*torch.Tensor) error {
	for i, p := range params {
		switch {
		case p == nil:
			return fmt.Errorf("optim: %s: parameter %d is nil", fn, i)
		case p.Err() != nil:
			return wrapf(p.Err(), "optim: %s: parameter %d is a failed tensor: %v", fn, i, p.Err())
		case p.Closed():
			return fmt.Errorf("optim: %s: parameter %d is closed", fn, i)
		}
	}
	return nil
}
