package module_test

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Classifier is a small model: an embedding, a two-layer body and a head
// declared as module.Layer so that an adapter could replace it.
type Classifier struct {
	module.Base
	Embed *module.Embedding
	Body  *module.Sequential
	Head  module.Layer
}

// NewClassifier builds a Classifier over a vocabulary of vocab tokens.
func NewClassifier(vocab, dim, classes int64) (*Classifier, error) {
	embed, err := module.NewEmbedding(vocab, dim)
	if err != nil {
		return nil, err
	}
	up, err := module.NewLinear(dim, 4*dim, true)
	if err != nil {
		return nil, err
	}
	down, err := module.NewLinear(4*dim, dim, true)
	if err != nil {
		return nil, err
	}
	drop, err := module.NewDropout(0.1)
	if err != nil {
		return nil, err
	}
	head, err := module.NewLinear(dim, classes, true)
	if err != nil {
		return nil, err
	}
	c := &Classifier{Embed: embed, Body: module.NewSequential(up, drop, down), Head: head}
	module.Child(&c.Base, "embed", &c.Embed)
	module.Child(&c.Base, "body", &c.Body)
	module.Child(&c.Base, "head", &c.Head)
	return c, nil
}

// Forward maps token ids (…) to logits (…, classes).
func (c *Classifier) Forward(ids *torch.Tensor) (*torch.Tensor, error) {
	h, err := c.Embed.Forward(ids)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	b, err := c.Body.Forward(h)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return c.Head.Forward(b)
}

// Example builds a small model, freezes its embedding and lists its
// parameters.
func Example() {
	if err := torch.ManualSeed(0); err != nil {
		panic(err)
	}
	m := torch.Must(NewClassifier(1000, 16, 4))
	defer module.Close(m)
	if err := module.Freeze(m.Embed); err != nil {
		panic(err)
	}

	fmt.Println(module.Summary(m))
	for _, p := range module.NamedParameters(m) {
		fmt.Printf("%-13s %-9s trainable=%v\n", p.Name, fmt.Sprint(p.Tensor.Shape()), p.Trainable)
	}

	ids := torch.Must(torch.FromSlice([]int64{1, 2, 3, 4, 5, 6}, 2, 3))
	defer ids.Close()
	module.Eval(m)
	logits := torch.Must(m.Forward(ids))
	defer logits.Close()
	fmt.Println(logits)
	// Output:
	// trainable params: 2,196 || all params: 18,196 || trainable%: 12.0686
	// embed.weight  [1000 16] trainable=false
	// body.0.weight [64 16]   trainable=true
	// body.0.bias   [64]      trainable=true
	// body.2.weight [16 64]   trainable=true
	// body.2.bias   [16]      trainable=true
	// head.weight   [4 16]    trainable=true
	// head.bias     [4]       trainable=true
	// Tensor(float32 [2 3 4] cpu)
}
