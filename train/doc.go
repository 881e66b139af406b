// Package train holds what a training run needs beside the model and the
// optimizer. For now that is the training checkpoint, which makes a run
// resumable exactly: a run of 2N steps and a run of N steps that is saved,
// reloaded in a new process and continued for N more give the same losses
// and weights, bit for bit, dropout included.
//
// # Checkpoints
//
// A checkpoint is one safetensors file holding everything a step depends
// on:
//
//	tensors   model.<name>               each trainable parameter of the model, by its dotted name
//	          optim.state.<name>.<slot>  the optimizer state (optim.Optimizer.StateDict)
//	          rng.cpu                    the CPU generator's state (torch.RNGState)
//	          rng.cuda.<i>               each CUDA device's generator state, when CUDA is available
//	metadata  format                     "golora.checkpoint.1"
//	          step                       the caller's step count (Position.Step)
//	          data_position              the caller's data position, JSON (Position.Data; absent when empty)
//	          optim.*                    the optimizer's metadata: algorithm, groups, hyperparameters
//	          schedule.*                 the learning-rate schedule's state (schedule.Scheduler.State)
//
// Frozen parameters (a LoRA model's pre-trained base) and buffers are not
// saved: the model given to LoadCheckpoint is rebuilt as it was (the same
// base weights, the same adapters), and the checkpoint restores what
// training changed. The data position is the caller's: whatever says where
// the data stream is (an epoch and batch index, a shuffling generator's
// state), as any JSON value.
//
// SaveCheckpoint replaces the file atomically: it writes a temporary file
// in the same directory, fsyncs it, renames it over the path and fsyncs the
// directory, so a crash or an error at any point leaves the previous
// checkpoint intact. LoadCheckpoint is all or nothing: it checks the whole
// file against the model, optimizer, scheduler and generators before it
// changes any of them, and a checkpoint of another model, optimizer or
// schedule is an error that names the file and lists what does not fit.
//
// A training loop saves after a step (after Scheduler.Step, with the
// gradients zeroed) and resumes before the next:
//
//	st := train.State{Model: model, Optimizer: opt, Scheduler: sched}
//	pos, err := train.LoadCheckpoint("run/ckpt.safetensors", st) // on resume
//	...
//	for step := pos.Step; step < steps; step++ {
//		// forward, backward, opt.Step, opt.ZeroGrad, sched.Step
//		if (step+1)%100 == 0 {
//			data, _ := json.Marshal(loader.Position())
//			err := train.SaveCheckpoint("run/ckpt.safetensors", st, train.Position{Step: step + 1, Data: data})
//		}
//	}
package train
