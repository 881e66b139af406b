package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
)

// This file is the cgo side of package optim (github.com/golora/golora/optim),
// which is the API to use: it names parameters, validates options and
// keeps parameter groups. What is here works on plain parameter lists, one
// C call per operation whatever the number of tensors.

// OptimKind selects the algorithm of a FusedOptimizer.
type OptimKind int

// The algorithms: PyTorch's single-tensor SGD, Adam and AdamW.
const (
	OptimSGD   OptimKind = C.CG_OPTIM_SGD
	OptimAdam  OptimKind = C.CG_OPTIM_ADAM
	OptimAdamW OptimKind = C.CG_OPTIM_ADAMW
)

// OptimGroup holds the hyperparameters of one parameter group as the fused
// step reads them. SGD reads LR, Momentum, Dampening, WeightDecay,
// Nesterov and Maximize; Adam and AdamW read LR, Beta1, Beta2, Eps,
// WeightDecay, AMSGrad and Maximize. They are not validated here.
type OptimGroup struct {
	LR, Momentum, Dampening, WeightDecay, Beta1, Beta2, Eps float64
	Nesterov, AMSGrad, Maximize                             bool
}

// The per-parameter state slots of a FusedOptimizer, with PyTorch's state
// key names in StateSlotNames.
const (
	StateStep        = C.CG_STATE_STEP           // "step": a float32 scalar on the CPU
	StateExpAvg      = C.CG_STATE_EXP_AVG        // "exp_avg"
	StateExpAvgSq    = C.CG_STATE_EXP_AVG_SQ     // "exp_avg_sq"
	StateMaxExpAvgSq = C.CG_STATE_MAX_EXP_AVG_SQ // "max_exp_avg_sq"
	StateMomentum    = C.CG_STATE_MOMENTUM       // "momentum_buffer"
	NumStateSlots    = C.CG_STATE_N
)

// StateSlotNames are PyTorch's names of the state slots, by slot.
var StateSlotNames = [NumStateSlots]string{"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"}

// FusedOptimizer is an optimizer's state held by libcgotorch: for each of
// n parameters, the tensors of PyTorch's optimizer state, allocated on the
// first step that finds the parameter with a gradient. It does not keep
// the parameters: every call is given them again, in the same order. Its
// methods are safe for concurrent use (they serialise).
type FusedOptimizer struct {
	mu      sync.Mutex
	h       C.cg_optim
	n       int
	cleanup runtime.Cleanup
}

// lockList read-locks the distinct tensors of ts (a tensor listed twice is
// locked once) and returns their handles in ts's order, or an error naming
// the entry at fault (arg[i]). release unlocks; it is nil on error.
func lockList(op, arg string, ts []*Tensor) (hs []C.cg_tensor, release func(), err error) {
	hs = make([]C.cg_tensor, len(ts))
	locked := make([]*Tensor, 0, len(ts))
	var seen map[*Tensor]bool
	if len(ts) > 16 {
		seen = make(map[*Tensor]bool, len(ts))
	}
	release = func() {
		for _, t := range locked {
			t.mu.RUnlock()
		}
	}
	for i, t := range ts {
		switch {
		case t == nil:
			err = argErrorf(op, argIndex(arg, i), "nil tensor")
		case t.err != nil:
			err = t.err
		}
		if err != nil {
			release()
			return nil, nil, err
		}
		dup := false
		if seen != nil {
			dup = seen[t]
			seen[t] = true
		} else {
			for _, l := range locked {
				if l == t {
					dup = true
					break
				}
			}
		}
		if !dup {
			t.mu.RLock()
			if t.h == nil {
				t.mu.RUnlock()
				release()
				return nil, nil, argErrorf(op, argIndex(arg, i), "use of closed tensor")
			}
			locked = append(locked, t)
		}
		hs[i] = t.h
	}
	return hs, release, nil
}

func listPtr(hs []C.cg_tensor) *C.cg_tensor {
	if len(hs) == 0 {
		return nil
	}
	return &hs[0]
}

// NewFusedOptimizer makes an empty state of kind for params, which must be
// distinct (also as aliases) leaf floating-point tensors that require
// grad. On a bad parameter bad is its index, else -1.
func NewFusedOptimizer(kind OptimKind, params []*Tensor) (o *FusedOptimizer, bad int, err error) {
	const op = "NewFusedOptimizer"
	if abiErr != nil {
		return nil, -1, abiErr
	}
	hs, release, err := lockList(op, "params", params)
	if err != nil {
		return nil, -1, err
	}
	defer release()
	var h C.cg_optim
	var cbad C.int
	if err := check(op, C.cg_optim_new(C.int(kind), listPtr(hs), C.int(len(hs)), &cbad, &h)); err != nil {
		return nil, int(cbad), err
	}
	o = &FusedOptimizer{h: h, n: len(params)}
	o.cleanup = runtime.AddCleanup(o, func(h C.cg_optim) { C.cg_optim_free(h) }, h)
	return o, -1, nil
}

// Len returns the number of parameters the state was made for.
func (o *FusedOptimizer) Len() int { return o.n }

func (o *FusedOptimizer) errClosed(op string) error {
	return errorf(op, "use of closed optimizer")
}

// Step takes one optimizer step over params (in the order given to
// NewFusedOptimizer): parameter i with the hyperparameters
// groups[groupOf[i]]. Parameters without a gradient are skipped. The
// gradients and the state are checked against the parameters before any
// is updated; on such an error bad is the parameter's index, else -1.
func (o *FusedOptimizer) Step(params []*Tensor, groupOf []int, groups []OptimGroup) (bad int, err error) {
	const op = "OptimizerStep"
	if len(params) != o.n || len(groupOf) != o.n {
		return -1, errorf(op, "the optimizer has %d parameters but was given %d (and %d group indices)", o.n, len(params), len(groupOf))
	}
	gi := make([]C.int, len(groupOf))
	for i, g := range groupOf {
		if g < 0 || g >= len(groups) {
			return i, errorf(op, "group index %d out of range [0, %d)", g, len(groups))
		}
		gi[i] = C.int(g)
	}
	cg := make([]C.cg_optim_group, len(groups))
	for i, g := range groups {
		cg[i] = C.cg_optim_group{
			lr: C.double(g.LR), momentum: C.double(g.Momentum), dampening: C.double(g.Dampening),
			weight_decay: C.double(g.WeightDecay), beta1: C.double(g.Beta1), beta2: C.double(g.Beta2),
			eps: C.double(g.Eps), nesterov: cbool(g.Nesterov), amsgrad: cbool(g.AMSGrad), maximize: cbool(g.Maximize),
		}
	}
	hs, release, err := lockList(op, "params", params)
	if err != nil {
		return -1, err
	}
	defer release()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h == nil {
		return -1, o.errClosed(op)
	}
	var gp *C.int
	var gr *C.cg_optim_group
	if len(gi) > 0 {
		gp = &gi[0]
	}
	if len(cg) > 0 {
		gr = &cg[0]
	}
	var cbad C.int
	err = check(op, C.cg_optim_step(o.h, listPtr(hs), C.int(len(hs)), gp, gr, C.int(len(cg)), &cbad))
	if err != nil {
		return int(cbad), err
	}
	return -1, nil
}

// State returns new handles to parameter i's state tensors by slot (nil
// where there is none). They share memory with the optimizer's state, so
// a later Step changes them; closing them does not free the state.
func (o *FusedOptimizer) State(i int) ([NumStateSlots]*Tensor, error) {
	const op = "OptimizerState"
	var out [NumStateSlots]*Tensor
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h == nil {
		return out, o.errClosed(op)
	}
	if i < 0 || i >= o.n {
		return out, errorf(op, "parameter index %d out of range [0, %d)", i, o.n)
	}
	var hs [NumStateSlots]C.cg_tensor
	if err := check(op, C.cg_optim_get_state(o.h, C.int(i), &hs[0])); err != nil {
		return out, err
	}
	for s, h := range hs {
		if h != nil {
			out[s] = newTensor(h, nil)
		}
	}
	return out, nil
}

// SetState replaces the whole state: state[i][slot] (nil: none) is copied
// into a new tensor of params[i]'s dtype and device (step: a float32 CPU
// scalar). The given tensors are not kept. Everything is checked before
// anything changes: on an error the old state stays, and bad is the index
// of the parameter at fault (else -1).
func (o *FusedOptimizer) SetState(params []*Tensor, state [][NumStateSlots]*Tensor) (bad int, err error) {
	const op = "OptimizerSetState"
	if len(params) != o.n || len(state) != o.n {
		return -1, errorf(op, "the optimizer has %d parameters but was given %d (and %d states)", o.n, len(params), len(state))
	}
	hs, release, err := lockList(op, "params", params)
	if err != nil {
		return -1, err
	}
	defer release()
	flat := make([]*Tensor, 0, o.n*NumStateSlots)
	at := make([]int, 0, o.n*NumStateSlots) // flat index of each non-nil entry
	for i := range state {
		for s, t := range state[i] {
			if t != nil && t.err != nil {
				return i, t.err
			}
			if t != nil && t.Closed() { // named here: lockList would name its place in flat
				return i, argErrorf(op, fmt.Sprintf("state[%d][%s]", i, StateSlotNames[s]), "use of closed tensor")
			}
			if t != nil {
				flat = append(flat, t)
				at = append(at, i*NumStateSlots+s)
			}
		}
	}
	sh, srelease, err := lockList(op, "state", flat)
	if err != nil {
		return -1, err
	}
	defer srelease()
	all := make([]C.cg_tensor, o.n*NumStateSlots)
	for k, j := range at {
		all[j] = sh[k]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h == nil {
		return -1, o.errClosed(op)
	}
	var cbad C.int
	if err := check(op, C.cg_optim_set_state(o.h, listPtr(hs), C.int(len(hs)), listPtr(all), &cbad)); err != nil {
		return int(cbad), err
	}
	return -1, nil
}

// StateBytes returns the bytes of the state tensors allocated so far (0
// once closed).
func (o *FusedOptimizer) StateBytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h == nil {
		return 0
	}
	var n C.int64_t
	if check("OptimizerStateBytes", C.cg_optim_state_bytes(o.h, &n)) != nil {
		return 0
	}
	return int64(n)
}

// Close frees the state. It is idempotent; later calls fail.
func (o *FusedOptimizer) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h != nil {
		o.cleanup.Stop()
		C.cg_optim_free(o.h)
		o.h = nil
	}
}

// ZeroGrads drops the gradients of ts (PyTorch's zero_grad with
// set_to_none=True) in one C call; tensors without one are skipped.
func ZeroGrads(ts []*Tensor) error {
	const op = "ZeroGrads"
	if len(ts) == 0 {
		return nil
	}
	hs, release, err := lockList(op, "tensors", ts)
	if err != nil {
		return err
	}
	defer release()
	return check(op, C.cg_zero_grads(listPtr(hs), C.int(len(hs)), 1))
}

// ClipGradNorm is torch.nn.utils.clip_grad_norm_ over the gradients of ts
// (tensors without one are skipped) in one C call: it returns the
// normType-norm of the per-gradient norms, total, and multiplies every
// gradient in place by min(maxNorm/(total+1e-6), 1). Without any gradient
// it returns 0. The arguments are not validated here.
func ClipGradNorm(ts []*Tensor, maxNorm, normType float64) (float64, error) {
	const op = "ClipGradNorm"
	if len(ts) == 0 {
		return 0, nil
	}
	hs, release, err := lockList(op, "tensors", ts)
	if err != nil {
		return 0, err
	}
	defer release()
	var total C.double
	if err := check(op, C.cg_clip_grad_norm(listPtr(hs), C.int(len(hs)), C.double(maxNorm), C.double(normType), &total)); err != nil {
		return 0, err
	}
	return float64(total), nil
}

// ClipGradValue is torch.nn.utils.clip_grad_value_: every gradient of ts
// is clamped in place to [-clip, clip], in one C call.
func ClipGradValue(ts []*Tensor, clip float64) error {
	const op = "ClipGradValue"
	if len(ts) == 0 {
		return nil
	}
	hs, release, err := lockList(op, "tensors", ts)
	if err != nil {
		return err
	}
	defer release()
	return check(op, C.cg_clip_grad_value(listPtr(hs), C.int(len(hs)), C.double(clip)))
}
