package torch

/*
#include "cgotorch.h"
*/
import "C"

import "runtime"

// Autocast runs f with libtorch's automatic mixed precision on for dev's
// type, like `with torch.autocast(device_type, dtype=dtype)`: ops that
// autocast lists (linear, matmul, conv, ...) run in dtype (BFloat16 or
// Float16) while float32 parameters and their gradients stay float32.
// Autocast state is per OS thread in libtorch, so Autocast pins the
// goroutine to its thread for the duration and restores the previous
// state, even if f panics. Goroutines that f starts are not in the region.
func Autocast(dev Device, dtype DType, f func() error) error {
	return withAutocast("Autocast", dev, true, dtype, f)
}

// NoAutocast runs f with autocast off for dev's type, like
// torch.autocast(..., enabled=False) inside an autocast region.
func NoAutocast(dev Device, f func() error) error {
	return withAutocast("NoAutocast", dev, false, BFloat16, f)
}

// AutocastEnabled reports whether autocast is on for dev's type on the
// calling OS thread, and its dtype (meaningful only for a goroutine that
// has locked its thread, or inside f of Autocast).
func AutocastEnabled(dev Device) (bool, DType) {
	var on, dt C.int
	if check("AutocastEnabled", C.cg_autocast_get(C.int(dev.Type), &on, &dt)) != nil {
		return false, Invalid
	}
	return on != 0, DType(dt)
}

func withAutocast(op string, dev Device, on bool, dtype DType, f func() error) error {
	if on && dtype != BFloat16 && dtype != Float16 {
		return argErrorf(op, "dtype", "autocast runs in bfloat16 or float16, got %v", dtype)
	}
	if dev.IsCUDA() && !CUDAIsAvailable() {
		return argErrorf(op, "device", "%v requested but CUDA is not available", dev)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var prevOn, prevDT C.int
	if err := check(op, C.cg_autocast_get(C.int(dev.Type), &prevOn, &prevDT)); err != nil {
		return err
	}
	if err := check(op, C.cg_autocast_enter(C.int(dev.Type), cbool(on), C.int(dtype))); err != nil {
		return err
	}
	defer func() {
		if e := C.cg_autocast_exit(C.int(dev.Type), prevOn, prevDT); e != nil {
			C.cg_free_error(e)
		}
	}()
	return f()
}
