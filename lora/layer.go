package lora

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// DefaultAdapter is the name of the adapter that NewLinear, NewEmbedding
// and Apply create, PEFT's "default".
const DefaultAdapter = "default"

// BaseAdapter is the per-sample adapter name meaning "no adapter" in a
// mixed batch (WithAdapterNames), PEFT's "__base__".
const BaseAdapter = "__base__"

var (
	opIndexAdd  = torch.NewOp("aten::index_add", "")
	opIndexCopy = torch.NewOp("aten::index_copy", "")
	opIsFinite  = torch.NewOp("aten::isfinite", "")
	opAll       = torch.NewOp("aten::all", "")
	opSVD       = torch.NewOp("aten::linalg_svd", "")
	opQR        = torch.NewOp("aten::linalg_qr", "")
	opDiag      = torch.NewOp("aten::diag", "")
)

// Adapter is one named LoRA adapter of a layer: ΔW = B·A scaled by
// α/r (α/√r with rsLoRA), with its own dropout on the adapter's input and,
// with DoRA, a magnitude vector m. Its tensors are registered as
// "lora_a", "lora_b" and "lora_magnitude".
type Adapter struct {
	module.Base
	A         *torch.Tensor // PEFT's lora_A: r×in (Linear, Conv1D), r×num (Embedding), r×in×kh×kw (Conv2d)
	B         *torch.Tensor // PEFT's lora_B: out×r, dim×r (Embedding), out×r×1×1 (Conv2d)
	Magnitude *torch.Tensor // DoRA's m, one per output: [out], [dim] for Embedding (per embedding dimension), [1,out,1,1] for Conv2d; nil without DoRA

	name    string
	r       int64
	alpha   float64
	scaling float64
	dropout float64
	rslora  bool
	dora    bool
	cfg     *Config       // the config it was created with (SaveAdapter writes it)
	norm    *torch.Tensor // DoRA: ‖W + ΔW‖ saved by Merge for Unmerge
}

// Name returns the adapter's name.
func (a *Adapter) Name() string {
	if a == nil {
		return ""
	}
	return a.name
}

// Rank returns r.
func (a *Adapter) Rank() int64 {
	if a == nil {
		return 0
	}
	return a.r
}

// Alpha returns α.
func (a *Adapter) Alpha() float64 {
	if a == nil {
		return 0
	}
	return a.alpha
}

// Scaling returns the factor on B·A: α/r, or α/√r with rsLoRA.
func (a *Adapter) Scaling() float64 {
	if a == nil {
		return 0
	}
	return a.scaling
}

// Dropout returns the dropout probability on the adapter's input.
func (a *Adapter) Dropout() float64 {
	if a == nil {
		return 0
	}
	return a.dropout
}

// UseDoRA reports whether the adapter is a DoRA adapter (has a magnitude).
func (a *Adapter) UseDoRA() bool { return a != nil && a.dora }

// UseRSLoRA reports whether the scaling is α/√r.
func (a *Adapter) UseRSLoRA() bool { return a != nil && a.rslora }

func (a *Adapter) tensors() []*torch.Tensor { return []*torch.Tensor{a.A, a.B, a.Magnitude, a.norm} }

// Kind is one kind of base layer that LoRA can wrap, PEFT's per-type layer
// class: it knows the base's weights and the maths of the update in the
// base's layout. A Dispatcher recognises a base layer and returns its
// Kind. The built-in kinds are module.Linear, module.Embedding,
// module.Conv1D (GPT-2's, weight in×out) and module.Conv2d.
type Kind interface {
	// Name names the kind in errors ("Linear", "Conv2d", ...).
	Name() string
	// Base returns the wrapped base layer.
	Base() module.Layer
	// Weight and Bias return the base layer's tensors (Bias may be nil).
	Weight() *torch.Tensor
	Bias() *torch.Tensor
	// Shapes returns A's and B's shapes at rank r, in PEFT's layout.
	Shapes(r int64) (a, b []int64)
	// Update returns the unscaled update of the output, B(A(x)), in the
	// base output's layout.
	Update(x, a, b *torch.Tensor) *torch.Tensor
	// Delta returns the unscaled ΔW = B·A in the base weight's layout.
	Delta(a, b *torch.Tensor) *torch.Tensor
	// WeightNorm returns DoRA's ‖W‖ per output channel of a weight in the
	// base layout, shaped like the magnitude vector.
	WeightNorm(w *torch.Tensor) *torch.Tensor
	// WeightView reshapes a per-output vector (magnitude-shaped) to
	// broadcast over the base weight.
	WeightView(v *torch.Tensor) *torch.Tensor
	// OutputView reshapes a per-output vector (a bias, or magnitude-shaped)
	// to broadcast over the base output.
	OutputView(v *torch.Tensor) *torch.Tensor
}

// A Dispatcher returns the Kind of a base layer it handles, or false. It is
// PEFT's dispatcher chain: Apply asks each registered dispatcher in turn
// (the most recently registered first, then the built-in ones) and wraps
// the module with the first that answers.
type Dispatcher func(base module.Module) (Kind, bool)

var dispatchers []Dispatcher

// RegisterDispatcher adds d to the front of the dispatcher chain, so that a
// new layer kind plugs in without editing a type switch. Call it from an
// init function; it is not safe to call concurrently with Apply.
func RegisterDispatcher(d Dispatcher) {
	if d != nil {
		dispatchers = append([]Dispatcher{d}, dispatchers...)
	}
}

// dispatch returns the Kind of base, asking each dispatcher in turn.
func dispatch(base module.Module) (Kind, bool) {
	if isNil(base) {
		return nil, false
	}
	for _, d := range dispatchers {
		if k, ok := d(base); ok {
			return k, true
		}
	}
	return nil, false
}

// AdapterLayer is a layer that holds LoRA adapters: *Linear, *Embedding,
// *Conv1D, *Conv2d, or a *Layer of a registered kind.
type AdapterLayer interface {
	module.Layer
	// LoraLayer returns the adapter machinery.
	LoraLayer() *Layer
}

// Layer wraps a base layer and holds LoRA adapters by name, like PEFT's
// LoraLayer. Forward returns the base output plus every active adapter's
// update:
//
//	y = base(x) + Σ_active B(A(dropout(x)))·scaling
//
// The base's weight and bias are registered as "weight" and "bias" (the
// base's own tensors, frozen); the "default" adapter's tensors as
// "lora_a", "lora_b" and "lora_magnitude" (the spec's names; LoraA, LoraB
// and LoraMagnitude alias them); every other adapter under
// "adapters.<name>.lora_a" and so on. SaveAdapter writes PEFT's names.
type Layer struct {
	module.Base
	Weight        *torch.Tensor // W0, the base layer's weight (same tensor), frozen
	Bias          *torch.Tensor // b, the base layer's bias (same tensor) or nil, frozen
	LoraA         *torch.Tensor // the "default" adapter's A, or nil
	LoraB         *torch.Tensor // the "default" adapter's B, or nil
	LoraMagnitude *torch.Tensor // the "default" adapter's DoRA magnitude, or nil

	extra    *module.ModuleDict[*Adapter] // the adapters other than "default"
	kind     Kind
	adapters map[string]*Adapter
	order    []string // adapter names in creation order
	active   []string
	merged   []string // merged adapters, in merge order
	disabled bool
	mixed    []string // per-sample adapter names inside WithAdapterNames
}

// LoraLayer returns l; it makes every type that embeds Layer an
// AdapterLayer.
func (l *Layer) LoraLayer() *Layer { return l }

// newLayer wires l around kind's base; l is usually embedded in a typed
// wrapper (Linear, ...) that the caller allocated.
func newLayer(l *Layer, kind Kind) error {
	if kind.Weight() == nil {
		return fmt.Errorf("the base %s's weight is a nil tensor", kind.Name())
	}
	if _, err := kind.Weight().Size(); err != nil {
		return fmt.Errorf("the base %s's weight: %w", kind.Name(), err)
	}
	if err := freeze(kind.Weight(), kind.Bias()); err != nil {
		return err
	}
	l.kind = kind
	l.Weight, l.Bias = kind.Weight(), kind.Bias()
	l.adapters = map[string]*Adapter{}
	l.Param("weight", &l.Weight)
	l.Param("bias", &l.Bias)
	l.Param("lora_a", &l.LoraA)
	l.Param("lora_b", &l.LoraB)
	l.Param("lora_magnitude", &l.LoraMagnitude)
	module.Child(&l.Base, "adapters", &l.extra)
	return nil
}

// NewLayer wraps base (a module a Dispatcher recognises) in a Layer with no
// adapter; add them with AddAdapter. Apply does this for a whole model.
func NewLayer(base module.Module) (AdapterLayer, error) {
	kind, ok := dispatch(base)
	if !ok {
		return nil, fmt.Errorf("lora: NewLayer: no dispatcher handles a %T", base)
	}
	return wrap(kind)
}

// wrap builds the typed adapter layer for kind.
func wrap(kind Kind) (AdapterLayer, error) {
	var out AdapterLayer
	var l *Layer
	if w, ok := kind.(interface{ wrapper() (AdapterLayer, *Layer) }); ok {
		out, l = w.wrapper()
	} else {
		l = &Layer{}
		out = l
	}
	if err := newLayer(l, kind); err != nil {
		return nil, err
	}
	return out, nil
}

// Kind returns the layer's kind.
func (l *Layer) Kind() Kind {
	if l == nil {
		return nil
	}
	return l.kind
}

// BaseLayer returns the wrapped base layer (PEFT's base_layer). Its weight
// and bias are l.Weight and l.Bias.
func (l *Layer) BaseLayer() module.Layer {
	if l == nil || l.kind == nil {
		return nil
	}
	return l.kind.Base()
}

// Adapter returns the adapter called name, or nil.
func (l *Layer) Adapter(name string) *Adapter {
	if l == nil {
		return nil
	}
	return l.adapters[name]
}

// AdapterNames returns the names of the layer's adapters in creation order.
func (l *Layer) AdapterNames() []string {
	if l == nil {
		return nil
	}
	return slices.Clone(l.order)
}

// ActiveAdapters returns the names of the adapters that Forward applies.
func (l *Layer) ActiveAdapters() []string {
	if l == nil {
		return nil
	}
	return slices.Clone(l.active)
}

// MergedAdapters returns the names of the adapters folded into the weight.
func (l *Layer) MergedAdapters() []string {
	if l == nil {
		return nil
	}
	return slices.Clone(l.merged)
}

// adapterSpec is what addAdapter needs to create one adapter.
type adapterSpec struct {
	r            int64
	alpha        float64
	dropout      float64
	rslora, dora bool
	init         Init
	specEmbed    bool // the spec's embedding init (A normal, B zero)
	peft         bool // PEFT's draws in PEFT's order (Config.PEFTInit)
	cfg          *Config
}

// addAdapter creates adapter name with its A and B (and m for DoRA), makes
// them trainable and activates it. On error nothing changes.
func (l *Layer) addAdapter(name string, sp adapterSpec) (err error) {
	if err := checkAdapterName(name); err != nil {
		return err
	}
	if _, ok := l.adapters[name]; ok {
		return fmt.Errorf("adapter %q exists", name)
	}
	if sp.r <= 0 {
		return fmt.Errorf("rank r must be positive, got %d", sp.r)
	}
	if !(sp.alpha > 0) {
		return fmt.Errorf("alpha must be positive, got %v", sp.alpha)
	}
	if sp.dropout < 0 || sp.dropout >= 1 || sp.dropout != sp.dropout {
		return fmt.Errorf("dropout must be in [0, 1), got %v", sp.dropout)
	}
	if len(l.merged) > 0 {
		return fmt.Errorf("adapter %q: unmerge %v first", name, l.merged)
	}
	_, isEmb := l.kind.(*embeddingKind)
	if c, ok := l.kind.(*conv2dKind); ok && c.groups() > 1 {
		// PEFT's limits for grouped convs: B is a grouped 1×1 conv, so r
		// splits into the groups; DoRA's norm needs ΔW, which a grouped
		// update does not have.
		if g := c.groups(); sp.r%g != 0 {
			return fmt.Errorf("adapter %q: rank r=%d is not a multiple of the Conv2d's groups=%d (B is a grouped 1×1 conv, as in PEFT)", name, sp.r, g)
		}
		if sp.dora {
			return fmt.Errorf("adapter %q: DoRA on a Conv2d with groups=%d is not supported (its norm needs the merged ΔW, which a grouped update does not have)", name, c.groups())
		}
		if sp.init == InitPiSSA || sp.init == InitOrthogonal {
			return fmt.Errorf("adapter %q: init %q on a Conv2d with groups=%d is not supported", name, sp.init, c.groups())
		}
	}
	ad := &Adapter{name: name, r: sp.r, alpha: sp.alpha, dropout: sp.dropout, rslora: sp.rslora, dora: sp.dora, cfg: sp.cfg}
	ad.scaling = sp.alpha / float64(sp.r)
	if sp.rslora {
		ad.scaling = sp.alpha / math.Sqrt(float64(sp.r))
	}
	// oldW keeps W0 when an init (PiSSA) rewrites the base weight, so that
	// a failure can put it back.
	var oldW *torch.Tensor
	defer func() {
		if err != nil {
			torch.CloseAll(ad.tensors()...)
			if oldW != nil {
				_ = torch.NoGrad(func() error { return l.Weight.Copy_(oldW).Err() })
			}
		}
		oldW.Close()
	}()
	if err = l.initAdapter(ad, sp, isEmb, &oldW); err != nil {
		return fmt.Errorf("adapter %q: %w", name, err)
	}
	if sp.dora {
		// m = ‖W0 + s·B·A‖ per output, so that at init the DoRA layer
		// computes the same as LoRA.
		err = torch.NoGrad(func() error {
			s := torch.NewScope()
			defer s.Close()
			w := s.Own(l.Weight.To(mdt(l.Weight)))
			d := l.kind.Delta(s.Own(ad.A.To(mdt(l.Weight))), s.Own(ad.B.To(mdt(l.Weight))))
			n := l.kind.WeightNorm(w.Add(d.MulScalar(ad.scaling))).To(l.Weight.DType())
			if _, e := s.Done(n); e != nil {
				return e
			}
			ad.Magnitude = n
			return nil
		})
		if err != nil {
			return fmt.Errorf("adapter %q: DoRA magnitude: %w", name, err)
		}
	}
	for _, t := range []*torch.Tensor{ad.A, ad.B, ad.Magnitude} {
		if t != nil {
			if err = t.SetRequiresGrad(true); err != nil {
				return fmt.Errorf("adapter %q: %w", name, err)
			}
		}
	}
	ad.Param("lora_a", &ad.A)
	ad.Param("lora_b", &ad.B)
	ad.Param("lora_magnitude", &ad.Magnitude)
	l.install(ad)
	return nil
}

// install registers ad and activates it.
func (l *Layer) install(ad *Adapter) {
	l.adapters[ad.name] = ad
	l.order = append(l.order, ad.name)
	if ad.name == DefaultAdapter {
		l.LoraA, l.LoraB, l.LoraMagnitude = ad.A, ad.B, ad.Magnitude
	} else {
		if l.extra == nil {
			l.extra = module.NewModuleDict[*Adapter]()
		}
		l.extra.Set(ad.name, ad)
	}
	if !slices.Contains(l.active, ad.name) {
		l.active = append(l.active, ad.name)
	}
}

// initAdapter creates ad.A and ad.B per the init variant.
func (l *Layer) initAdapter(ad *Adapter, sp adapterSpec, isEmb bool, oldW **torch.Tensor) error {
	w := l.Weight
	opts := []torch.Option{torch.WithDType(w.DType()), torch.WithDevice(w.Device())}
	aShape, bShape := l.kind.Shapes(sp.r)
	ad.A, ad.B = torch.Empty(aShape, opts...), torch.Empty(bShape, opts...)
	if err := torch.FirstErr(ad.A, ad.B); err != nil {
		return err
	}
	kaiming := func(t *torch.Tensor) error { return t.KaimingUniform_(math.Sqrt(5), torch.FanIn, torch.LeakyReLU) }
	if sp.peft {
		// PEFT first builds lora_A and lora_B as layers, whose own init
		// draws: nn.Linear / nn.Conv2d(in, r) and (r, out) kaiming-uniform,
		// for embeddings torch.randn(r, num) and torch.randn(dim, r).
		var err error
		if isEmb {
			if err = ad.A.Normal_(0, 1); err == nil {
				err = ad.B.Normal_(0, 1)
			}
		} else if err = kaiming(ad.A); err == nil {
			err = kaiming(ad.B)
		}
		if err != nil {
			return err
		}
		if sp.init == InitRandom {
			return nil // init_lora_weights=false keeps those
		}
	}
	switch sp.init {
	case InitDefault, InitGaussian:
		switch {
		case isEmb && sp.specEmbed && sp.init == InitDefault:
			// The spec's embedding: A ~ N(0, 1) (indexed by token through
			// Aᵀ), B = 0.
			if err := ad.A.Normal_(0, 1); err != nil {
				return err
			}
			return ad.B.Zeros_()
		case isEmb:
			// PEFT's embedding: A = 0, B ~ N(0, 1); ΔW = 0 all the same.
			if err := ad.A.Zeros_(); err != nil {
				return err
			}
			return ad.B.Normal_(0, 1)
		case sp.init == InitGaussian:
			// A ~ N(0, 1/r²), B = 0.
			if err := ad.A.Normal_(0, 1/float64(sp.r)); err != nil {
				return err
			}
		default:
			// A like a linear layer's weight (kaiming-uniform, a = √5:
			// U(±1/√fan_in)), B = 0 so that ΔW = B·A = 0 at the start.
			if err := kaiming(ad.A); err != nil {
				return err
			}
		}
		return ad.B.Zeros_()
	case InitRandom:
		// init_lora_weights=false: both random, as PEFT's freshly built
		// nn.Linear/nn.Conv2d (kaiming-uniform) or, for embeddings, randn.
		if isEmb {
			if err := ad.A.Normal_(0, 1); err != nil {
				return err
			}
			return ad.B.Normal_(0, 1)
		}
		if err := kaiming(ad.A); err != nil {
			return err
		}
		return kaiming(ad.B)
	case InitPiSSA:
		return l.pissaInit(ad, oldW)
	case InitOrthogonal:
		return l.orthogonalInit(ad)
	}
	return fmt.Errorf("unknown init_lora_weights %q", sp.init)
}

// pissaInit sets A and B from the top r singular triplets of W (out-major,
// float32): W = V·S·Uᵀ, B = V_r·√(S_r/s), A = √(S_r/s)·Uᵀ_r, and
// W ← W − s·B·A, so that the layer's output is unchanged.
func (l *Layer) pissaInit(ad *Adapter, oldW **torch.Tensor) error {
	if !is2D(l.kind) {
		return fmt.Errorf("pissa init needs a Linear or Conv1D base, not %s", l.kind.Name())
	}
	s := torch.NewScope()
	defer s.Close()
	w := s.Own(l.Weight.To(mdt(l.Weight)))
	if _, ok := l.kind.(*conv1DKind); ok {
		w = w.T() // fan_in_fan_out: in×out → out×in
	}
	outs := opSVD.CallN("pissa: linalg_svd", 3, w.Contiguous(), false)
	for _, o := range outs {
		s.Own(o)
	}
	if len(outs) != 3 {
		return fmt.Errorf("linalg_svd: %w", torch.FirstErr(outs...))
	}
	r := ad.r
	v, sv, uh := outs[0].Narrow(1, 0, r), outs[1].Narrow(0, 0, r), outs[2].Narrow(0, 0, r)
	sq := sv.DivScalar(ad.scaling).Sqrt()
	a := opDiag.Call1("pissa", sq).Mm(uh)
	b := v.Mm(opDiag.Call1("pissa", sq))
	nw := w.Sub(b.Mm(a).MulScalar(ad.scaling))
	if _, ok := l.kind.(*conv1DKind); ok {
		nw = nw.T()
	}
	if err := s.Err(); err != nil {
		return err
	}
	*oldW = l.Weight.Clone()
	return torch.NoGrad(func() error {
		for _, c := range []struct{ dst, src *torch.Tensor }{{ad.A, a}, {ad.B, b}, {l.Weight, nw}} {
			if err := c.dst.Copy_(c.src).Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// orthogonalInit follows PEFT: Q from the QR of an r×r Gaussian, A =
// (N(in, r/2)·Q_odd)ᵀ/10, B = (N(r/2, out)ᵀ·Q_even)/10. r must be even.
func (l *Layer) orthogonalInit(ad *Adapter) error {
	r := ad.r
	if r%2 != 0 {
		return fmt.Errorf("orthogonal init needs an even rank, got %d", r)
	}
	if !is2D(l.kind) {
		return fmt.Errorf("orthogonal init needs a Linear or Conv1D base, not %s", l.kind.Name())
	}
	aShape, bShape := l.kind.Shapes(r)
	in, out := aShape[1], bShape[0]
	s := torch.NewScope()
	defer s.Close()
	x := s.Own(torch.Randn([]int64{r, r}))
	qr := opQR.CallN("orthogonal: linalg_qr", 2, x)
	for _, o := range qr {
		s.Own(o)
	}
	if len(qr) != 2 {
		return fmt.Errorf("linalg_qr: %w", torch.FirstErr(qr...))
	}
	q := qr[0]
	qOdd, qEven := q.Slice(0, 0, r, 2), q.Slice(0, 1, r, 2)
	a := s.Own(torch.Randn([]int64{in, r / 2})).Mm(qOdd).T().DivScalar(10)
	b := s.Own(torch.Randn([]int64{r / 2, out})).T().Mm(qEven).DivScalar(10)
	if err := s.Err(); err != nil {
		return err
	}
	return torch.NoGrad(func() error {
		if err := ad.A.Copy_(a).Err(); err != nil {
			return err
		}
		return ad.B.Copy_(b).Err()
	})
}

func is2D(k Kind) bool {
	switch k.(type) {
	case *linearKind, *conv1DKind:
		return true
	}
	return false
}

// checkAdapterName rejects names that cannot be a registry key or a
// directory name inside the save directory.
func checkAdapterName(name string) error {
	switch {
	case name == "":
		return errors.New("empty adapter name")
	case name == BaseAdapter:
		return fmt.Errorf("adapter name %q is reserved for the base model in mixed batches", name)
	case name == "." || name == "..":
		return fmt.Errorf("adapter name %q escapes the directory", name)
	}
	for _, c := range name {
		if c == '/' || c == '\\' || c == '.' || c == 0 || c == ':' {
			return fmt.Errorf("adapter name %q: '/', '\\', '.', ':' and NUL are not allowed (it names a registry key and a directory)", name)
		}
	}
	return nil
}

// deleteAdapter removes adapter name and frees its tensors.
func (l *Layer) deleteAdapter(name string) error {
	ad, ok := l.adapters[name]
	if !ok {
		return fmt.Errorf("no adapter %q (have %v)", name, l.order)
	}
	if slices.Contains(l.merged, name) {
		return fmt.Errorf("adapter %q is merged; unmerge it first", name)
	}
	delete(l.adapters, name)
	l.order = slices.DeleteFunc(l.order, func(s string) bool { return s == name })
	l.active = slices.DeleteFunc(l.active, func(s string) bool { return s == name })
	if name == DefaultAdapter {
		l.LoraA, l.LoraB, l.LoraMagnitude = nil, nil, nil
	} else {
		// ModuleDict has no delete: rebuild it without name.
		d := module.NewModuleDict[*Adapter]()
		for k, v := range l.extra.All() {
			if k != name {
				d.Set(k, v)
			}
		}
		l.extra = d
	}
	torch.CloseAll(ad.tensors()...)
	return nil
}

// setActive makes names the active adapters.
func (l *Layer) setActive(names []string) {
	l.active = l.active[:0]
	for _, n := range names {
		if _, ok := l.adapters[n]; ok && !slices.Contains(l.active, n) {
			l.active = append(l.active, n)
		}
	}
}

// Forward returns base(x) plus the update of every active adapter that is
// not merged. Under WithAdaptersDisabled it is base(x) exactly; under
// WithAdapterNames each sample (dim 0) gets its own adapter. Errors stick
// to the result.
func (l *Layer) Forward(x *torch.Tensor) *torch.Tensor {
	if l == nil || l.kind == nil {
		return torch.Linear(x, nil, nil) // fails naming the missing weight
	}
	if l.disabled {
		return l.kind.Base().Forward(x)
	}
	if l.mixed != nil {
		return l.mixedForward(x, l.mixed)
	}
	var todo []*Adapter
	for _, n := range l.active {
		if !slices.Contains(l.merged, n) {
			todo = append(todo, l.adapters[n])
		}
	}
	// One plain adapter: the spec's fused forward.
	if len(todo) == 1 && !todo[0].dora && (todo[0].dropout == 0 || !l.Training()) {
		ad := todo[0]
		switch l.kind.(type) {
		case *linearKind:
			return torch.LoraLinear(x, l.Weight, l.Bias, ad.A, ad.B, ad.scaling)
		case *embeddingKind:
			return torch.LoraEmbedding(x, l.Weight, ad.A, ad.B, ad.scaling)
		}
	}
	y := l.kind.Base().Forward(x)
	for _, ad := range todo {
		y = l.addUpdate(y, x, ad)
	}
	return y
}

// addUpdate returns y plus adapter ad's update for input x: for LoRA
// y + B(A(dropout(x)))·s; for DoRA (PEFT's DoraLinearLayer) with
// f = m/‖W0 + s·B·A‖ (the norm detached),
//
//	y + (f − 1)·(y − b) + f·B(A(dropout(x)))·s
//
// where y − b is replaced by the bias-free base output of the dropped-out
// input while dropout is on.
func (l *Layer) addUpdate(y, x *torch.Tensor, ad *Adapter) *torch.Tensor {
	_, isEmb := l.kind.(*embeddingKind)
	xin := x
	dropped := false
	if ad.dropout > 0 && l.Training() && !isEmb {
		xin, dropped = torch.Dropout(x, ad.dropout, true), true
	}
	upd := l.kind.Update(xin, ad.A, ad.B).MulScalar(ad.scaling)
	if !ad.dora {
		return y.Add(upd)
	}
	f := l.doraFactor(x, ad)
	var baseNoBias *torch.Tensor
	if dropped {
		baseNoBias = l.kind.Base().Forward(xin)
	} else {
		baseNoBias = y
	}
	if l.Bias != nil {
		baseNoBias = baseNoBias.Sub(adopt(x, l.kind.OutputView(l.Bias)))
	}
	fo := l.kind.OutputView(f)
	return y.Add(fo.SubScalar(1).Mul(baseNoBias)).Add(fo.Mul(upd))
}

// doraFactor returns m / ‖W0 + s·B·A‖ with the norm detached (PEFT treats
// it as a constant in the backward), magnitude-shaped. like gives the
// scope the intermediates join.
func (l *Layer) doraFactor(like *torch.Tensor, ad *Adapter) *torch.Tensor {
	var norm *torch.Tensor
	err := torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		d := l.kind.Delta(s.Own(ad.A.Detach()), s.Own(ad.B.Detach()))
		var err error
		norm, err = s.Done(l.kind.WeightNorm(d.MulScalar(ad.scaling).Add(l.Weight)))
		return err
	})
	if err != nil {
		return torch.Failed(err)
	}
	adopt(like, norm)
	return norm.Reciprocal().Mul(ad.Magnitude)
}

// mixedForward gives each sample i (dim 0 of x) the adapter names[i]
// (BaseAdapter: none), like PEFT's forward(adapter_names=...): the base
// output plus, per adapter, its update of the samples that use it.
func (l *Layer) mixedForward(x *torch.Tensor, names []string) *torch.Tensor {
	n := x.SizeOf(0)
	if err := x.Err(); err != nil {
		return x.Alias()
	}
	if int64(len(names)) != n {
		return torch.Failed(fmt.Errorf("lora: mixed batch: %d adapter names for a batch of %d", len(names), n))
	}
	if len(l.merged) > 0 {
		return torch.Failed(fmt.Errorf("lora: mixed batch: adapters %v are merged; unmerge them first", l.merged))
	}
	y := l.kind.Base().Forward(x)
	groups := map[string][]int64{}
	var seen []string
	for i, nm := range names {
		if _, ok := groups[nm]; !ok {
			seen = append(seen, nm)
		}
		groups[nm] = append(groups[nm], int64(i))
	}
	for _, nm := range seen {
		ad, ok := l.adapters[nm]
		if nm == BaseAdapter || !ok {
			continue // PEFT: a layer without that adapter adds nothing
		}
		idx := adopt(x, adopt(x, torch.FromSlice(groups[nm], int64(len(groups[nm])))).To(x.Device()))
		sub := x.IndexSelect(0, idx)
		if !ad.dora {
			_, isEmb := l.kind.(*embeddingKind)
			xin := sub
			if ad.dropout > 0 && l.Training() && !isEmb {
				xin = torch.Dropout(sub, ad.dropout, true)
			}
			upd := l.kind.Update(xin, ad.A, ad.B).MulScalar(ad.scaling)
			y = opIndexAdd.Call1("mixed batch: index_add", y, int64(0), idx, upd)
		} else {
			ys := y.IndexSelect(0, idx)
			y = opIndexCopy.Call1("mixed batch: index_copy", y, int64(0), idx, l.addUpdate(ys, sub, ad))
		}
	}
	return y
}

// MergeAdapters folds the named adapters (the active ones when none are
// named) into the base weight, like PEFT's merge(safe_merge, adapter_names):
//
//	LoRA: W ← W + s·ΔW
//	DoRA: W ← (m/‖W + s·ΔW‖)·(W + s·ΔW)   (per output; the norm is kept for Unmerge)
//
// with ΔW = B·A in the base's layout (transposed for Embedding and Conv1D,
// reshaped for Conv2d). The arithmetic runs in float32 whatever the
// weight's dtype, and the new weight is rounded once into W. With safe
// the new weight is first checked for NaN and Inf; nothing is written if
// it has any. Forward then skips the merged adapters.
func (l *Layer) MergeAdapters(safe bool, names ...string) error {
	if l == nil || l.kind == nil {
		return errNilLayer
	}
	if len(names) == 0 {
		names = l.active
	}
	for _, n := range names {
		if _, ok := l.adapters[n]; !ok {
			return fmt.Errorf("no adapter %q (have %v)", n, l.order)
		}
		if slices.Contains(l.merged, n) {
			return fmt.Errorf("adapter %q already merged", n)
		}
	}
	for _, n := range slices.Clone(names) {
		if err := l.mergeOne(l.adapters[n], safe); err != nil {
			return fmt.Errorf("merging %q: %w", n, err)
		}
		l.merged = append(l.merged, n)
	}
	return nil
}

// mergeOne folds one adapter into W.
func (l *Layer) mergeOne(ad *Adapter, safe bool) error { return l.merge1(ad, safe, false) }

// merge1 computes the merged weight; with dry it only checks it.
func (l *Layer) merge1(ad *Adapter, safe, dry bool) error {
	return torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		w := s.Own(l.Weight.To(mdt(l.Weight)))
		d := l.kind.Delta(s.Own(ad.A.To(mdt(l.Weight))), s.Own(ad.B.To(mdt(l.Weight)))).MulScalar(ad.scaling)
		nw := w.Add(d)
		var norm *torch.Tensor
		if ad.dora {
			norm = l.kind.WeightNorm(nw)
			f := s.Own(ad.Magnitude.To(mdt(l.Weight))).Div(norm)
			nw = l.kind.WeightView(f).Mul(nw)
		}
		if err := s.Err(); err != nil {
			return err
		}
		if safe {
			if err := checkFinite(nw); err != nil {
				return fmt.Errorf("the merged weight %w; nothing merged", err)
			}
		}
		if dry {
			return nil
		}
		if err := l.Weight.Copy_(nw).Err(); err != nil {
			return err
		}
		if ad.dora {
			keep := norm.Clone()
			s.Keep(keep)
			ad.norm.Close()
			ad.norm = keep
		}
		return nil
	})
}

// checkMerge computes the merged weight of each named adapter alone and
// checks it for NaN and Inf, writing nothing.
func (l *Layer) checkMerge(names []string) error {
	for _, n := range names {
		ad := l.adapters[n]
		if ad == nil {
			return fmt.Errorf("no adapter %q (have %v)", n, l.order)
		}
		if err := l.merge1(ad, true, true); err != nil {
			return fmt.Errorf("merging %q: %w", n, err)
		}
	}
	return nil
}

// checkFinite returns an error if t has a NaN or an infinity.
func checkFinite(t *torch.Tensor) error {
	ok := opAll.Call1("isfinite", opIsFinite.Call1("isfinite", t))
	defer ok.Close()
	v, err := ok.Item()
	if err != nil {
		return err
	}
	if v == 0 {
		return errors.New("has NaN or Inf values (the adapter seems broken)")
	}
	return nil
}

// UnmergeAdapters takes every merged adapter back out, last merged first:
// W ← W − s·ΔW (DoRA: W ← W/(m/‖·‖) − s·ΔW with the norm saved at merge
// time), in float32. For bfloat16 and float16 weights W comes back within
// the dtype's rounding of the original, not bit for bit.
func (l *Layer) UnmergeAdapters() error {
	if l == nil || l.kind == nil {
		return errNilLayer
	}
	if len(l.merged) == 0 {
		return errors.New("not merged")
	}
	for len(l.merged) > 0 {
		n := l.merged[len(l.merged)-1]
		ad := l.adapters[n]
		err := torch.NoGrad(func() error {
			s := torch.NewScope()
			defer s.Close()
			w := s.Own(l.Weight.To(mdt(l.Weight)))
			d := l.kind.Delta(s.Own(ad.A.To(mdt(l.Weight))), s.Own(ad.B.To(mdt(l.Weight)))).MulScalar(ad.scaling)
			if ad.dora {
				f := s.Own(ad.Magnitude.To(mdt(l.Weight))).Div(ad.norm)
				w = w.Div(l.kind.WeightView(f))
			}
			nw := w.Sub(d)
			if err := s.Err(); err != nil {
				return err
			}
			return l.Weight.Copy_(nw).Err()
		})
		if err != nil {
			return fmt.Errorf("unmerging %q: %w", n, err)
		}
		if ad.norm != nil {
			ad.norm.Close()
			ad.norm = nil
		}
		l.merged = l.merged[:len(l.merged)-1]
	}
	return nil
}

// DeltaWeight returns adapter name's s·ΔW in the base weight's layout, in
// float32 (PEFT's get_delta_weight). The caller owns it.
func (l *Layer) DeltaWeight(name string) (*torch.Tensor, error) {
	ad := l.Adapter(name)
	if ad == nil {
		return nil, fmt.Errorf("lora: DeltaWeight: no adapter %q", name)
	}
	var out *torch.Tensor
	err := torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		d := l.kind.Delta(s.Own(ad.A.To(mdt(l.Weight))), s.Own(ad.B.To(mdt(l.Weight)))).MulScalar(ad.scaling)
		var err error
		out, err = s.Done(d)
		return err
	})
	return out, err
}

// adopt puts t into like's scope, if like has one, and returns t: for the
// handles a forward makes from unscoped tensors (parameters, views of
// them), which would otherwise wait for the garbage collector.
func adopt(like, t *torch.Tensor) *torch.Tensor {
	if like != nil && t != nil {
		if sc := like.Scope(); sc != nil && t.Scope() == nil {
			sc.Own(t)
		}
	}
	return t
}

// first returns the "default" adapter, or the first one, or nil.
func (l *Layer) first() *Adapter {
	if l == nil {
		return nil
	}
	if ad, ok := l.adapters[DefaultAdapter]; ok {
		return ad
	}
	if len(l.order) > 0 {
		return l.adapters[l.order[0]]
	}
	return nil
}

// mdt is the dtype of merge arithmetic: float32 for float32, bfloat16 and
// float16 weights, float64 for float64 ones.
func mdt(w *torch.Tensor) torch.DType {
	if w.DType() == torch.Float64 {
		return torch.Float64
	}
	return torch.Float32
}
