// Package schedule holds learning-rate schedules and a Scheduler that applies
// them to an optimizer.
//
// A Schedule is a pure function of the step: LR(t) is the learning rate of
// step t (0-based), the one the t-th optimizer step uses. This is PyTorch's
// convention, where lr_scheduler.step() is called after optimizer.step():
// the learning rate of step 0 is set when the scheduler is made, and each
// call of Step moves on to the next.
//
// The schedules, and the PyTorch code they match at every step:
//
//   - Constant(lr): LambdaLR with a constant lambda (transformers'
//     get_constant_schedule), ConstantLR(factor=1).
//   - ConstantWarmup(baseLR, warmup): transformers'
//     get_constant_schedule_with_warmup.
//   - WarmupCosine(baseLR, warmup, total, floor): transformers'
//     get_cosine_schedule_with_warmup (floor 0) and
//     get_cosine_with_min_lr_schedule_with_warmup (min_lr = floor), up to
//     step total; past it this schedule holds the floor where transformers'
//     cosine climbs back up.
//   - WarmupLinear(baseLR, warmup, total, floor): transformers'
//     get_linear_schedule_with_warmup (floor 0; a floor is golora's
//     extension, applied as for the cosine).
//   - StepDecay(baseLR, stepSize, gamma): torch.optim.lr_scheduler.StepLR.
//
// The tests check every step of runs of about 300 steps against reference
// files written by torch.optim.lr_scheduler driving a real optimizer
// (testdata/gen_schedule.py): the learning rates agree to 1e-12 of the base
// learning rate, most of them bit for bit.
//
// A Scheduler drives anything with a SetLR method (a Target), such as an
// optim.Optimizer. A training loop:
//
//	opt, err := optim.NewAdamW(params, optim.LR(3e-4))
//	...
//	sched, err := schedule.New(opt, schedule.Must(schedule.WarmupCosine(3e-4, 100, 1000, 0)))
//	...
//	for step := 0; step < 1000; step++ {
//		// forward, loss, backward
//		opt.Step()
//		opt.ZeroGrad()
//		sched.Step()
//	}
//
// The scheduler sets the optimizer's learning rate itself (at New, and at
// every Step), so the optimizer's own lr option is overridden.
//
// A Scheduler's state (its step count and its schedule's parameters) is a
// map of strings, made to go into a checkpoint's safetensors metadata next
// to the optimizer's state: State saves it and LoadState restores it into a
// fresh Scheduler, which then goes on exactly as the saved one would have.
// LoadState rejects the state of another schedule, or of the same schedule
// with other parameters, with an error listing the differences.
package schedule
