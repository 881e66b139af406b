package lora

import (
	"errors"
	"fmt"
	"slices"

	"github.com/golora/golora/module"
)

// NamedLayer is an adapter layer of a model and its dotted path.
type NamedLayer struct {
	Name  string
	Layer AdapterLayer
}

// Layers returns the adapter layers of model in model order, each once
// (under its first path; see also LayerPaths).
func Layers(model module.Module) []NamedLayer {
	var out []NamedLayer
	seen := map[*Layer]bool{}
	for _, nm := range visible(module.Modules(model)) {
		if al, ok := asAdapterLayer(nm.Module); ok && !seen[al.LoraLayer()] {
			seen[al.LoraLayer()] = true
			out = append(out, NamedLayer{nm.Name, al})
		}
	}
	return out
}

// layerPaths returns every path of every adapter layer (a shared layer
// appears under each of its names).
func layerPaths(model module.Module) []NamedLayer {
	var out []NamedLayer
	for _, nm := range visible(module.Modules(model)) {
		if al, ok := asAdapterLayer(nm.Module); ok {
			out = append(out, NamedLayer{nm.Name, al})
		}
	}
	return out
}

// AdapterNames returns the names of the adapters in model, in order of
// first appearance.
func AdapterNames(model module.Module) []string {
	var out []string
	for _, nl := range Layers(model) {
		for _, n := range nl.Layer.LoraLayer().order {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// SetAdapter makes names the active adapters of every adapter layer of
// model, like PEFT's set_adapter (several names: their updates add up).
// It touches no weight and copies nothing. Unknown names, or none, are an
// error and change nothing. Trainability is not changed.
func SetAdapter(model module.Module, names ...string) error {
	if isNil(model) {
		return fmt.Errorf("lora: SetAdapter: model is nil (%T)", model)
	}
	if len(names) == 0 {
		return errors.New("lora: SetAdapter: no adapter name given")
	}
	have := AdapterNames(model)
	for _, n := range names {
		if !slices.Contains(have, n) {
			return fmt.Errorf("lora: SetAdapter: no adapter %q in the model (have %v)", n, have)
		}
	}
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		if len(l.merged) > 0 {
			return fmt.Errorf("lora: SetAdapter: %s: adapters %v are merged; unmerge them first", nl.Name, l.merged)
		}
	}
	for _, nl := range Layers(model) {
		nl.Layer.LoraLayer().setActive(names)
	}
	return nil
}

// DeleteAdapter removes adapter name from every layer of model and frees
// its tensors, like PEFT's delete_adapter. A layer left without adapters
// stays an adapter layer that computes its base output. It is an error if
// no layer has the adapter or if it is merged somewhere (nothing changes).
func DeleteAdapter(model module.Module, name string) error {
	if isNil(model) {
		return fmt.Errorf("lora: DeleteAdapter: model is nil (%T)", model)
	}
	var ls []*Layer
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		if l.Adapter(name) == nil {
			continue
		}
		if slices.Contains(l.merged, name) {
			return fmt.Errorf("lora: DeleteAdapter: %s: adapter %q is merged; unmerge it first", nl.Name, name)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		return fmt.Errorf("lora: DeleteAdapter: no adapter %q in the model (have %v)", name, AdapterNames(model))
	}
	for _, l := range ls {
		if err := l.deleteAdapter(name); err != nil {
			return fmt.Errorf("lora: DeleteAdapter: %w", err)
		}
	}
	return nil
}

// WithAdaptersDisabled runs f with every adapter layer of model computing
// its base output exactly (PEFT's disable_adapter context), and enables
// them again when f returns or panics, so the model cannot be left
// disabled. Merged adapters are an error (unmerge first). It must not run
// concurrently with other uses of the model.
func WithAdaptersDisabled(model module.Module, f func() error) error {
	if isNil(model) {
		return fmt.Errorf("lora: WithAdaptersDisabled: model is nil (%T)", model)
	}
	ls := Layers(model)
	for _, nl := range ls {
		if l := nl.Layer.LoraLayer(); len(l.merged) > 0 {
			return fmt.Errorf("lora: WithAdaptersDisabled: %s: adapters %v are merged; unmerge them first", nl.Name, l.merged)
		}
	}
	prev := make([]bool, len(ls))
	for i, nl := range ls {
		l := nl.Layer.LoraLayer()
		prev[i], l.disabled = l.disabled, true
	}
	defer func() {
		for i, nl := range ls {
			nl.Layer.LoraLayer().disabled = prev[i]
		}
	}()
	return f()
}

// WithAdapterNames runs f with a mixed batch set up: in every adapter
// layer, sample i (dim 0 of the layer's input) uses adapter names[i] only,
// BaseAdapter ("__base__") meaning none, like PEFT's
// forward(adapter_names=...). A layer that lacks an adapter adds nothing
// for its samples (as PEFT). Every name must exist somewhere in the model;
// merged adapters are an error. The set-up is removed when f returns or
// panics. It must not run concurrently with other uses of the model.
func WithAdapterNames(model module.Module, names []string, f func() error) error {
	if isNil(model) {
		return fmt.Errorf("lora: WithAdapterNames: model is nil (%T)", model)
	}
	if len(names) == 0 {
		return errors.New("lora: WithAdapterNames: no adapter names given")
	}
	have := AdapterNames(model)
	for _, n := range names {
		if n != BaseAdapter && !slices.Contains(have, n) {
			return fmt.Errorf("lora: WithAdapterNames: no adapter %q in the model (have %v)", n, have)
		}
	}
	ls := Layers(model)
	for _, nl := range ls {
		if l := nl.Layer.LoraLayer(); len(l.merged) > 0 {
			return fmt.Errorf("lora: WithAdapterNames: %s: adapters %v are merged; unmerge them first", nl.Name, l.merged)
		}
	}
	names = slices.Clone(names)
	for _, nl := range ls {
		nl.Layer.LoraLayer().mixed = names
	}
	defer func() {
		for _, nl := range ls {
			nl.Layer.LoraLayer().mixed = nil
		}
	}()
	return f()
}

// Merge folds the named adapters (the active ones when none are named)
// into the base weights of every adapter layer of model (see
// Layer.MergeAdapters). With safe, every layer's new weight is computed
// and checked for NaN and Inf first (twice the arithmetic, no extra
// memory), and nothing is written if one has any. On another error the
// layers merged so far are unmerged again (within rounding).
func Merge(model module.Module, safe bool, names ...string) error {
	if isNil(model) {
		return fmt.Errorf("lora: Merge: model is nil (%T)", model)
	}
	plan := map[*Layer][]string{}
	ls := Layers(model)
	for _, nl := range ls {
		l := nl.Layer.LoraLayer()
		ns := names
		if len(ns) == 0 {
			ns = l.active
		} else {
			ns = slices.DeleteFunc(slices.Clone(ns), func(n string) bool { return l.Adapter(n) == nil })
		}
		plan[l] = ns
		if safe && len(ns) > 0 {
			if err := l.checkMerge(ns); err != nil {
				return fmt.Errorf("lora: Merge: %s: %w", nl.Name, err)
			}
		}
	}
	var done []*Layer
	for _, nl := range ls {
		l := nl.Layer.LoraLayer()
		ns := plan[l]
		if len(ns) == 0 {
			continue
		}
		if err := l.MergeAdapters(safe, ns...); err != nil {
			for _, d := range done {
				_ = d.UnmergeAdapters()
			}
			return fmt.Errorf("lora: Merge: %s: %w", nl.Name, err)
		}
		done = append(done, l)
	}
	return nil
}

// Unmerge takes every merged adapter out of every layer of model.
func Unmerge(model module.Module) error {
	if isNil(model) {
		return fmt.Errorf("lora: Unmerge: model is nil (%T)", model)
	}
	var errs []error
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		if len(l.merged) == 0 {
			continue
		}
		if err := l.UnmergeAdapters(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nl.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lora: Unmerge: %w", err)
	}
	return nil
}

// MergeAndUnload merges the active adapters (safely: every merged weight
// is checked for NaN and Inf before any is written) and replaces every adapter layer by its base layer, whose
// weight now holds W0 + ΔW: the model computes the same with no adapter
// cost, like PEFT's merge_and_unload. The adapters' tensors are freed. It
// returns the model, or the base layer when model itself is an adapter
// layer.
func MergeAndUnload(model module.Module) (module.Module, error) {
	if isNil(model) {
		return nil, fmt.Errorf("lora: MergeAndUnload: model is nil (%T)", model)
	}
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		var todo []string
		for _, n := range l.active {
			if !slices.Contains(l.merged, n) {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			continue
		}
		if err := l.checkMerge(todo); err != nil {
			return nil, fmt.Errorf("lora: MergeAndUnload: %s: %w", nl.Name, err)
		}
	}
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		var todo []string
		for _, n := range l.active {
			if !slices.Contains(l.merged, n) {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			continue
		}
		if err := l.MergeAdapters(false, todo...); err != nil {
			return nil, fmt.Errorf("lora: MergeAndUnload: %s: %w", nl.Name, err)
		}
	}
	return unload(model)
}

// Unload unmerges whatever is merged and replaces every adapter layer by
// its base layer, giving back the original model (PEFT's unload; PEFT
// keeps merged weights merged, golora restores W0 within rounding). The
// adapters' tensors are freed. It returns the model, or the base layer
// when model itself is an adapter layer.
func Unload(model module.Module) (module.Module, error) {
	if isNil(model) {
		return nil, fmt.Errorf("lora: Unload: model is nil (%T)", model)
	}
	if err := Unmerge(model); err != nil {
		return nil, fmt.Errorf("lora: Unload: %w", err)
	}
	return unload(model)
}

// unload swaps the base layers in and frees the adapters.
func unload(model module.Module) (module.Module, error) {
	if al, ok := asAdapterLayer(model); ok {
		closeAdapters(al)
		return al.LoraLayer().BaseLayer(), nil
	}
	paths := layerPaths(model)
	for _, nl := range paths {
		if err := module.SetChild(model, nl.Name, nl.Layer.LoraLayer().BaseLayer()); err != nil {
			return nil, fmt.Errorf("lora: unload: %s: %w", nl.Name, err)
		}
	}
	seen := map[*Layer]bool{}
	for _, nl := range paths {
		if l := nl.Layer.LoraLayer(); !seen[l] {
			seen[l] = true
			closeAdapters(nl.Layer)
		}
	}
	return model, nil
}
