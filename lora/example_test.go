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

	x := torch.Must(torch.Ones([]int64{8, 10})) // n, k
	defer x.Close()
	y, err := layer.Forward(x)
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

	ids := torch.Must(torch.FromSlice([]int64{3, 14, 15, 92, 65, 35}, 2, 3))
	defer ids.Close()
	y, err := emb.Forward(ids)
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

// attention is a toy attention block; its projections are declared as
// module.Layer so that lora.Apply can swap them for adapters.
type attention struct {
	module.Base
	QProj, KProj, VProj, OProj module.Layer
}

// Forward returns o_proj(q_proj(x) + k_proj(x) + v_proj(x)), a stand-in for
// attention.
func (a *attention) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	sum, err := a.QProj.Forward(x)
	if err != nil {
		return nil, err
	}
	for _, l := range []module.Layer{a.KProj, a.VProj} {
		h, err := l.Forward(x)
		if err != nil {
			sum.Close()
			return nil, err
		}
		next, err := sum.Add(h)
		torch.CloseAll(sum, h)
		if err != nil {
			return nil, err
		}
		sum = next
	}
	defer sum.Close()
	return a.OProj.Forward(sum)
}

// decoder is a stack of attention blocks under "layers", like a
// transformer's.
type decoder struct {
	module.Base
	Layers *module.Sequential
}

func newAttention(d int64) (*attention, error) {
	a := &attention{}
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

// Apply adapts every q_proj and v_proj of a model in place, PEFT-style,
// and freezes everything else.
func ExampleApply() {
	torch.ManualSeed(0)
	model := &decoder{Layers: module.NewSequential()}
	for range 2 {
		a, err := newAttention(64)
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

	// The adapted model runs like the original (B starts at zero).
	x := torch.Must(torch.Randn([]int64{2, 64}))
	defer x.Close()
	y, err := model.Layers.Forward(x)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer y.Close()
	fmt.Println("y:", y.Shape())
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
	// y: [2 64]
}
