package lora

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/golora/golora/module"
)

// Init is PEFT's init_lora_weights: how a new adapter's A and B start.
type Init string

const (
	// InitDefault is init_lora_weights=true: A kaiming-uniform (a=√5), B =
	// 0. For an Embedding, Apply with InitDefault keeps the spec's
	// convention (A ~ N(0, 1), B = 0) unless Config.PEFTInit is set;
	// PEFT's is A = 0, B ~ N(0, 1).
	InitDefault Init = ""
	// InitRandom is init_lora_weights=false: A and B both random (as
	// PEFT's freshly built layers: kaiming-uniform, randn for
	// embeddings), so the adapter changes the output from the start. For
	// tests.
	InitRandom Init = "false"
	// InitGaussian: A ~ N(0, 1/r²), B = 0 (embeddings: PEFT's A = 0, B ~
	// N(0, 1)).
	InitGaussian Init = "gaussian"
	// InitPiSSA: A and B from the top r singular triplets of W0 (W0 =
	// V·S·Uᵀ: B = V_r·√(S_r/s), A = √(S_r/s)·Uᵀ_r), and W0 ← W0 − s·B·A so
	// the output is unchanged. Linear and Conv1D only.
	InitPiSSA Init = "pissa"
	// InitOrthogonal: PEFT's orthogonal init (r even): A and B from
	// orthogonal halves of a random r×r Q, divided by 10. Linear and
	// Conv1D only.
	InitOrthogonal Init = "orthogonal"
)

// AllLinear as TargetRegexp (or as the one entry of TargetModules) targets
// every Linear and Conv1D except the output head, PEFT's "all-linear": a
// module whose last name is "lm_head" (and, with TaskType "SEQ_CLS",
// "score" or "classifier") is left out.
const AllLinear = "all-linear"

// Config says which layers of a model Apply adapts, and how. It mirrors
// PEFT's LoraConfig; the zero value of each field is PEFT's default except
// Alpha (zero means α = r, the spec's default; PEFT's is 8).
type Config struct {
	// R is the rank r of every adapter (required, > 0).
	R int64
	// Alpha is α; zero means α = r.
	Alpha float64
	// Dropout is lora_dropout, applied to the adapter's input in training.
	Dropout float64
	// TargetModules lists module names to adapt with PEFT's semantics: a
	// dotted name matches a target when it equals it or ends with
	// "."+target ("q_proj" matches "blocks.0.attn.q_proj").
	TargetModules []string
	// TargetRegexp, if set, adapts every module whose full dotted name the
	// regular expression matches entirely (PEFT's string form of
	// target_modules). It may be combined with TargetModules. AllLinear
	// means every linear layer but the output head.
	TargetRegexp string
	// ExcludeModules and ExcludeRegexp leave modules out, with the same
	// semantics as TargetModules and TargetRegexp (PEFT's exclude_modules).
	ExcludeModules []string
	ExcludeRegexp  string
	// LayersToTransform keeps only the targets inside these layer indices
	// (PEFT's layers_to_transform); the index is the number after one of
	// LayersPattern ("layers", "h", ...) in the module path, or, without a
	// pattern, the number after the second dotted name. As in PEFT it
	// filters TargetModules and AllLinear, not TargetRegexp.
	LayersToTransform []int
	LayersPattern     []string
	// Bias is PEFT's bias: "none" (or ""), "all" (every bias of the model
	// trains) or "lora_only" (the biases of adapted layers train). Trained
	// biases are saved with the adapter.
	Bias string
	// FanInFanOut is PEFT's fan_in_fan_out. golora reads the layout from
	// the layer kind (Conv1D stores its weight in×out); a value that
	// disagrees with a target's kind is corrected with a logged warning, as
	// PEFT does.
	FanInFanOut bool
	// UseRSLoRA scales by α/√r instead of α/r.
	UseRSLoRA bool
	// UseDoRA adds a magnitude vector per output (Linear, Conv1D, Conv2d).
	UseDoRA bool
	// Init is init_lora_weights.
	Init Init
	// PEFTInit creates adapters exactly as PEFT 0.21's update_layer does:
	// its random draws in its order (first the init of the freshly built
	// lora_A and lora_B layers: kaiming-uniform for Linear, Conv1D and
	// Conv2d, randn for Embedding; then the Init variant's) and its
	// embedding convention under InitDefault (A = 0, B ~ N(0, 1) instead
	// of the spec's A ~ N(0, 1), B = 0). A seeded PEFT script and a Go
	// program seeded alike (torch.ManualSeed) then start from the same A
	// and B. Without it each adapter draws only what its init needs.
	// LoadAdapter's configs set it.
	PEFTInit bool
	// RankPattern and AlphaPattern override R and Alpha for modules whose
	// path matches a key as PEFT's get_pattern_key does: the regular
	// expression `(.*\.)?(key)$` against the full path. Where several keys
	// match, PEFT takes the first in its dict's order. A config read by
	// LoadAdapter keeps adapter_config.json's order; keys set in Go (a map
	// has no order) come after those, longest first, and SaveAdapter writes
	// the keys in the order golora tries them, so that PEFT picks the same.
	RankPattern  map[string]int64
	AlphaPattern map[string]float64

	// rankOrder and alphaOrder are the pattern keys' order in the
	// adapter_config.json a config was read from.
	rankOrder, alphaOrder []string
	// ModulesToSave lists modules (PEFT's matching: the path ends with the
	// name, a plain suffix) that train fully and are saved with the
	// adapter, such as a classifier head. As in PEFT, each adapter gets its
	// own copy of the module's values, made from the original; the active
	// adapter's copy is what the module computes with and trains, the
	// original (frozen) when no active adapter has one. The module stays
	// in place and its parameters keep their identity: switching adapters
	// (SetAdapter, DeleteAdapter, WithAdaptersDisabled) points them at
	// another copy with SetData and copies nothing. Two active adapters
	// with copies of one module are an error (as in PEFT), and so is a
	// mixed batch whose samples need different copies. An optimizer's
	// state for these parameters is shared by the copies: switch adapters
	// between training runs, not within one. Unload and MergeAndUnload
	// keep the active copy's values.
	ModulesToSave []string

	// saved holds the modules to save that this adapter has a copy of
	// (set by Apply on the adapter's own copy of the Config).
	saved []*savedModule
	// TaskType and BaseModelNameOrPath are written to adapter_config.json.
	TaskType            string
	BaseModelNameOrPath string
}

// matcher is a compiled Config.
type matcher struct {
	targets, excludes []string
	re, exRe          *regexp.Regexp
	allLinear         bool
	layers            map[int]bool
	layerRes          []*regexp.Regexp
	save, saveSub     []*regexp.Regexp
	rankPat           []patternRe
	alphaPat          []patternRe
}

type patternRe struct {
	key string
	re  *regexp.Regexp
}

func compileConfig(cfg *Config) (*matcher, error) {
	m := &matcher{targets: cfg.TargetModules, excludes: cfg.ExcludeModules}
	var err error
	if cfg.TargetRegexp == AllLinear || (len(cfg.TargetModules) == 1 && cfg.TargetModules[0] == AllLinear) {
		m.allLinear = true
		if len(cfg.TargetModules) == 1 && cfg.TargetModules[0] == AllLinear {
			m.targets = nil
		}
	} else if cfg.TargetRegexp != "" {
		if m.re, err = regexp.Compile("^(?:" + cfg.TargetRegexp + ")$"); err != nil {
			return nil, fmt.Errorf("TargetRegexp: %w", err)
		}
	}
	if cfg.ExcludeRegexp != "" {
		if m.exRe, err = regexp.Compile("^(?:" + cfg.ExcludeRegexp + ")$"); err != nil {
			return nil, fmt.Errorf("ExcludeRegexp: %w", err)
		}
	}
	if len(cfg.LayersToTransform) > 0 {
		m.layers = map[int]bool{}
		for _, i := range cfg.LayersToTransform {
			m.layers[i] = true
		}
		if len(cfg.LayersPattern) == 0 {
			m.layerRes = []*regexp.Regexp{regexp.MustCompile(`^.*?\.[^.]*\.(\d+)\.`)}
		}
		for _, p := range cfg.LayersPattern {
			re, err := regexp.Compile(`^(?:|.*?\.)` + p + `\.(\d+)\.`)
			if err != nil {
				return nil, fmt.Errorf("LayersPattern %q: %w", p, err)
			}
			m.layerRes = append(m.layerRes, re)
		}
	}
	for _, s := range cfg.ModulesToSave {
		// PEFT's _set_trainable: the path ends with the name (a plain
		// suffix, so "classifier" also takes "my_classifier").
		re, err := regexp.Compile(regexp.QuoteMeta(s) + `$`)
		if err != nil {
			return nil, fmt.Errorf("ModulesToSave %q: %w", s, err)
		}
		m.save = append(m.save, re)
		// PEFT keeps a module to save and everything inside it out of the
		// targets.
		m.saveSub = append(m.saveSub, regexp.MustCompile(`^(?:|.*\.)`+regexp.QuoteMeta(s)+`(?:$|\..*)`))
	}
	for k := range cfg.RankPattern {
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err != nil {
			return nil, fmt.Errorf("RankPattern %q: %w", k, err)
		}
		m.rankPat = append(m.rankPat, patternRe{k, re})
	}
	for k := range cfg.AlphaPattern {
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
		if err != nil {
			return nil, fmt.Errorf("AlphaPattern %q: %w", k, err)
		}
		m.alphaPat = append(m.alphaPat, patternRe{k, re})
	}
	orderPatterns(m.rankPat, cfg.rankOrder)
	orderPatterns(m.alphaPat, cfg.alphaOrder)
	return m, nil
}

// patternKeys returns a pattern map's keys in the order they are tried:
// first those of order (a file's order) that the map has, then the rest,
// longest first, then by name.
func patternKeys[V any](pat map[string]V, order []string) []string {
	keys := make([]string, 0, len(pat))
	seen := map[string]bool{}
	for _, k := range order {
		if _, ok := pat[k]; ok && !seen[k] {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range pat {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Slice(rest, func(i, j int) bool {
		if len(rest[i]) != len(rest[j]) {
			return len(rest[i]) > len(rest[j])
		}
		return rest[i] < rest[j]
	})
	return append(keys, rest...)
}

// orderPatterns sorts ps into the order in which they are tried: order's
// keys first, the rest longest first (see patternKeys).
func orderPatterns(ps []patternRe, order []string) {
	pos := map[string]int{}
	set := map[string]struct{}{}
	for _, p := range ps {
		set[p.key] = struct{}{}
	}
	for i, k := range patternKeys(set, order) {
		pos[k] = i
	}
	sort.Slice(ps, func(i, j int) bool { return pos[ps[i].key] < pos[ps[j].key] })
}

// suffixMatch is PEFT's list semantics: equal, or ends with "."+t.
func suffixMatch(name, t string) bool {
	return name == t || strings.HasSuffix(name, "."+t)
}

// excluded reports whether name is excluded or a module to save.
func (m *matcher) excluded(name string) bool {
	for _, e := range m.excludes {
		if suffixMatch(name, e) {
			return true
		}
	}
	if m.exRe != nil && m.exRe.MatchString(name) {
		return true
	}
	for _, re := range m.saveSub {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

func (m *matcher) toSave(name string) bool {
	for _, re := range m.save {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// inLayers applies LayersToTransform.
func (m *matcher) inLayers(name string) bool {
	if m.layers == nil {
		return true
	}
	for _, re := range m.layerRes {
		if sm := re.FindStringSubmatch(name); sm != nil {
			var i int
			fmt.Sscan(sm[1], &i)
			return m.layers[i]
		}
	}
	return false
}

// isHead reports whether name is an output head that "all-linear" skips.
func isHead(name, task string) bool {
	last := name[strings.LastIndex(name, ".")+1:]
	if last == "lm_head" {
		return true
	}
	return task == "SEQ_CLS" && (last == "score" || last == "classifier")
}

// rankAlpha returns r and α for module name, after the patterns.
func (m *matcher) rankAlpha(cfg *Config, name string) (int64, float64) {
	r, alpha := cfg.R, cfg.Alpha
	for _, p := range m.rankPat {
		if p.re.MatchString(name) {
			r = cfg.RankPattern[p.key]
			break
		}
	}
	for _, p := range m.alphaPat {
		if p.re.MatchString(name) {
			alpha = cfg.AlphaPattern[p.key]
			break
		}
	}
	if alpha == 0 {
		alpha = float64(r)
	}
	return r, alpha
}

// isLinearKind reports whether m is a Linear or Conv1D (or an adapter layer
// of one), for "all-linear".
func isLinearKind(m module.Module) bool {
	switch m.(type) {
	case *module.Linear, *module.Conv1D, *Linear, *Conv1D:
		return true
	}
	return false
}
