// Command quickstart fine-tunes a frozen linear layer with LoRA.
//
// A "pre-trained" layer W0 (32×32) is frozen. The task wants W0 + ΔW*,
// where ΔW* has rank 2. LoRA with r = 4 learns ΔW = B·A by plain gradient
// descent on the mean squared error, training 256 parameters instead of
// 1,024, then merges B·A·α/r into W0 so inference costs a single matmul.
//
// Each training step runs in a torch.Scope that frees everything the step
// computed; errors stick to the tensors and are checked once per step.
package main

import (
	"fmt"
	"log"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	if err := torch.ManualSeed(0); err != nil {
		return err
	}
	fmt.Printf("libtorch %s, CUDA available: %v\n", torch.Version(), torch.CUDAIsAvailable())

	const d, r = 32, 4
	layer, err := lora.NewLinear(d, d, true, r)
	if err != nil {
		return err
	}
	defer module.Close(layer)
	fmt.Println(module.Summary(layer))

	// The data lives as long as the run: a scope of its own.
	data := torch.NewScope()
	defer data.Close()
	// The target map: y* = x·(W0 + U·V)ᵀ + b, with U·V of rank 2.
	u := torch.Randn([]int64{d, 2}, torch.In(data))
	v := torch.Randn([]int64{2, d}, torch.In(data))
	target := u.Mm(v).Add(layer.Weight)
	x := torch.Randn([]int64{256, d}, torch.In(data))
	yStar := x.Linear(target, layer.Bias)
	if err := data.Err(); err != nil {
		return err
	}

	const lr = 0.05
	params := module.Parameters(layer, true) // lora_a, lora_b
	for step := 0; step <= 300; step++ {
		loss, err := trainStep(layer, params, x, yStar, lr)
		if err != nil {
			return fmt.Errorf("step %d: %w", step, err)
		}
		if step%50 == 0 {
			fmt.Printf("step %3d  loss %.5f\n", step, loss)
		}
	}

	// Merge: W0 ← W0 + B·A·α/r; the output must not change.
	s := torch.NewScope()
	defer s.Close()
	xs := s.Own(x.Alias())
	before := layer.Forward(xs)
	if err := layer.Merge(); err != nil {
		return err
	}
	after := layer.Forward(xs)
	same, err := after.AllClose(before, 1e-5, 1e-5)
	if err != nil {
		return err
	}
	fmt.Printf("merged: output unchanged: %v\n", same)
	return nil
}

// trainStep runs one step of plain SGD on A and B, p ← p − lr·∂L/∂p, in a
// scope that frees everything the step made, and returns the loss.
func trainStep(layer *lora.Linear, params []*torch.Tensor, x, yStar *torch.Tensor, lr float64) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	// x outlives the step: the step's scope owns an alias of it (a second
	// handle, no copy), so that what is computed from it joins the scope.
	loss := torch.MSELoss(layer.Forward(s.Own(x.Alias())), yStar, torch.ReductionMean)
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	for _, p := range params {
		if err := p.AddScaled_(s.Own(p.Grad()), -lr); err != nil {
			return 0, err
		}
		if err := p.ClearGrad(); err != nil {
			return 0, err
		}
	}
	return loss.Item()
}
