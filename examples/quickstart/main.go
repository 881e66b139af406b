// Command quickstart fine-tunes a frozen linear layer with LoRA.
//
// A "pre-trained" layer W0 (32×32) is frozen. The task wants W0 + ΔW*,
// where ΔW* has rank 2. LoRA with r = 4 learns ΔW = B·A by plain gradient
// descent on the mean squared error, training 256 parameters instead of
// 1,024, then merges B·A·α/r into W0 so inference costs a single matmul.
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

	// The target map: y* = x·(W0 + U·V)ᵀ + b, with U·V of rank 2.
	u := torch.Must(torch.Randn([]int64{d, 2}))
	v := torch.Must(torch.Randn([]int64{2, d}))
	uv := torch.Must(u.Mm(v))
	target := torch.Must(layer.Weight.Add(uv))
	defer torch.CloseAll(u, v, uv, target)

	x := torch.Must(torch.Randn([]int64{256, d}))
	yStar := torch.Must(torch.Linear(x, target, layer.Bias))
	defer torch.CloseAll(x, yStar)

	const lr = 0.05
	params := module.Parameters(layer, true) // lora_a, lora_b
	for step := 0; step <= 300; step++ {
		y, err := layer.Forward(x)
		if err != nil {
			return err
		}
		loss, err := torch.MSELoss(y, yStar, torch.ReductionMean)
		y.Close()
		if err != nil {
			return err
		}
		if err := loss.Backward(); err != nil {
			return err
		}
		if step%50 == 0 {
			fmt.Printf("step %3d  loss %.5f\n", step, torch.Must(loss.Item()))
		}
		loss.Close()
		// Plain SGD on A and B: p ← p − lr·∂L/∂p.
		for _, p := range params {
			g, err := p.Grad()
			if err != nil {
				return err
			}
			err = p.AddScaled_(g, -lr)
			g.Close()
			if err == nil {
				err = p.ClearGrad()
			}
			if err != nil {
				return err
			}
		}
	}

	// Merge: W0 ← W0 + B·A·α/r; the output must not change.
	before := torch.Must(layer.Forward(x))
	defer before.Close()
	if err := layer.Merge(); err != nil {
		return err
	}
	after := torch.Must(layer.Forward(x))
	defer after.Close()
	same, err := after.AllClose(before, 1e-5, 1e-5)
	if err != nil {
		return err
	}
	fmt.Printf("merged: output unchanged: %v\n", same)
	return nil
}
