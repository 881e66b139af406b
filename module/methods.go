package module

import "github.com/golora/golora/torch"

// The methods below give every module (every struct embedding Base) the
// PyTorch-style calls model.Parameters(true), model.Train(),
// model.To(torch.CUDA(0)), model.StateDict(), … They are the package
// functions of the same names applied to the module; use those on a
// Module interface value (they also accept a nil module, which a method
// call through a nil pointer cannot).

// NamedParameters returns the module's parameters with dotted names; see
// the package function NamedParameters.
func (b *Base) NamedParameters() []NamedParameter { return NamedParameters(b) }

// Parameters returns the module's parameter tensors, only the trainable
// ones when trainableOnly is true.
func (b *Base) Parameters(trainableOnly bool) []*torch.Tensor { return Parameters(b, trainableOnly) }

// NamedBuffers returns the module's buffers with dotted names.
func (b *Base) NamedBuffers() []NamedBuffer { return NamedBuffers(b) }

// Train puts the module and its descendants in training mode.
func (b *Base) Train() { Train(b) }

// Eval puts the module and its descendants in evaluation mode.
func (b *Base) Eval() { Eval(b) }

// To moves the module's parameters and buffers to a Device or converts
// their floating-point ones to a DType, in place and atomically; see the
// package function To.
func (b *Base) To(target torch.Target) error { return To(b, target) }

// StateDict returns the module's parameters and persistent buffers by
// dotted name (its own tensors, not copies).
func (b *Base) StateDict() map[string]*torch.Tensor { return StateDict(b) }

// LoadStateDict copies sd into the module's state, strictly and all or
// nothing; see the package function LoadStateDict.
func (b *Base) LoadStateDict(sd map[string]*torch.Tensor, opts ...StateOption) error {
	return LoadStateDict(b, sd, opts...)
}

// Count returns the number of parameter elements, in all and trainable.
func (b *Base) Count() (total, trainable int64) { return Count(b) }

// Summary returns PEFT's one-line count of trainable parameters.
func (b *Base) Summary() string { return Summary(b) }
