package lora

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Config says which layers of a model Apply adapts, and how.
type Config struct {
	// R is the rank r of every adapter (required, > 0).
	R int64
	// Alpha is α; zero means α = r.
	Alpha float64
	// TargetModules lists module names to adapt with PEFT's semantics: a
	// dotted name matches a target when it equals it or ends with
	// "."+target ("q_proj" matches "blocks.0.attn.q_proj").
	TargetModules []string
	// TargetRegexp, if set, adapts every module whose full dotted name the
	// regular expression matches entirely (PEFT's string form of
	// target_modules). It may be combined with TargetModules.
	TargetRegexp string
}

// Apply injects LoRA adapters into model in place, like PEFT's
// inject_adapter_in_model. Every Linear and Embedding submodule
// (module.Linear, module.Embedding) whose name matches the config is
// replaced by a lora.Linear or lora.Embedding that keeps its pre-trained
// weights (the same tensors). It returns the dotted names it adapted, in
// model order.
//
// Trainability follows PEFT (mark_only_lora_as_trainable): every
// parameter of the model is frozen except the adapters' lora_a and lora_b.
// Adapters that an earlier Apply installed keep their trainability, so
// Apply(model, {q_proj}) then Apply(model, {v_proj}) trains both.
//
// A target that matches a layer that is already a lora.Linear or
// lora.Embedding is an error naming it. PEFT would add a second, named
// adapter to that layer (or re-initialise one of the same name); golora's
// layers hold one adapter, and a silent re-initialisation would discard
// trained weights, so Apply refuses instead.
//
// Adapters are created in model order, each drawing its lora_a from the
// default generator; a layer shared under several names gets one adapter,
// installed under each. Nil submodules (unset fields, nil container
// entries) are skipped like PyTorch's None. A nil model, a target that
// matches nothing, or one that matches a module that is neither Linear
// nor Embedding, is an error listing what exists; on error the model is
// left unchanged.
func Apply(model module.Module, cfg Config) ([]string, error) {
	if isNil(model) {
		return nil, fmt.Errorf("lora: Apply: model is nil (%T)", model)
	}
	if cfg.R <= 0 {
		return nil, fmt.Errorf("lora: Apply: R must be positive, got %d", cfg.R)
	}
	if cfg.Alpha < 0 || cfg.Alpha != cfg.Alpha {
		return nil, fmt.Errorf("lora: Apply: Alpha must be positive (or 0 for α = r), got %v", cfg.Alpha)
	}
	if len(cfg.TargetModules) == 0 && cfg.TargetRegexp == "" {
		return nil, fmt.Errorf("lora: Apply: no TargetModules or TargetRegexp given")
	}
	var re *regexp.Regexp
	if cfg.TargetRegexp != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + cfg.TargetRegexp + ")$"); err != nil {
			return nil, fmt.Errorf("lora: Apply: TargetRegexp: %w", err)
		}
	}
	alpha := cfg.Alpha
	if alpha == 0 {
		alpha = float64(cfg.R)
	}

	// Pass 1: match names and check types, touching nothing. Modules
	// skips nil submodules (unset fields, nil container entries), as
	// PyTorch's named_modules skips None.
	all := module.Modules(model)
	hits := map[string]bool{}
	var targets []module.NamedModule
	for _, nm := range all {
		if nm.Name == "" {
			continue
		}
		matched := false
		for _, t := range cfg.TargetModules {
			if nm.Name == t || strings.HasSuffix(nm.Name, "."+t) {
				hits[t] = true
				matched = true
			}
		}
		if re != nil && re.MatchString(nm.Name) {
			hits[cfg.TargetRegexp] = true
			matched = true
		}
		if !matched {
			continue
		}
		switch nm.Module.(type) {
		case *module.Linear, *module.Embedding:
			targets = append(targets, nm)
		case *Linear, *Embedding:
			return nil, fmt.Errorf("lora: Apply: %q already has a LoRA adapter (%T); leave it out of the targets", nm.Name, nm.Module)
		default:
			return nil, fmt.Errorf("lora: Apply: target %q is a %T; only module.Linear and module.Embedding can be adapted (adaptable: %s)",
				nm.Name, nm.Module, strings.Join(adaptable(all), ", "))
		}
	}
	var missing []string
	for _, t := range cfg.TargetModules {
		if !hits[t] {
			missing = append(missing, fmt.Sprintf("%q", t))
		}
	}
	if re != nil && !hits[cfg.TargetRegexp] {
		missing = append(missing, fmt.Sprintf("regexp %q", cfg.TargetRegexp))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lora: Apply: target %s matched no module; the model has: %s",
			strings.Join(missing, ", "), strings.Join(names(all), ", "))
	}

	// Pass 2: freeze all but the existing adapters, build the new ones,
	// swap them in. On failure, put back the originals and every
	// parameter's trainability.
	before := module.NamedParameters(model)
	var done []module.NamedModule // originals already replaced
	var installed []module.Module // their adapters
	rollback := func() {
		for i := len(done) - 1; i >= 0; i-- {
			_ = module.SetChild(model, done[i].Name, done[i].Module)
			closeAdapters(installed[i])
		}
		for _, p := range before {
			_ = p.Tensor.SetRequiresGrad(p.Trainable)
		}
	}
	if err := freezeAllButAdapters(all, before); err != nil {
		rollback()
		return nil, fmt.Errorf("lora: Apply: %w", err)
	}
	adapted := make([]string, 0, len(targets))
	shared := map[module.Module]module.Module{} // a module under several names gets one adapter
	for _, nm := range targets {
		repl, ok := shared[nm.Module]
		var err error
		if !ok {
			switch base := nm.Module.(type) {
			case *module.Linear:
				repl, err = linearFrom(base.Weight, base.Bias, cfg.R, alpha)
			case *module.Embedding:
				repl, err = embeddingFrom(base.Weight, cfg.R, alpha)
			}
		}
		if err == nil {
			if err = module.SetChild(model, nm.Name, repl); err != nil && !ok {
				closeAdapters(repl)
			}
		}
		if err == nil {
			shared[nm.Module] = repl
		}
		if err != nil {
			rollback()
			return nil, fmt.Errorf("lora: Apply: %s: %w", nm.Name, err)
		}
		done = append(done, nm)
		installed = append(installed, repl)
		adapted = append(adapted, nm.Name)
	}
	return adapted, nil
}

// isNil reports whether m is absent: a nil interface, a typed nil pointer,
// or a module without a registry. It checks the pointer before calling
// Registry, which would dereference it.
func isNil(m module.Module) bool {
	if m == nil {
		return true
	}
	if v := reflect.ValueOf(m); v.Kind() == reflect.Pointer && v.IsNil() {
		return true
	}
	return m.Registry() == nil
}

// freezeAllButAdapters turns gradient tracking off for every parameter
// except the lora_a and lora_b of the adapters already in the model, which
// keep theirs, as PEFT's mark_only_lora_as_trainable does.
func freezeAllButAdapters(all []module.NamedModule, params []module.NamedParameter) error {
	adapters := map[*torch.Tensor]bool{}
	for _, nm := range all {
		switch l := nm.Module.(type) {
		case *Linear:
			adapters[l.LoraA], adapters[l.LoraB] = true, true
		case *Embedding:
			adapters[l.LoraA], adapters[l.LoraB] = true, true
		}
	}
	var errs []error
	for _, p := range params {
		if adapters[p.Tensor] {
			continue
		}
		if err := p.Tensor.SetRequiresGrad(false); err != nil {
			errs = append(errs, fmt.Errorf("freezing %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// closeAdapters frees the A and B of an adapter that was never installed
// or was taken out again (its weights belong to the original layer).
func closeAdapters(m module.Module) {
	switch l := m.(type) {
	case *Linear:
		torch.CloseAll(l.LoraA, l.LoraB)
	case *Embedding:
		torch.CloseAll(l.LoraA, l.LoraB)
	}
}

func names(all []module.NamedModule) []string {
	var out []string
	for _, nm := range all {
		if nm.Name != "" {
			out = append(out, fmt.Sprintf("%s (%T)", nm.Name, nm.Module))
		}
	}
	return out
}

func adaptable(all []module.NamedModule) []string {
	var out []string
	for _, nm := range all {
		switch nm.Module.(type) {
		case *module.Linear, *module.Embedding:
			out = append(out, nm.Name)
		}
	}
	sort.Strings(out)
	return out
}
