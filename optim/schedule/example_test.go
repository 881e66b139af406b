package schedule_test

import (
	"fmt"

	"github.com/golora/golora/optim/schedule"
)

// optimizer stands for an optim.Optimizer in the examples: a Scheduler
// needs nothing but SetLR.
type optimizer struct{ lr float64 }

func (o *optimizer) SetLR(lr float64) { o.lr = lr }

// A warmup of 2 steps, then a cosine decay to a floor of 1e-4, reached at
// step 6 and held after it. The scheduler sets the optimizer's learning rate
// of step 0 when it is made, and the next one at each Step, called after
// the optimizer's step as in PyTorch.
func Example() {
	opt := &optimizer{}
	sched, err := schedule.New(opt, schedule.Must(schedule.WarmupCosine(1e-3, 2, 6, 1e-4)))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 8 {
		fmt.Printf("step %d: lr %.6f\n", sched.StepCount(), opt.lr)
		// forward, backward, opt.Step(), opt.ZeroGrad()
		sched.Step()
	}
	// Output:
	// step 0: lr 0.000000
	// step 1: lr 0.000500
	// step 2: lr 0.001000
	// step 3: lr 0.000868
	// step 4: lr 0.000550
	// step 5: lr 0.000232
	// step 6: lr 0.000100
	// step 7: lr 0.000100
}

// Bad arguments are errors that name them.
func ExampleWarmupLinear() {
	_, err := schedule.WarmupLinear(1e-3, 500, 100, 2e-3)
	fmt.Println(err)
	// Output:
	// schedule.WarmupLinear: floor = 0.002 is greater than baseLR = 0.001; warmup = 500 is greater than total = 100
}

// Save a scheduler's state with a checkpoint, and resume from it: a fresh
// scheduler of the same schedule, on a fresh optimizer, goes on where the
// saved one stopped. A scheduler of another schedule refuses the state.
func ExampleScheduler_LoadState() {
	s := schedule.Must(schedule.StepDecay(0.1, 3, 0.5))
	sched, _ := schedule.New(&optimizer{}, s)
	for range 4 {
		sched.Step()
	}
	state := sched.State() // goes into the checkpoint's metadata
	fmt.Println(state)

	opt := &optimizer{}
	resumed, _ := schedule.New(opt, s)
	if err := resumed.LoadState(state); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resumed.StepCount(), opt.lr)

	other, _ := schedule.New(&optimizer{}, schedule.Must(schedule.StepDecay(0.1, 5, 0.5)))
	fmt.Println(other.LoadState(state))
	// Output:
	// map[schedule.base_lr:0.1 schedule.format:1 schedule.gamma:0.5 schedule.kind:step_decay schedule.step:4 schedule.step_size:3]
	// 4 0.05
	// schedule: LoadState: the state was saved by another schedule than schedule.StepDecay(baseLR=0.1, stepSize=5, gamma=0.5): step_size: saved "3", this schedule has "5"
}
