package lora

import (
	"errors"
	"fmt"
	"slices"
	"sync"

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
	if err := checkSavedActive(model, names); err != nil {
		return fmt.Errorf("lora: SetAdapter: %w", err)
	}
	for _, nl := range Layers(model) {
		nl.Layer.LoraLayer().setActive(names)
	}
	if err := syncSaved(model, nil); err != nil {
		return fmt.Errorf("lora: SetAdapter: %w", err)
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
	var saved []*savedModule
	if cfg, _, err := configOf(model, name); err == nil {
		saved = cfg.saved
	}
	for _, l := range ls {
		if err := l.deleteAdapter(name); err != nil {
			return fmt.Errorf("lora: DeleteAdapter: %w", err)
		}
	}
	// Its copies of the modules to save go too; a module it owned gets
	// the next active adapter's copy, or the original.
	for _, m := range saved {
		if err := m.drop(name); err != nil {
			return fmt.Errorf("lora: DeleteAdapter: %w", err)
		}
	}
	if err := syncSaved(model, nil); err != nil {
		return fmt.Errorf("lora: DeleteAdapter: %w", err)
	}
	return nil
}

// inWith holds the adapter layers that a WithAdaptersDisabled or
// WithAdapterNames call has set up, until it returns.
var inWith sync.Map // *Layer → struct{}

// claim marks the layers ls as set up by a With call, or, when one of them
// already is (a call under way in another goroutine, or an enclosing one),
// claims none and returns an error: a second set-up would change the
// layers under the first call's f and undo it on return.
func claim(op string, ls []NamedLayer) (release func(), err error) {
	var got []*Layer
	release = func() {
		for _, l := range got {
			inWith.Delete(l)
		}
	}
	for _, nl := range ls {
		l := nl.Layer.LoraLayer()
		if _, busy := inWith.LoadOrStore(l, struct{}{}); busy {
			release()
			return nil, fmt.Errorf("lora: %s: %s is already set up by another WithAdaptersDisabled or WithAdapterNames call: they must not nest or overlap", op, nl.Name)
		}
		got = append(got, l)
	}
	return release, nil
}

// WithAdaptersDisabled runs f with every adapter layer of model computing
// its base output exactly (PEFT's disable_adapter context), and enables
// them again when f returns or panics, so the model cannot be left
// disabled. Merged adapters are an error (unmerge first). It must not run
// concurrently with other uses of the model; a call that overlaps another
// WithAdaptersDisabled or WithAdapterNames on the same layers (nested, or
// in another goroutine) is refused with an error.
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
	release, err := claim("WithAdaptersDisabled", ls)
	if err != nil {
		return err
	}
	defer release()
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
	// The modules to save compute with their original values.
	return withSaved(model, func(*savedModule) string { return "" }, f)
}

// WithAdapterNames runs f with a mixed batch set up: in every adapter
// layer, sample i (dim 0 of the layer's input) uses adapter names[i] only,
// BaseAdapter ("__base__") meaning none, like PEFT's
// forward(adapter_names=...). A layer that lacks an adapter adds nothing
// for its samples (as PEFT). Every name must exist somewhere in the model;
// merged adapters are an error. The set-up is removed when f returns or
// panics. It must not run concurrently with other uses of the model (a
// server with one model serves one mixed batch at a time); a call that
// overlaps another WithAdapterNames or WithAdaptersDisabled on the same
// layers (nested, or in another goroutine) is refused with an error.
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
	// A module to save runs once for the whole batch: every sample must
	// want the same copy of it.
	owners := map[*savedModule]string{}
	for _, m := range savedModules(model) {
		var want []string
		for _, n := range names {
			if o, _ := savedOwner(m, []string{n}); !slices.Contains(want, o) {
				want = append(want, o)
			}
		}
		if len(want) > 1 {
			return fmt.Errorf("lora: WithAdapterNames: modules_to_save %s: the batch needs different copies of it (%q), but it runs once for the whole batch; use one adapter per batch", m.path, want)
		}
		owners[m] = want[0]
	}
	release, err := claim("WithAdapterNames", ls)
	if err != nil {
		return err
	}
	defer release()
	names = slices.Clone(names)
	for _, nl := range ls {
		nl.Layer.LoraLayer().mixed = names
	}
	defer func() {
		for _, nl := range ls {
			nl.Layer.LoraLayer().mixed = nil
		}
	}()
	return withSaved(model, func(m *savedModule) string { return owners[m] }, f)
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
	// The modules to save stay with the values they hold (the active
	// adapter's copy, as PEFT's unload); the other copies are freed.
	for _, m := range savedModules(model) {
		m.release()
	}
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
