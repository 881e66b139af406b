package lora

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Embedding is an embedding table with a LoRA update:
//
//	y = F.embedding(x, W0) + F.embedding(x, Aᵀ)·Bᵀ·α/r
//
// W0 (num×dim) is frozen; A (r×num) starts from N(0, 1), B (dim×r) at
// zero, so y equals the base lookup until B moves. It is a module.Layer.
type Embedding struct {
	module.Base
	Weight *torch.Tensor // W0, num×dim, frozen
	LoraA  *torch.Tensor // A, r×num, trainable
	LoraB  *torch.Tensor // B, dim×r, trainable

	r        int64
	num, dim int64 // kept so that the accessors need no tensor
	alpha    float64
	merged   bool
}

// NewEmbedding returns a LoRA embedding of rank r: the spec's
// Embedding(num_embeddings, embedding_dim, r, alpha).
//
// Random draws happen in this order from the default generator:
//
//  1. weight: normal_(0, 1) like nn.Embedding  (skipped with WithWeights)
//  2. lora_a: normal_(0, 1)
//
// lora_b is zeros and draws nothing.
func NewEmbedding(numEmbeddings, embeddingDim, r int64, opts ...Option) (*Embedding, error) {
	c := newConfig(opts)
	alpha, err := c.resolveAlpha("NewEmbedding", r)
	if err != nil {
		return nil, err
	}
	if numEmbeddings <= 0 || embeddingDim <= 0 {
		return nil, fmt.Errorf("lora: NewEmbedding: num_embeddings and embedding_dim must be positive, got %d and %d", numEmbeddings, embeddingDim)
	}
	if c.given {
		if c.weight == nil || c.bias != nil {
			return nil, fmt.Errorf("lora: NewEmbedding: WithWeights needs a weight and no bias")
		}
		s, err := shapeOf("NewEmbedding", "weight", c.weight)
		if err != nil {
			return nil, err
		}
		if len(s) != 2 || s[0] != numEmbeddings || s[1] != embeddingDim {
			return nil, fmt.Errorf("lora: NewEmbedding: WithWeights: weight shape %v, expected [%d %d] (num_embeddings×embedding_dim)", s, numEmbeddings, embeddingDim)
		}
		e, err := embeddingFrom(c.weight, r, alpha)
		if err != nil {
			return nil, fmt.Errorf("lora: NewEmbedding: %w", err)
		}
		return e, nil
	}
	w := torch.Empty([]int64{numEmbeddings, embeddingDim}, c.opts...)
	err = w.Err()
	if err == nil {
		err = w.Normal_(0, 1)
	}
	var e *Embedding
	if err == nil {
		e, err = embeddingFrom(w, r, alpha)
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("lora: NewEmbedding: %w", err)
	}
	return e, nil
}

// embeddingFrom freezes w (num×dim), creates A and B, and registers
// everything. On error it frees what it created and leaves w to the caller.
func embeddingFrom(w *torch.Tensor, r int64, alpha float64) (*Embedding, error) {
	ws, err := w.Size()
	if err != nil {
		return nil, fmt.Errorf("weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("weight must be 2-D (num×dim), got shape %v", ws)
	}
	if err := freeze(w); err != nil {
		return nil, err
	}
	num, dim := ws[0], ws[1]
	// A (r×num): N(0, 1), indexed by token through Aᵀ. B (dim×r): zeros,
	// so ΔW = (B·A)ᵀ = 0 at the start.
	a, bm, err := adapterPair([]int64{r, num}, []int64{dim, r}, w, func(a *torch.Tensor) error {
		return a.Normal_(0, 1)
	})
	if err != nil {
		return nil, err
	}
	e := &Embedding{Weight: w, LoraA: a, LoraB: bm, r: r, num: num, dim: dim, alpha: alpha}
	e.Param("weight", &e.Weight)
	e.Param("lora_a", &e.LoraA)
	e.Param("lora_b", &e.LoraB)
	return e, nil
}

// The accessors below never panic: on a nil layer they return zero values
// (false for Merged), and after module.Close they still return what the
// layer was built with.

// Rank returns r.
func (e *Embedding) Rank() int64 {
	if e == nil {
		return 0
	}
	return e.r
}

// Alpha returns α.
func (e *Embedding) Alpha() float64 {
	if e == nil {
		return 0
	}
	return e.alpha
}

// Scaling returns α/r.
func (e *Embedding) Scaling() float64 {
	if e == nil || e.r == 0 {
		return 0
	}
	return e.alpha / float64(e.r)
}

// NumEmbeddings returns the number of rows of W0.
func (e *Embedding) NumEmbeddings() int64 {
	if e == nil {
		return 0
	}
	return e.num
}

// EmbeddingDim returns the width of W0.
func (e *Embedding) EmbeddingDim() int64 {
	if e == nil {
		return 0
	}
	return e.dim
}

// Merged reports whether (B·A)ᵀ·α/r is currently folded into W0.
func (e *Embedding) Merged() bool { return e != nil && e.merged }

// Forward looks up int64 or int32 indices x of any shape and returns
// F.embedding(x, W0) + F.embedding(x, Aᵀ)·Bᵀ·α/r, of shape (…, dim), in
// one fused call (torch.LoraEmbedding); merged, it is a plain lookup in
// W0 + (B·A)ᵀ·α/r. Errors stick to the result: indices of another dtype
// or out of range, a failed or closed x, a closed or nil layer.
func (e *Embedding) Forward(x *torch.Tensor) *torch.Tensor {
	if e == nil {
		// No weight: the op fails naming it (or passes x's error on).
		return torch.Embedding(x, nil)
	}
	if e.merged {
		return torch.Embedding(x, e.Weight)
	}
	return torch.LoraEmbedding(x, e.Weight, e.LoraA, e.LoraB, e.Scaling())
}

// Merge folds the update into W0: W0 ← W0 + (B·A)ᵀ·α/r, since row i of
// Aᵀ·Bᵀ is the update of token i (num×r · r×dim = num×dim). Merging twice
// is an error; so is merging a nil or closed layer.
func (e *Embedding) Merge() error {
	if e == nil {
		return fmt.Errorf("lora: Embedding.Merge: %w", errNilLayer)
	}
	if e.merged {
		return fmt.Errorf("lora: Embedding.Merge: already merged")
	}
	if err := addDelta(e.Weight, e.LoraB, e.LoraA, e.Scaling(), true); err != nil {
		return fmt.Errorf("lora: Embedding.Merge: %w", err)
	}
	e.merged = true
	return nil
}

// Unmerge takes the update back out: W0 ← W0 − (B·A)ᵀ·α/r. It is an error
// unless the layer is merged.
func (e *Embedding) Unmerge() error {
	if e == nil {
		return fmt.Errorf("lora: Embedding.Unmerge: %w", errNilLayer)
	}
	if !e.merged {
		return fmt.Errorf("lora: Embedding.Unmerge: not merged")
	}
	if err := addDelta(e.Weight, e.LoraB, e.LoraA, -e.Scaling(), true); err != nil {
		return fmt.Errorf("lora: Embedding.Unmerge: %w", err)
	}
	e.merged = false
	return nil
}
