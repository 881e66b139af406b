package optim

import (
	"fmt"
	"math"
	"strings"
)

// algo is an optimization algorithm.
type algo int

const (
	sgd algo = iota
	adam
	adamw
)

func (a algo) String() string {
	switch a {
	case sgd:
		return "SGD"
	case adam:
		return "Adam"
	case adamw:
		return "AdamW"
	}
	return fmt.Sprintf("algo(%d)", int(a))
}

// has reports whether the algorithm has the hyperparameter named (its Go
// option name).
func (a algo) has(opt string) bool {
	switch opt {
	case "LR", "WeightDecay", "Maximize":
		return true
	case "Momentum", "Dampening", "Nesterov":
		return a == sgd
	case "Betas", "Eps", "AMSGrad":
		return a == adam || a == adamw
	}
	return false
}

// optionNames lists the options of a, for error messages.
func (a algo) optionNames() string {
	if a == sgd {
		return "LR, Momentum, Dampening, WeightDecay, Nesterov, Maximize"
	}
	return "LR, Betas, Eps, WeightDecay, AMSGrad, Maximize"
}

// Hyper is the hyperparameters of one parameter group. The fields of
// another algorithm are zero: SGD has LR, Momentum, Dampening, WeightDecay,
// Nesterov and Maximize; Adam and AdamW have LR, Beta1, Beta2, Eps,
// WeightDecay, AMSGrad and Maximize.
type Hyper struct {
	LR          float64 // learning rate
	Momentum    float64 // SGD momentum factor
	Dampening   float64 // SGD dampening of the momentum
	WeightDecay float64 // L2 penalty (SGD, Adam) or decoupled decay (AdamW)
	Nesterov    bool    // SGD Nesterov momentum
	Beta1       float64 // Adam(W) decay rate of the first moment
	Beta2       float64 // Adam(W) decay rate of the second moment
	Eps         float64 // Adam(W) term added to the denominator
	AMSGrad     bool    // Adam(W) AMSGrad variant
	Maximize    bool    // maximize the objective instead of minimizing it
}

// defaults returns PyTorch's defaults for a. PyTorch 1.13's SGD has no
// default learning rate (lr is required); 2.x's is 1e-3, which golora
// takes, as it does for Adam and AdamW.
func defaults(a algo) Hyper {
	switch a {
	case sgd:
		return Hyper{LR: 1e-3}
	case adamw:
		return Hyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}
	}
	return Hyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Option sets one hyperparameter of an optimizer, or of one parameter
// group (Group.Options), by the functions below. Giving an optimizer an
// option it does not have (Betas to SGD, Momentum to AdamW) is an error
// that names it.
type Option struct {
	name  string // the Go name: "LR", "Betas", ...
	set   func(*Hyper)
	names []string // Names only
}

func option(name string, set func(*Hyper)) Option {
	return Option{name: name, set: set}
}

// LR sets the learning rate (default 1e-3; must be finite and ≥ 0).
func LR(lr float64) Option { return option("LR", func(h *Hyper) { h.LR = lr }) }

// Momentum sets SGD's momentum factor (default 0; finite, ≥ 0).
func Momentum(m float64) Option {
	return option("Momentum", func(h *Hyper) { h.Momentum = m })
}

// Dampening sets SGD's dampening for momentum (default 0; finite).
func Dampening(d float64) Option {
	return option("Dampening", func(h *Hyper) { h.Dampening = d })
}

// Nesterov turns on SGD's Nesterov momentum (default off). As in PyTorch
// it needs a momentum > 0 and zero dampening.
func Nesterov(on bool) Option {
	return option("Nesterov", func(h *Hyper) { h.Nesterov = on })
}

// WeightDecay sets the weight decay (finite, ≥ 0): an L2 penalty added to
// the gradient for SGD and Adam (default 0), decoupled decay of the
// weights for AdamW (default 0.01).
func WeightDecay(wd float64) Option {
	return option("WeightDecay", func(h *Hyper) { h.WeightDecay = wd })
}

// Betas sets Adam's and AdamW's decay rates of the first and second
// moment estimates (default 0.9, 0.999; each in [0, 1)).
func Betas(b1, b2 float64) Option {
	return option("Betas", func(h *Hyper) { h.Beta1, h.Beta2 = b1, b2 })
}

// Eps sets the term Adam and AdamW add to the denominator (default 1e-8;
// finite, ≥ 0).
func Eps(eps float64) Option { return option("Eps", func(h *Hyper) { h.Eps = eps }) }

// AMSGrad turns on the AMSGrad variant of Adam and AdamW (default off),
// which keeps the maximum of the second moment (state max_exp_avg_sq).
func AMSGrad(on bool) Option {
	return option("AMSGrad", func(h *Hyper) { h.AMSGrad = on })
}

// Maximize makes the optimizer maximize the objective (default off), like
// PyTorch's maximize=True.
func Maximize(on bool) Option {
	return option("Maximize", func(h *Hyper) { h.Maximize = on })
}

// Names gives the names of the parameters passed to NewSGD, NewAdam or
// NewAdamW, in order: the saved state is keyed by them
// ("state.<name>.exp_avg"). Without it the parameters are named "param.0",
// "param.1", .... Groups carry their names in Group.Names instead.
func Names(names ...string) Option {
	return Option{name: "Names", names: append([]string(nil), names...)}
}

// apply applies opts to h for algorithm a; it rejects options a does not
// have and Names (which the caller handles).
func apply(a algo, h *Hyper, opts []Option) error {
	for _, o := range opts {
		if o.set == nil {
			if o.name == "Names" {
				return fmt.Errorf("Names is not a hyperparameter: pass it to NewSGD, NewAdam or NewAdamW, or give Group.Names")
			}
			return fmt.Errorf("the zero Option: make options with LR, Momentum, Betas, ...")
		}
		if !a.has(o.name) {
			return fmt.Errorf("%s is not an option of %v (its options are %s)", o.name, a, a.optionNames())
		}
		o.set(h)
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// validate checks h for algorithm a with PyTorch's rules, plus finiteness.
func validate(a algo, h Hyper) error {
	var bad []string
	if !finite(h.LR) || h.LR < 0 {
		bad = append(bad, fmt.Sprintf("invalid learning rate %v (want a finite number ≥ 0)", h.LR))
	}
	if !finite(h.WeightDecay) || h.WeightDecay < 0 {
		bad = append(bad, fmt.Sprintf("invalid weight decay %v (want a finite number ≥ 0)", h.WeightDecay))
	}
	if a == sgd {
		if !finite(h.Momentum) || h.Momentum < 0 {
			bad = append(bad, fmt.Sprintf("invalid momentum %v (want a finite number ≥ 0)", h.Momentum))
		}
		if !finite(h.Dampening) {
			bad = append(bad, fmt.Sprintf("invalid dampening %v (want a finite number)", h.Dampening))
		}
		if h.Nesterov && (h.Momentum <= 0 || h.Dampening != 0) {
			bad = append(bad, fmt.Sprintf("Nesterov momentum requires a momentum > 0 and zero dampening (momentum %v, dampening %v)", h.Momentum, h.Dampening))
		}
	} else {
		if !(h.Beta1 >= 0 && h.Beta1 < 1) {
			bad = append(bad, fmt.Sprintf("invalid beta1 %v (want 0 ≤ beta1 < 1)", h.Beta1))
		}
		if !(h.Beta2 >= 0 && h.Beta2 < 1) {
			bad = append(bad, fmt.Sprintf("invalid beta2 %v (want 0 ≤ beta2 < 1)", h.Beta2))
		}
		if !finite(h.Eps) || h.Eps < 0 {
			bad = append(bad, fmt.Sprintf("invalid eps %v (want a finite number ≥ 0)", h.Eps))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}
