package lora_test

// The merged-vs-unmerged gap per dtype (float32, bfloat16, float16), the
// numbers doc.go's table reports. A 256×256 Linear, r = 16, α = 32, A and
// B random (B ~ N(0, 0.02²)), the weight, A and B all in the dtype:
//
//   - Merge computes W0 + s·B·A in float32 and rounds once, so the merged
//     weight is the correctly rounded W0 + ΔW (from a float64 reference)
//     in every element but the rare near-tie: checked to be within half
//     an ulp (u·|w|, u = 2⁻⁸ bf16, 2⁻¹¹ f16, 2⁻²⁴ f32) plus float32's own
//     error on the sum ((r+2)·2⁻²⁴ of the weight's scale). PEFT's CPU path (ΔW rounded to the dtype, then added in the
//     dtype) rounds twice; its error is logged beside ours.
//   - The merged output against the unmerged one, both in the dtype, is
//     logged, as is the error of W0 after Unmerge.

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/torch"
)

func TestMergeGapPerDType(t *testing.T) {
	const d, r = 256, 16
	units := map[torch.DType]float64{torch.Float32: math.Ldexp(1, -24), torch.BFloat16: math.Ldexp(1, -8), torch.Float16: math.Ldexp(1, -11)}
	t.Logf("%-9s %-22s %-22s %-20s %-18s", "dtype", "merged W vs exact", "PEFT-style W vs exact", "output gap", "W0 after Unmerge")
	for _, dt := range []torch.DType{torch.Float32, torch.BFloat16, torch.Float16} {
		require.NoError(t, torch.ManualSeed(31))
		l, err := lora.NewLinear(d, d, true, r, lora.WithAlpha(32))
		require.NoError(t, err)
		require.NoError(t, l.LoraB.Normal_(0, 0.02))
		require.NoError(t, l.To(dt))
		s := newScope(t)
		w0 := f64s(t, l.Weight)
		// The exact W0 + s·B·A from the dtype's values, in float64.
		exact := f64s(t, s.Own(l.Weight.To(torch.Float64)).Add(
			s.Own(l.LoraB.To(torch.Float64)).Mm(s.Own(l.LoraA.To(torch.Float64))).MulScalar(l.Scaling())))
		peft := f64s(t, s.Own(l.LoraB.To(torch.Float32)).Mm(s.Own(l.LoraA.To(torch.Float32))).MulScalar(l.Scaling()).To(dt).Add(l.Weight))
		x := own(t, torch.Randn([]int64{8, d}).To(dt))
		var y []float64
		if dt == torch.Float32 || dt == torch.BFloat16 {
			y = f64s(t, s.Own(l.Forward(s.Borrow(x))))
		}
		require.NoError(t, l.Merge())
		merged := f64s(t, l.Weight)
		u := units[dt]
		var scale float64
		for _, v := range exact {
			scale = math.Max(scale, math.Abs(v))
		}
		for i := range merged {
			// One rounding (u·|w|) plus float32's error on W0 + ΔW, at
			// most r products and a sum: about 2⁻²⁴·r of the scale.
			require.LessOrEqual(t, math.Abs(merged[i]-exact[i]), u*math.Abs(exact[i])+float64(r+2)*math.Ldexp(1, -24)*scale,
				"element %d: %v vs exact %v: more than one rounding", i, merged[i], exact[i])
		}
		gap := "n/a (no f16 GEMM on CPU)"
		if y != nil {
			gap = sci(reftest.RelErr(f64s(t, s.Own(l.Forward(s.Borrow(x)))), y))
		}
		require.NoError(t, l.Unmerge())
		t.Logf("%-9s %-22s %-22s %-20s %-18s", dt, sci(reftest.RelErr(merged, exact)), sci(reftest.RelErr(peft, exact)), gap,
			sci(reftest.RelErr(f64s(t, l.Weight), w0)))
	}
}

func sci(v float64) string { return strconvFormat(v) }

// f64s returns x's values (any floating dtype) as float64s.
func f64s(t testing.TB, x *torch.Tensor) []float64 {
	t.Helper()
	c := x.To(torch.Float64)
	defer c.Close()
	return reftest.Float64s(t, c)
}
