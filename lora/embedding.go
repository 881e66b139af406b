package lora

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Embedding is an embedding table with LoRA adapters, PEFT's
// lora.Embedding: it wraps a module.Embedding and holds adapters by name
// (see Layer). With the one "default" adapter NewEmbedding creates it is
// the spec's layer:
//
//	y = F.embedding(x, W0) + F.embedding(x, Aᵀ)·Bᵀ·α/r
//
// W0 (num×dim) is frozen; A (r×num, PEFT's lora_embedding_A) and B
// (dim×r, lora_embedding_B) train.
//
// Two initialisations keep ΔW = 0 at the start. The spec's (NewEmbedding,
// Apply with the default Init): A ~ N(0, 1), B = 0. PEFT's (an adapter
// created from a Config whose Init is set, or AddAdapter with PEFTInit):
// A = 0, B ~ N(0, 1). It is a module.Layer.
type Embedding struct {
	Layer
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

// embeddingFrom wraps w (num×dim) in a module.Embedding, freezes it and
// adds the "default" adapter with the spec's init. On error it frees what
// it created and leaves w to the caller.
func embeddingFrom(w *torch.Tensor, r int64, alpha float64) (*Embedding, error) {
	ws, err := w.Size()
	if err != nil {
		return nil, fmt.Errorf("weight: %w", err)
	}
	if len(ws) != 2 {
		return nil, fmt.Errorf("weight must be 2-D (num×dim), got shape %v", ws)
	}
	base, err := module.EmbeddingFrom(w)
	if err != nil {
		return nil, err
	}
	e := &Embedding{}
	if err := newLayer(&e.Layer, &embeddingKind{base}); err != nil {
		return nil, err
	}
	// A (r×num): N(0, 1), indexed by token through Aᵀ. B (dim×r): zeros,
	// so ΔW = (B·A)ᵀ = 0 at the start.
	if err := e.addAdapter(DefaultAdapter, adapterSpec{r: r, alpha: alpha, specEmbed: true}); err != nil {
		return nil, fmt.Errorf("creating lora_a and lora_b: %w", err)
	}
	return e, nil
}

// The accessors below never panic: on a nil layer they return zero values
// (false for Merged), and after module.Close they still return what the
// layer was built with.

// Rank returns r of the "default" adapter.
func (e *Embedding) Rank() int64 {
	if e == nil {
		return 0
	}
	return e.first().Rank()
}

// Alpha returns α of the "default" adapter.
func (e *Embedding) Alpha() float64 {
	if e == nil {
		return 0
	}
	return e.first().Alpha()
}

// Scaling returns the "default" adapter's α/r.
func (e *Embedding) Scaling() float64 {
	if e == nil {
		return 0
	}
	return e.first().Scaling()
}

// NumEmbeddings returns the number of rows of W0.
func (e *Embedding) NumEmbeddings() int64 {
	if e == nil || e.kind == nil {
		return 0
	}
	return e.kind.(*embeddingKind).m.NumEmbeddings()
}

// EmbeddingDim returns the width of W0.
func (e *Embedding) EmbeddingDim() int64 {
	if e == nil || e.kind == nil {
		return 0
	}
	return e.kind.(*embeddingKind).m.EmbeddingDim()
}

// Merged reports whether an adapter is currently folded into W0.
func (e *Embedding) Merged() bool { return e != nil && len(e.merged) > 0 }

// Forward looks up int64 or int32 indices x of any shape and returns
// F.embedding(x, W0) plus every active adapter's F.embedding(x, Aᵀ)·Bᵀ·α/r,
// of shape (…, dim); with one adapter in one fused call
// (torch.LoraEmbedding); merged, it is a plain lookup in W0 + (B·A)ᵀ·α/r.
// Errors stick to the result: indices of another dtype or out of range, a
// failed or closed x, a closed or nil layer.
func (e *Embedding) Forward(x *torch.Tensor) *torch.Tensor {
	if e == nil {
		// No weight: the op fails naming it (or passes x's error on).
		return torch.Embedding(x, nil)
	}
	return e.Layer.Forward(x)
}

// Merge folds the active adapters into W0: W0 ← W0 + (B·A)ᵀ·α/r, since
// row i of Aᵀ·Bᵀ is the update of token i (num×r · r×dim = num×dim),
// computed in float32. Merging twice is an error; so is merging a nil or
// closed layer.
func (e *Embedding) Merge() error {
	if e == nil {
		return fmt.Errorf("lora: Embedding.Merge: %w", errNilLayer)
	}
	if len(e.merged) > 0 {
		return fmt.Errorf("lora: Embedding.Merge: already merged")
	}
	if err := e.MergeAdapters(false); err != nil {
		return fmt.Errorf("lora: Embedding.Merge: %w", err)
	}
	return nil
}

// Unmerge takes the update back out: W0 ← W0 − (B·A)ᵀ·α/r. It is an error
// unless the layer is merged.
func (e *Embedding) Unmerge() error {
	if e == nil {
		return fmt.Errorf("lora: Embedding.Unmerge: %w", errNilLayer)
	}
	if len(e.merged) == 0 {
		return fmt.Errorf("lora: Embedding.Unmerge: not merged")
	}
	if err := e.UnmergeAdapters(); err != nil {
		return fmt.Errorf("lora: Embedding.Unmerge: %w", err)
	}
	return nil
}
