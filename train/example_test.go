package train_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// setup builds the model, optimizer and scheduler of a run, the same way
// each time the program starts.
func setup() (train.State, func()) {
	_ = torch.ManualSeed(0) // the same frozen base weights every time
	layer := torch.Must(lora.NewLinear(8, 8, true, 4))
	opt := torch.Must(optim.NewAdamWGroups([]optim.Group{optim.FromModule(layer)}, optim.LR(1e-3)))
	sched := torch.Must(schedule.New(opt, schedule.Must(schedule.WarmupCosine(1e-3, 10, 100, 0))))
	return train.State{Model: layer, Optimizer: opt, Scheduler: sched}, func() {
		opt.Close()
		module.Close(layer)
	}
}

// A run that saves a checkpoint every few steps and, started again,
// resumes from the latest one where it stopped: same weights, optimizer
// and schedule state, generator and data position.
func Example() {
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ckpt.safetensors")

	type dataPos struct{ Epoch, Batch int }
	trainFor := func(steps int64) {
		st, done := setup()
		defer done()
		var pos train.Position
		var data dataPos
		if _, err := os.Stat(path); err == nil { // resume
			if pos, err = train.LoadCheckpoint(path, st); err != nil {
				panic(err)
			}
			_ = json.Unmarshal(pos.Data, &data)
			fmt.Printf("resumed at step %d, %+v, lr %.2e\n", pos.Step, data, st.Optimizer.LR())
		}
		layer := st.Model.(*lora.Linear)
		for step := pos.Step; step < steps; step++ {
			s := torch.NewScope()
			x := torch.Randn([]int64{4, 8}, torch.In(s)) // a real loader would read batch data.Batch
			loss := layer.Forward(x).Square().Mean()
			_ = loss.Backward()
			_ = st.Optimizer.Step()
			_ = st.Optimizer.ZeroGrad()
			st.Scheduler.Step()
			s.Close()
			data.Batch++
			if (step+1)%5 == 0 {
				b, _ := json.Marshal(data)
				if err := train.SaveCheckpoint(path, st, train.Position{Step: step + 1, Data: b}); err != nil {
					panic(err)
				}
			}
		}
	}
	trainFor(12) // stops after step 12; the checkpoint is of step 10
	trainFor(20) // a new start: resumes at step 10
	pos, _ := train.ReadPosition(path)
	fmt.Println("latest checkpoint: step", pos.Step)
	// Output:
	// resumed at step 10, {Epoch:0 Batch:10}, lr 1.00e-03
	// latest checkpoint: step 20
}
