// Package train runs training: the data, the loop and its checkpoints.
// cmd/train is a thin shell over it.
//
// # Data and the loop
//
// ReadExamples / ReadExamplesFile read plain text (one example per line)
// or JSON Lines with a "text" field, or "prompt" and "completion" fields
// (the loss then covers only the completion's tokens), tokenized by an
// Encoder (a *tokenizer.Tokenizer). Split holds out a seeded fraction for
// evaluation; Pack concatenates examples into rows of a sequence length,
// Pad pads each to it. A Loader serves the rows in batches, shuffled with
// a seed, and knows its position in the epoch.
//
// New(Config) makes a Trainer over a model's forward pass, an optimizer,
// an optional schedule and a Loader; Run(ctx) trains for Config.Steps
// optimizer steps with gradient accumulation, clipping and optional
// autocast, evaluates (loss and perplexity) every EvalEvery steps, reports
// through the OnStep, OnEval and OnSave hooks, and writes a checkpoint
// every SaveEvery steps, at the end, and when ctx is cancelled (Ctrl-C in
// cmd/train). Resume continues from a checkpoint: an interrupted and
// resumed run gives bitwise the same losses and weights as an
// uninterrupted one. The goroutine that calls Run is pinned to its OS
// thread for the run (libtorch's grad mode and autocast are per thread).
//
// Several Trainers, each with its own model, optimizer and Loader, may Run
// in parallel goroutines, and each gives bitwise the losses and weights of
// the same run done alone, provided nothing in them draws from libtorch's
// global generator while they run: build and seed their models one at a
// time (or under a lock across torch.ManualSeed and the constructors) and
// give their adapters no dropout. The generator is one per process, so
// parallel runs with dropout interleave their draws, and a checkpoint's
// rng.cpu is then the shared generator's state, not the run's: run such
// trainings in separate processes to keep them reproducible and exactly
// resumable. A Trainer itself, its model and its optimizer belong to the
// goroutine that runs it.
//
// The training checkpoint is what makes a run resumable exactly: a run of
// 2N steps and a run of N steps that is saved, reloaded in a new process
// and continued for N more give the same losses and weights, bit for bit,
// dropout included.
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
