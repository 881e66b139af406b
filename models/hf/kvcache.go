package hf

import (
	"fmt"
	"sync"

	"github.com/golora/golora/torch"
)

// KVCache holds each layer's keys and values, [B, Hkv, T, D], for
// generation, like transformers' DynamicCache: Update appends a step's
// keys and values along T and returns the whole history.
//
// The cache owns its tensors (it belongs to no scope): Close frees them.
// Its methods are safe for concurrent use, but one cache serves one
// generation at a time.
type KVCache struct {
	mu     sync.Mutex
	k, v   []*torch.Tensor
	closed bool
}

// NewKVCache returns an empty cache for a model with layers layers.
func NewKVCache(layers int) *KVCache {
	if layers < 0 {
		layers = 0
	}
	return &KVCache{k: make([]*torch.Tensor, layers), v: make([]*torch.Tensor, layers)}
}

// Layers returns the number of layers the cache was made for.
func (c *KVCache) Layers() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.k)
}

// unowned returns a second handle to t that belongs to no scope.
func unowned(t *torch.Tensor) (*torch.Tensor, error) {
	return torch.WithScope(func(s *torch.Scope) *torch.Tensor { return s.Borrow(t) })
}

// Update appends k and v ([B, Hkv, T, D]) to layer's history along T and
// returns the full keys and values, [B, Hkv, past+T, D]. The cache keeps
// its own references; the returned tensors join k's scope (the caller's
// forward pass), so closing that scope leaves the cache intact. A bad
// layer index, a failed input or a shape that does not extend the history
// returns failed tensors and leaves the cache unchanged.
func (c *KVCache) Update(layer int, k, v *torch.Tensor) (kAll, vAll *torch.Tensor) {
	fail := func(err error) (*torch.Tensor, *torch.Tensor) {
		f := torch.Failed(err)
		return f, f
	}
	if c == nil {
		return fail(fmt.Errorf("hf: KVCache.Update: nil cache"))
	}
	if err := torch.FirstErr(k, v); err != nil {
		return fail(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fail(fmt.Errorf("hf: KVCache.Update: the cache is closed"))
	}
	if layer < 0 || layer >= len(c.k) {
		return fail(fmt.Errorf("hf: KVCache.Update: layer %d out of range [0, %d)", layer, len(c.k)))
	}
	if k.Dim() != 4 || v.Dim() != 4 || k.SizeOf(2) != v.SizeOf(2) || k.SizeOf(0) != v.SizeOf(0) {
		return fail(fmt.Errorf("hf: KVCache.Update: want keys and values [B, Hkv, T, D] of one length, got %v and %v", k.Shape(), v.Shape()))
	}
	oldK, oldV := c.k[layer], c.v[layer]
	if oldK == nil {
		newK, err := unowned(k)
		if err != nil {
			return fail(err)
		}
		newV, err := unowned(v)
		if err != nil {
			newK.Close()
			return fail(err)
		}
		c.k[layer], c.v[layer] = newK, newV
		return k.Alias(), v.Alias()
	}
	ok := func(old, x *torch.Tensor) bool {
		s, t := old.Shape(), x.Shape()
		return len(s) == 4 && s[0] == t[0] && s[1] == t[1] && s[3] == t[3]
	}
	if !ok(oldK, k) || !ok(oldV, v) {
		return fail(fmt.Errorf("hf: KVCache.Update: layer %d holds %v and %v; cannot append %v and %v", layer, oldK.Shape(), oldV.Shape(), k.Shape(), v.Shape()))
	}
	// Cat's result joins the scope of its first scoped operand: k's, since
	// the cache's tensors belong to none.
	kAll = torch.Cat([]*torch.Tensor{oldK, k}, 2)
	vAll = torch.Cat([]*torch.Tensor{oldV, v}, 2)
	if err := torch.FirstErr(kAll, vAll); err != nil {
		if k.Scope() == nil {
			torch.CloseAll(kAll, vAll)
		}
		return fail(err)
	}
	newK, err := unowned(kAll)
	if err != nil {
		return fail(err)
	}
	newV, err := unowned(vAll)
	if err != nil {
		newK.Close()
		return fail(err)
	}
	oldK.Close()
	oldV.Close()
	c.k[layer], c.v[layer] = newK, newV
	return kAll, vAll
}

// Len returns the number of tokens cached (layer 0's length), 0 when
// empty.
func (c *KVCache) Len() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.k) == 0 || c.k[0] == nil {
		return 0
	}
	return c.k[0].SizeOf(2)
}

// Layer returns new handles to layer's cached keys and values (nil, nil
// when the layer holds none); the caller closes them.
func (c *KVCache) Layer(layer int) (k, v *torch.Tensor) {
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if layer < 0 || layer >= len(c.k) || c.k[layer] == nil {
		return nil, nil
	}
	return c.k[layer].Alias(), c.v[layer].Alias()
}

// Reset empties the cache, freeing its tensors; it can be used again.
func (c *KVCache) Reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.k {
		torch.CloseAll(c.k[i], c.v[i])
		c.k[i], c.v[i] = nil, nil
	}
}

// Close frees the cached tensors; later Updates fail. It is idempotent.
func (c *KVCache) Close() {
	if c == nil {
		return
	}
	c.Reset()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}
