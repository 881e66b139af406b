package torch

/*
#include "cgotorch.h"
*/
import "C"

// RNGState returns the state of dev's default generator (CPU, or a CUDA
// device) as a uint8 tensor, like torch.get_rng_state and
// torch.cuda.get_rng_state. Saved with a checkpoint and given back to
// SetRNGState, it makes a resumed run draw the same numbers.
func RNGState(dev Device) *Tensor {
	c := begin("RNGState")
	if dev.IsCUDA() && !CUDAIsAvailable() {
		c.fail("device", "%v requested but CUDA is not available", dev)
	}
	var out C.cg_tensor
	if c.ok() {
		c.check(C.cg_rng_get_state(C.int(dev.Type), C.int(dev.Index), &out))
	}
	return c.result(out)
}

// SetRNGState restores dev's default generator from a state returned by
// RNGState. A state of the wrong dtype, device or size is an error and
// leaves the generator unchanged.
func SetRNGState(dev Device, state *Tensor) error {
	c := begin("SetRNGState")
	h := c.in("state", state)
	if dev.IsCUDA() && !CUDAIsAvailable() {
		c.fail("device", "%v requested but CUDA is not available", dev)
	}
	if c.ok() {
		c.check(C.cg_rng_set_state(C.int(dev.Type), C.int(dev.Index), h))
	}
	return c.done()
}
