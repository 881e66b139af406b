package lora

import (
	"fmt"
	"math"
	"slices"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Combination is how AddWeightedAdapter combines adapters (PEFT's
// combination_type).
type Combination string

const (
	// CombineLinear: A = Σ sgn(wᵢsᵢ)·√|wᵢsᵢ|·Aᵢ, B = Σ √|wᵢsᵢ|·Bᵢ, with sᵢ each
	// adapter's scaling (all ranks equal; the new scaling is 1). As in PEFT,
	// B·A is then not Σ wᵢsᵢ·Bᵢ·Aᵢ: the cross terms stay.
	CombineLinear Combination = "linear"
	// CombineCat: A = [w₁s₁A₁; w₂s₂A₂; …] (rows), B = [B₁ B₂ …] (columns):
	// the ranks add and B·A = Σ wᵢsᵢ·Bᵢ·Aᵢ exactly.
	CombineCat Combination = "cat"
	// CombineSVD: ΔW = Σ wᵢ·sᵢ·Bᵢ·Aᵢ truncated to rank r by SVD (ΔW = U·S·Vᵀ,
	// B = U_r·S_r, A = Vᵀ_r).
	CombineSVD Combination = "svd"
)

// AddWeightedAdapter adds adapter name to model, combining adapters with
// weights as PEFT's add_weighted_adapter does for "linear", "cat" and
// "svd". The new adapter has α = r (scaling 1; with rsLoRA, as PEFT, √r),
// rsLoRA as the first adapter, the union of their targets, and is frozen
// and inactive (SetAdapter activates it). svdRank is the rank of "svd"
// (0: the largest of the adapters' ranks); it is ignored otherwise. DoRA
// adapters cannot be combined. On error nothing changes.
func AddWeightedAdapter(model module.Module, adapters []string, weights []float64, name string, combination Combination, svdRank int64) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("lora: AddWeightedAdapter: "+format, args...)
	}
	if isNil(model) {
		return fail("model is nil (%T)", model)
	}
	if err := checkAdapterName(name); err != nil {
		return fail("%w", err)
	}
	if len(adapters) == 0 || len(adapters) != len(weights) {
		return fail("%d adapters and %d weights", len(adapters), len(weights))
	}
	for i, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return fail("weights[%d] is %v (want a finite number)", i, w)
		}
	}
	have := AdapterNames(model)
	if slices.Contains(have, name) {
		return fail("adapter %q exists", name)
	}
	var cfgs []*Config
	for _, a := range adapters {
		cfg, _, err := configOf(model, a)
		if err != nil {
			return fail("%w", err)
		}
		if cfg.UseDoRA {
			return fail("adapter %q is a DoRA adapter; only LoRA adapters combine", a)
		}
		cfgs = append(cfgs, cfg)
	}
	if len(adapters) == 1 {
		combination = CombineLinear // as PEFT
	}
	// The rank of the new adapter, from the adapters' largest ranks.
	var ranks []int64
	for _, a := range adapters {
		var r int64
		for _, nl := range Layers(model) {
			if ad := nl.Layer.LoraLayer().Adapter(a); ad != nil && ad.r > r {
				r = ad.r
			}
		}
		ranks = append(ranks, r)
	}
	var newRank int64
	switch combination {
	case CombineLinear:
		for _, r := range ranks[1:] {
			if r != ranks[0] {
				return fail("all adapters must have the same r for %q, got %v", combination, ranks)
			}
		}
		newRank = ranks[0]
	case CombineCat:
		for _, r := range ranks {
			newRank += r
		}
	case CombineSVD:
		newRank = svdRank
		if newRank <= 0 {
			newRank = slices.Max(ranks)
		}
	default:
		return fail("combination %q is not supported (linear, cat, svd)", combination)
	}

	cfg := *cfgs[0]
	cfg.R, cfg.Alpha = newRank, float64(newRank)
	cfg.RankPattern, cfg.AlphaPattern = nil, nil
	var union []string
	for _, c := range cfgs {
		for _, t := range c.TargetModules {
			if !slices.Contains(union, t) {
				union = append(union, t)
			}
		}
	}
	cfg.TargetModules, cfg.TargetRegexp = union, ""
	if len(union) == 0 {
		// Regexp targets: keep the paths the adapters sit on.
		for _, a := range adapters {
			_, paths, _ := configOf(model, a)
			for _, p := range paths {
				if !slices.Contains(cfg.TargetModules, p) {
					cfg.TargetModules = append(cfg.TargetModules, p)
				}
			}
		}
	}

	type built struct {
		l  *Layer
		ad *Adapter
	}
	var done []built
	undo := func() {
		for _, b := range done {
			torch.CloseAll(b.ad.tensors()...)
		}
	}
	for _, nl := range Layers(model) {
		l := nl.Layer.LoraLayer()
		var srcs []*Adapter
		var ws []float64
		for i, a := range adapters {
			if ad := l.Adapter(a); ad != nil {
				srcs, ws = append(srcs, ad), append(ws, weights[i])
			}
		}
		if len(srcs) == 0 {
			continue
		}
		if len(l.merged) > 0 {
			undo()
			return fail("%s: adapters %v are merged; unmerge them first", nl.Name, l.merged)
		}
		ad := &Adapter{name: name, r: newRank, alpha: float64(newRank), rslora: cfg.UseRSLoRA, cfg: &cfg}
		ad.scaling = 1
		if ad.rslora {
			ad.scaling = float64(newRank) / math.Sqrt(float64(newRank))
		}
		var a, b *torch.Tensor
		err := torch.NoGrad(func() (err error) {
			a, b, err = combine(l, srcs, ws, combination, newRank)
			return err
		})
		if err != nil {
			undo()
			return fail("%s: %w", nl.Name, err)
		}
		ad.A, ad.B = a, b
		done = append(done, built{l, ad})
	}
	if len(done) == 0 {
		return fail("no layer holds any of %v", adapters)
	}
	for _, b := range done {
		b.ad.Param("lora_a", &b.ad.A)
		b.ad.Param("lora_b", &b.ad.B)
		b.ad.Param("lora_magnitude", &b.ad.Magnitude)
		active := slices.Clone(b.l.active)
		b.l.install(b.ad)
		b.l.active = active // inactive until SetAdapter, as PEFT
	}
	return nil
}

// combine returns the new A and B of one layer, in A's dtype, frozen.
func combine(l *Layer, srcs []*Adapter, ws []float64, c Combination, r int64) (a, b *torch.Tensor, err error) {
	if ck, ok := l.kind.(*conv2dKind); ok && ck.groups() > 1 {
		return nil, nil, fmt.Errorf("a Conv2d with groups=%d cannot take a weighted combination (its adapters' ranks split into the groups)", ck.groups())
	}
	s := torch.NewScope()
	defer s.Close()
	dt := srcs[0].A.DType()
	f32 := func(t *torch.Tensor) *torch.Tensor { return s.Own(t.To(mdt(t))) }
	switch c {
	case CombineLinear:
		for i, ad := range srcs {
			wi := ws[i] * ad.scaling
			sa := math.Copysign(math.Sqrt(math.Abs(wi)), wi)
			sb := math.Sqrt(math.Abs(wi))
			ai, bi := f32(ad.A).MulScalar(sa), f32(ad.B).MulScalar(sb)
			if a == nil {
				a, b = ai, bi
			} else {
				a, b = a.Add(ai), b.Add(bi)
			}
		}
	case CombineCat:
		var as, bs []*torch.Tensor
		var got int64
		for i, ad := range srcs {
			as = append(as, f32(ad.A).MulScalar(ws[i]*ad.scaling))
			bs = append(bs, f32(ad.B))
			got += ad.r
		}
		// The new rank counts every adapter; rows of the ones this layer
		// lacks stay zero, as in PEFT.
		if pad := r - got; pad > 0 {
			aShape, bShape := l.kind.Shapes(pad)
			as = append(as, s.Own(torch.Zeros(aShape, torch.WithDType(as[0].DType()), torch.WithDevice(as[0].Device()))))
			bs = append(bs, s.Own(torch.Zeros(bShape, torch.WithDType(bs[0].DType()), torch.WithDevice(bs[0].Device()))))
		}
		a, b = torch.Cat(as, 0), torch.Cat(bs, 1)
	case CombineSVD:
		var d *torch.Tensor
		for i, ad := range srcs {
			di := l.kind.Delta(f32(ad.A), f32(ad.B)).MulScalar(ad.scaling * ws[i])
			if d == nil {
				d = di
			} else {
				d = d.Add(di)
			}
		}
		// ΔW as a 2-D out×in matrix: Conv2d flattened, Conv1D and
		// Embedding transposed back.
		switch l.kind.(type) {
		case *conv2dKind:
			d = d.Flatten(1, -1)
		case *conv1DKind, *embeddingKind:
			d = d.T()
		}
		sh := d.Shape()
		if r > min(sh[0], sh[1]) {
			return nil, nil, fmt.Errorf("svd rank %d exceeds ΔW's %v", r, sh)
		}
		outs := opSVD.CallN("AddWeightedAdapter: linalg_svd", 3, d.Contiguous(), true)
		for _, o := range outs {
			s.Own(o)
		}
		if len(outs) != 3 {
			return nil, nil, torch.FirstErr(outs...)
		}
		u := outs[0].Narrow(1, 0, r).Mul(outs[1].Narrow(0, 0, r))
		vh := outs[2].Narrow(0, 0, r)
		aShape, bShape := l.kind.Shapes(r)
		a, b = vh.Reshape(aShape...), u.Reshape(bShape...)
	}
	a, b = a.To(dt).Contiguous(), b.To(dt).Contiguous()
	if err := torch.FirstErr(a, b); err != nil {
		return nil, nil, err
	}
	if err := s.Err(); err != nil {
		return nil, nil, err
	}
	s.Keep(a, b)
	return a, b, nil
}
