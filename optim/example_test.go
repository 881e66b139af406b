package optim_test

import (
	"fmt"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// A training loop: a scope per step, forward, loss, Backward, Step,
// ZeroGrad. AdamW trains the LoRA matrices A and B of the layer; its
// frozen weight and bias get no optimizer state.
func Example() {
	_ = torch.ManualSeed(0)
	layer, err := lora.NewLinear(4, 2, true, 2) // frozen W and b, trainable A and B
	if err != nil {
		panic(err)
	}
	defer module.Close(layer)
	x, y := torch.Randn([]int64{16, 4}), torch.Randn([]int64{16, 2})
	defer torch.CloseAll(x, y)

	opt, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(layer)}, optim.LR(1e-2))
	if err != nil {
		panic(err)
	}
	defer opt.Close()
	var first, last float64
	for step := 0; step < 50; step++ {
		s := torch.NewScope() // frees the step's intermediates
		loss := torch.MSELoss(layer.Forward(s.Own(x.Alias())), y, torch.ReductionMean)
		if err := loss.Backward(); err != nil {
			panic(err)
		}
		if err := opt.Step(); err != nil {
			panic(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			panic(err)
		}
		last, _ = loss.Item()
		if step == 0 {
			first = last
		}
		s.Close()
	}
	fmt.Println("loss went down:", last < first)
	fmt.Println("trained:", opt.Groups()[0].Names)
	// Output:
	// loss went down: true
	// trained: [lora_a lora_b]
}

// Weight decay off for biases and norms, on for the rest: module.Groups
// sorts the parameters by name pattern, FromParamGroup gives each group
// its options.
func ExampleNewAdamWGroups() {
	layer, err := lora.NewLinear(4, 2, true, 2)
	if err != nil {
		panic(err)
	}
	defer module.Close(layer)
	_ = layer.Bias.SetRequiresGrad(true) // train the bias too

	pgs, err := module.Groups(layer, module.Group{Name: "no_decay", Match: []string{"bias", "*.bias", "*norm*.weight"}})
	if err != nil {
		panic(err)
	}
	opt, err := optim.NewAdamWGroups([]optim.Group{
		optim.FromParamGroup(pgs[0], optim.WeightDecay(0)),
		optim.FromParamGroup(pgs[1]), // AdamW's default weight decay, 0.01
	}, optim.LR(3e-4))
	if err != nil {
		panic(err)
	}
	defer opt.Close()
	for _, g := range opt.Groups() {
		fmt.Printf("%s %v lr=%v weight_decay=%v\n", g.Name, g.Names, g.Hyper.LR, g.Hyper.WeightDecay)
	}
	// Output:
	// no_decay [bias] lr=0.0003 weight_decay=0
	// default [lora_a lora_b] lr=0.0003 weight_decay=0.01
}

// Clipping the gradients by their total norm before the step, as
// torch.nn.utils.clip_grad_norm_ does.
func ExampleClipGradNorm() {
	p := torch.FromSlice([]float32{0, 0})
	defer p.Close()
	_ = p.SetRequiresGrad(true)
	g := torch.FromSlice([]float32{3, 4})
	defer g.Close()
	s := torch.NewScope()
	_ = s.Borrow(p).Mul(g).Sum().Backward() // p's gradient is (3, 4)
	s.Close()

	norm, err := optim.ClipGradNorm([]*torch.Tensor{p}, 1, 2)
	if err != nil {
		panic(err)
	}
	grad := p.Grad()
	defer grad.Close()
	v, _ := torch.ToSlice[float32](grad)
	fmt.Printf("norm %.1f, clipped gradient [%.3f %.3f]\n", norm, v[0], v[1])
	// Output:
	// norm 5.0, clipped gradient [0.600 0.800]
}
