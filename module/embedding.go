package module

import (
	"fmt"

	"github.com/golora/golora/torch"
)

// Embedding is nn.Embedding: a lookup table W (num×dim) indexed by int64
// or int32 indices of any shape.
type Embedding struct {
	Base
	Weight *torch.Tensor

	num, dim int64 // kept so the accessors need no shape query
}

// NewEmbedding returns an Embedding whose W is drawn from N(0, 1), like
// nn.Embedding.
func NewEmbedding(num, dim int64, opts ...torch.Option) (*Embedding, error) {
	if num <= 0 || dim <= 0 {
		return nil, fmt.Errorf("module: NewEmbedding: num_embeddings and embedding_dim must be positive, got %d and %d", num, dim)
	}
	w := torch.Empty([]int64{num, dim}, opts...)
	err := w.Err()
	if err == nil {
		err = w.Normal_(0, 1)
	}
	var e *Embedding
	if err == nil {
		e, err = EmbeddingFrom(w)
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("module: NewEmbedding: %w", err)
	}
	return e, nil
}

// EmbeddingFrom wraps a pre-trained table (num×dim); the Embedding takes
// ownership of it and marks it trainable, as nn.Parameter does. On error
// the caller keeps it.
func EmbeddingFrom(weight *torch.Tensor) (*Embedding, error) {
	s, err := weight.Size()
	if err != nil {
		return nil, fmt.Errorf("module: EmbeddingFrom: weight: %w", err)
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("module: EmbeddingFrom: weight must be 2-D (num×dim), got shape %v", s)
	}
	if err := markTrainable(weight); err != nil {
		return nil, fmt.Errorf("module: EmbeddingFrom: %w", err)
	}
	e := &Embedding{Weight: weight, num: s[0], dim: s[1]}
	e.Param("weight", &e.Weight)
	return e, nil
}

// NumEmbeddings returns the number of rows of W. It answers after Close
// too; for an Embedding built without EmbeddingFrom it reads W's shape
// (-1 when W is closed or absent, 0 for a nil Embedding).
func (e *Embedding) NumEmbeddings() int64 {
	switch {
	case e == nil:
		return 0
	case e.num > 0:
		return e.num
	}
	return e.Weight.SizeOf(0)
}

// EmbeddingDim returns the width of W's rows, like NumEmbeddings.
func (e *Embedding) EmbeddingDim() int64 {
	switch {
	case e == nil:
		return 0
	case e.dim > 0:
		return e.dim
	}
	return e.Weight.SizeOf(1)
}

// Forward looks up the rows of W at the indices x. The result joins x's
// scope.
func (e *Embedding) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.Embedding(x, e.Weight)
}
