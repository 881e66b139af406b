package module

import (
	"sort"

	"github.com/golora/golora/torch"
)

// Inputs are the inputs of a model whose forward pass takes more than one
// tensor: a language model's token ids with their positions and padding
// mask, BERT's token types, precomputed embeddings, labels for a model
// that computes its own loss, and anything else by name in Extra (pixel
// values, encoder states, …). Every field may be nil; a model documents
// which it reads and returns a failed tensor when one it needs is absent
// (torch ops fail naming the nil argument).
//
// The names follow Hugging Face's forward arguments, so a batch built as
// map[string]*torch.Tensor by a data loader converts with InputsFrom, and
// generic code (a trainer, an evaluator) reads inputs by name with Get.
type Inputs struct {
	IDs           *torch.Tensor // "input_ids": token ids (batch, seq), int64
	Positions     *torch.Tensor // "position_ids": (batch, seq) or (1, seq); nil means 0, 1, …
	AttentionMask *torch.Tensor // "attention_mask": (batch, seq), 1 attends, 0 is padding
	TokenTypes    *torch.Tensor // "token_type_ids": BERT's segment ids
	Embeds        *torch.Tensor // "inputs_embeds": (batch, seq, dim) instead of IDs
	Labels        *torch.Tensor // "labels": targets for a model that returns its loss

	Extra map[string]*torch.Tensor // any other named input
}

// MultiLayer is a Module whose forward pass takes several inputs. It
// returns one tensor, possibly failed, like Layer's Forward, and frees
// nothing of its inputs: intermediates join the scope of the first
// operand that has one, so own the inputs in a scope (Inputs.Own) before
// calling it. A model may implement both Layer (ids only) and MultiLayer.
type MultiLayer interface {
	Module
	ForwardInputs(in Inputs) *torch.Tensor
}

// The Hugging Face names of Inputs' fields.
const (
	InputIDs      = "input_ids"
	PositionIDs   = "position_ids"
	AttentionMask = "attention_mask"
	TokenTypeIDs  = "token_type_ids"
	InputsEmbeds  = "inputs_embeds"
	Labels        = "labels"
)

// field returns the address of the field named name, or nil.
func (in *Inputs) field(name string) **torch.Tensor {
	switch name {
	case InputIDs:
		return &in.IDs
	case PositionIDs:
		return &in.Positions
	case AttentionMask:
		return &in.AttentionMask
	case TokenTypeIDs:
		return &in.TokenTypes
	case InputsEmbeds:
		return &in.Embeds
	case Labels:
		return &in.Labels
	}
	return nil
}

// InputsFrom sorts a batch keyed by Hugging Face names into Inputs: the
// known names fill the fields, the others go to Extra. The tensors are
// not copied.
func InputsFrom(batch map[string]*torch.Tensor) Inputs {
	var in Inputs
	for name, t := range batch {
		in = in.With(name, t)
	}
	return in
}

// With returns a copy of in with the input name set to t (a field for the
// known names, Extra otherwise; Extra is copied, not shared).
func (in Inputs) With(name string, t *torch.Tensor) Inputs {
	if f := in.field(name); f != nil {
		*f = t
		return in
	}
	extra := make(map[string]*torch.Tensor, len(in.Extra)+1)
	for k, v := range in.Extra {
		extra[k] = v
	}
	extra[name] = t
	in.Extra = extra
	return in
}

// Get returns the input called name (a field's Hugging Face name or a key
// of Extra), or nil.
func (in Inputs) Get(name string) *torch.Tensor {
	if f := in.field(name); f != nil {
		return *f
	}
	return in.Extra[name]
}

// Names returns the names of the inputs that are set, sorted.
func (in Inputs) Names() []string {
	var out []string
	for _, n := range []string{InputIDs, PositionIDs, AttentionMask, TokenTypeIDs, InputsEmbeds, Labels} {
		if in.Get(n) != nil {
			out = append(out, n)
		}
	}
	for k, v := range in.Extra {
		if v != nil {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Own moves every input into scope s (see torch.Scope.Own) and returns
// in, so that a forward pass's intermediates join s. A failed input
// records its error in s.
func (in Inputs) Own(s *torch.Scope) Inputs {
	for _, n := range in.Names() {
		in = in.With(n, s.Own(in.Get(n)))
	}
	return in
}
