// Package lora adds Low-Rank Adaptation (Hu et al. 2021) to golora
// models.
//
// A frozen pre-trained weight W0 (d×k) gains a trainable update
// ΔW = B·A with B (d×r) and A (r×k), r ≪ min(d, k), scaled by α/r (α
// defaults to r). B starts at zero, so ΔW = 0 and the adapted model starts
// exactly where the pre-trained one was. Only A and B train: for a
// 1024×1024 layer at r = 8 that is 16,384 parameters instead of 1,048,576.
//
// Linear and Embedding are the adapted layers (the spec's classes); their
// parameters are named weight, bias, lora_a and lora_b like the reference
// PyTorch classes, so state dicts map one to one. Their Forward follows
// the torch package's conventions: it returns a *torch.Tensor whose error,
// if any, sticks to it, and the result joins the scope of its input:
//
//	s := torch.NewScope()
//	defer s.Close()
//	y := layer.Forward(s.Own(x)) // freed with s
//	loss := torch.MSELoss(y, target, torch.ReductionMean)
//	if err := loss.Backward(); err != nil { ... } // the first error of the chain
//
// Apply injects adapters into an existing model by module name,
// PEFT-style. Merge folds B·A·α/r into W0 for inference with no extra
// cost; Unmerge takes it out again.
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
