package reftest

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// TinyScale is the divisor RelErr uses when the reference is all zeros.
const TinyScale = 1e-30

// RelErr returns the relative error of got against want:
//
//	max_i |got_i - want_i| / max_i |want_i|
//
// the largest absolute difference measured against the largest magnitude of
// the reference, so that elements near zero (where an element-wise relative
// error explodes) are judged at the tensor's scale. When want is all zeros
// the divisor is TinyScale, so that any difference is a huge error. NaN
// where want is NaN, and an infinity where want is the same infinity, count
// as equal (they are left out of both maxima); any other NaN or infinity on
// either side makes the error +Inf, as does a length mismatch. Empty slices
// have error 0.
func RelErr(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, scale float64
	for i, w := range want {
		g := got[i]
		if math.IsNaN(w) || math.IsNaN(g) || math.IsInf(w, 0) || math.IsInf(g, 0) {
			if (math.IsNaN(w) && math.IsNaN(g)) || g == w {
				continue
			}
			return math.Inf(1)
		}
		scale = math.Max(scale, math.Abs(w))
		diff = math.Max(diff, math.Abs(g-w))
	}
	if diff == 0 {
		return 0
	}
	if scale == 0 {
		scale = TinyScale
	}
	return diff / scale
}

// Float64s returns the elements of a float32 or float64 tensor (on any
// device) as float64s, exactly. It fails t for a nil tensor or another
// dtype.
func Float64s(t testing.TB, x *torch.Tensor) []float64 {
	t.Helper()
	return readFloats(t, "Float64s", x,
		func(f float32) float64 { return float64(f) },
		func(f float64) float64 { return f })
}

// Bits returns the raw bit patterns of the elements of a float32 or float64
// tensor (on any device). It fails t for a nil tensor or another dtype.
func Bits(t testing.TB, x *torch.Tensor) []uint64 {
	t.Helper()
	return readFloats(t, "Bits", x,
		func(f float32) uint64 { return uint64(math.Float32bits(f)) },
		math.Float64bits)
}

// readFloats reads the elements of a float32 or float64 tensor and maps
// each with from32 or from64; it fails t (naming the caller fn) for a nil
// tensor or another dtype.
func readFloats[T any](t testing.TB, fn string, x *torch.Tensor, from32 func(float32) T, from64 func(float64) T) []T {
	t.Helper()
	require.NotNilf(t, x, "%s: nil tensor", fn)
	switch x.DType() {
	case torch.Float32:
		v, err := torch.ToSlice[float32](x)
		require.NoError(t, err)
		return mapSlice(v, from32)
	case torch.Float64:
		v, err := torch.ToSlice[float64](x)
		require.NoError(t, err)
		return mapSlice(v, from64)
	}
	require.FailNowf(t, fn, "tensor is %v, want float32 or float64", x.DType())
	return nil
}

func mapSlice[S, T any](v []S, f func(S) T) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

// requireSameKind fails t unless got is non-nil and has want's dtype and
// shape.
func requireSameKind(t testing.TB, what string, got, want *torch.Tensor) {
	t.Helper()
	require.NotNilf(t, want, "%s: nil reference tensor", what)
	require.NotNilf(t, got, "%s: got nil tensor", what)
	require.Equalf(t, want.DType(), got.DType(), "%s: dtype", what)
	require.Equalf(t, want.Shape(), got.Shape(), "%s: shape", what)
}

// RequireClose fails t unless got has want's dtype and shape, every element
// of both is finite, and the relative error (RelErr) is at most tol. It
// returns the relative error. what names the result in failure messages.
func RequireClose(t testing.TB, what string, got, want *torch.Tensor, tol float64) float64 {
	t.Helper()
	requireSameKind(t, what, got, want)
	return RequireSlicesClose(t, what, Float64s(t, got), Float64s(t, want), tol)
}

// RequireSlicesClose is RequireClose for plain slices: it fails t unless got
// and want have the same length, every element of both is finite, and
// RelErr(got, want) is at most tol. It returns the relative error.
func RequireSlicesClose(t testing.TB, what string, got, want []float64, tol float64) float64 {
	t.Helper()
	require.Lenf(t, got, len(want), "%s: length", what)
	for i := range want {
		for _, v := range []struct {
			side string
			x    float64
		}{{"got", got[i]}, {"want", want[i]}} {
			if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
				require.FailNowf(t, "not finite", "%s: element %d of %s is %v", what, i, v.side, v.x)
			}
		}
	}
	e := RelErr(got, want)
	if !(e <= tol) {
		msg := fmt.Sprintf("%s: relative error %.3g exceeds %.3g", what, e, tol)
		if len(want) <= 32 {
			msg += fmt.Sprintf("\ngot  %v\nwant %v", got, want)
		}
		require.FailNow(t, "not close", msg)
	}
	return e
}

// RequireExact fails t unless got has want's dtype and shape and every
// element equals want's as a number (+0 equals -0; NaN equals nothing).
func RequireExact(t testing.TB, what string, got, want *torch.Tensor) {
	t.Helper()
	requireSameKind(t, what, got, want)
	g, w := Float64s(t, got), Float64s(t, want)
	if i := firstMismatch(g, w); i >= 0 {
		require.FailNowf(t, "not equal", "%s: element %d of %d: got %v, want %v", what, i, len(w), g[i], w[i])
	}
}

// RequireBitwise fails t unless got has want's dtype and shape and every
// element has want's bit pattern.
func RequireBitwise(t testing.TB, what string, got, want *torch.Tensor) {
	t.Helper()
	requireSameKind(t, what, got, want)
	g, w := Bits(t, got), Bits(t, want)
	if i := firstMismatch(g, w); i >= 0 {
		gf, wf := Float64s(t, got), Float64s(t, want)
		require.FailNowf(t, "not bitwise equal", "%s: element %d of %d differs: got %v (bits %#x), want %v (bits %#x)",
			what, i, len(w), gf[i], g[i], wf[i], w[i])
	}
}

// firstMismatch returns the first index at which g and w (of equal length)
// differ under ==, or -1.
func firstMismatch[T comparable](g, w []T) int {
	for i := range w {
		if g[i] != w[i] {
			return i
		}
	}
	return -1
}
