// Package optim holds golora's optimizers (SGD, Adam, AdamW), gradient
// clipping and optimizer state that saves with a checkpoint. Each matches
// its torch.optim counterpart step for step: on the CPU and the same
// libtorch, a trajectory equals PyTorch's bit for bit.
//
// # Training loop
//
//	opt, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(model)}, optim.LR(1e-3))
//	for step := 0; step < steps; step++ {
//		s := torch.NewScope()
//		loss := torch.MSELoss(model.Forward(s.Own(x.Alias())), y, torch.ReductionMean)
//		err := loss.Backward()
//		// optional: optim.ClipGradNorm(opt.Params(), 1.0, 2)
//		err = opt.Step()
//		err = opt.ZeroGrad()
//		s.Close()
//	}
//
// # Fused steps
//
// Step is one cgo call over every parameter: a C++ loop in libcgotorch
// (cgotorch/optim.cc), under NoGradGuard, that runs PyTorch's
// single-tensor algorithm (what torch.optim runs on the CPU) op for op,
// with the libtorch line's own variants (1.13 updates Adam's first moment
// with mul_/add_, 2.1 and later with lerp_). Parameters are updated in
// place, so everything that holds them (modules, adapters) sees the new
// values. ZeroGrad, ClipGradNorm and ClipGradValue are one call each too.
//
// The state (step, exp_avg, exp_avg_sq, max_exp_avg_sq, momentum_buffer,
// as PyTorch names it) is made on the first step that finds a parameter
// with a gradient. A parameter without a gradient is skipped and gets
// none, and frozen weights are refused, so LoRA's frozen base weights
// never cost optimizer memory (StateBytes reports what was allocated).
//
// # Options and defaults
//
// The defaults are PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
// weight decay 0 (Adam, SGD) or 0.01 (AdamW), no momentum. PyTorch 1.13's
// SGD requires lr; golora takes 2.x's default of 1e-3. Hyperparameters are
// checked with PyTorch's rules plus finiteness: lr, eps, weight decay and
// momentum finite and ≥ 0, betas in [0, 1), Nesterov only with a momentum
// and zero dampening. An option the optimizer does not have is an error.
//
// # Parameter groups
//
// NewSGDGroups, NewAdamGroups and NewAdamWGroups take groups of
// parameters with options of their own, like PyTorch's param_groups; the
// constructor's options apply to every group that does not set them.
// FromParamGroup turns module.Groups's name-pattern groups into optimizer
// groups, e.g. weight decay off for biases and norms:
//
//	pgs, err := module.Groups(model, module.Group{Name: "no_decay", Match: []string{"*.bias", "*norm*.weight"}})
//	opt, err := optim.NewAdamWGroups([]optim.Group{
//		optim.FromParamGroup(pgs[0], optim.WeightDecay(0)),
//		optim.FromParamGroup(pgs[1]),
//	}, optim.LR(3e-4))
//
// SetLR sets every group's learning rate, SetGroupLR one group's, and
// Groups reports them, for learning-rate schedules.
//
// # Parameter names and saved state
//
// The state is keyed by parameter name, so that it loads into a fresh
// optimizer over a fresh model. FromModule and FromParamGroup take the
// modules' dotted names; NewSGD, NewAdam and NewAdamW take them with the
// Names option, and name parameters "param.0", "param.1", ... otherwise.
// StateDict and Save write, in safetensors:
//
//	state.<name>.step               float32 scalar (Adam, AdamW)
//	state.<name>.exp_avg            the parameter's shape and dtype
//	state.<name>.exp_avg_sq
//	state.<name>.max_exp_avg_sq     with AMSGrad
//	state.<name>.momentum_buffer    SGD with momentum
//
// and the metadata "optim.format" ("1"), "optim.algorithm" ("AdamW") and
// "optim.param_groups", a JSON list of the groups with their parameter
// names and PyTorch's hyperparameter keys (lr, betas, eps, weight_decay,
// amsgrad, maximize; momentum, dampening, nesterov for SGD), floats in
// shortest round-trip form. LoadStateDict and Load check the algorithm,
// the groups, the names and the shapes before changing anything, reject a
// mismatch with the keys at fault, and restore the hyperparameters with
// the state, as PyTorch's load_state_dict does. A run saved after N steps
// and continued in a new process takes the same steps as one that never
// stopped.
//
// # Gradient accumulation
//
// Gradients accumulate across backward passes until ZeroGrad, as in
// PyTorch, so k micro-batches make one large batch: call Backward on each
// micro-batch's loss divided by k, then Step and ZeroGrad once. No helper
// is needed (the package tests check that this equals the large batch).
package optim
