package schedule

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Target is what a Scheduler sets the learning rate of, such as an
// optim.Optimizer.
type Target interface {
	// SetLR sets the learning rate the next optimizer steps use.
	SetLR(lr float64)
}

// StateKeyPrefix starts every key of a Scheduler's State. LoadState reads
// the keys that start with it and ignores the others, so that the state can
// share a checkpoint's metadata with other state.
const StateKeyPrefix = "schedule."

// stateFormat is the value of the "schedule.format" key of State.
const stateFormat = "1"

// The keys of State that are not the schedule's parameters (reserved in
// Params), without StateKeyPrefix.
const (
	keyFormat = "format"
	keyStep   = "step"
	keyKind   = "kind"
)

// Scheduler sets a Target's learning rate by a Schedule, step by step. It
// is not safe for concurrent use.
type Scheduler struct {
	target Target
	sched  Schedule
	params map[string]string // sched.Params(), taken once by New
	step   int
	lr     float64
}

// New returns a Scheduler at step 0 that drives target by s, and sets
// target's learning rate to s.LR(0) at once. Call Step after each optimizer
// step.
//
// It fails when target or s is nil, or when s.Params has no "kind", or uses
// a reserved key ("step", "format").
func New(target Target, s Schedule) (*Scheduler, error) {
	if target == nil {
		return nil, errors.New("schedule.New: target is nil")
	}
	if v := reflect.ValueOf(target); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("schedule.New: target is a nil %T", target)
	}
	if s == nil {
		return nil, errors.New("schedule.New: schedule is nil")
	}
	params := s.Params()
	if params[keyKind] == "" {
		return nil, fmt.Errorf("schedule.New: the Params of schedule %T have no \"kind\"", s)
	}
	for _, k := range []string{keyStep, keyFormat} {
		if _, ok := params[k]; ok {
			return nil, fmt.Errorf("schedule.New: the Params of schedule %T use the reserved key %q", s, k)
		}
	}
	if _, ok := params[""]; ok {
		return nil, fmt.Errorf("schedule.New: the Params of schedule %T have an empty key", s)
	}
	sc := &Scheduler{target: target, sched: s, params: maps.Clone(params)}
	sc.set(0)
	return sc, nil
}

// set moves sc to step and sets the target's learning rate.
func (sc *Scheduler) set(step int) {
	sc.step = step
	sc.lr = sc.sched.LR(step)
	sc.target.SetLR(sc.lr)
}

// Step moves on to the next step and sets the target's learning rate to the
// schedule's learning rate there. Call it after each optimizer step, as
// PyTorch's lr_scheduler.step().
func (sc *Scheduler) Step() { sc.set(sc.step + 1) }

// LR returns the learning rate of the current step, the one last set on
// the target.
func (sc *Scheduler) LR() float64 { return sc.lr }

// StepCount returns the current step: the number of calls of Step since
// New, or the step restored by LoadState. It is the number of optimizer
// steps taken so far, and the next optimizer step uses LR.
func (sc *Scheduler) StepCount() int { return sc.step }

// Schedule returns the schedule sc follows.
func (sc *Scheduler) Schedule() Schedule { return sc.sched }

// State returns sc's state as strings, for a checkpoint's metadata: every
// key starts with StateKeyPrefix, and they are
//
//	schedule.format   the format of the state, "1"
//	schedule.step     StepCount
//	schedule.kind     the kind of schedule (e.g. "warmup_cosine")
//	schedule.<param>  each of its parameters (e.g. "schedule.base_lr")
//
// The caller may modify the map.
func (sc *Scheduler) State() map[string]string {
	st := make(map[string]string, len(sc.params)+2)
	for k, v := range sc.params {
		st[StateKeyPrefix+k] = v
	}
	st[StateKeyPrefix+keyFormat] = stateFormat
	st[StateKeyPrefix+keyStep] = strconv.Itoa(sc.step)
	return st
}

// LoadState restores a state that State returned, and sets the target's
// learning rate to the one of the restored step: sc then goes on exactly
// as the Scheduler that saved it would have.
//
// Keys that do not start with StateKeyPrefix are ignored, so a checkpoint's
// whole metadata may be passed. The saved schedule must be sc's own: the
// same kind with the same parameters. Otherwise, or when the state is
// missing, malformed or of another format, LoadState returns an error
// (listing every parameter that differs) and leaves sc as it was.
func (sc *Scheduler) LoadState(state map[string]string) error {
	saved := make(map[string]string)
	for k, v := range state {
		if name, ok := strings.CutPrefix(k, StateKeyPrefix); ok {
			saved[name] = v
		}
	}
	if len(saved) == 0 {
		return fmt.Errorf("schedule: LoadState: no scheduler state (no key starts with %q)", StateKeyPrefix)
	}
	format, ok := saved[keyFormat]
	if !ok {
		return fmt.Errorf("schedule: LoadState: %s%s is missing", StateKeyPrefix, keyFormat)
	}
	if format != stateFormat {
		return fmt.Errorf("schedule: LoadState: %s%s = %q: unsupported format (want %q)", StateKeyPrefix, keyFormat, format, stateFormat)
	}
	stepStr, ok := saved[keyStep]
	if !ok {
		return fmt.Errorf("schedule: LoadState: %s%s is missing", StateKeyPrefix, keyStep)
	}
	step, err := strconv.Atoi(stepStr)
	if err != nil || step < 0 {
		return fmt.Errorf("schedule: LoadState: %s%s = %q is not a step count (an integer ≥ 0)", StateKeyPrefix, keyStep, stepStr)
	}
	delete(saved, keyFormat)
	delete(saved, keyStep)
	if diffs := diffParams(saved, sc.params); len(diffs) > 0 {
		return fmt.Errorf("schedule: LoadState: the state was saved by another schedule than %s: %s",
			describe(sc.sched), strings.Join(diffs, "; "))
	}
	sc.set(step)
	return nil
}

// diffParams lists the differences between saved and have, one string per
// key, in key order.
func diffParams(saved, have map[string]string) []string {
	keys := slices.Collect(maps.Keys(saved))
	for k := range have {
		if _, ok := saved[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var diffs []string
	for _, k := range keys {
		s, inSaved := saved[k]
		h, inHave := have[k]
		switch {
		case !inHave:
			diffs = append(diffs, fmt.Sprintf("%s: saved %q, not a parameter of this schedule", k, s))
		case !inSaved:
			diffs = append(diffs, fmt.Sprintf("%s: not in the saved state, this schedule has %q", k, h))
		case s != h:
			diffs = append(diffs, fmt.Sprintf("%s: saved %q, this schedule has %q", k, s, h))
		}
	}
	return diffs
}

// describe names a schedule in messages: its String if it has one, else
// its type.
func describe(s Schedule) string {
	if str, ok := s.(fmt.Stringer); ok {
		return str.String()
	}
	return fmt.Sprintf("%T", s)
}
