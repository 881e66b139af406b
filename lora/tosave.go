package lora

import (
	"fmt"
	"slices"
	"strings"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// savedModule is one module of Config.ModulesToSave, trained fully with a
// copy per adapter: PEFT's ModulesToSaveWrapper (original_module plus
// modules_to_save[adapter]) without the wrapper. The module stays where it
// is and its parameters keep their identity (an optimizer holding them
// keeps working); switching adapters points them at another adapter's
// values with SetData, which copies nothing:
//
//	owner ""    the parameters hold the original values, frozen
//	owner a     they hold adapter a's copy, trainable
//
// Training updates the owner's copy in place. The others' values wait in
// vals; vals[""] is the original while an adapter owns the module.
type savedModule struct {
	path  string
	names []string                   // the parameters' names in the module
	ps    []*torch.Tensor            // the module's parameters
	owner string                     // whose values ps hold ("" = the original)
	vals  map[string][]*torch.Tensor // everyone else's values, by adapter
}

// has reports whether adapter a has a copy of m ("" is the original).
func (m *savedModule) has(a string) bool {
	_, ok := m.vals[a]
	return a == "" || a == m.owner || ok
}

// values returns adapter a's tensors of m: the parameters themselves when
// a owns m.
func (m *savedModule) values(a string) []*torch.Tensor {
	if a == m.owner {
		return m.ps
	}
	return m.vals[a]
}

// addCopy gives adapter a its own copy of m's original values, as PEFT
// deep-copies original_module.
func (m *savedModule) addCopy(a string) error {
	src := m.values("")
	cp := make([]*torch.Tensor, len(src))
	err := torch.NoGrad(func() error {
		for i, t := range src {
			d := t.Detach()
			cp[i] = d.Clone()
			d.Close()
			if err := cp[i].Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		torch.CloseAll(cp...)
		return fmt.Errorf("modules_to_save %s: copying for adapter %q: %w", m.path, a, err)
	}
	m.vals[a] = cp
	return nil
}

// swap points m's parameters at adapter a's values (a has a copy, or is
// ""), converted to the parameters' current dtype and device (the model
// may have moved since), and sets their trainability: frozen for the
// original, trainable for an adapter's copy.
func (m *savedModule) swap(a string) error {
	if a != m.owner {
		next := m.vals[a]
		cur := make([]*torch.Tensor, len(m.ps))
		conv := make([]*torch.Tensor, len(m.ps))
		s := torch.NewScope() // the dtype conversions' intermediates
		for i, p := range m.ps {
			cur[i] = p.Detach()
			conv[i] = s.Borrow(next[i]).To(p.DType()).To(p.Device())
			s.Keep(conv[i])
		}
		s.Close()
		if err := torch.FirstErr(append(cur, conv...)...); err != nil {
			torch.CloseAll(cur...)
			torch.CloseAll(conv...)
			return fmt.Errorf("modules_to_save %s: switching to %q: %w", m.path, a, err)
		}
		for i, p := range m.ps {
			if err := p.SetData(conv[i]); err != nil {
				for j := range i { // put back the ones already switched
					_ = m.ps[j].SetData(cur[j])
				}
				torch.CloseAll(cur...)
				torch.CloseAll(conv...)
				return fmt.Errorf("modules_to_save %s: switching to %q: %w", m.path, a, err)
			}
		}
		// The parameters now share conv's storage; the handles can go.
		torch.CloseAll(conv...)
		torch.CloseAll(next...)
		delete(m.vals, a)
		m.vals[m.owner] = cur
		m.owner = a
	}
	for _, p := range m.ps {
		if err := p.SetRequiresGrad(a != ""); err != nil {
			return fmt.Errorf("modules_to_save %s: %w", m.path, err)
		}
	}
	return nil
}

// drop frees adapter a's copy; when a owns m, the original comes back
// first.
func (m *savedModule) drop(a string) error {
	if a == "" {
		return nil
	}
	if m.owner == a {
		if err := m.swap(""); err != nil {
			return err
		}
	}
	torch.CloseAll(m.vals[a]...)
	delete(m.vals, a)
	return nil
}

// release frees every value but the parameters' own: the module leaves
// lora's hands (Unload, MergeAndUnload) keeping its owner's values.
func (m *savedModule) release() {
	for a, v := range m.vals {
		torch.CloseAll(v...)
		delete(m.vals, a)
	}
}

// savedModules returns the modules to save of every adapter of model, each
// once, in path order.
func savedModules(model module.Module) []*savedModule {
	var out []*savedModule
	for _, nl := range layerPaths(model) {
		l := nl.Layer.LoraLayer()
		for _, n := range l.order {
			if ad := l.adapters[n]; ad != nil && ad.cfg != nil {
				for _, m := range ad.cfg.saved {
					if !slices.Contains(out, m) {
						out = append(out, m)
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *savedModule) int { return strings.Compare(a.path, b.path) })
	return out
}

// addSavedCopies gives adapter name (whose config is cfg) a copy of every
// module in toSave, creating the records of modules no adapter saved
// before, then lets syncSaved pick each module's owner. On error nothing
// changes.
func addSavedCopies(model module.Module, name string, cfg *Config, toSave []module.NamedModule) error {
	cfg.saved = nil
	if len(toSave) == 0 {
		return nil
	}
	existing := map[string]*savedModule{}
	for _, m := range savedModules(model) {
		existing[m.path] = m
	}
	var added []*savedModule
	undo := func() {
		for _, m := range added {
			_ = m.drop(name)
		}
		cfg.saved = nil
	}
	for _, nm := range toSave {
		m := existing[nm.Name]
		if m == nil {
			m = &savedModule{path: nm.Name, vals: map[string][]*torch.Tensor{}}
			for _, p := range module.NamedParameters(nm.Module) {
				m.names = append(m.names, p.Name)
				m.ps = append(m.ps, p.Tensor)
			}
			existing[nm.Name] = m
		}
		if err := m.addCopy(name); err != nil {
			undo()
			return err
		}
		added = append(added, m)
		cfg.saved = append(cfg.saved, m)
	}
	if err := syncSaved(model, nil); err != nil {
		undo()
		_ = syncSaved(model, nil)
		return err
	}
	return nil
}

// savedOwner returns which of names (in order) owns m: the first with a
// copy, "" when none has one. Two names with copies are an error, as PEFT
// allows one active adapter per module to save.
func savedOwner(m *savedModule, names []string) (string, error) {
	owner := ""
	for _, n := range names {
		if n == "" || n == BaseAdapter || !m.has(n) {
			continue
		}
		if owner != "" && owner != n {
			return "", fmt.Errorf("modules_to_save %s: adapters %q and %q each have their own copy, and only one can be active (as in PEFT)", m.path, owner, n)
		}
		owner = n
	}
	return owner, nil
}

// syncSaved makes each module to save hold the values of the first active
// adapter with a copy of it (the original when none has one). active
// overrides the layers' active adapters when non-nil.
func syncSaved(model module.Module, active []string) error {
	ms := savedModules(model)
	if len(ms) == 0 {
		return nil
	}
	if active == nil {
		for _, nl := range Layers(model) {
			for _, n := range nl.Layer.LoraLayer().active {
				if !slices.Contains(active, n) {
					active = append(active, n)
				}
			}
		}
	}
	for _, m := range ms {
		owner := ""
		for _, n := range active {
			if m.has(n) && n != "" {
				owner = n
				break
			}
		}
		if err := m.swap(owner); err != nil {
			return err
		}
	}
	return nil
}

// checkSavedActive returns an error if names would make two adapters'
// copies of one module active at once.
func checkSavedActive(model module.Module, names []string) error {
	for _, m := range savedModules(model) {
		if _, err := savedOwner(m, names); err != nil {
			return err
		}
	}
	return nil
}

// withSaved runs f with every module to save switched to owner(m), then
// switches them back to the active adapters' copies.
func withSaved(model module.Module, owner func(m *savedModule) string, f func() error) (err error) {
	ms := savedModules(model)
	defer func() {
		if e := syncSaved(model, nil); e != nil && err == nil {
			err = e
		}
	}()
	for _, m := range ms {
		if err := m.swap(owner(m)); err != nil {
			return err
		}
	}
	return f()
}
