package optim

import (
	"errors"
	"fmt"
	"sync"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Optimizer updates a fixed list of parameters from their gradients.
// NewSGD, NewAdam, NewAdamW and their Groups forms return one. Its methods
// are safe for concurrent use (they serialise), though a Step racing a
// forward pass that reads the parameters is a data race inside libtorch,
// as in PyTorch.
type Optimizer interface {
	// Step updates every parameter that has a gradient, in place, in one
	// C call. Parameters without a gradient are skipped and get no state.
	// Hyperparameters are checked first (SetLR does not check them), then
	// the parameters, their gradients and their state (shape, dtype,
	// device): an error found there, which names the parameter, leaves
	// every parameter unchanged. A failure of libtorch during the update
	// itself (out of memory) can leave the step half done, as in PyTorch.
	Step() error
	// ZeroGrad drops every parameter's gradient (PyTorch's zero_grad with
	// set_to_none=True, its default), in one C call.
	ZeroGrad() error
	// LR returns the learning rate of the first group.
	LR() float64
	// SetLR sets the learning rate of every group. An invalid value (NaN,
	// infinite, negative) is kept and makes the next Step fail.
	SetLR(lr float64)
	// SetGroupLR sets the learning rate of group i alone; an index out of
	// range or an invalid value is an error and changes nothing.
	SetGroupLR(i int, lr float64) error
	// Groups describes the parameter groups, in order: names, parameter
	// names and hyperparameters (copies).
	Groups() []GroupInfo
	// Params returns the parameters, group after group, in order (the
	// slice is a copy; the tensors are the caller's).
	Params() []*torch.Tensor
	// StateDict returns the optimizer state as safetensors-ready tensors
	// and metadata; see the package doc for the layout. The tensors share
	// memory with the state (a later Step changes them): Close them when
	// done, which leaves the state alone.
	StateDict() (map[string]*torch.Tensor, map[string]string, error)
	// LoadStateDict replaces the state and the groups' hyperparameters
	// with a StateDict's (of this optimizer or of another one over
	// parameters of the same names and shapes). Everything is checked
	// before anything changes: on an error the optimizer is as it was,
	// and the message lists the offending keys. The tensors are copied,
	// into the parameters' dtype and device.
	LoadStateDict(tensors map[string]*torch.Tensor, metadata map[string]string) error
	// Save writes StateDict to a safetensors file, atomically.
	Save(path string) error
	// Load reads a file written by Save (or any safetensors file whose
	// "state." tensors and "optim." metadata are an optimizer's state:
	// other tensors are ignored) and loads it as LoadStateDict does.
	Load(path string) error
	// StateBytes returns the bytes of optimizer state allocated so far.
	StateBytes() int64
	// Close frees the optimizer state (not the parameters). Later calls
	// fail; Close is idempotent.
	Close() error
}

// GroupInfo describes one parameter group.
type GroupInfo struct {
	Name  string   // the group's name
	Names []string // its parameters' names, in order
	Hyper Hyper    // its hyperparameters
}

// Group is a parameter group: parameters with hyperparameters of their
// own, such as weight decay off for biases and norms. Options override
// the optimizer-wide options given to the constructor, which override
// PyTorch's defaults.
type Group struct {
	// Name names the group in errors and in the saved state; "" becomes
	// "group.<i>". Names must be distinct.
	Name string
	// Params are the group's parameters: leaf floating-point tensors that
	// require grad, each in one group only. A group may be empty.
	Params []*torch.Tensor
	// Names are the parameters' names (the keys of their saved state),
	// one per parameter; nil names them "param.<k>" by their position k
	// among all the optimizer's parameters.
	Names []string
	// Options are the group's own hyperparameters.
	Options []Option
}

// FromModule returns a group of m's trainable parameters under their
// dotted names, in module.NamedParameters order; frozen parameters are
// left out (so they never get optimizer state).
func FromModule(m module.Module, opts ...Option) Group {
	var g Group
	for _, p := range module.NamedParameters(m) {
		if p.Trainable {
			g.Params = append(g.Params, p.Tensor)
			g.Names = append(g.Names, p.Name)
		}
	}
	g.Names = nonNil(g.Names)
	g.Options = opts
	return g
}

// FromParamGroup returns a group of module.Groups' group pg, with its
// name, parameters and their names, and opts as its options:
//
//	pgs, err := module.Groups(model, module.Group{Name: "no_decay", Match: []string{"*.bias", "*norm*.weight"}})
//	opt, err := optim.NewAdamWGroups([]optim.Group{
//		optim.FromParamGroup(pgs[0], optim.WeightDecay(0)),
//		optim.FromParamGroup(pgs[1]), // module.DefaultGroup: the AdamW default, 0.01
//	}, optim.LR(3e-4))
func FromParamGroup(pg module.ParamGroup, opts ...Option) Group {
	g := Group{Name: pg.Name, Options: opts}
	for _, p := range pg.Params {
		g.Params = append(g.Params, p.Tensor)
		g.Names = append(g.Names, p.Name)
	}
	g.Names = nonNil(g.Names)
	return g
}

// nonNil makes an empty name list non-nil: the group's parameters are
// named (there are none), rather than left to the "param.<k>" default.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NewSGD returns PyTorch's SGD (torch.optim.SGD) over params: lr,
// momentum, dampening, weight decay, Nesterov momentum, maximize. Options:
// LR (default 1e-3, PyTorch 2.x's; 1.13 has no default), Momentum,
// Dampening, WeightDecay, Nesterov, Maximize, and Names.
func NewSGD(params []*torch.Tensor, opts ...Option) (Optimizer, error) {
	return newFlat(sgd, "NewSGD", params, opts)
}

// NewAdam returns PyTorch's Adam (torch.optim.Adam) over params. Options:
// LR (default 1e-3), Betas (0.9, 0.999), Eps (1e-8), WeightDecay (0, an L2
// penalty), AMSGrad, Maximize, and Names.
func NewAdam(params []*torch.Tensor, opts ...Option) (Optimizer, error) {
	return newFlat(adam, "NewAdam", params, opts)
}

// NewAdamW returns PyTorch's AdamW (torch.optim.AdamW) over params, the
// optimizer of LoRA fine-tuning. Options: LR (default 1e-3), Betas (0.9,
// 0.999), Eps (1e-8), WeightDecay (0.01, decoupled), AMSGrad, Maximize,
// and Names.
func NewAdamW(params []*torch.Tensor, opts ...Option) (Optimizer, error) {
	return newFlat(adamw, "NewAdamW", params, opts)
}

// NewSGDGroups is NewSGD over parameter groups; opts apply to every group
// unless the group's own Options set them.
func NewSGDGroups(groups []Group, opts ...Option) (Optimizer, error) {
	return newGroups(sgd, "NewSGDGroups", groups, opts)
}

// NewAdamGroups is NewAdam over parameter groups; opts apply to every
// group unless the group's own Options set them.
func NewAdamGroups(groups []Group, opts ...Option) (Optimizer, error) {
	return newGroups(adam, "NewAdamGroups", groups, opts)
}

// NewAdamWGroups is NewAdamW over parameter groups; opts apply to every
// group unless the group's own Options set them.
func NewAdamWGroups(groups []Group, opts ...Option) (Optimizer, error) {
	return newGroups(adamw, "NewAdamWGroups", groups, opts)
}

func newFlat(a algo, fn string, params []*torch.Tensor, opts []Option) (Optimizer, error) {
	g := Group{Name: module.DefaultGroup, Params: params}
	rest := make([]Option, 0, len(opts))
	for _, o := range opts {
		if o.name == "Names" && o.set == nil {
			g.Names = nonNil(o.names)
			continue
		}
		rest = append(rest, o)
	}
	return newGroups(a, fn, []Group{g}, rest)
}

// optimizer implements Optimizer.
type optimizer struct {
	mu      sync.Mutex
	algo    algo
	fused   *torch.FusedOptimizer
	params  []*torch.Tensor
	names   []string
	groupOf []int
	groups  []group
	closed  bool
}

type group struct {
	name  string
	first int // index of its first parameter
	n     int // number of parameters
	hyper Hyper
}

func newGroups(a algo, fn string, groups []Group, opts []Option) (Optimizer, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("optim: %s: "+format, append([]any{fn}, args...)...)
	}
	base := defaults(a)
	if err := apply(a, &base, opts); err != nil {
		return nil, errf("%v", err)
	}
	if len(groups) == 0 {
		return nil, errf("no parameter groups")
	}
	o := &optimizer{algo: a}
	groupNames := map[string]int{}
	paramNames := map[string]int{}
	seen := map[*torch.Tensor]int{}
	for gi, g := range groups {
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("group.%d", gi)
		}
		if j, dup := groupNames[name]; dup {
			return nil, errf("groups %d and %d are both named %q", j, gi, name)
		}
		groupNames[name] = gi
		h := base
		if err := apply(a, &h, g.Options); err != nil {
			return nil, errf("group %q: %v", name, err)
		}
		if err := validate(a, h); err != nil {
			return nil, errf("group %q: %v", name, err)
		}
		if g.Names != nil && len(g.Names) != len(g.Params) {
			return nil, errf("group %q has %d parameters but %d names", name, len(g.Params), len(g.Names))
		}
		o.groups = append(o.groups, group{name: name, first: len(o.params), n: len(g.Params), hyper: h})
		for k, p := range g.Params {
			idx := len(o.params)
			pname := fmt.Sprintf("param.%d", idx)
			if g.Names != nil {
				pname = g.Names[k]
			}
			what := fmt.Sprintf("parameter %q (group %q)", pname, name)
			switch {
			case pname == "":
				return nil, errf("group %q: parameter %d has an empty name", name, k)
			case p == nil:
				return nil, errf("%s is nil", what)
			case p.Err() != nil:
				return nil, wrapf(p.Err(), "optim: %s: %s is a failed tensor: %v", fn, what, p.Err())
			case p.Closed():
				return nil, errf("%s is closed", what)
			case !p.RequiresGrad():
				return nil, errf("%s is frozen (requires_grad is false): pass only trainable parameters (optim.FromModule leaves frozen ones out)", what)
			}
			if j, dup := seen[p]; dup {
				return nil, errf("%s is the same tensor as parameter %q: each parameter may be given once", what, o.names[j])
			}
			if j, dup := paramNames[pname]; dup {
				return nil, errf("%s: the name is also parameter %d's: names must be distinct", what, j)
			}
			seen[p] = idx
			paramNames[pname] = idx
			o.params = append(o.params, p)
			o.names = append(o.names, pname)
			o.groupOf = append(o.groupOf, gi)
		}
	}
	if len(o.params) == 0 {
		return nil, errf("no parameters (PyTorch: optimizer got an empty parameter list)")
	}
	f, bad, err := torch.NewFusedOptimizer(torch.OptimKind(a), o.params)
	if err != nil {
		return nil, o.paramErr(fn, bad, err)
	}
	o.fused = f
	return o, nil
}

// wrapped is an error with a message of its own that unwraps to err.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

func wrapf(err error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: err}
}

// paramErr words a torch error about parameter bad (or about no
// parameter in particular when bad < 0).
func (o *optimizer) paramErr(fn string, bad int, err error) error {
	msg := err.Error()
	if te, ok := torch.AsError(err); ok {
		msg = te.Msg
		if te.Where != "" {
			msg += " (at " + te.Where + ")"
		}
	}
	if bad >= 0 && bad < len(o.params) {
		return wrapf(err, "optim: %s: parameter %q (group %q): %s", fn, o.names[bad], o.groups[o.groupOf[bad]].name, msg)
	}
	return wrapf(err, "optim: %s: %s", fn, msg)
}

var errClosed = errors.New("use of closed optimizer")

func (o *optimizer) op(name string) string { return o.algo.String() + "." + name }

func (o *optimizer) Step() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	fn := o.op("Step")
	if o.closed {
		return fmt.Errorf("optim: %s: %w", fn, errClosed)
	}
	hs := make([]torch.OptimGroup, len(o.groups))
	for i, g := range o.groups {
		if err := validate(o.algo, g.hyper); err != nil {
			return fmt.Errorf("optim: %s: group %q: %v", fn, g.name, err)
		}
		h := g.hyper
		hs[i] = torch.OptimGroup{
			LR: h.LR, Momentum: h.Momentum, Dampening: h.Dampening, WeightDecay: h.WeightDecay,
			Beta1: h.Beta1, Beta2: h.Beta2, Eps: h.Eps,
			Nesterov: h.Nesterov, AMSGrad: h.AMSGrad, Maximize: h.Maximize,
		}
	}
	if err := o.checkParams(fn); err != nil {
		return err
	}
	if bad, err := o.fused.Step(o.params, o.groupOf, hs); err != nil {
		return o.paramErr(fn, bad, err)
	}
	return nil
}

// checkParams names a nil, failed or closed parameter before a C call.
func (o *optimizer) checkParams(fn string) error {
	what := func(i int) string {
		return fmt.Sprintf("parameter %q (group %q)", o.names[i], o.groups[o.groupOf[i]].name)
	}
	for i, p := range o.params {
		if err := p.Err(); err != nil {
			return wrapf(err, "optim: %s: %s is a failed tensor: %v", fn, what(i), err)
		}
		if p.Closed() {
			return fmt.Errorf("optim: %s: %s is closed", fn, what(i))
		}
	}
	return nil
}

func (o *optimizer) ZeroGrad() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	fn := o.op("ZeroGrad")
	if o.closed {
		return fmt.Errorf("optim: %s: %w", fn, errClosed)
	}
	if err := o.checkParams(fn); err != nil {
		return err
	}
	if err := torch.ZeroGrads(o.params); err != nil {
		return o.paramErr(fn, -1, err)
	}
	return nil
}

func (o *optimizer) LR() float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.groups[0].hyper.LR
}

func (o *optimizer) SetLR(lr float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.groups {
		o.groups[i].hyper.LR = lr
	}
}

func (o *optimizer) SetGroupLR(i int, lr float64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i < 0 || i >= len(o.groups) {
		return fmt.Errorf("optim: %s: group index %d out of range [0, %d)", o.op("SetGroupLR"), i, len(o.groups))
	}
	if !finite(lr) || lr < 0 {
		return fmt.Errorf("optim: %s: group %q: invalid learning rate %v (want a finite number ≥ 0)", o.op("SetGroupLR"), o.groups[i].name, lr)
	}
	o.groups[i].hyper.LR = lr
	return nil
}

func (o *optimizer) Groups() []GroupInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]GroupInfo, len(o.groups))
	for i, g := range o.groups {
		out[i] = GroupInfo{Name: g.name, Names: append([]string{}, o.names[g.first:g.first+g.n]...), Hyper: g.hyper}
	}
	return out
}

func (o *optimizer) Params() []*torch.Tensor {
	return append([]*torch.Tensor(nil), o.params...)
}

func (o *optimizer) StateBytes() int64 { return o.fused.StateBytes() }

func (o *optimizer) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.fused.Close()
	return nil
}
