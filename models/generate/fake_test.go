package generate_test

import (
	"fmt"
	"sync"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/torch"
)

// tableLM is a fake causal LM whose next-token logits depend only on the
// current token: logits[b, t] = table[ids[b, t]]. It checks that the mask
// and the cache agree (the cache must hold exactly the past positions) and
// records the calls.
type tableLM struct {
	table  *torch.Tensor // (V, V) float32, unowned
	layers int

	mu    sync.Mutex
	calls []call
}

type call struct {
	ids, mask [][]int64
	past      int64
}

func newTableLM(rows [][]float32) *tableLM {
	V := int64(len(rows))
	flat := make([]float32, 0, V*V)
	for _, r := range rows {
		if int64(len(r)) != V {
			panic("table must be square")
		}
		flat = append(flat, r...)
	}
	return &tableLM{table: torch.FromSlice(flat, V, V), layers: 2}
}

// newCycleLM returns a table LM over V tokens whose most likely next token
// after i is (i+1) mod V, with logit 2 against 0 for the others.
func newCycleLM(V int) *tableLM {
	rows := make([][]float32, V)
	for i := range rows {
		rows[i] = make([]float32, V)
		rows[i][(i+1)%V] = 2
	}
	return newTableLM(rows)
}

func (m *tableLM) Close()               { m.table.Close() }
func (m *tableLM) NumLayers() int       { return m.layers }
func (m *tableLM) Device() torch.Device { return torch.CPU }
func (m *tableLM) lastCall() call       { m.mu.Lock(); defer m.mu.Unlock(); return m.calls[len(m.calls)-1] }
func (m *tableLM) numCalls() int        { m.mu.Lock(); defer m.mu.Unlock(); return len(m.calls) }
func rows2(t *torch.Tensor) [][]int64   { return split(torch.Must(torch.ToSlice[int64](t)), t.SizeOf(1)) }
func split(x []int64, n int64) [][]int64 {
	var out [][]int64
	for i := int64(0); i < int64(len(x)); i += n {
		out = append(out, x[i:i+n])
	}
	return out
}

func (m *tableLM) Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	if err := torch.FirstErr(ids, mask); err != nil {
		return torch.Failed(err)
	}
	past := cache.Len()
	B, T := ids.SizeOf(0), ids.SizeOf(1)
	if mask.SizeOf(0) != B || mask.SizeOf(1) != past+T {
		return torch.Failed(fmt.Errorf("tableLM: mask %v for %d cached and ids %v", mask.Shape(), past, ids.Shape()))
	}
	m.mu.Lock()
	m.calls = append(m.calls, call{ids: rows2(ids), mask: rows2(mask), past: past})
	m.mu.Unlock()
	s := ids.Scope()
	kv := ids.To(torch.Float32).View(B, 1, T, 1)
	for l := 0; l < m.layers; l++ {
		k, v := cache.Update(l, kv, kv)
		if err := torch.FirstErr(k, v); err != nil {
			return torch.Failed(err)
		}
	}
	return torch.Embedding(ids, s.Borrow(m.table))
}

// lastTableLM is tableLM with LastLogits, the generate.LastLM path.
type lastTableLM struct{ *tableLM }

func (m lastTableLM) LastLogits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	l := m.Logits(ids, mask, cache)
	return l.Narrow(1, l.SizeOf(1)-1, 1)
}
