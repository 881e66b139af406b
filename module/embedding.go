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
}

// NewEmbedding returns an Embedding whose W is drawn from N(0, 1), like
// nn.Embedding.
func NewEmbedding(num, dim int64, opts ...torch.Option) (*Embedding, error) {
	if num <= 0 || dim <= 0 {
		return nil, fmt.Errorf("module: NewEmbedding: num_embeddings and embedding_dim must be positive, got %d and %d", num, dim)
	}
	w, err := torch.Empty([]int64{num, dim}, opts...)
	if err != nil {
		return nil, fmt.Errorf("module: NewEmbedding: %w", err)
	}
	if err := w.Normal_(0, 1); err != nil {
		w.Close()
		return nil, fmt.Errorf("module: NewEmbedding: %w", err)
	}
	return EmbeddingFrom(w)
}

// EmbeddingFrom wraps a pre-trained table (num×dim); the Embedding takes
// ownership of it and marks it trainable, as nn.Parameter does.
func EmbeddingFrom(weight *torch.Tensor) (*Embedding, error) {
	if s := weight.Shape(); len(s) != 2 {
		return nil, fmt.Errorf("module: EmbeddingFrom: weight must be 2-D (num×dim), got shape %v", s)
	}
	if err := markTrainable(weight); err != nil {
		return nil, fmt.Errorf("module: EmbeddingFrom: %w", err)
	}
	e := &Embedding{Weight: weight}
	e.Param("weight", &e.Weight)
	return e, nil
}

// Forward looks up the rows of W at the indices x.
func (e *Embedding) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	return torch.Embedding(x, e.Weight)
}
