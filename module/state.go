package module

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/golora/golora/torch"
)

// StateDict returns m's state by dotted name: its parameters and its
// persistent buffers, each tensor once (a tied weight under its first
// name; a checkpoint that also carries the other name needs IgnoreKeys or
// a key map to load). The tensors are m's own, not copies: do not close
// them. A nil module has an empty state dict.
func StateDict(m Module) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for _, st := range tensorsOf(m) {
		if st.param || st.persistent {
			out[st.name] = st.t
		}
	}
	return out
}

// StateOption adapts a checkpoint's layout to a module's on load (Load,
// LoadPartial, LoadStateDict, LoadStateDictPartial) and back on save
// (Save).
type StateOption func(*stateOptions)

type stateOptions struct {
	keyMap        func(string) (string, bool)
	transform     func(string, *torch.Tensor) *torch.Tensor
	ignore        []string
	skipTransient bool
}

// WithKeyMap renames keys. On load, f maps a checkpoint key to the
// module's name for it (HF's "transformer.h.0.attn.c_attn.weight" to
// "h.0.attn.c_attn.weight", say); on save, f maps the module's name to the
// key written. When f returns false the key is dropped (not loaded, not
// reported as unexpected; not written). Two keys mapped to the same name
// are an error.
func WithKeyMap(f func(key string) (string, bool)) StateOption {
	return func(o *stateOptions) { o.keyMap = f }
}

// WithTransform rewrites tensors. f is called with the module's name for
// the tensor (after WithKeyMap on load, before it on save) and a detached
// handle to the tensor read (on load: the checkpoint's; on save: the
// module's), and returns the tensor to use instead, or t itself. GPT-2's
// Conv1D stores its weights in×out, so loading them into Linear layers is
//
//	module.WithTransform(func(key string, t *torch.Tensor) *torch.Tensor {
//		if strings.HasSuffix(key, "c_attn.weight") { // and c_proj, c_fc
//			return t.T()
//		}
//		return t
//	})
//
// and the same transform on Save writes GPT-2's layout back. Load
// validates shapes and dtypes after the transform. Tensors that f
// computes from t are freed when the load or save ends (f's result too,
// unless it is t); f must not return a tensor someone else owns. A failed
// result is reported under the key.
func WithTransform(f func(key string, t *torch.Tensor) *torch.Tensor) StateOption {
	return func(o *stateOptions) { o.transform = f }
}

// IgnoreKeys drops keys that match any of the glob patterns (the syntax
// of path.Match, where '*' also matches dots: "*.attn.bias" matches
// "h.0.attn.bias"). On load the patterns apply to the checkpoint's keys,
// before WithKeyMap; on save to the module's names.
func IgnoreKeys(patterns ...string) StateOption {
	return func(o *stateOptions) { o.ignore = append(o.ignore, patterns...) }
}

// SkipNonPersistent accepts, and ignores, checkpoint keys that name a
// non-persistent buffer of the module (GPT-2 checkpoints carry the causal
// mask "h.0.attn.bias" that newer code rebuilds). Without it such keys are
// unexpected, as in PyTorch's strict load_state_dict.
func SkipNonPersistent() StateOption {
	return func(o *stateOptions) { o.skipTransient = true }
}

func makeStateOptions(fn string, opts []StateOption) (stateOptions, error) {
	var o stateOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	for _, p := range o.ignore {
		if _, err := path.Match(p, ""); err != nil {
			return o, fmt.Errorf("module: %s: IgnoreKeys pattern %q: %w", fn, p, err)
		}
	}
	return o, nil
}

// mapKey returns the name WithKeyMap maps key to (key itself without a
// key map), and false when the key map drops it.
func (o *stateOptions) mapKey(key string) (string, bool) {
	if o.keyMap == nil {
		return key, true
	}
	return o.keyMap(key)
}

func (o *stateOptions) ignored(key string) bool {
	for _, p := range o.ignore {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

// StateDictError lists what did not match in a load. Nothing is changed
// when it is returned.
type StateDictError struct {
	Missing    []string // in the module, not in the state dict
	Unexpected []string // in the state dict, not in the module
	Misshaped  []string // "name: model [4 3], state dict [3 4]"
	Mistyped   []string // "name: model int64, state dict float32"
	Invalid    []string // "name: reason": nil, closed or failed tensors, failed transforms, duplicate keys
}

// Error lists the missing, unexpected, misshaped, mistyped and invalid
// keys.
func (e *StateDictError) Error() string {
	var parts []string
	add := func(label string, keys []string, sep string) {
		if len(keys) > 0 {
			parts = append(parts, label+strings.Join(keys, sep))
		}
	}
	add("missing keys: ", e.Missing, ", ")
	add("unexpected keys: ", e.Unexpected, ", ")
	add("shape mismatch: ", e.Misshaped, "; ")
	add("dtype mismatch: ", e.Mistyped, "; ")
	add("invalid: ", e.Invalid, "; ")
	return "module: LoadStateDict: " + strings.Join(parts, "; ")
}

func (e *StateDictError) empty() bool {
	return len(e.Missing)+len(e.Unexpected)+len(e.Misshaped)+len(e.Mistyped)+len(e.Invalid) == 0
}

// LoadStateDict copies sd's tensors into m's parameters and persistent
// buffers in place (they keep their identity, dtype and device; sources
// are converted). Every entry must be present with the same shape and a
// compatible dtype (floating point to floating point, integer to integer,
// bool to bool) and every key must be used; otherwise a *StateDictError
// lists what is wrong and nothing is copied. Options adapt other layouts
// (WithKeyMap, WithTransform, IgnoreKeys, SkipNonPersistent).
//
// The load is all or nothing: every key, shape and dtype is validated and
// every conversion made before the first copy. Sources are staged (cloned)
// when they live on their destination's device, so a state dict holding
// the module's own tensors, swapped or as views, loads as if it had been
// copied first. Copies record no autograd. sd's tensors are not consumed.
func LoadStateDict(m Module, sd map[string]*torch.Tensor, opts ...StateOption) error {
	return load("LoadStateDict", m, sd, true, false, opts)
}

// LoadStateDictPartial is LoadStateDict that ignores missing keys, for
// loading a pre-trained base into a model that also has adapters.
// Unexpected, misshaped and mistyped keys are still errors.
func LoadStateDictPartial(m Module, sd map[string]*torch.Tensor, opts ...StateOption) error {
	return load("LoadStateDictPartial", m, sd, false, false, opts)
}

// dtypeKind groups dtypes that a load converts between.
func dtypeKind(d torch.DType) int {
	switch {
	case d.IsFloat():
		return 1
	case d == torch.Bool:
		return 2
	case d.Valid():
		return 3
	}
	return 0
}

// load is LoadStateDict. fresh says that sd's tensors were made by the
// caller for this load and share memory with nothing (Load's file
// tensors), so they need no staging.
func load(fn string, m Module, sd map[string]*torch.Tensor, strict, fresh bool, opts []StateOption) error {
	if isNil(m) {
		return errNil(fn)
	}
	o, err := makeStateOptions(fn, opts)
	if err != nil {
		return err
	}
	entries := tensorsOf(m)
	targets := map[string]bool{}
	transient := map[string]bool{}
	for _, st := range entries {
		if st.param || st.persistent {
			targets[st.name] = true
		} else {
			transient[st.name] = true
		}
	}

	// Map the checkpoint's keys to module names.
	e := &StateDictError{}
	src := map[string]*torch.Tensor{}
	from := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(sd)) {
		if o.ignored(k) {
			continue
		}
		name, ok := o.mapKey(k)
		if !ok {
			continue
		}
		if !targets[name] {
			if !(o.skipTransient && transient[name]) {
				e.Unexpected = append(e.Unexpected, k)
			}
			continue
		}
		if prev, dup := from[name]; dup {
			e.Invalid = append(e.Invalid, fmt.Sprintf("%s: keys %q and %q both map to it", name, prev, k))
			continue
		}
		from[name] = k
		src[name] = sd[k]
	}

	// Validate every entry (after its transform) before touching any.
	s := torch.NewScope()
	defer s.Close()
	type copyOp struct {
		name     string
		dst, val *torch.Tensor
	}
	var ops []copyOp
	for _, st := range entries {
		if !targets[st.name] {
			continue
		}
		x, ok := src[st.name]
		if !ok {
			if strict {
				e.Missing = append(e.Missing, st.name)
			}
			continue
		}
		if x == nil || x.Err() != nil || x.Closed() {
			e.Invalid = append(e.Invalid, fmt.Sprintf("%s: %s", st.name, badTensor(x)))
			continue
		}
		val := s.Own(x.Detach())
		if o.transform != nil {
			out := o.transform(st.name, val)
			if out == nil || out.Err() != nil {
				e.Invalid = append(e.Invalid, fmt.Sprintf("%s: transform: %s", st.name, badTensor(out)))
				continue
			}
			if out != val {
				s.Own(out)
			}
			val = out
		}
		want, err := st.t.Size()
		if err != nil {
			e.Invalid = append(e.Invalid, fmt.Sprintf("%s: module tensor: %v", st.name, err))
			continue
		}
		got, err := val.Size()
		if err != nil {
			e.Invalid = append(e.Invalid, fmt.Sprintf("%s: %v", st.name, err))
			continue
		}
		if !slices.Equal(want, got) {
			e.Misshaped = append(e.Misshaped, fmt.Sprintf("%s: model %v, state dict %v", st.name, want, got))
			continue
		}
		if wd, gd := st.t.DType(), val.DType(); dtypeKind(wd) != dtypeKind(gd) || dtypeKind(wd) == 0 {
			e.Mistyped = append(e.Mistyped, fmt.Sprintf("%s: model %v, state dict %v", st.name, wd, gd))
			continue
		}
		ops = append(ops, copyOp{st.name, st.t, val})
	}
	sort.Strings(e.Unexpected)
	if !e.empty() {
		return e
	}

	// Stage: convert dtypes, and clone sources that may share memory with
	// a destination, so that no copy reads what another has written.
	for i := range ops {
		op := &ops[i]
		switch {
		case op.val.DType() != op.dst.DType():
			op.val = op.val.To(op.dst.DType())
		case !fresh && op.val.Device() == op.dst.Device():
			op.val = op.val.Clone()
		}
		if err := op.val.Err(); err != nil {
			return fmt.Errorf("module: %s: %s: %w", fn, op.name, err)
		}
	}

	// Copy. Same shape and dtype: nothing is left to fail but the device.
	for i, op := range ops {
		if err := op.dst.Copy_(op.val).Err(); err != nil {
			var done []string
			for _, p := range ops[:i] {
				done = append(done, p.name)
			}
			return fmt.Errorf("module: %s: %s: %w (already copied: %s)", fn, op.name, err, strings.Join(done, ", "))
		}
	}
	return nil
}

// badTensor describes a tensor that cannot be read.
func badTensor(t *torch.Tensor) string {
	switch {
	case t == nil:
		return "nil tensor"
	case t.Err() != nil:
		return t.Err().Error()
	default:
		return "closed tensor"
	}
}

// Save writes m's state dict (parameters and persistent buffers) to a
// safetensors file, replaced atomically. Options write another layout:
// IgnoreKeys and WithKeyMap see the module's names; WithTransform gets
// each tensor and returns what to write (the tensors it makes are freed
// when Save returns).
func Save(m Module, path string, metadata map[string]string, opts ...StateOption) error {
	if isNil(m) {
		return errNil("Save")
	}
	o, err := makeStateOptions("Save", opts)
	if err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	out := map[string]*torch.Tensor{}
	from := map[string]string{}
	sd := StateDict(m)
	for _, name := range slices.Sorted(maps.Keys(sd)) {
		if o.ignored(name) {
			continue
		}
		t := sd[name]
		if o.transform != nil {
			if t.Closed() {
				return fmt.Errorf("module: Save: %s: %s", name, badTensor(t))
			}
			in := s.Own(t.Detach())
			v := o.transform(name, in)
			if v == nil || v.Err() != nil {
				return fmt.Errorf("module: Save: %s: transform: %s", name, badTensor(v))
			}
			if v != in {
				s.Own(v)
			}
			t = v
		}
		key, ok := o.mapKey(name)
		if !ok {
			continue
		}
		if prev, dup := from[key]; dup {
			return fmt.Errorf("module: Save: %s and %s both map to key %q", prev, name, key)
		}
		from[key] = name
		out[key] = t
	}
	if err := torch.SaveSafetensors(path, out, metadata); err != nil {
		return fmt.Errorf("module: Save: %w", err)
	}
	return nil
}

// Load reads a safetensors file (or sharded checkpoint; see
// torch.LoadSafetensors) written by Save or by PyTorch's
// safetensors.torch.save_file into m, strictly, as LoadStateDict does:
// all or nothing. Keys that the options drop are not read.
func Load(m Module, path string, opts ...StateOption) error {
	return loadFile("Load", m, path, true, opts)
}

// LoadPartial is Load that ignores missing keys, as LoadStateDictPartial.
func LoadPartial(m Module, path string, opts ...StateOption) error {
	return loadFile("LoadPartial", m, path, false, opts)
}

func loadFile(fn string, m Module, file string, strict bool, opts []StateOption) error {
	if isNil(m) {
		return errNil(fn)
	}
	o, err := makeStateOptions(fn, opts)
	if err != nil {
		return err
	}
	keep := func(key string) bool {
		if o.ignored(key) {
			return false
		}
		_, ok := o.mapKey(key)
		return ok
	}
	sd, _, err := torch.LoadSafetensors(file, torch.LoadOnly(keep))
	if err != nil {
		return fmt.Errorf("module: %s: %w", fn, err)
	}
	defer torch.CloseMap(sd)
	if err := load(fn, m, sd, strict, true, opts); err != nil {
		return fmt.Errorf("%w (file %s)", err, file)
	}
	return nil
}
