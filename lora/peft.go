package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// PEFT's file names and key prefix.
const (
	ConfigFile   = "adapter_config.json"
	WeightsFile  = "adapter_model.safetensors"
	peftPrefix   = "base_model.model."
	peftVersion  = "0.21.2" // the PEFT version whose format this writes
	peftTypeLoRA = "LORA"
)

// adapterDir returns where adapter name lives under dir: dir itself for
// "default", dir/<name> otherwise (PEFT's save_pretrained layout).
func adapterDir(dir, name string) (string, error) {
	if err := checkAdapterName(name); err != nil {
		return "", err
	}
	if name == DefaultAdapter {
		return dir, nil
	}
	p := filepath.Join(dir, name)
	if rel, err := filepath.Rel(dir, p); err != nil || rel != name {
		return "", fmt.Errorf("adapter name %q escapes the directory", name)
	}
	return p, nil
}

// peftKeys returns PEFT's keys for adapter ad of the layer at path, with
// the tensors they hold: lora_A.weight / lora_B.weight (Linear, Conv1D,
// Conv2d), lora_embedding_A / lora_embedding_B (Embedding, no .weight),
// lora_magnitude_vector (DoRA).
func peftKeys(path string, l *Layer, ad *Adapter) map[string]*torch.Tensor {
	p := peftPrefix + path + "."
	out := map[string]*torch.Tensor{}
	if _, ok := l.kind.(*embeddingKind); ok {
		out[p+"lora_embedding_A"], out[p+"lora_embedding_B"] = ad.A, ad.B
	} else {
		out[p+"lora_A.weight"], out[p+"lora_B.weight"] = ad.A, ad.B
	}
	if ad.dora {
		out[p+"lora_magnitude_vector"] = ad.Magnitude
	}
	return out
}

// adapterState returns every tensor of adapter name in PEFT's keys: the
// adapters, the trained biases (cfg.Bias) and the modules to save.
func adapterState(model module.Module, name string, cfg *Config) (map[string]*torch.Tensor, error) {
	out := map[string]*torch.Tensor{}
	paths := layerPaths(model)
	for _, nl := range paths {
		l := nl.Layer.LoraLayer()
		if ad := l.Adapter(name); ad != nil {
			for k, v := range peftKeys(nl.Name, l, ad) {
				out[k] = v
			}
			if cfg.Bias == "lora_only" && l.Bias != nil {
				out[peftPrefix+nl.Name+".base_layer.bias"] = l.Bias
			}
		}
	}
	if cfg.Bias == "all" {
		inLayer := map[*torch.Tensor]string{}
		for _, nl := range paths {
			if b := nl.Layer.LoraLayer().Bias; b != nil {
				inLayer[b] = nl.Name
			}
		}
		for _, p := range module.NamedParameters(model) {
			if p.Name != "bias" && !strings.HasSuffix(p.Name, ".bias") {
				continue
			}
			if lp, ok := inLayer[p.Tensor]; ok {
				out[peftPrefix+lp+".base_layer.bias"] = p.Tensor
			} else {
				out[peftPrefix+p.Name] = p.Tensor
			}
		}
	}
	// The adapter's own copies of the modules to save (the config the
	// adapter was made with knows them).
	var saved []*savedModule
	if own, _, err := configOf(model, name); err == nil {
		saved = own.saved
	}
	for _, m := range saved {
		vs := m.values(name)
		for i, n := range m.names {
			out[peftPrefix+m.path+"."+n] = vs[i]
		}
	}
	return out, nil
}

// configOf returns the config adapter name was created with.
func configOf(model module.Module, name string) (*Config, []string, error) {
	var cfg *Config
	var paths []string
	for _, nl := range layerPaths(model) {
		if ad := nl.Layer.LoraLayer().Adapter(name); ad != nil {
			if cfg == nil {
				cfg = ad.cfg
			}
			paths = append(paths, nl.Name)
		}
	}
	if cfg == nil {
		return nil, nil, fmt.Errorf("no adapter %q in the model (have %v)", name, AdapterNames(model))
	}
	return cfg, paths, nil
}

// SaveAdapter writes adapter name of model in PEFT's format, so that
// PeftModel.from_pretrained (PEFT 0.21) loads it: adapter_config.json
// and adapter_model.safetensors (metadata {"format": "pt"}) in dir for
// "default", in dir/<name> otherwise, as PEFT's save_pretrained. Keys are
// PEFT's, without the adapter name:
//
//	base_model.model.<path>.lora_A.weight      [r, in] (Conv2d [r, in, kh, kw])
//	base_model.model.<path>.lora_B.weight      [out, r] (Conv2d [out, r, 1, 1])
//	base_model.model.<path>.lora_embedding_A   [r, num]
//	base_model.model.<path>.lora_embedding_B   [dim, r]
//	base_model.model.<path>.lora_magnitude_vector  DoRA: [out] ([1, out, 1, 1] for Conv2d)
//	base_model.model.<path>.<param>            modules to save; trained biases
//
// Each file is written atomically (internal/atomicfile: a temporary
// ".<name>.tmp-<digits>" file, fsynced, renamed over the file, the
// directory fsynced), adapter_model.safetensors first and
// adapter_config.json last, so that the config's presence marks a
// complete adapter. On an error, each file holds either its previous
// content or the new one, whole. The pair is not replaced as one: a crash
// between the two renames leaves the new weights beside the previous
// adapter_config.json (or none, in a new directory, which LoadAdapter
// refuses). LoadAdapter refuses such a pair when the shapes disagree (a
// new r or new targets); with the same shapes it would load the new
// weights under the previous config's scaling. Save again after a crash.
func SaveAdapter(model module.Module, dir, name string) error {
	if isNil(model) {
		return fmt.Errorf("lora: SaveAdapter: model is nil (%T)", model)
	}
	out, err := adapterDir(dir, name)
	if err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	cfg, paths, err := configOf(model, name)
	if err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	state, err := adapterState(model, name, cfg)
	if err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	js, err := json.MarshalIndent(peftConfigJSON(model, name, cfg, paths), "", "  ")
	if err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	// Detached contiguous handles: the file gets the values, not autograd.
	s := torch.NewScope()
	defer s.Close()
	ts := make(map[string]*torch.Tensor, len(state))
	for k, v := range state {
		ts[k] = s.Own(v.Detach()).Contiguous()
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	if err := torch.SaveSafetensors(filepath.Join(out, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(out, ConfigFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("lora: SaveAdapter: %w", err)
	}
	return nil
}

// peftConfigJSON returns the 41 keys PEFT 0.21.2 writes, with this
// adapter's values.
func peftConfigJSON(model module.Module, name string, cfg *Config, paths []string) map[string]any {
	num := func(v float64) any {
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v)
		}
		return v
	}
	alpha := cfg.Alpha
	if alpha == 0 {
		alpha = float64(cfg.R)
	}
	var targets any
	switch {
	case cfg.TargetRegexp == "" && len(cfg.TargetModules) > 0 && !(len(cfg.TargetModules) == 1 && cfg.TargetModules[0] == AllLinear):
		t := slices.Clone(cfg.TargetModules)
		sort.Strings(t)
		targets = t
	case cfg.TargetRegexp != "" && cfg.TargetRegexp != AllLinear && len(cfg.TargetModules) == 0:
		targets = cfg.TargetRegexp
	default:
		// "all-linear", or a list and a regexp together: the exact paths
		// adapted, which PEFT matches one for one.
		t := slices.Clone(paths)
		sort.Strings(t)
		targets = slices.Compact(t)
	}
	var init any = true
	switch cfg.Init {
	case InitRandom:
		init = false
	case InitGaussian, InitPiSSA, InitOrthogonal:
		init = string(cfg.Init)
	}
	bias := cfg.Bias
	if bias == "" {
		bias = "none"
	}
	// The pattern keys in the order golora tries them, which PEFT keeps
	// (a dict's insertion order), so that both pick the same key.
	rank := orderedObject{}
	for _, k := range patternKeys(cfg.RankPattern, cfg.rankOrder) {
		rank = append(rank, kv{k, cfg.RankPattern[k]})
	}
	alphas := orderedObject{}
	for _, k := range patternKeys(cfg.AlphaPattern, cfg.alphaOrder) {
		alphas = append(alphas, kv{k, num(cfg.AlphaPattern[k])})
	}
	var exclude any
	switch {
	case cfg.ExcludeRegexp != "" && len(cfg.ExcludeModules) > 0:
		parts := []string{"(?:" + cfg.ExcludeRegexp + ")"}
		for _, e := range cfg.ExcludeModules {
			parts = append(parts, `(?:.*\.)?`+regexp.QuoteMeta(e))
		}
		exclude = strings.Join(parts, "|")
	case cfg.ExcludeRegexp != "":
		exclude = cfg.ExcludeRegexp
	case len(cfg.ExcludeModules) > 0:
		exclude = cfg.ExcludeModules
	}
	var layers, pattern, save, task, baseName any
	if len(cfg.LayersToTransform) > 0 {
		layers = cfg.LayersToTransform
	}
	if len(cfg.LayersPattern) > 0 {
		pattern = cfg.LayersPattern
	}
	if len(cfg.ModulesToSave) > 0 {
		save = cfg.ModulesToSave
	}
	if cfg.TaskType != "" {
		task = cfg.TaskType
	}
	if cfg.BaseModelNameOrPath != "" {
		baseName = cfg.BaseModelNameOrPath
	}
	_, hasConv1D := kindsOf(model, name)["Conv1D"]
	return map[string]any{
		"alora_invocation_tokens": nil, "alpha_pattern": alphas, "arrow_config": nil,
		"auto_mapping": nil, "base_model_name_or_path": baseName, "bias": bias,
		"corda_config": nil, "ensure_weight_tying": false, "eva_config": nil,
		"exclude_modules": exclude, "fan_in_fan_out": hasConv1D,
		"inference_mode": true, "init_lora_weights": init, "kasa_config": nil,
		"layer_replication": nil, "layers_pattern": pattern, "layers_to_transform": layers,
		"loftq_config": map[string]any{}, "lora_alpha": num(alpha), "lora_bias": false,
		"lora_dropout": cfg.Dropout, "lora_ga_config": nil, "megatron_config": nil,
		"megatron_core": "megatron.core", "modules_to_save": save, "monteclora_config": nil,
		"peft_type": peftTypeLoRA, "peft_version": peftVersion, "qalora_group_size": 16,
		"r": cfg.R, "rank_pattern": rank, "revision": nil, "target_modules": targets,
		"target_parameters": nil, "task_type": task, "trainable_token_indices": nil,
		"use_bdlora": nil, "use_dora": cfg.UseDoRA, "use_qalora": false,
		"use_rslora": cfg.UseRSLoRA, "velora_config": nil,
	}
}

// kindsOf returns the kinds of the layers holding adapter name.
func kindsOf(model module.Module, name string) map[string]bool {
	out := map[string]bool{}
	for _, nl := range Layers(model) {
		if l := nl.Layer.LoraLayer(); l.Adapter(name) != nil {
			out[l.kind.Name()] = true
		}
	}
	return out
}

// LoadOption changes how LoadAdapter treats a file that does not match.
type LoadOption func(*loadOptions)

type loadOptions struct{ lenient bool }

// Lenient makes LoadAdapter accept missing keys (those adapters keep their
// fresh init) and ignore unexpected ones, each logged as a warning, as
// PEFT does. Misshaped keys stay errors. Without it loading is strict.
func Lenient() LoadOption { return func(o *loadOptions) { o.lenient = true } }

// LoadAdapter reads adapter name in PEFT's format from dir (dir itself for
// "default", dir/<name> otherwise, as SaveAdapter and PEFT's
// save_pretrained write them) and adds it to model: it injects the adapter
// into the modules its adapter_config.json targets (as AddAdapter, with
// PEFT's embedding init) and copies the file's tensors in. The adapter
// becomes active beside those already active.
//
// Loading is strict: keys missing from the file, keys the model has no
// place for, and tensors of the wrong shape (a config r that disagrees
// with lora_A's shape is named this way) are one error listing all of
// them, and nothing is modified. Lenient relaxes the first two.
//
// Only safetensors and JSON are read: a directory with adapter_model.bin
// (a PyTorch pickle) and no adapter_model.safetensors is an error saying
// to convert it. adapter_config.json over jsonfile.MaxConfigSize (16 MiB)
// is refused unread, and an adapter name that is not a plain directory
// name ("..", "a/b", ...) is an error. A tensor whose shape differs from
// the model's, or whose dtype is not floating point where the model's is,
// is an error naming its key; floating-point dtypes convert (a bf16
// adapter loads into a float32 model, as in PEFT).
//
// adapter_config.json may hold all of PEFT 0.21's fields (it writes 41). A field that
// changes the maths and that golora does not implement (lora_bias,
// layer_replication, use_qalora, trainable_token_indices, aLoRA, ...) is
// an error; a field golora ignores is logged with log/slog.
func LoadAdapter(model module.Module, dir, name string, opts ...LoadOption) error {
	o := &loadOptions{}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if isNil(model) {
		return fmt.Errorf("lora: LoadAdapter: model is nil (%T)", model)
	}
	in, err := adapterDir(dir, name)
	if err != nil {
		return fmt.Errorf("lora: LoadAdapter: %w", err)
	}
	if _, err := os.Stat(filepath.Join(in, WeightsFile)); errors.Is(err, os.ErrNotExist) {
		if pickles := safetensors.PickleFiles(in); len(pickles) > 0 {
			return fmt.Errorf("lora: LoadAdapter: %w", safetensors.PickleError(in, WeightsFile, pickles))
		}
	}
	raw, err := jsonfile.Read(filepath.Join(in, ConfigFile), jsonfile.MaxConfigSize)
	if err != nil {
		return fmt.Errorf("lora: LoadAdapter: %w", err)
	}
	cfg, err := parsePEFTConfig(raw, filepath.Join(in, ConfigFile))
	if err != nil {
		return fmt.Errorf("lora: LoadAdapter: %w", err)
	}
	file, md, err := torch.LoadSafetensors(filepath.Join(in, WeightsFile))
	if err != nil {
		return fmt.Errorf("lora: LoadAdapter: %w", err)
	}
	defer torch.CloseMap(file)
	if f, ok := md["format"]; ok && f != "pt" {
		slog.Warn("lora: LoadAdapter: unexpected safetensors format", "format", f, "dir", in)
	}
	if err := checkRanks(cfg, file); err != nil {
		return fmt.Errorf("lora: LoadAdapter: %s: %w", in, err)
	}
	_, rollback, err := inject("LoadAdapter", model, name, *cfg)
	if err != nil {
		return err
	}
	if err := copyAdapter(model, name, cfg, file, o); err != nil {
		rollback()
		return fmt.Errorf("lora: LoadAdapter: %s: %w", in, err)
	}
	return nil
}

// rankSlack is how far the ranks of adapter_config.json may exceed the
// file's before LoadAdapter refuses them unbuilt (a smaller disagreement
// is reported key by key, after the adapters are built; a lenient load
// may build adapters the file lacks).
const rankSlack = 4096

// checkRanks bounds the ranks adapter_config.json gives (r and
// rank_pattern's) by the file's, before the adapters are built: a small
// config that claims r = 10⁹ must fail before a lora_A of 10⁹ rows is
// allocated. No rank may exceed both rankSlack and the rows of the
// largest lora_A (or lora_embedding_A) in the file.
func checkRanks(cfg *Config, file map[string]*torch.Tensor) error {
	var most int64
	for k, t := range file {
		if strings.HasSuffix(k, ".lora_A.weight") || strings.HasSuffix(k, ".lora_embedding_A") {
			if s := t.Shape(); len(s) > 0 {
				most = max(most, s[0])
			}
		}
	}
	limit := max(most, rankSlack)
	var bad []string
	if cfg.R > limit {
		bad = append(bad, fmt.Sprintf("r = %d", cfg.R))
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.RankPattern)) {
		if r := cfg.RankPattern[k]; r > limit {
			bad = append(bad, fmt.Sprintf("rank_pattern[%q] = %d", k, r))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the adapter file does not match the model (nothing loaded): adapter_config.json's %s, but the file's largest lora_A has %d rows",
			strings.Join(bad, ", "), most)
	}
	return nil
}

// copyAdapter checks file against the places of adapter name in model and
// copies it in, all or nothing.
func copyAdapter(model module.Module, name string, cfg *Config, file map[string]*torch.Tensor, o *loadOptions) error {
	want, err := adapterState(model, name, cfg)
	if err != nil {
		return err
	}
	var missing, unexpected, misshaped []string
	for k, dst := range want {
		src, ok := file[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		ds, ss := dst.Shape(), src.Shape()
		if !slices.Equal(ds, ss) {
			msg := fmt.Sprintf("%s: model %v, file %v", k, ds, ss)
			if strings.HasSuffix(k, "lora_A.weight") || strings.HasSuffix(k, "lora_embedding_A") {
				msg += fmt.Sprintf(" (adapter_config.json's r gives %d, the file's tensor has %d)", ds[0], ss[0])
			}
			misshaped = append(misshaped, msg)
		}
		if src.DType().IsFloat() != dst.DType().IsFloat() {
			misshaped = append(misshaped, fmt.Sprintf("%s: model %v, file %v", k, dst.DType(), src.DType()))
		}
	}
	// PEFT's save_pretrained (save_embedding_layers="auto") also writes an
	// adapted embedding's base weight, <path>.base_layer.weight, when the
	// target is embed_tokens or lm_head, and its loader copies it into the
	// base layer (a resized vocabulary travels that way). Do the same.
	optional := map[string]*torch.Tensor{}
	for _, nl := range layerPaths(model) {
		if _, ok := nl.Layer.(*Embedding); !ok {
			continue
		}
		if l := nl.Layer.LoraLayer(); l.Adapter(name) != nil && l.Weight != nil {
			optional[peftPrefix+nl.Name+".base_layer.weight"] = l.Weight
		}
	}
	for k, dst := range optional {
		src, ok := file[k]
		if !ok {
			continue
		}
		if ds, ss := dst.Shape(), src.Shape(); !slices.Equal(ds, ss) {
			misshaped = append(misshaped, fmt.Sprintf("%s: model %v, file %v (the base embedding PEFT saved with the adapter)", k, ds, ss))
		}
		want[k] = dst
	}
	for k := range file {
		if _, ok := want[k]; !ok {
			// PEFT's bias="all" also writes the copies inside its
			// ModulesToSaveWrapper; they duplicate <path>.bias.
			if cfg.Bias == "all" && (strings.Contains(k, ".modules_to_save.") || strings.Contains(k, ".original_module.")) {
				continue
			}
			unexpected = append(unexpected, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	sort.Strings(misshaped)
	if o.lenient {
		for _, k := range missing {
			slog.Warn("lora: LoadAdapter: missing key, the adapter keeps its initial value", "key", k)
		}
		for _, k := range unexpected {
			slog.Warn("lora: LoadAdapter: unexpected key ignored", "key", k)
		}
		missing, unexpected = nil, nil
	}
	if len(missing)+len(unexpected)+len(misshaped) > 0 {
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing keys: "+strings.Join(missing, ", "))
		}
		if len(unexpected) > 0 {
			parts = append(parts, "unexpected keys: "+strings.Join(unexpected, ", "))
		}
		if len(misshaped) > 0 {
			parts = append(parts, "misshaped: "+strings.Join(misshaped, "; "))
		}
		return fmt.Errorf("the adapter file does not match the model (nothing loaded): %s", strings.Join(parts, "; "))
	}
	// Stage conversions first, so that a failure copies nothing.
	s := torch.NewScope()
	defer s.Close()
	staged := map[*torch.Tensor]*torch.Tensor{}
	for k, dst := range want {
		if src, ok := file[k]; ok {
			staged[dst] = s.Own(src.To(dst.DType())).To(dst.Device())
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		for dst, src := range staged {
			if err := dst.Copy_(src).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// parsePEFTConfig reads PEFT's adapter_config.json into a Config. Fields
// that change the maths and are not implemented are errors; fields golora
// ignores are logged.
func parsePEFTConfig(raw []byte, where string) (*Config, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	cfg := &Config{PEFTInit: true}
	var errs []string
	get := func(k string, v any) bool {
		r, ok := m[k]
		delete(m, k)
		if !ok || string(r) == "null" {
			return false
		}
		if err := json.Unmarshal(r, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", k, err))
			return false
		}
		return true
	}
	var peftType string
	if !get("peft_type", &peftType) || peftType != peftTypeLoRA {
		return nil, fmt.Errorf("%s: peft_type is %q, not %q", where, peftType, peftTypeLoRA)
	}
	if !get("r", &cfg.R) {
		errs = append(errs, "r: missing")
	}
	var alpha float64
	if get("lora_alpha", &alpha) {
		cfg.Alpha = alpha
	} else {
		cfg.Alpha = 8 // PEFT's default
	}
	get("lora_dropout", &cfg.Dropout)
	if r, ok := m["target_modules"]; ok && string(r) != "null" {
		var s string
		if json.Unmarshal(r, &s) == nil {
			if strings.EqualFold(s, AllLinear) {
				cfg.TargetRegexp = AllLinear
			} else {
				cfg.TargetRegexp = s
			}
		} else if err := json.Unmarshal(r, &cfg.TargetModules); err != nil {
			errs = append(errs, fmt.Sprintf("target_modules: %v", err))
		}
	}
	delete(m, "target_modules")
	if r, ok := m["exclude_modules"]; ok && string(r) != "null" {
		var s string
		if json.Unmarshal(r, &s) == nil {
			cfg.ExcludeRegexp = s
		} else if err := json.Unmarshal(r, &cfg.ExcludeModules); err != nil {
			errs = append(errs, fmt.Sprintf("exclude_modules: %v", err))
		}
	}
	delete(m, "exclude_modules")
	if r, ok := m["layers_to_transform"]; ok && string(r) != "null" {
		var i int
		if json.Unmarshal(r, &i) == nil {
			cfg.LayersToTransform = []int{i}
		} else if err := json.Unmarshal(r, &cfg.LayersToTransform); err != nil {
			errs = append(errs, fmt.Sprintf("layers_to_transform: %v", err))
		}
	}
	delete(m, "layers_to_transform")
	if r, ok := m["layers_pattern"]; ok && string(r) != "null" {
		var s string
		if json.Unmarshal(r, &s) == nil {
			cfg.LayersPattern = []string{s}
		} else if err := json.Unmarshal(r, &cfg.LayersPattern); err != nil {
			errs = append(errs, fmt.Sprintf("layers_pattern: %v", err))
		}
	}
	delete(m, "layers_pattern")
	get("bias", &cfg.Bias)
	get("fan_in_fan_out", &cfg.FanInFanOut)
	get("use_rslora", &cfg.UseRSLoRA)
	get("use_dora", &cfg.UseDoRA)
	// PEFT tries the pattern keys in the file's order: keep it.
	cfg.rankOrder = jsonKeyOrder(m["rank_pattern"])
	cfg.alphaOrder = jsonKeyOrder(m["alpha_pattern"])
	get("rank_pattern", &cfg.RankPattern)
	get("alpha_pattern", &cfg.AlphaPattern)
	get("modules_to_save", &cfg.ModulesToSave)
	get("task_type", &cfg.TaskType)
	get("base_model_name_or_path", &cfg.BaseModelNameOrPath)
	if r, ok := m["init_lora_weights"]; ok {
		var b bool
		var s string
		switch {
		case json.Unmarshal(r, &b) == nil:
			if !b {
				cfg.Init = InitRandom
			}
		case json.Unmarshal(r, &s) == nil:
			switch Init(strings.ToLower(s)) {
			case InitGaussian, InitOrthogonal:
				cfg.Init = Init(strings.ToLower(s))
			default:
				// PiSSA, OLoRA, CorDA, LoftQ, EVA ... only choose the
				// starting point, which the file replaces; those that
				// rewrite W0 (PiSSA, OLoRA, LoftQ, CorDA) need the base
				// they left, which golora does not rebuild.
				slog.Warn("lora: LoadAdapter: init_lora_weights only sets the initial values, which the file replaces; an init that rewrote the base weights (pissa, olora, loftq, corda) needs that residual base", "init_lora_weights", s, "config", where)
			}
		}
		delete(m, "init_lora_weights")
	}
	// Fields that change the maths and that golora does not implement.
	for _, k := range []string{"lora_bias", "use_qalora", "use_bdlora"} {
		var b bool
		if get(k, &b) && b {
			errs = append(errs, fmt.Sprintf("%s: true is not supported", k))
		}
	}
	for _, k := range []string{"layer_replication", "trainable_token_indices", "alora_invocation_tokens",
		"arrow_config", "target_parameters", "megatron_config", "monteclora_config", "velora_config", "kasa_config"} {
		r, ok := m[k]
		delete(m, k)
		if ok && string(r) != "null" && string(r) != "{}" && string(r) != "[]" {
			errs = append(errs, fmt.Sprintf("%s: %s is not supported", k, r))
		}
	}
	if r, ok := m["loftq_config"]; ok && string(r) != "null" && string(r) != "{}" {
		slog.Warn("lora: LoadAdapter: loftq_config only sets the initial values; the base must be LoftQ's", "config", where)
	}
	delete(m, "loftq_config")
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%s: %s", where, strings.Join(errs, "; "))
	}
	// Fields that do not change the forward.
	for _, k := range []string{"auto_mapping", "revision", "inference_mode", "peft_version", "megatron_core",
		"qalora_group_size", "ensure_weight_tying", "corda_config", "eva_config", "lora_ga_config"} {
		delete(m, k)
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		slog.Warn("lora: LoadAdapter: unknown adapter_config.json field ignored", "field", k, "value", string(m[k]), "config", where)
	}
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return cfg, nil
}

// jsonKeyOrder returns the keys of a JSON object in the order they appear
// (nil for anything else).
func jsonKeyOrder(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, ok := t.(string)
		if !ok {
			return keys
		}
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

type kv struct {
	k string
	v any
}

// orderedObject marshals as a JSON object with its keys in slice order.
type orderedObject []kv

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.k)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
