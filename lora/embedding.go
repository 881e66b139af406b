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
// zero, so y equals the base lookup until B moves.
type Embedding struct {
	module.Base
	Weight *torch.Tensor // W0, num×dim, frozen
	LoraA  *torch.Tensor // A, r×num, trainable
	LoraB  *torch.Tensor // B, dim×r, trainable

	r      int64
	alpha  float64
	merged bool
}

// NewEmbedding returns a LoRA embedding of rank r.
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
	w := c.weight
	if c.given {
		if w == nil || c.bias != nil {
			return nil, fmt.Errorf("lora: NewEmbedding: WithWeights needs a weight and no bias")
		}
		if s := w.Shape(); len(s) != 2 || s[0] != numEmbeddings || s[1] != embeddingDim {
			return nil, fmt.Errorf("lora: NewEmbedding: WithWeights: weight shape %v, expected [%d %d] (num_embeddings×embedding_dim)", s, numEmbeddings, embeddingDim)
		}
	} else {
		if w, err = torch.Empty([]int64{numEmbeddings, embeddingDim}, c.opts...); err != nil {
			return nil, fmt.Errorf("lora: NewEmbedding: %w", err)
		}
		if err := w.Normal_(0, 1); err != nil {
			w.Close()
			return nil, fmt.Errorf("lora: NewEmbedding: %w", err)
		}
	}
	e, err := embeddingFrom(w, r, alpha)
	if err != nil && !c.given {
		w.Close()
	}
	return e, err
}

func embeddingFrom(w *torch.Tensor, r int64, alpha float64) (*Embedding, error) {
	if err := w.SetRequiresGrad(false); err != nil {
		return nil, fmt.Errorf("lora: freezing base weights: %w", err)
	}
	ws := w.Shape()
	num, dim := ws[0], ws[1]
	// A (r×num): N(0, 1), indexed by token through Aᵀ. B (dim×r): zeros,
	// so ΔW = (B·A)ᵀ = 0 at the start.
	a, bm, err := adapterPair([]int64{r, num}, []int64{dim, r}, w, func(a *torch.Tensor) error {
		return a.Normal_(0, 1)
	})
	if err != nil {
		return nil, fmt.Errorf("lora: creating A and B: %w", err)
	}
	e := &Embedding{Weight: w, LoraA: a, LoraB: bm, r: r, alpha: alpha}
	e.Param("weight", &e.Weight)
	e.Param("lora_a", &e.LoraA)
	e.Param("lora_b", &e.LoraB)
	return e, nil
}

// Rank returns r.
func (e *Embedding) Rank() int64 { return e.r }

// Alpha returns α.
func (e *Embedding) Alpha() float64 { return e.alpha }

// Scaling returns α/r.
func (e *Embedding) Scaling() float64 { return e.alpha / float64(e.r) }

// NumEmbeddings returns the number of rows of W0.
func (e *Embedding) NumEmbeddings() int64 { return e.LoraA.Shape()[1] }

// EmbeddingDim returns the width of W0.
func (e *Embedding) EmbeddingDim() int64 { return e.LoraB.Shape()[0] }

// Merged reports whether (B·A)ᵀ·α/r is currently folded into W0.
func (e *Embedding) Merged() bool { return e.merged }

// Forward looks up int64 or int32 indices x of any shape and returns
// F.embedding(x, W0) + F.embedding(x, Aᵀ)·Bᵀ·α/r, of shape (…, dim).
func (e *Embedding) Forward(x *torch.Tensor) (*torch.Tensor, error) {
	if x.Closed() {
		return nil, fmt.Errorf("lora: Embedding.Forward: use of closed tensor")
	}
	if dt := x.DType(); dt != torch.Int64 && dt != torch.Int32 {
		return nil, fmt.Errorf("lora: Embedding.Forward: indices must be int64 or int32, got %v", dt)
	}
	var y *torch.Tensor
	var err error
	if e.merged {
		y, err = torch.Embedding(x, e.Weight)
	} else {
		y, err = torch.LoraEmbedding(x, e.Weight, e.LoraA, e.LoraB, e.Scaling())
	}
	if err != nil {
		return nil, fmt.Errorf("lora: Embedding.Forward: %w", err)
	}
	return y, nil
}

// Merge folds the update into W0: W0 ← W0 + (B·A)ᵀ·α/r, since row i of
// Aᵀ·Bᵀ is the update of token i (num×r · r×dim = num×dim).
func (e *Embedding) Merge() error {
	if e.merged {
		return fmt.Errorf("lora: Embedding.Merge: already merged")
	}
	if err := addDelta(e.Weight, e.LoraB, e.LoraA, e.Scaling(), true); err != nil {
		return fmt.Errorf("lora: Embedding.Merge: %w", err)
	}
	e.merged = true
	return nil
}

// Unmerge takes the update back out: W0 ← W0 − (B·A)ᵀ·α/r.
func (e *Embedding) Unmerge() error {
	if !e.merged {
		return fmt.Errorf("lora: Embedding.Unmerge: not merged")
	}
	if err := addDelta(e.Weight, e.LoraB, e.LoraA, -e.Scaling(), true); err != nil {
		return fmt.Errorf("lora: Embedding.Unmerge: %w", err)
	}
	e.merged = false
	return nil
}
