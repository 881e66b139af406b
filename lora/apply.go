package lora

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Apply injects LoRA adapters named "default" into model in place, like
// PEFT's inject_adapter_in_model; it is AddAdapter(model, DefaultAdapter,
// cfg). It returns the dotted names it adapted, in model order.
func Apply(model module.Module, cfg Config) ([]string, error) {
	return addAdapter("Apply", model, DefaultAdapter, cfg)
}

// AddAdapter adds an adapter called name to every module of model that
// cfg targets, like PEFT's add_adapter. A target that is a base layer a
// Dispatcher handles (module.Linear, module.Embedding, module.Conv1D,
// module.Conv2d, or a registered kind) is replaced by an adapter layer
// (*Linear, *Embedding, *Conv1D, *Conv2d, or *Layer) that keeps its
// pre-trained weights (the same tensors); a target that is already an
// adapter layer gets one more adapter. The new adapter is active, beside
// the ones already active. It returns the dotted names it adapted, in
// model order.
//
// Trainability follows PEFT (mark_only_lora_as_trainable): every
// parameter of the model is frozen except the adapters' A, B and DoRA
// magnitudes, the biases that cfg.Bias selects and the modules of
// cfg.ModulesToSave. Adapters that an earlier call installed keep their
// trainability, so Apply(model, {q_proj}) then Apply(model, {v_proj})
// trains both.
//
// A target that already has an adapter of this name is an error naming
// it: PEFT would re-initialise it, discarding trained weights.
//
// Adapters are created in model order, each drawing its A from the
// default generator; a layer shared under several names gets one adapter
// layer, installed under each. Nil submodules (unset fields, nil container
// entries) are skipped like PyTorch's None. A nil model, a target that
// matches nothing, or one that matches a module no dispatcher handles, is
// an error listing what exists; on error the model is left unchanged.
func AddAdapter(model module.Module, name string, cfg Config) ([]string, error) {
	return addAdapter("AddAdapter", model, name, cfg)
}

func checkConfig(cfg *Config) error {
	if cfg.R <= 0 {
		return fmt.Errorf("R must be positive, got %d", cfg.R)
	}
	if cfg.Alpha < 0 || cfg.Alpha != cfg.Alpha || math.IsInf(cfg.Alpha, 1) {
		return fmt.Errorf("Alpha must be positive and finite (or 0 for α = r), got %v", cfg.Alpha)
	}
	if cfg.Dropout < 0 || cfg.Dropout >= 1 || cfg.Dropout != cfg.Dropout {
		return fmt.Errorf("Dropout must be in [0, 1), got %v", cfg.Dropout)
	}
	if len(cfg.TargetModules) == 0 && cfg.TargetRegexp == "" {
		return fmt.Errorf("no TargetModules or TargetRegexp given")
	}
	switch cfg.Bias {
	case "", "none", "all", "lora_only":
	default:
		return fmt.Errorf(`Bias must be "none", "all" or "lora_only", got %q`, cfg.Bias)
	}
	switch cfg.Init {
	case InitDefault, InitRandom, InitGaussian, InitPiSSA, InitOrthogonal:
	default:
		return fmt.Errorf("Init %q is not supported (true, false, gaussian, pissa, orthogonal)", cfg.Init)
	}
	for k, r := range cfg.RankPattern {
		if r <= 0 {
			return fmt.Errorf("RankPattern[%q] must be positive, got %d", k, r)
		}
	}
	for k, a := range cfg.AlphaPattern {
		if !(a > 0) || math.IsInf(a, 1) {
			return fmt.Errorf("AlphaPattern[%q] must be positive and finite, got %v", k, a)
		}
	}
	return nil
}

func addAdapter(op string, model module.Module, name string, cfg Config) ([]string, error) {
	adapted, _, err := inject(op, model, name, cfg)
	return adapted, err
}

// inject adds adapter name per cfg and returns, with the adapted names, a
// function that undoes it all.
func inject(op string, model module.Module, name string, cfg Config) ([]string, func(), error) {
	if isNil(model) {
		return nil, nil, fmt.Errorf("lora: %s: model is nil (%T)", op, model)
	}
	if err := checkAdapterName(name); err != nil {
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	mt, err := compileConfig(&cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	cfg.TargetModules = slices.Clone(cfg.TargetModules)
	saved := cfg // the copy every adapter keeps

	// Pass 1: match names and check types, touching nothing. Modules
	// skips nil submodules (unset fields, nil container entries), as
	// PyTorch's named_modules skips None; the insides of adapter layers
	// are not targets.
	all := visible(module.Modules(model))
	hits := map[string]bool{}
	var targets []module.NamedModule
	var toSave []module.NamedModule
	for _, nm := range all {
		if nm.Name == "" {
			continue
		}
		if mt.toSave(nm.Name) {
			toSave = append(toSave, nm)
			hits["save:"+nm.Name] = true
		}
		if mt.excluded(nm.Name) {
			continue
		}
		// As PEFT: LayersToTransform filters the list targets (and
		// "all-linear", which PEFT turns into a list), not a regexp.
		matched := false
		for _, t := range mt.targets {
			if suffixMatch(nm.Name, t) {
				hits[t] = true
				matched = true
			}
		}
		if mt.allLinear && isLinearKind(nm.Module) && !isHead(nm.Name, cfg.TaskType) {
			hits[AllLinear] = true
			matched = true
		}
		matched = matched && mt.inLayers(nm.Name)
		if mt.re != nil && mt.re.MatchString(nm.Name) {
			hits[cfg.TargetRegexp] = true
			matched = true
		}
		if !matched {
			continue
		}
		if al, ok := asAdapterLayer(nm.Module); ok {
			if al.LoraLayer().Adapter(name) != nil {
				return nil, nil, fmt.Errorf("lora: %s: %q already has a LoRA adapter (%T) named %q; leave it out of the targets", op, nm.Name, nm.Module, name)
			}
			targets = append(targets, nm)
			continue
		}
		if _, ok := dispatch(nm.Module); !ok {
			return nil, nil, fmt.Errorf("lora: %s: target %q is a %T; only module.Linear and module.Embedding can be adapted, besides module.Conv1D, module.Conv2d and the kinds of RegisterDispatcher (adaptable: %s)",
				op, nm.Name, nm.Module, strings.Join(adaptable(all), ", "))
		}
		targets = append(targets, nm)
	}
	var missing []string
	for _, t := range mt.targets {
		if !hits[t] {
			missing = append(missing, fmt.Sprintf("%q", t))
		}
	}
	if mt.re != nil && !hits[cfg.TargetRegexp] {
		missing = append(missing, fmt.Sprintf("regexp %q", cfg.TargetRegexp))
	}
	if mt.allLinear && !hits[AllLinear] {
		missing = append(missing, fmt.Sprintf("%q", AllLinear))
	}
	for _, s := range cfg.ModulesToSave {
		found := false
		for _, nm := range toSave {
			found = found || strings.HasSuffix(nm.Name, s)
		}
		if !found {
			missing = append(missing, fmt.Sprintf("modules_to_save %q", s))
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("lora: %s: target %s matched no module; the model has: %s",
			op, strings.Join(missing, ", "), strings.Join(names(all), ", "))
	}

	// Pass 2: freeze all but the existing adapters, build the new ones,
	// swap them in. On failure, put back the originals, delete the new
	// adapters and restore every parameter's trainability.
	before := module.NamedParameters(model)
	var done []module.NamedModule // originals already replaced
	var installed []module.Module // their adapter layers
	var grown []*Layer            // existing adapter layers given the adapter
	rollback := func() {
		for _, m := range saved.saved {
			_ = m.drop(name)
		}
		saved.saved = nil
		defer func() { _ = syncSaved(model, nil) }()
		for i := len(done) - 1; i >= 0; i-- {
			_ = module.SetChild(model, done[i].Name, done[i].Module)
			closeAdapters(installed[i])
		}
		for _, l := range grown {
			_ = l.deleteAdapter(name)
		}
		for _, p := range before {
			_ = p.Tensor.SetRequiresGrad(p.Trainable)
		}
	}
	if err := freezeAllButAdapters(all, before); err != nil {
		rollback()
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	adapted := make([]string, 0, len(targets))
	var fio fanInFanOut
	defer fio.warn()
	shared := map[module.Module]module.Module{} // a module under several names gets one adapter layer
	for _, nm := range targets {
		r, alpha := mt.rankAlpha(&cfg, nm.Name)
		sp := adapterSpec{r: r, alpha: alpha, dropout: cfg.Dropout, rslora: cfg.UseRSLoRA, dora: cfg.UseDoRA,
			init: cfg.Init, specEmbed: !cfg.PEFTInit, peft: cfg.PEFTInit, cfg: &saved}
		if al, ok := asAdapterLayer(nm.Module); ok {
			l := al.LoraLayer()
			if slices.Contains(grown, l) {
				adapted = append(adapted, nm.Name)
				continue
			}
			fio.note(&cfg, nm.Name, l.kind)
			if err := l.addAdapter(name, sp); err != nil {
				rollback()
				return nil, nil, fmt.Errorf("lora: %s: %s: %w", op, nm.Name, err)
			}
			grown = append(grown, l)
			adapted = append(adapted, nm.Name)
			continue
		}
		repl, ok := shared[nm.Module]
		var err error
		if !ok {
			kind, _ := dispatch(nm.Module)
			fio.note(&cfg, nm.Name, kind)
			var al AdapterLayer
			if al, err = wrap(kind); err == nil {
				// The adapter layer takes the base's mode (dropout on or off).
				module.SetTraining(al, nm.Module.Registry().Training())
				if err = al.LoraLayer().addAdapter(name, sp); err != nil {
					closeAdapters(al)
				}
			}
			if err == nil {
				repl = al
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
			return nil, nil, fmt.Errorf("lora: %s: %s: %w", op, nm.Name, err)
		}
		done = append(done, nm)
		installed = append(installed, repl)
		adapted = append(adapted, nm.Name)
	}
	if err := trainExtras(model, &cfg, toSave); err != nil {
		rollback()
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	// Each module to save gets this adapter's own copy (PEFT's
	// ModulesToSaveWrapper.modules_to_save[name]).
	if err := addSavedCopies(model, name, &saved, toSave); err != nil {
		rollback()
		return nil, nil, fmt.Errorf("lora: %s: %w", op, err)
	}
	return adapted, rollback, nil
}

// trainExtras makes the biases that cfg.Bias selects and the modules to
// save trainable.
func trainExtras(model module.Module, cfg *Config, toSave []module.NamedModule) error {
	var ts []*torch.Tensor
	switch cfg.Bias {
	case "all":
		for _, p := range module.NamedParameters(model) {
			if p.Name == "bias" || strings.HasSuffix(p.Name, ".bias") {
				ts = append(ts, p.Tensor)
			}
		}
	case "lora_only":
		for _, nm := range visible(module.Modules(model)) {
			if al, ok := asAdapterLayer(nm.Module); ok && al.LoraLayer().Bias != nil {
				ts = append(ts, al.LoraLayer().Bias)
			}
		}
	}
	for _, nm := range toSave {
		ts = append(ts, module.Parameters(nm.Module, false)...)
	}
	for _, t := range ts {
		if err := t.SetRequiresGrad(true); err != nil {
			return err
		}
	}
	return nil
}

// fanInFanOut collects the targets whose layout disagrees with
// Config.FanInFanOut, for one warning per call when FanInFanOut is true
// on a layer that is not a Conv1D (PEFT warns per layer and follows the
// layer's kind, as golora does; FanInFanOut false on a Conv1D is the
// usual Go config and goes unsaid).
type fanInFanOut struct{ conv1D, other []string }

func (f *fanInFanOut) note(cfg *Config, name string, k Kind) {
	_, c1 := k.(*conv1DKind)
	switch {
	case c1 && !cfg.FanInFanOut:
		f.conv1D = append(f.conv1D, name)
	case !c1 && cfg.FanInFanOut:
		f.other = append(f.other, name)
	}
}

func (f *fanInFanOut) warn() {
	if len(f.other) > 0 {
		slog.Warn("lora: fan_in_fan_out is true but these targets are not Conv1D; using fan_in_fan_out=false for them", "modules", f.other)
	}
}

// asAdapterLayer returns m as an AdapterLayer, if it is a non-nil one.
func asAdapterLayer(m module.Module) (AdapterLayer, bool) {
	al, ok := m.(AdapterLayer)
	if !ok || isNil(m) || al.LoraLayer() == nil || al.LoraLayer().kind == nil {
		return nil, false
	}
	return al, true
}

// visible drops the modules inside adapter layers (their adapters).
func visible(all []module.NamedModule) []module.NamedModule {
	var out []module.NamedModule
	var inside []string
	for _, nm := range all {
		skip := false
		for _, p := range inside {
			if p == "" || strings.HasPrefix(nm.Name, p+".") {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		out = append(out, nm)
		if _, ok := asAdapterLayer(nm.Module); ok {
			inside = append(inside, nm.Name)
		}
	}
	return out
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
		if al, ok := asAdapterLayer(nm.Module); ok {
			for _, ad := range al.LoraLayer().adapters {
				adapters[ad.A], adapters[ad.B], adapters[ad.Magnitude] = true, true, true
			}
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
	if al, ok := asAdapterLayer(m); ok {
		for _, ad := range al.LoraLayer().adapters {
			torch.CloseAll(ad.tensors()...)
		}
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
		if _, ok := dispatch(nm.Module); ok && nm.Name != "" {
			out = append(out, nm.Name)
		}
	}
	sort.Strings(out)
	return out
}
