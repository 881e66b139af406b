package dist

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/golora/golora/torch"
)

// DataParallel keeps a model's trainable parameters equal on every rank, as
// PyTorch's DistributedDataParallel does: the same start (rank 0's
// values), and after each backward the same averaged gradient, so that the
// same optimizer step follows everywhere. Only the trainable parameters
// travel: for a LoRA model, A and B.
type DataParallel struct {
	g      *Group
	params []*torch.Tensor

	// LastBytes and LastSync are the gradient bytes all-reduced by the last
	// SyncGrads and the time it took.
	LastBytes int64
	LastSync  time.Duration
}

// NewDataParallel broadcasts rank 0's values of params to every rank.
// Every rank must pass the same parameters (shapes, dtypes, order).
func NewDataParallel(g *Group, params []*torch.Tensor) (*DataParallel, error) {
	if g == nil {
		return nil, fmt.Errorf("dist: NewDataParallel: nil group")
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("dist: NewDataParallel: no parameters")
	}
	for i, p := range params {
		if p == nil {
			return nil, fmt.Errorf("dist: NewDataParallel: parameter %d is nil", i)
		}
		if err := p.Err(); err != nil {
			return nil, fmt.Errorf("dist: NewDataParallel: parameter %d: %w", i, err)
		}
	}
	if err := g.Broadcast(params, 0); err != nil {
		return nil, fmt.Errorf("dist: NewDataParallel: broadcasting rank 0's parameters: %w", err)
	}
	return &DataParallel{g: g, params: params}, nil
}

// SyncGrads averages the parameters' gradients over the ranks, in place:
// one all-reduce for LoRA-sized gradients (they travel flattened in
// buckets of 25 MiB). Every parameter must have a gradient on every rank;
// one without is an error naming it.
func (d *DataParallel) SyncGrads() error { return d.SyncGradsWith() }

// SyncGradsWith is SyncGrads with extra tensors averaged in the same
// all-reduce: per-step figures such as the loss, or a flag that a rank
// stops, at no extra collective when they have the gradients' dtype and
// device (they then share its bucket). Every rank must pass extra tensors
// of the same shapes, dtypes and order; they must be contiguous.
func (d *DataParallel) SyncGradsWith(extra ...*torch.Tensor) error {
	start := time.Now()
	grads := make([]*torch.Tensor, 0, len(d.params)+len(extra))
	defer func() {
		torch.CloseAll(grads...)
	}()
	var n int64
	for i, p := range d.params {
		g := p.Grad()
		if g == nil {
			return fmt.Errorf("dist: SyncGrads: parameter %d (shape %v) has no gradient: every trainable parameter must take part in the loss on every rank", i, p.Shape())
		}
		if err := g.Err(); err != nil {
			return fmt.Errorf("dist: SyncGrads: parameter %d: %w", i, err)
		}
		grads = append(grads, g)
		n += g.Numel() * int64(g.DType().ElemSize())
	}
	for i, t := range extra {
		if t == nil {
			return fmt.Errorf("dist: SyncGradsWith: extra tensor %d is nil", i)
		}
		if err := t.Err(); err != nil {
			return fmt.Errorf("dist: SyncGradsWith: extra tensor %d: %w", i, err)
		}
	}
	if err := d.g.AllReduce(append(grads, extra...), true); err != nil {
		return fmt.Errorf("dist: SyncGrads: %w", err)
	}
	d.LastBytes, d.LastSync = n, time.Since(start)
	return nil
}

// ShardIndices returns the sample indices of rank out of world for one
// epoch over n samples, with the semantics of PyTorch's
// DistributedSampler: with shuffle, one permutation of 0..n-1 drawn from
// seed and epoch (the same on every rank; from Go's PCG generator, not
// torch.randperm); without, 0..n-1 in order. Then, with dropLast, the tail
// that does not divide evenly is dropped; without, the indices are padded
// by repeating from the start so that every rank gets
// ceil(n/world). Rank r takes every world-th index from r.
func ShardIndices(n, rank, world int, shuffle bool, seed uint64, epoch int, dropLast bool) ([]int, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("dist: ShardIndices: negative sample count %d", n)
	case world <= 0 || rank < 0 || rank >= world:
		return nil, fmt.Errorf("dist: ShardIndices: rank %d is out of range for world size %d", rank, world)
	case epoch < 0:
		return nil, fmt.Errorf("dist: ShardIndices: negative epoch %d", epoch)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if shuffle {
		r := rand.New(rand.NewPCG(seed, uint64(epoch)))
		r.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	var perRank int
	if dropLast && n%world != 0 {
		perRank = (n - world + world - 1) / world // ceil((n - world) / world)
		if n < world {
			perRank = 0
		}
	} else {
		perRank = (n + world - 1) / world
	}
	total := perRank * world
	if total > len(idx) && len(idx) > 0 {
		for len(idx) < total {
			idx = append(idx, idx[:min(total-len(idx), n)]...)
		}
	}
	idx = idx[:min(total, len(idx))]
	out := make([]int, 0, perRank)
	for i := rank; i < len(idx); i += world {
		out = append(out, idx[i])
	}
	return out, nil
}
