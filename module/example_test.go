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

// Forward maps token ids (…) to logits (…, classes). Every intermediate
// joins the scope of ids; an error anywhere passes through to the result.
func (c *Classifier) Forward(ids *torch.Tensor) *torch.Tensor {
	return c.Head.Forward(c.Body.Forward(c.Embed.Forward(ids)))
}

// Example builds a small model, freezes its embedding, lists its
// parameters and runs it in a scope.
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

	s := torch.NewScope()
	defer s.Close()
	ids := s.Own(torch.FromSlice([]int64{1, 2, 3, 4, 5, 6}, 2, 3))
	module.Eval(m)
	logits, err := s.Done(m.Forward(ids))
	if err != nil {
		fmt.Println(err)
		return
	}
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

// TinyLM is a language model whose forward pass reads several inputs:
// token ids, their positions (optional) and a padding mask (optional).
type TinyLM struct {
	module.Base
	Tok, Pos *module.Embedding
	Head     *module.Linear
}

var (
	_ module.MultiLayer = (*TinyLM)(nil)
	_ module.Layer      = (*TinyLM)(nil)
)

// NewTinyLM builds a TinyLM with a context of 8 positions.
func NewTinyLM(vocab, dim int64) (*TinyLM, error) {
	tok, err := module.NewEmbedding(vocab, dim)
	if err != nil {
		return nil, err
	}
	pos, err := module.NewEmbedding(8, dim)
	if err != nil {
		module.Close(tok)
		return nil, err
	}
	head, err := module.NewLinear(dim, vocab, true)
	if err != nil {
		module.Close(tok)
		module.Close(pos)
		return nil, err
	}
	m := &TinyLM{Tok: tok, Pos: pos, Head: head}
	module.Child(&m.Base, "tok", &m.Tok)
	module.Child(&m.Base, "pos", &m.Pos)
	module.Child(&m.Base, "head", &m.Head)
	return m, nil
}

// ForwardInputs maps in.IDs (batch, seq) to logits (batch, seq, vocab).
// Without in.Positions the positions are 0, 1, …; in.AttentionMask zeroes
// the hidden state of padding.
func (m *TinyLM) ForwardInputs(in module.Inputs) *torch.Tensor {
	pos := in.Positions
	if pos == nil {
		pos = torch.Arange(0, float64(in.IDs.SizeOf(1)), 1, torch.WithDType(torch.Int64), torch.In(in.IDs.Scope()))
	}
	h := m.Tok.Forward(in.IDs).Add(m.Pos.Forward(pos))
	if in.AttentionMask != nil {
		h = h.Mul(in.AttentionMask.Unsqueeze(-1))
	}
	return m.Head.Forward(h)
}

// Forward is ForwardInputs with ids alone, so TinyLM is a Layer too.
func (m *TinyLM) Forward(ids *torch.Tensor) *torch.Tensor {
	return m.ForwardInputs(module.Inputs{IDs: ids})
}

// A model with several inputs implements module.MultiLayer. A batch keyed
// by Hugging Face's names becomes module.Inputs; Own puts every input in
// the step's scope, and the forward pass's intermediates follow.
func Example_multipleInputs() {
	if err := torch.ManualSeed(0); err != nil {
		panic(err)
	}
	m := torch.Must(NewTinyLM(10, 4))
	defer module.Close(m)

	s := torch.NewScope()
	defer s.Close()
	batch := map[string]*torch.Tensor{
		"input_ids":      torch.FromSlice([]int64{1, 2, 3, 4, 5, 0}, 2, 3),
		"attention_mask": torch.FromSlice([]int64{1, 1, 1, 1, 1, 0}, 2, 3),
	}
	in := module.InputsFrom(batch).Own(s)
	fmt.Println("inputs:", in.Names())

	logits := m.ForwardInputs(in)
	// The padded position carries no token: its logits are the bias.
	pad := logits.Narrow(0, 1, 1).Narrow(1, 2, 1).Reshape(-1)
	same, err := pad.AllClose(m.Head.Bias, 0, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(logits)
	fmt.Println("padding logits = head bias:", same)
	// Output:
	// inputs: [attention_mask input_ids]
	// Tensor(float32 [2 3 10] cpu)
	// padding logits = head bias: true
}

// Parameter groups for an optimizer: no weight decay on biases and norm
// weights, weight decay on the rest.
func ExampleGroups() {
	m := torch.Must(NewClassifier(100, 8, 2))
	defer module.Close(m)
	m.Body.Append(torch.Must(module.NewLayerNorm([]int64{8})))

	groups, err := module.Groups(m, module.Group{Name: "no_decay", Match: []string{"*.bias", "body.3.weight"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range groups {
		var names []string
		for _, p := range g.Params {
			names = append(names, p.Name)
		}
		fmt.Println(g.Name, names)
	}
	// Output:
	// no_decay [body.0.bias body.2.bias body.3.weight body.3.bias head.bias]
	// default [embed.weight body.0.weight body.2.weight head.weight]
}
