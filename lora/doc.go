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
package lora
