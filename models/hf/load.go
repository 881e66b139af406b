package hf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func errorf(format string, args ...any) error { return fmt.Errorf("hf: "+format, args...) }

// CheckpointFile returns the weights file of the checkpoint in dir:
// model.safetensors, or model.safetensors.index.json for a sharded one.
// A directory with neither (or with both) is an error that says so; one
// with only PyTorch pickles (pytorch_model.bin, *.pt, *.pth, ...) is
// refused with an error saying that pickles are never loaded and to
// convert them to safetensors.
func CheckpointFile(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", errorf("checkpoint %s: %w", dir, err)
	}
	if !st.IsDir() {
		return "", errorf("checkpoint %s: not a directory", dir)
	}
	single := filepath.Join(dir, safetensors.SingleFileName)
	index := filepath.Join(dir, safetensors.IndexFileName)
	hasSingle, hasIndex := isFile(single), isFile(index)
	switch {
	case hasSingle && hasIndex:
		return "", errorf("checkpoint %s: both %s and %s: remove one", dir, safetensors.SingleFileName, safetensors.IndexFileName)
	case hasSingle:
		return single, nil
	case hasIndex:
		return index, nil
	}
	if pickles := safetensors.PickleFiles(dir); len(pickles) > 0 {
		return "", errorf("checkpoint %w", safetensors.PickleError(dir, safetensors.SingleFileName, pickles))
	}
	return "", errorf("%s is not a Hugging Face checkpoint: it has no %s or %s", dir, safetensors.SingleFileName, safetensors.IndexFileName)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// LoadSpec adapts a checkpoint's key layout to a model's. The zero value
// loads keys as they are.
type LoadSpec struct {
	// Ignore are regular expressions (Go syntax, matched anywhere in the
	// key unless anchored) of checkpoint keys that the model does not use,
	// such as `embeddings\.position_ids$` or `attn\.masked_bias$`. Matching
	// keys are not read and not reported as unexpected.
	Ignore []string

	// BasePrefix is the model's base_model_prefix in transformers
	// ("model" for Llama, "transformer" for GPT-2, "bert" for BERT).
	// A checkpoint key that names no tensor of the model loads into
	// BasePrefix+"."+key when that names one (a base-model checkpoint, such
	// as GPT2Model's "h.0.attn.c_attn.weight", into a model with a head),
	// and a key that starts with BasePrefix+"." loads into the rest of the
	// key when that names one (a checkpoint with a head into the base
	// model; the head's keys then need Ignore).
	BasePrefix string

	// Transform, when set, rewrites each tensor after it is read, by the
	// model's name for it: GPT-2's Conv1D weights, stored in×out, are
	// transposed for Linear layers. It returns t itself or a new tensor
	// (which the model then holds: do not return a tensor owned by
	// someone else). Shapes are checked after the transform.
	Transform func(name string, t *torch.Tensor) *torch.Tensor
}

// LoadError lists what did not match between a checkpoint and a model.
// Nothing is loaded when it is returned.
type LoadError struct {
	Path       string   // the checkpoint file
	Missing    []string // in the model, not in the checkpoint
	Unexpected []string // in the checkpoint, not in the model (nor ignored)
	Misshaped  []string // "name: model [4 3], checkpoint [3 4]"
	Mistyped   []string // "name: model int64, checkpoint F32"
}

// Error names every problem (at most 20 keys of each kind).
func (e *LoadError) Error() string {
	var parts []string
	add := func(label string, keys []string, sep string) {
		if len(keys) == 0 {
			return
		}
		shown := keys
		more := ""
		if len(shown) > 20 {
			shown, more = shown[:20], fmt.Sprintf("%s… and %d more", sep, len(keys)-20)
		}
		parts = append(parts, label+strings.Join(shown, sep)+more)
	}
	add("missing weights: ", e.Missing, ", ")
	add("unexpected weights: ", e.Unexpected, ", ")
	add("shape mismatch: ", e.Misshaped, "; ")
	add("dtype mismatch: ", e.Mistyped, "; ")
	return "hf: load " + e.Path + ": " + strings.Join(parts, "; ")
}

func (e *LoadError) empty() bool {
	return len(e.Missing)+len(e.Unexpected)+len(e.Misshaped)+len(e.Mistyped) == 0
}

// LoadWeights loads the checkpoint in dir (model.safetensors, or the
// shards named by model.safetensors.index.json) into m by transformers'
// state-dict names, converting floating-point tensors to o.DType and
// putting every tensor on o.Device. ignore are regular expressions of
// checkpoint keys that the model does not use (see LoadSpec.Ignore).
// It is LoadWeightsWith(dir, m, o, LoadSpec{Ignore: ignore}).
func LoadWeights(dir string, m module.Module, o Options, ignore ...string) error {
	return LoadWeightsWith(dir, m, o, LoadSpec{Ignore: ignore})
}

// target is one tensor of the model and every name it has (tied weights
// have several, the first as module.StateDict names it).
type target struct {
	t     *torch.Tensor
	names []string
	key   string // the checkpoint key assigned to it
	name  string // the model name that key resolved to
}

// LoadWeightsWith is LoadWeights with a LoadSpec.
//
// The load is strict and all or nothing: every persistent tensor of m
// (parameters and persistent buffers) must be in the checkpoint with its
// shape and a compatible dtype (floating point for floating point, integer
// for integer), and every checkpoint key must be used, ignored, or name a
// non-persistent buffer of m (old Llama checkpoints carry
// rotary_emb.inv_freq, GPT-2's the attention mask: such keys are skipped,
// as transformers does). A tied weight needs only one of its names in the
// checkpoint (transformers saves a tied lm_head.weight under the embedding's
// name only); a checkpoint that has both loads the first. Otherwise a
// *LoadError lists every problem and nothing is read: names and shapes
// are checked from the headers before any data.
//
// The model's tensors keep their identity (optimizers, adapters and user
// pointers that hold them see the load): their data is replaced by the
// loaded tensors (torch's SetData, no extra copy), so they take o.DType
// and o.Device; the model's remaining tensors (non-persistent buffers)
// move to o.Device and keep their dtype.
func LoadWeightsWith(dir string, m module.Module, o Options, spec LoadSpec) error {
	if m == nil || isNilModule(m) {
		return errorf("LoadWeights: nil module")
	}
	if err := o.Validate(); err != nil {
		return err
	}
	ignore := make([]*regexp.Regexp, 0, len(spec.Ignore))
	for _, p := range spec.Ignore {
		re, err := regexp.Compile(p)
		if err != nil {
			return errorf("LoadWeights: ignore pattern %q: %w", p, err)
		}
		ignore = append(ignore, re)
	}
	path, err := CheckpointFile(dir)
	if err != nil {
		return err
	}

	// Every name of every tensor of m, aliases included.
	byName := map[string]*target{}
	var targets []*target
	byTensor := map[*torch.Tensor]*target{}
	transient := map[string]bool{}
	addName := func(name string, t *torch.Tensor) {
		tg := byTensor[t]
		if tg == nil {
			tg = &target{t: t}
			byTensor[t] = tg
			targets = append(targets, tg)
		}
		tg.names = append(tg.names, name)
		byName[name] = tg
	}
	sd := module.StateDict(m)
	for _, nm := range module.Modules(m) {
		prefix := ""
		if nm.Name != "" {
			prefix = nm.Name + "."
		}
		reg := nm.Module.Registry()
		for _, p := range reg.NamedParameters() {
			if !strings.Contains(p.Name, ".") {
				addName(prefix+p.Name, p.Tensor)
			}
		}
		for _, b := range reg.NamedBuffers() {
			if strings.Contains(b.Name, ".") {
				continue
			}
			if b.Persistent {
				addName(prefix+b.Name, b.Tensor)
			} else {
				transient[prefix+b.Name] = true
			}
		}
	}
	// The first name of each tensor is the state dict's.
	for _, tg := range targets {
		for i, n := range tg.names {
			if _, ok := sd[n]; ok {
				tg.names[0], tg.names[i] = tg.names[i], tg.names[0]
				break
			}
		}
	}

	r, err := safetensors.OpenAny(path)
	if err != nil {
		return errorf("load %s: %w", path, err)
	}
	infos := map[string]safetensors.Info{}
	e := &LoadError{Path: path}
	resolve := func(key string) string {
		if byName[key] != nil {
			return key
		}
		if spec.BasePrefix != "" {
			if n := spec.BasePrefix + "." + key; byName[n] != nil {
				return n
			}
			if rest, ok := strings.CutPrefix(key, spec.BasePrefix+"."); ok && byName[rest] != nil {
				return rest
			}
		}
		return ""
	}
keys:
	for _, key := range r.Names() {
		for _, re := range ignore {
			if re.MatchString(key) {
				continue keys
			}
		}
		name := resolve(key)
		if name == "" {
			if transient[key] || (spec.BasePrefix != "" && (transient[spec.BasePrefix+"."+key] ||
				transient[strings.TrimPrefix(key, spec.BasePrefix+".")])) {
				continue
			}
			e.Unexpected = append(e.Unexpected, key)
			continue
		}
		tg := byName[name]
		if tg.key != "" {
			// Two keys for one tensor (tied names, or a key with and
			// without the base prefix): the state dict's name wins.
			if name != tg.names[0] || tg.name == tg.names[0] {
				continue
			}
		}
		info, _ := r.Info(key)
		infos[key] = info
		tg.key, tg.name = key, name
	}
	r.Close()
	for _, tg := range targets {
		if tg.key == "" {
			e.Missing = append(e.Missing, tg.names[0])
			continue
		}
		info := infos[tg.key]
		if !dtypeCompatible(tg.t.DType(), info.DType) {
			e.Mistyped = append(e.Mistyped, fmt.Sprintf("%s: model %v, checkpoint %s", tg.key, tg.t.DType(), info.DType))
		}
		if spec.Transform == nil && !slices.Equal(tg.t.Shape(), info.Shape) {
			e.Misshaped = append(e.Misshaped, fmt.Sprintf("%s: model %v, checkpoint %v", tg.key, tg.t.Shape(), info.Shape))
		}
	}
	if !e.empty() {
		slices.Sort(e.Unexpected)
		return e
	}

	want := map[string]bool{}
	for _, tg := range targets {
		want[tg.key] = true
	}
	loaded, _, err := torch.LoadSafetensors(path, torch.LoadAs(o.DType), torch.LoadTo(o.Device),
		torch.LoadOnly(func(k string) bool { return want[k] }))
	if err != nil {
		return errorf("load %s: %w", path, err)
	}
	defer torch.CloseMap(loaded)
	data := make([]*torch.Tensor, len(targets))
	var made []*torch.Tensor // tensors the transform made
	defer func() { torch.CloseAll(made...) }()
	for i, tg := range targets {
		t := loaded[tg.key]
		if t == nil {
			return errorf("load %s: tensor %q was not read", path, tg.key)
		}
		if spec.Transform != nil {
			u := spec.Transform(tg.name, t)
			if u != t {
				made = append(made, u)
				if u == nil || u.Err() != nil {
					var uerr error = errors.New("nil tensor")
					if u != nil {
						uerr = u.Err()
					}
					return errorf("load %s: transform of %q: %w", path, tg.key, uerr)
				}
				c := u.Contiguous()
				made = append(made, c)
				if c.Err() != nil {
					return errorf("load %s: transform of %q: %w", path, tg.key, c.Err())
				}
				u = c
			}
			if !slices.Equal(tg.t.Shape(), u.Shape()) {
				e.Misshaped = append(e.Misshaped, fmt.Sprintf("%s: model %v, checkpoint %v (after the transform)", tg.key, tg.t.Shape(), u.Shape()))
			}
			if !sameKind(tg.t.DType(), u.DType()) {
				e.Mistyped = append(e.Mistyped, fmt.Sprintf("%s: model %v, checkpoint %v (after the transform)", tg.key, tg.t.DType(), u.DType()))
			}
			t = u
		}
		if !t.DType().IsFloat() && t.DType() != tg.t.DType() {
			c := t.To(tg.t.DType())
			made = append(made, c)
			if c.Err() != nil {
				return errorf("load %s: %q: %w", path, tg.key, c.Err())
			}
			t = c
		}
		data[i] = t
	}
	if !e.empty() {
		return e
	}
	for i, tg := range targets {
		if err := tg.t.SetData(data[i]); err != nil {
			return errorf("load %s: %q: %w", path, tg.key, err)
		}
	}
	if err := module.To(m, o.Device); err != nil {
		return errorf("load %s: moving the model to %v: %w", path, o.Device, err)
	}
	return nil
}

// isNilModule reports a typed nil pointer inside a Module interface.
func isNilModule(m module.Module) (isNil bool) {
	defer func() {
		if recover() != nil {
			isNil = true
		}
	}()
	return m.Registry() == nil
}

func dtypeCompatible(model torch.DType, st string) bool {
	switch st {
	case safetensors.F32, safetensors.F64, safetensors.F16, safetensors.BF16:
		return model.IsFloat()
	case safetensors.Bool:
		return model == torch.Bool
	default:
		return !model.IsFloat() && model != torch.Bool
	}
}

func sameKind(a, b torch.DType) bool {
	switch {
	case a.IsFloat() || b.IsFloat():
		return a.IsFloat() && b.IsFloat()
	case a == torch.Bool || b == torch.Bool:
		return a == b
	}
	return true
}
