// Package lora adds Low-Rank Adaptation (Hu et al. 2021) to golora
// models.
//
// A frozen pre-trained weight W0 (d×k) gains a trainable update
// ΔW = B·A with B (d×r) and A (r×k), r ≪ min(d, k), scaled by α/r (α
// defaults to r). B starts at zero, so ΔW = 0 and the adapted model starts
// exactly where the pre-trained one was. Only A and B train: for a
// 1024×1024 layer at r = 8 that is 16,384 parameters instead of 1,048,576.
//
// # The adapter model
//
// The layers follow PEFT's tuners/lora/layer.py. An adapter layer wraps
// its base layer and holds adapters by name ("default" unless named);
// each adapter has its own r, α, scaling (α/r, or α/√r with rsLoRA),
// dropout and, with DoRA, a magnitude vector. Forward returns the base
// output plus the update of every active adapter:
//
//	y = base(x) + Σ_active B(A(dropout(x)))·scaling
//
// The layer kinds, each with PEFT's tensor layout:
//
//	kind       base             A                B              ΔW in the base layout
//	Linear     module.Linear    r×in             out×r          B·A           (out×in)
//	Embedding  module.Embedding r×num            dim×r          (B·A)ᵀ        (num×dim)
//	Conv1D     module.Conv1D    r×in             out×r          (B·A)ᵀ        (in×out: GPT-2's fan_in_fan_out)
//	Conv2d     module.Conv2d    r×in×kh×kw conv  out×r×1×1 conv B·A reshaped  (out×in×kh×kw)
//
// A Conv2d with g groups takes adapters as PEFT builds them: A over all in
// channels, B a 1×1 conv with g groups (out×(r/g)×1×1, r a multiple of g).
// Its update has no ΔW in the base's layout, so, as in PEFT, it cannot be
// merged, and DoRA and the weighted combinations refuse it.
//
// A Dispatcher (RegisterDispatcher) recognises a base layer and returns
// its Kind, PEFT's dispatcher chain, so a new kind plugs in without
// editing a type switch.
//
// Linear and Embedding are also the spec's layers: NewLinear and
// NewEmbedding create a "default" adapter with the spec's init and draw
// order, α defaulting to r. Their state dict names are the spec's, so the
// PyTorch classes' state dicts load unchanged:
//
//	weight, bias      the base layer's (the same tensors), frozen
//	lora_a, lora_b    the "default" adapter's A and B
//	lora_magnitude    its DoRA magnitude, if any
//	adapters.<name>.lora_a, ...   every other adapter
//
// SaveAdapter and LoadAdapter translate to PEFT's keys (see SaveAdapter).
//
// Two embedding inits keep ΔW = 0: the spec's (A ~ N(0, 1), B = 0) for
// NewEmbedding and for Apply's default, PEFT's (A = 0, B ~ N(0, 1)) when
// the Config says so (PEFTInit, or Init "gaussian") and for the
// adapters LoadAdapter creates (their values then come from the file).
//
// Apply and AddAdapter inject adapters into a model by module path,
// PEFT-style, from a Config that mirrors PEFT's LoraConfig (target and
// exclude lists or regexps, "all-linear", layers_to_transform, bias,
// rsLoRA, DoRA, init variants, rank and alpha patterns, modules to save);
// on error the model is left unchanged. SetAdapter switches adapters
// without touching a weight; WithAdaptersDisabled runs the base model in a
// scope that cannot be left disabled; WithAdapterNames runs a mixed batch,
// one adapter per sample (BaseAdapter for none); AddWeightedAdapter
// combines adapters ("linear", "cat", "svd") as PEFT's
// add_weighted_adapter.
//
// # Merging
//
// Merge (or Layer.MergeAdapters) folds an adapter into the base weight
// for inference at no extra cost, Unmerge takes it out, MergeAndUnload
// leaves plain base layers, Unload the original ones. DoRA follows PEFT:
// W ← m/‖W + s·ΔW‖·(W + s·ΔW) per output, the norm kept for Unmerge. The
// arithmetic runs in float32 (float64 for float64 weights) and rounds
// once into the weight's dtype; a safe merge checks for NaN and Inf before
// writing. Measured by TestMergeGapPerDType (256×256, r = 16, α = 32,
// random A and B; relative errors, max |Δ| over max |reference|):
//
//	dtype     merged W vs exact   PEFT's CPU path   merged vs unmerged output   W0 after Unmerge
//	float32   7.6e-8              7.6e-8            6.2e-7                      6.0e-8
//	bfloat16  3.0e-3              3.7e-3            3.7e-3                      3.9e-3
//	float16   3.8e-4              4.7e-4            (no f16 GEMM on the CPU)    4.9e-4
//
// The merged weight is W0 + ΔW correctly rounded (one rounding; PEFT's
// path rounds ΔW to the dtype first, then the sum). In bfloat16 the
// merged output differs from the unmerged one by about one bfloat16
// rounding (2⁻⁸ relative): the unmerged forward adds a small update to a
// rounded product, the merged one rounds the sum of the weights; neither is
// exact. Unmerge does not restore W0 bit for bit in bfloat16 and float16.
//
// # Concurrency
//
// An adapted model follows the module package's rules (see its
// "Concurrency" section): many goroutines may run Forward on one model
// at once, in evaluation mode (adapter dropout in training mode draws
// from libtorch's one global generator), and independent models train in
// parallel with bitwise the results of lone runs when their seeded
// construction (torch.ManualSeed, then the base and Apply) is one step
// under a lock and their adapters have no dropout. Everything that
// changes the adapters — Apply, AddAdapter, SetAdapter, DeleteAdapter,
// Merge, Unmerge, LoadAdapter — must not overlap with any other use of
// the model, and neither may WithAdaptersDisabled and WithAdapterNames,
// which set up per-layer state for the duration of f: a server serves one
// mixed batch at a time per model. Two such calls that overlap on the
// same layers (nested, or from two goroutines) are refused with an error
// rather than undoing each other. Closing a model while other goroutines
// run it gives each pass the right output or torch's "use of closed
// tensor" error, never a crash.
//
// # PEFT's files
//
// SaveAdapter writes adapter_config.json and adapter_model.safetensors as
// PEFT 0.21's save_pretrained does, and LoadAdapter reads them strictly
// (every key present, none unexpected, the right shapes, or one error and
// nothing changed). Both were tested against the real PEFT, both ways
// (peft_interop_test.go; make interop).
//
// # Mixed precision
//
// The frozen base can be kept in bfloat16 (or float16) while A, B, their
// gradients and the optimizer state stay float32, with the forward under
// torch.Autocast, as with PyTorch's torch.autocast. Build the layer in
// float32 (seeded draws then equal PyTorch's), convert the frozen weight
// and bias in place, and run the forward in an autocast region; the
// backward and the optimizer step run outside it:
//
//	l, err := lora.NewLinear(in, out, true, r, lora.WithAlpha(alpha))
//	for _, p := range []*torch.Tensor{l.Weight, l.Bias} {
//		bf := p.To(torch.BFloat16)
//		err = p.SetData(bf) // same tensor, now bfloat16; still frozen
//		bf.Close()
//	}
//	err = torch.Autocast(torch.CPU, torch.BFloat16, func() error {
//		y := l.Forward(x) // bfloat16
//		loss = torch.MSELoss(y, target, torch.ReductionMean) // float32
//		return loss.Err()
//	})
//	err = loss.Backward() // A and B get float32 gradients; W0 and b none
//
// (WithWeights with bfloat16 weights would make A and B bfloat16 too:
// they take the weight's dtype.) Under autocast Forward's linear and both
// products of x·Aᵀ·Bᵀ cast their float32 operands (x, A, B) to bfloat16
// and return bfloat16; the scaling, the sum and activations then run in bfloat16, and mse_loss is
// on autocast's float32 list. Outside a region nothing is cast, so such a
// layer's Forward fails with a dtype mismatch, as in PyTorch. Merge folds
// B·A·α/r into the bfloat16 weight, rounding W0 + ΔW to bfloat16 (Unmerge
// then does not restore W0 bit for bit).
//
// Accuracy, checked on the CPU with bfloat16 against PyTorch
// (mixed_precision_test.go, testdata/gen_mixed.py: two layers 32→64→16,
// r = 4, α = 8, five SGD steps): Forward runs the same libtorch kernels
// in the same order as the spec's F.linear(x, W, b) + (x @ A.T @ B.T)·s,
// so on the same libtorch (1.13 and 2.15 checked) the outputs, losses,
// gradients and parameters of every step agree with PyTorch bit for bit.
// Across libtorch versions the bfloat16 GEMM kernels differ (1.13's CPU
// kernels for some small products err by up to 2.2·u·|A||B|, 2.x's stay
// within u·|A||B|, one rounding), and a step then
// agrees within 2·R·u of the result's scale, u = 2⁻⁸ the unit roundoff of
// bfloat16 and R the number of bfloat16 rounding stages on the result's
// path (3 for the hidden activation, 6 for the output, 12 for the
// gradients): one ulp (2u) per stage between two kernels that accumulate
// in float32 and round once. Between 1.13 and 2.15 the forward agrees
// bit for bit and the gradients differ by at most 4.3u (of 24u).
package lora
