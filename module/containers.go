package module

import (
	"fmt"
	"iter"
	"strconv"
	"strings"
)

// ModuleList holds submodules in a list, like nn.ModuleList: they are
// registered as children named "0", "1", …, so parameter names read
// "layers.0.attn.q_proj.weight". T is the element type; declare it as an
// interface (Layer, or your own) for the elements to be replaceable by
// adapters through SetChild.
//
//	type Decoder struct {
//		module.Base
//		Layers *module.ModuleList[module.Layer]
//	}
//	...
//	d.Layers = module.NewModuleList[module.Layer](blocks...)
//	module.Child(&d.Base, "layers", &d.Layers)
//	...
//	for _, l := range d.Layers.All() {
//		h = l.Forward(h)
//	}
type ModuleList[T Module] struct {
	Base
	items []T
}

// NewModuleList returns a ModuleList of the given modules.
func NewModuleList[T Module](items ...T) *ModuleList[T] {
	l := &ModuleList[T]{}
	l.Append(items...)
	return l
}

// Append adds modules at the end. A nil element is kept in its place but
// skipped by traversals.
func (l *ModuleList[T]) Append(items ...T) {
	for _, m := range items {
		i := len(l.items)
		l.items = append(l.items, m)
		name := strconv.Itoa(i)
		l.addChild(name, func() Module {
			if isNil(l.items[i]) {
				return nil
			}
			return l.items[i]
		}, typedSetter(name, func(v T) { l.items[i] = v }))
	}
}

// Len returns the number of elements.
func (l *ModuleList[T]) Len() int { return len(l.items) }

// At returns element i; it panics when i is out of range, as indexing
// does.
func (l *ModuleList[T]) At(i int) T {
	if i < 0 || i >= len(l.items) {
		panic(fmt.Sprintf("module: ModuleList.At(%d) with %d elements", i, len(l.items)))
	}
	return l.items[i]
}

// All iterates over the elements with their indices.
func (l *ModuleList[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for i := range l.items {
			if !yield(i, l.items[i]) {
				return
			}
		}
	}
}

// ModuleDict holds submodules by string key in insertion order, like
// nn.ModuleDict; each is registered as the child of that name
// ("heads.sentiment.weight").
type ModuleDict[T Module] struct {
	Base
	keys  []string
	items map[string]T
}

// NewModuleDict returns an empty ModuleDict.
func NewModuleDict[T Module]() *ModuleDict[T] {
	return &ModuleDict[T]{items: map[string]T{}}
}

// Set stores m under key: a new key goes at the end, an existing one is
// replaced in place. It panics when key is empty or contains a dot (a
// programming error, as for Param).
func (d *ModuleDict[T]) Set(key string, m T) {
	if d.items == nil {
		d.items = map[string]T{}
	}
	if _, ok := d.items[key]; ok {
		d.items[key] = m
		return
	}
	if key == "" || strings.Contains(key, ".") {
		panic(fmt.Sprintf("module: ModuleDict key %q: keys must be non-empty and contain no dot", key))
	}
	d.addChild(key, func() Module {
		if v := d.items[key]; !isNil(v) {
			return v
		}
		return nil
	}, typedSetter(key, func(v T) { d.items[key] = v }))
	d.keys = append(d.keys, key)
	d.items[key] = m
}

// Get returns the module under key.
func (d *ModuleDict[T]) Get(key string) (T, bool) {
	m, ok := d.items[key]
	return m, ok
}

// Len returns the number of keys.
func (d *ModuleDict[T]) Len() int { return len(d.keys) }

// Keys returns the keys in insertion order.
func (d *ModuleDict[T]) Keys() []string { return append([]string(nil), d.keys...) }

// All iterates over the entries in insertion order.
func (d *ModuleDict[T]) All() iter.Seq2[string, T] {
	return func(yield func(string, T) bool) {
		for _, k := range d.keys {
			if !yield(k, d.items[k]) {
				return
			}
		}
	}
}
