package lora

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/golora/golora/module"
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

// Apply injects LoRA adapters into model in place. Every Linear and
// Embedding submodule (module.Linear, module.Embedding) whose name matches
// the config is replaced by a lora.Linear or lora.Embedding that keeps its
// pre-trained weights; everything else in the model is frozen. It returns
// the dotted names it adapted, in model order.
//
// Adapters are created in model order, each drawing its lora_a from the
// default generator. A target that matches nothing, or that matches a
// module that is neither Linear nor Embedding, is an error listing what
// exists; on error the model is left unchanged.
func Apply(model module.Module, cfg Config) ([]string, error) {
	if cfg.R <= 0 {
		return nil, fmt.Errorf("lora: Apply: R must be positive, got %d", cfg.R)
	}
	if cfg.Alpha < 0 {
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

	// Pass 1: match names and check types, touching nothing.
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
			return nil, fmt.Errorf("lora: Apply: %q already has a LoRA adapter", nm.Name)
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

	// Pass 2: freeze the model, build the adapters, swap them in. On
	// failure, put back the originals and their trainability.
	before := module.NamedParameters(model)
	var done []module.NamedModule // originals already replaced
	var installed []module.Module // their adapters
	rollback := func() {
		for i, nm := range done {
			_ = module.SetChild(model, nm.Name, nm.Module)
			closeAdapters(installed[i])
		}
		for _, p := range before {
			_ = p.Tensor.SetRequiresGrad(p.Trainable)
		}
	}
	if err := module.Freeze(model); err != nil {
		rollback()
		return nil, fmt.Errorf("lora: Apply: %w", err)
	}
	adapted := make([]string, 0, len(targets))
	for _, nm := range targets {
		var repl module.Module
		var err error
		switch base := nm.Module.(type) {
		case *module.Linear:
			repl, err = linearFrom(base.Weight, base.Bias, cfg.R, alpha)
		case *module.Embedding:
			repl, err = embeddingFrom(base.Weight, cfg.R, alpha)
		}
		if err == nil {
			err = module.SetChild(model, nm.Name, repl)
			if err != nil {
				closeAdapters(repl)
			}
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

// closeAdapters frees the A and B of an adapter that was never installed
// (its weights belong to the original layer).
func closeAdapters(m module.Module) {
	switch l := m.(type) {
	case *Linear:
		l.LoraA.Close()
		l.LoraB.Close()
	case *Embedding:
		l.LoraA.Close()
		l.LoraB.Close()
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
