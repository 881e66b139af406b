package lora_test

import (
	"fmt"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// A LoRA linear layer as in the reference notebook: 10 → 10 with bias,
// rank 4, alpha left at r (scaling 1). Only lora_a and lora_b train.
func ExampleNewLinear() {
	torch.ManualSeed(0)
	layer, err := lora.NewLinear(10, 10, true, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer module.Close(layer)

	s := torch.NewScope()
	defer s.Close()
	x := torch.Ones([]int64{8, 10}, torch.In(s)) // n, k
	y, err := s.Done(layer.Forward(x))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer y.Close()

	fmt.Println("y:", y.Shape())
	fmt.Println("scaling:", layer.Scaling())
	for _, p := range module.NamedParameters(layer) {
		fmt.Println(p.Name, p.Tensor.Shape(), "trainable:", p.Trainable)
	}
	fmt.Println(module.Summary(layer))
	// Output:
	// y: [8 10]
	// scaling: 1
	// weight [10 10] trainable: false
	// bias [10] trainable: false
	// lora_a [4 10] trainable: true
	// lora_b [10 4] trainable: true
	// trainable params: 80 || all params: 190 || trainable%: 42.1053
}

// A LoRA embedding of 100 tokens of width 16, rank 4, alpha 8 (scaling
// 2), looked up with a (batch, seq) tensor of int64 token ids.
func ExampleNewEmbedding() {
	torch.ManualSeed(0)
	emb, err := lora.NewEmbedding(100, 16, 4, lora.WithAlpha(8))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer module.Close(emb)

	y, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		ids := s.Own(torch.FromSlice([]int64{3, 14, 15, 92, 65, 35}, 2, 3))
		return emb.Forward(ids)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer y.Close()

	fmt.Println("y:", y.Shape(), y.DType())
	fmt.Println("scaling:", emb.Scaling())
	for _, p := range module.NamedParameters(emb) {
		fmt.Println(p.Name, p.Tensor.Shape(), "trainable:", p.Trainable)
	}
	// Output:
	// y: [2 3 16] float32
	// scaling: 2
	// weight [100 16] trainable: false
	// lora_a [4 100] trainable: true
	// lora_b [16 4] trainable: true
}

// Forward errors stick to the result; the first one is reported once, at
// the end of the chain.
func ExampleLinear_Forward() {
	torch.ManualSeed(0)
	layer := torch.Must(lora.NewLinear(4, 3, true, 2))
	defer module.Close(layer)

	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{2, 5}, torch.In(s)) // 5 features, the layer takes 4
	loss := layer.Forward(x).Relu().Sum()
	err := loss.Backward()
	e, _ := torch.AsError(err)
	fmt.Println("op:", e.Op)
	fmt.Println("scope saw it:", s.Err() == err)
	// Output:
	// op: LoraLinear
	// scope saw it: true
}

// Merge folds B·A·α/r into W0 for inference; the output does not change.
func ExampleLinear_Merge() {
	torch.ManualSeed(0)
	layer := torch.Must(lora.NewLinear(16, 16, false, 4))
	defer module.Close(layer)

	s := torch.NewScope()
	defer s.Close()
	layer.LoraB.Copy_(torch.Randn([]int64{16, 4}, torch.In(s))).Must() // as if trained
	x := torch.Randn([]int64{3, 16}, torch.In(s))
	before := layer.Forward(x)
	if err := layer.Merge(); err != nil {
		fmt.Println(err)
		return
	}
	after := layer.Forward(x)
	same, err := after.AllClose(before, 1e-5, 1e-5)
	fmt.Println("merged:", layer.Merged(), "same output:", same, err)
	// Output:
	// merged: true same output: true <nil>
}

// attention is multi-head causal self-attention with the projections of
// LLaMA-style models. They are declared as module.Layer so that lora.Apply
// can swap them for adapters.
type attention struct {
	module.Base
	QProj, KProj, VProj, OProj module.Layer
	heads                      int64
}

func newAttention(d, heads int64) (*attention, error) {
	a := &attention{heads: heads}
	for _, f := range []*module.Layer{&a.QProj, &a.KProj, &a.VProj, &a.OProj} {
		l, err := module.NewLinear(d, d, false)
		if err != nil {
			return nil, err
		}
		*f = l
	}
	module.Child(&a.Base, "q_proj", &a.QProj)
	module.Child(&a.Base, "k_proj", &a.KProj)
	module.Child(&a.Base, "v_proj", &a.VProj)
	module.Child(&a.Base, "o_proj", &a.OProj)
	return a, nil
}

// Forward maps x (batch, seq, d) to softmax(q·kᵀ/√dₕ + causal mask)·v per
// head, then o_proj.
func (a *attention) Forward(x *torch.Tensor) *torch.Tensor {
	b, t, d := x.SizeOf(0), x.SizeOf(1), x.SizeOf(2)
	split := func(p module.Layer) *torch.Tensor { // (b, t, d) → (b, heads, t, d/heads)
		return p.Forward(x).View(b, t, a.heads, d/a.heads).Transpose(1, 2)
	}
	y := torch.ScaledDotProductAttention(split(a.QProj), split(a.KProj), split(a.VProj), nil, 0, true)
	return a.OProj.Forward(y.Transpose(1, 2).Reshape(b, t, d))
}

// decoder is a stack of attention blocks under "layers", like a
// transformer's.
type decoder struct {
	module.Base
	Layers *module.Sequential
}

// Apply adapts every q_proj and v_proj of a model in place, PEFT-style,
// and freezes everything else.
func ExampleApply() {
	torch.ManualSeed(0)
	model := &decoder{Layers: module.NewSequential()}
	for range 2 {
		a, err := newAttention(64, 4)
		if err != nil {
			fmt.Println(err)
			return
		}
		model.Layers.Append(a)
	}
	module.Child(&model.Base, "layers", &model.Layers)
	defer module.Close(model)
	fmt.Println("before:", module.Summary(model))

	adapted, err := lora.Apply(model, lora.Config{R: 8, Alpha: 16, TargetModules: []string{"q_proj", "v_proj"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range adapted {
		fmt.Println("adapted:", name)
	}
	fmt.Println("after: ", module.Summary(model))
	for _, p := range module.NamedParameters(model) {
		if p.Trainable {
			fmt.Println("trainable:", p.Name, p.Tensor.Shape())
		}
	}

	// The adapted model runs like the original (B starts at zero), and a
	// backward pass reaches the adapters.
	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{2, 5, 64}, torch.In(s)) // batch, seq, d
	y := model.Layers.Forward(x)
	if err := y.Square().Mean().Backward(); err != nil {
		fmt.Println(err)
		return
	}
	q0 := model.Layers.Layers[0].(*attention).QProj.(*lora.Linear)
	g := s.Own(q0.LoraA.Grad())
	fmt.Println("y:", y.Shape(), "q_proj lora_a has a gradient:", g.Err() == nil)
	// Output:
	// before: trainable params: 32,768 || all params: 32,768 || trainable%: 100.0000
	// adapted: layers.0.q_proj
	// adapted: layers.0.v_proj
	// adapted: layers.1.q_proj
	// adapted: layers.1.v_proj
	// after:  trainable params: 4,096 || all params: 36,864 || trainable%: 11.1111
	// trainable: layers.0.q_proj.lora_a [8 64]
	// trainable: layers.0.q_proj.lora_b [64 8]
	// trainable: layers.0.v_proj.lora_a [8 64]
	// trainable: layers.0.v_proj.lora_b [64 8]
	// trainable: layers.1.q_proj.lora_a [8 64]
	// trainable: layers.1.q_proj.lora_b [64 8]
	// trainable: layers.1.v_proj.lora_a [8 64]
	// trainable: layers.1.v_proj.lora_b [64 8]
	// y: [2 5 64] q_proj lora_a has a gradient: true
}
