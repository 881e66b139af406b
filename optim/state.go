package optim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/golora/golora/torch"
)

// The layout of a saved optimizer state (StateDict, Save):
//
//	tensors   state.<param name>.<slot>   slot: step, exp_avg, exp_avg_sq,
//	                                      max_exp_avg_sq, momentum_buffer
//	metadata  optim.format        "1"
//	          optim.algorithm     "SGD", "Adam" or "AdamW"
//	          optim.param_groups  JSON list, one object per group: name,
//	                              params (names), and PyTorch's
//	                              hyperparameter keys (lr, betas, ...)
const (
	// StatePrefix starts the key of every state tensor.
	StatePrefix = "state."
	// MetaFormat, MetaAlgorithm and MetaGroups are the metadata keys.
	MetaFormat    = "optim.format"
	MetaAlgorithm = "optim.algorithm"
	MetaGroups    = "optim.param_groups"

	formatVersion = "1"
)

// groupJSON is one element of optim.param_groups; the pointer fields an
// algorithm does not have are nil (and left out).
type groupJSON struct {
	Name        string      `json:"name"`
	Params      []string    `json:"params"`
	LR          *float64    `json:"lr"`
	Momentum    *float64    `json:"momentum,omitempty"`
	Dampening   *float64    `json:"dampening,omitempty"`
	Nesterov    *bool       `json:"nesterov,omitempty"`
	Betas       *[2]float64 `json:"betas,omitempty"`
	Eps         *float64    `json:"eps,omitempty"`
	AMSGrad     *bool       `json:"amsgrad,omitempty"`
	WeightDecay *float64    `json:"weight_decay"`
	Maximize    *bool       `json:"maximize"`
}

func ptr[T any](v T) *T { return &v }

func toJSON(a algo, name string, params []string, h Hyper) groupJSON {
	g := groupJSON{Name: name, Params: params, LR: ptr(h.LR), WeightDecay: ptr(h.WeightDecay), Maximize: ptr(h.Maximize)}
	if a == sgd {
		g.Momentum, g.Dampening, g.Nesterov = ptr(h.Momentum), ptr(h.Dampening), ptr(h.Nesterov)
	} else {
		g.Betas, g.Eps, g.AMSGrad = &[2]float64{h.Beta1, h.Beta2}, ptr(h.Eps), ptr(h.AMSGrad)
	}
	return g
}

// fromJSON returns g's hyperparameters for algorithm a; every key of a
// must be there and no other.
func fromJSON(a algo, g groupJSON) (Hyper, error) {
	var h Hyper
	var missing, extra []string
	need := func(present bool, key string) bool {
		if !present {
			missing = append(missing, key)
		}
		return present
	}
	reject := func(present bool, key string) {
		if present {
			extra = append(extra, key)
		}
	}
	if need(g.LR != nil, "lr") {
		h.LR = *g.LR
	}
	if need(g.WeightDecay != nil, "weight_decay") {
		h.WeightDecay = *g.WeightDecay
	}
	if need(g.Maximize != nil, "maximize") {
		h.Maximize = *g.Maximize
	}
	if a == sgd {
		if need(g.Momentum != nil, "momentum") {
			h.Momentum = *g.Momentum
		}
		if need(g.Dampening != nil, "dampening") {
			h.Dampening = *g.Dampening
		}
		if need(g.Nesterov != nil, "nesterov") {
			h.Nesterov = *g.Nesterov
		}
		reject(g.Betas != nil, "betas")
		reject(g.Eps != nil, "eps")
		reject(g.AMSGrad != nil, "amsgrad")
	} else {
		if need(g.Betas != nil, "betas") {
			h.Beta1, h.Beta2 = g.Betas[0], g.Betas[1]
		}
		if need(g.Eps != nil, "eps") {
			h.Eps = *g.Eps
		}
		if need(g.AMSGrad != nil, "amsgrad") {
			h.AMSGrad = *g.AMSGrad
		}
		reject(g.Momentum != nil, "momentum")
		reject(g.Dampening != nil, "dampening")
		reject(g.Nesterov != nil, "nesterov")
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("keys that %v does not have: %s", a, strings.Join(extra, ", ")))
	}
	if len(errs) > 0 {
		return h, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return h, validate(a, h)
}

func stateKey(name string, slot int) string {
	return StatePrefix + name + "." + torch.StateSlotNames[slot]
}

func (o *optimizer) StateDict() (map[string]*torch.Tensor, map[string]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fn := o.op("StateDict")
	if o.closed {
		return nil, nil, fmt.Errorf("optim: %s: %w", fn, errClosed)
	}
	tensors := map[string]*torch.Tensor{}
	for i := range o.params {
		st, err := o.fused.State(i)
		if err != nil {
			torch.CloseMap(tensors)
			return nil, nil, o.paramErr(fn, i, err)
		}
		for s, t := range st {
			if t != nil {
				tensors[stateKey(o.names[i], s)] = t
			}
		}
	}
	meta, err := o.metadata()
	if err != nil {
		torch.CloseMap(tensors)
		return nil, nil, fmt.Errorf("optim: %s: %w", fn, err)
	}
	return tensors, meta, nil
}

func (o *optimizer) metadata() (map[string]string, error) {
	gs := make([]groupJSON, len(o.groups))
	for i, g := range o.groups {
		gs[i] = toJSON(o.algo, g.name, nonNil(o.names[g.first:g.first+g.n]), g.hyper)
	}
	b, err := json.Marshal(gs)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		MetaFormat:    formatVersion,
		MetaAlgorithm: o.algo.String(),
		MetaGroups:    string(b),
	}, nil
}

// listKeys formats keys for a message: sorted, at most 20, with a count.
func listKeys(keys []string) string {
	sort.Strings(keys)
	const max = 20
	if len(keys) <= max {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s, ... (%d in all)", strings.Join(keys[:max], ", "), len(keys))
}

// wantSlots returns the state slots a parameter with state has under h:
// required and allowed are the same set.
func wantSlots(a algo, h Hyper) []int {
	if a == sgd {
		if h.Momentum != 0 {
			return []int{torch.StateMomentum}
		}
		return nil
	}
	s := []int{torch.StateStep, torch.StateExpAvg, torch.StateExpAvgSq}
	if h.AMSGrad {
		s = append(s, torch.StateMaxExpAvgSq)
	}
	return s
}

func (o *optimizer) LoadStateDict(tensors map[string]*torch.Tensor, metadata map[string]string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	fn := o.op("LoadStateDict")
	if o.closed {
		return fmt.Errorf("optim: %s: %w", fn, errClosed)
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("optim: %s: "+format, append([]any{fn}, args...)...)
	}
	// Metadata: format, algorithm, groups.
	if v := metadata[MetaFormat]; v != formatVersion {
		if v == "" {
			return errf("no %q metadata: not an optimizer state written by golora", MetaFormat)
		}
		return errf("state format %q, this golora reads %q", v, formatVersion)
	}
	if v := metadata[MetaAlgorithm]; v != o.algo.String() {
		return errf("the state is of %q, this optimizer is %v", v, o.algo)
	}
	var gs []groupJSON
	dec := json.NewDecoder(bytes.NewReader([]byte(metadata[MetaGroups])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gs); err != nil {
		return errf("metadata %q: %v", MetaGroups, err)
	}
	if len(gs) != len(o.groups) {
		return errf("the state has %d parameter groups, this optimizer %d", len(gs), len(o.groups))
	}
	hypers := make([]Hyper, len(gs))
	for i, g := range o.groups {
		sg := gs[i]
		names := o.names[g.first : g.first+g.n]
		if sg.Name != g.name {
			return errf("group %d is named %q in the state but %q here", i, sg.Name, g.name)
		}
		if !slices.Equal(sg.Params, names) {
			return errf("group %q: the state's parameters [%s] are not this optimizer's [%s]",
				g.name, strings.Join(sg.Params, ", "), strings.Join(names, ", "))
		}
		h, err := fromJSON(o.algo, sg)
		if err != nil {
			return errf("group %q: %v", g.name, err)
		}
		hypers[i] = h
	}
	// Tensors: exactly the slots each parameter with state has, with the
	// parameter's shape.
	state := make([][torch.NumStateSlots]*torch.Tensor, len(o.params))
	used := map[string]bool{}
	var missing, badShape []string
	for i, p := range o.params {
		slots := wantSlots(o.algo, hypers[o.groupOf[i]])
		var have, lack []string
		for _, s := range slots {
			k := stateKey(o.names[i], s)
			t, ok := tensors[k]
			if !ok {
				lack = append(lack, k)
				continue
			}
			used[k] = true
			have = append(have, k)
			if t == nil {
				badShape = append(badShape, k+": nil tensor")
				continue
			}
			shape, err := t.Size()
			if err != nil {
				badShape = append(badShape, fmt.Sprintf("%s: %v", k, err))
				continue
			}
			if s == torch.StateStep {
				if len(shape) > 1 || (len(shape) == 1 && shape[0] != 1) {
					badShape = append(badShape, fmt.Sprintf("%s: shape %v, want a scalar", k, shape))
				}
			} else if ps := p.Shape(); !slices.Equal(shape, ps) {
				badShape = append(badShape, fmt.Sprintf("%s: shape %v, the parameter's is %v", k, shape, ps))
			}
			state[i][s] = t
		}
		if len(have) > 0 { // a parameter has all its state or none
			missing = append(missing, lack...)
		}
	}
	var unexpected []string
	for k := range tensors {
		if !used[k] {
			unexpected = append(unexpected, k)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing keys: "+listKeys(missing))
	}
	if len(unexpected) > 0 {
		problems = append(problems, "unexpected keys: "+listKeys(unexpected))
	}
	if len(badShape) > 0 {
		sort.Strings(badShape)
		problems = append(problems, "mismatched: "+strings.Join(badShape, "; "))
	}
	if len(problems) > 0 {
		return errf("the state does not fit this optimizer (nothing loaded): %s", strings.Join(problems, "; "))
	}
	if err := o.checkParams(fn); err != nil {
		return err
	}
	if bad, err := o.fused.SetState(o.params, state); err != nil {
		return o.paramErr(fn, bad, err)
	}
	for i := range o.groups {
		o.groups[i].hyper = hypers[i]
	}
	return nil
}

func (o *optimizer) Save(path string) error {
	tensors, meta, err := o.StateDict()
	if err != nil {
		return err
	}
	defer torch.CloseMap(tensors)
	if err := torch.SaveSafetensors(path, tensors, meta); err != nil {
		return fmt.Errorf("optim: %s: %w", o.op("Save"), err)
	}
	return nil
}

func (o *optimizer) Load(path string) error {
	tensors, meta, err := torch.LoadSafetensors(path, torch.LoadOnly(func(name string) bool {
		return strings.HasPrefix(name, StatePrefix)
	}))
	if err != nil {
		return fmt.Errorf("optim: %s: %w", o.op("Load"), err)
	}
	defer torch.CloseMap(tensors)
	return o.LoadStateDict(tensors, meta)
}
