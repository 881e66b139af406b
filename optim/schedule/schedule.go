package schedule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schedule is a learning-rate schedule: a pure function of the step.
//
// The constructors of this package (Constant, ConstantWarmup, WarmupCosine,
// WarmupLinear and StepDecay) return the schedules they describe. A caller
// may implement Schedule for a schedule of its own, and drive it with a
// Scheduler.
type Schedule interface {
	// LR returns the learning rate of step (0-based): the one the step-th
	// optimizer step uses. It depends on step alone. The schedules of this
	// package return LR(0) for a negative step.
	LR(step int) float64

	// Params describes the schedule, for Scheduler.State and LoadState:
	// key "kind" names the kind of schedule (not empty), and every other
	// key one of its parameters. Equal parameters must give equal strings.
	// The keys "step" and "format" are reserved for the Scheduler. The
	// caller may modify the map it returns.
	Params() map[string]string
}

// The kinds of schedule, the "kind" of their Params.
const (
	kindConstant       = "constant"
	kindConstantWarmup = "constant_warmup"
	kindWarmupCosine   = "warmup_cosine"
	kindWarmupLinear   = "warmup_linear"
	kindStepDecay      = "step_decay"
)

// Must returns s, and panics if err is not nil. It wraps a constructor with
// arguments known to be valid:
//
//	schedule.Must(schedule.WarmupCosine(3e-4, 100, 1000, 0))
func Must(s Schedule, err error) Schedule {
	if err != nil {
		panic(err)
	}
	return s
}

// Constant returns the schedule whose learning rate is lr at every step,
// like torch.optim.lr_scheduler.LambdaLR with a lambda returning 1
// (transformers' get_constant_schedule) or ConstantLR with factor 1.
//
// lr must be finite and not negative.
func Constant(lr float64) (Schedule, error) {
	var c checker
	lr = c.rate("lr", lr)
	if err := c.err("Constant"); err != nil {
		return nil, err
	}
	return constant{lr: lr}, nil
}

// ConstantWarmup returns the schedule that rises linearly from 0 to baseLR
// over the first warmup steps, then stays at baseLR:
//
//	LR(t) = baseLR · t/warmup   for t < warmup
//	LR(t) = baseLR              for t ≥ warmup
//
// as transformers' get_constant_schedule_with_warmup(optimizer,
// num_warmup_steps=warmup) with the optimizer's lr at baseLR. warmup 0 is a
// constant schedule.
//
// baseLR must be finite and not negative, and warmup not negative.
func ConstantWarmup(baseLR float64, warmup int) (Schedule, error) {
	var c checker
	baseLR = c.rate("baseLR", baseLR)
	c.count("warmup", warmup, 0)
	if err := c.err("ConstantWarmup"); err != nil {
		return nil, err
	}
	return constantWarmup{baseLR: baseLR, warmup: warmup}, nil
}

// WarmupCosine returns the schedule that rises linearly from 0 to baseLR
// over the first warmup steps, then decays from baseLR to floor along half
// a cosine, reaching floor at step total, and stays at floor after it:
//
//	LR(t) = baseLR · t/warmup                      for t < warmup
//	LR(t) = floor + (baseLR − floor) · factor(t)   for t ≥ warmup, with
//	factor(t) = max(0, ½·(1 + cos(π·p))),  p = min(1, (t − warmup)/max(1, total − warmup))
//
// With floor 0 this is transformers' get_cosine_schedule_with_warmup(
// optimizer, num_warmup_steps=warmup, num_training_steps=total) (its
// default num_cycles 0.5) with the optimizer's lr at baseLR, and with a
// floor it is transformers' get_cosine_with_min_lr_schedule_with_warmup(...,
// min_lr=floor): the warmup starts from 0, not from the floor. The one
// difference from transformers is past step total, where transformers'
// cosine climbs back up (p > 1) and this schedule holds the floor.
//
// With warmup == total the learning rate rises to baseLR at step total, as
// in transformers, and is floor from step total+1 on.
//
// baseLR and floor must be finite, 0 ≤ floor ≤ baseLR, 0 ≤ warmup ≤ total,
// and total ≥ 1.
func WarmupCosine(baseLR float64, warmup, total int, floor float64) (Schedule, error) {
	s, err := warmupDecay(kindWarmupCosine, "WarmupCosine", baseLR, warmup, total, floor)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// WarmupLinear returns the schedule that rises linearly from 0 to baseLR
// over the first warmup steps, then decays linearly from baseLR to floor,
// reaching floor at step total, and stays at floor after it:
//
//	LR(t) = baseLR · t/warmup                      for t < warmup
//	LR(t) = floor + (baseLR − floor) · factor(t)   for t ≥ warmup, with
//	factor(t) = max(0, (total − t)/max(1, total − warmup))
//
// With floor 0 this is transformers' get_linear_schedule_with_warmup(
// optimizer, num_warmup_steps=warmup, num_training_steps=total) with the
// optimizer's lr at baseLR, at every step, past total included. transformers
// has no floor for it: the floor is applied as WarmupCosine applies it.
//
// baseLR and floor must be finite, 0 ≤ floor ≤ baseLR, 0 ≤ warmup ≤ total,
// and total ≥ 1.
func WarmupLinear(baseLR float64, warmup, total int, floor float64) (Schedule, error) {
	s, err := warmupDecay(kindWarmupLinear, "WarmupLinear", baseLR, warmup, total, floor)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// StepDecay returns the schedule that starts at baseLR and is multiplied by
// gamma every stepSize steps:
//
//	LR(t) = baseLR · gamma^⌊t/stepSize⌋
//
// as torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepSize,
// gamma=gamma) with the optimizer's lr at baseLR. StepLR multiplies the
// previous learning rate by gamma at each decay, so its rounding errors
// add up over the decays; this schedule computes the power directly, and
// the two differ by about k·2⁻⁵³ relative after k decays.
//
// baseLR must be finite and not negative, stepSize at least 1, and gamma in
// (0, 1].
func StepDecay(baseLR float64, stepSize int, gamma float64) (Schedule, error) {
	var c checker
	baseLR = c.rate("baseLR", baseLR)
	c.count("stepSize", stepSize, 1)
	switch {
	case math.IsNaN(gamma) || math.IsInf(gamma, 0):
		c.add("gamma = %v is not finite", gamma)
	case gamma <= 0 || gamma > 1:
		c.add("gamma = %v is not in (0, 1]", gamma)
	}
	if err := c.err("StepDecay"); err != nil {
		return nil, err
	}
	return stepDecay{baseLR: baseLR, stepSize: stepSize, gamma: gamma}, nil
}

// checker collects the problems of a constructor's arguments.
type checker struct{ problems []string }

func (c *checker) add(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// rate checks a learning rate: finite and not negative. It returns v with
// -0 made +0, so that LR and Params never show a negative zero.
func (c *checker) rate(name string, v float64) float64 {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		c.add("%s = %v is not finite", name, v)
	case v < 0:
		c.add("%s = %v is negative", name, v)
	case v == 0:
		return 0
	}
	return v
}

// count checks a step count: at least least.
func (c *checker) count(name string, v, least int) {
	switch {
	case v < 0:
		c.add("%s = %d is negative", name, v)
	case v < least:
		c.add("%s = %d is less than %d", name, v, least)
	}
}

// err returns the problems found as one error naming the constructor, or
// nil if there are none.
func (c *checker) err(fn string) error {
	if len(c.problems) == 0 {
		return nil
	}
	return errors.New("schedule." + fn + ": " + strings.Join(c.problems, "; "))
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// constant is the schedule of Constant.
type constant struct{ lr float64 }

// LR returns the constant learning rate.
func (s constant) LR(int) float64 { return s.lr }

// Params returns kind "constant" and lr.
func (s constant) Params() map[string]string {
	return map[string]string{"kind": kindConstant, "lr": formatFloat(s.lr)}
}

// String returns the call that makes s.
func (s constant) String() string {
	return fmt.Sprintf("schedule.Constant(lr=%v)", s.lr)
}

// constantWarmup is the schedule of ConstantWarmup.
type constantWarmup struct {
	baseLR float64
	warmup int
}

// LR returns the learning rate of step, as ConstantWarmup documents.
func (s constantWarmup) LR(step int) float64 {
	t := max(step, 0)
	if t < s.warmup {
		// transformers: float(current_step) / float(max(1.0, num_warmup_steps))
		return s.baseLR * (float64(t) / max(1, float64(s.warmup)))
	}
	return s.baseLR
}

// Params returns kind "constant_warmup", base_lr and warmup.
func (s constantWarmup) Params() map[string]string {
	return map[string]string{
		"kind":    kindConstantWarmup,
		"base_lr": formatFloat(s.baseLR),
		"warmup":  strconv.Itoa(s.warmup),
	}
}

// String returns the call that makes s.
func (s constantWarmup) String() string {
	return fmt.Sprintf("schedule.ConstantWarmup(baseLR=%v, warmup=%d)", s.baseLR, s.warmup)
}

// decay is the schedule of WarmupCosine (cosine) and WarmupLinear.
type decay struct {
	cosine        bool
	baseLR, floor float64
	warmup, total int
}

func warmupDecay(kind, fn string, baseLR float64, warmup, total int, floor float64) (decay, error) {
	var c checker
	baseLR = c.rate("baseLR", baseLR)
	floor = c.rate("floor", floor)
	if floor > baseLR {
		c.add("floor = %v is greater than baseLR = %v", floor, baseLR)
	}
	c.count("warmup", warmup, 0)
	c.count("total", total, 1)
	if warmup > total {
		c.add("warmup = %d is greater than total = %d", warmup, total)
	}
	if err := c.err(fn); err != nil {
		return decay{}, err
	}
	return decay{cosine: kind == kindWarmupCosine, baseLR: baseLR, floor: floor, warmup: warmup, total: total}, nil
}

// LR returns the learning rate of step, as WarmupCosine or WarmupLinear
// documents. The arithmetic is transformers', operation for operation, so
// that floor 0 gives its very floats (but for math.Cos against the C
// library's cos, which may differ in the last bit).
func (s decay) LR(step int) float64 {
	t := max(step, 0)
	if t < s.warmup {
		// float(current_step) / float(max(1, num_warmup_steps))
		return s.baseLR * (float64(t) / float64(max(1, s.warmup)))
	}
	var factor float64
	if s.cosine {
		// progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
		// max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
		// with num_cycles 0.5 (π·0.5·2 is exactly π), progress held at 1 past total.
		progress := min(1, float64(t-s.warmup)/float64(max(1, s.total-s.warmup)))
		factor = max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	} else {
		// max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))
		factor = max(0, float64(s.total-t)/float64(max(1, s.total-s.warmup)))
	}
	// The conversion rounds the product, so that it is never fused into a
	// multiply-add: floor 0 then gives baseLR·factor exactly, as LambdaLR.
	return s.floor + float64((s.baseLR-s.floor)*factor)
}

func (s decay) kind() string {
	if s.cosine {
		return kindWarmupCosine
	}
	return kindWarmupLinear
}

// Params returns kind "warmup_cosine" or "warmup_linear", base_lr, warmup,
// total and floor.
func (s decay) Params() map[string]string {
	return map[string]string{
		"kind":    s.kind(),
		"base_lr": formatFloat(s.baseLR),
		"warmup":  strconv.Itoa(s.warmup),
		"total":   strconv.Itoa(s.total),
		"floor":   formatFloat(s.floor),
	}
}

// String returns the call that makes s.
func (s decay) String() string {
	fn := "WarmupLinear"
	if s.cosine {
		fn = "WarmupCosine"
	}
	return fmt.Sprintf("schedule.%s(baseLR=%v, warmup=%d, total=%d, floor=%v)", fn, s.baseLR, s.warmup, s.total, s.floor)
}

// stepDecay is the schedule of StepDecay.
type stepDecay struct {
	baseLR, gamma float64
	stepSize      int
}

// LR returns the learning rate of step, as StepDecay documents.
func (s stepDecay) LR(step int) float64 {
	k := max(step, 0) / s.stepSize
	if k == 0 {
		return s.baseLR
	}
	return s.baseLR * math.Pow(s.gamma, float64(k))
}

// Params returns kind "step_decay", base_lr, step_size and gamma.
func (s stepDecay) Params() map[string]string {
	return map[string]string{
		"kind":      kindStepDecay,
		"base_lr":   formatFloat(s.baseLR),
		"step_size": strconv.Itoa(s.stepSize),
		"gamma":     formatFloat(s.gamma),
	}
}

// String returns the call that makes s.
func (s stepDecay) String() string {
	return fmt.Sprintf("schedule.StepDecay(baseLR=%v, stepSize=%d, gamma=%v)", s.baseLR, s.stepSize, s.gamma)
}
