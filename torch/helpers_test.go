package torch_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// The reference tests run their ops on reftest.Device (GOLORA_TEST_DEVICE:
// cpu, cuda or cuda:N) and compare the results on the CPU with the
// tolerances of reftest.Tolerance and the relative error of reftest.RelErr.
//
// One op has its own bound: conv2d in float32 on CUDA, which cuDNN runs in
// TF32 on Ampere and newer GPUs (libtorch enables allow_tf32 for cuDNN by
// default; TF32 keeps 10 mantissa bits, so errors reach ~1e-3): it gets
// tolTF32. Seeded cases (random draws, dropout masks) always run on the
// CPU, because CUDA's generator (Philox) draws different numbers from the
// CPU's (mt19937).
const tolTF32 = 5e-3

// tolerance is reftest.Tolerance with the exception of conv2d above.
func tolerance(dt torch.DType, dev torch.Device, op string) float64 {
	if op == "conv2d" && dt == torch.Float32 && dev.IsCUDA() {
		return tolTF32
	}
	return reftest.Tolerance(dt, dev)
}

// testScope returns a scope that is closed when the test ends: tensors
// made in it (torch.In(s), s.Own) and every result computed from them are
// freed then.
func testScope(t testing.TB) *torch.Scope {
	s := torch.NewScope()
	t.Cleanup(s.Close)
	return s
}

// ok fails the test if x is a failed tensor (or nil) and returns x: the
// check at the end of a chain.
func ok(t testing.TB, x *torch.Tensor) *torch.Tensor {
	t.Helper()
	require.NotNil(t, x)
	require.NoError(t, x.Err())
	return x
}

// vals reads x's elements, failing the test on error.
func vals[T torch.Element](t testing.TB, x *torch.Tensor) []T {
	t.Helper()
	v, err := torch.ToSlice[T](x)
	require.NoError(t, err)
	return v
}

// item reads a one-element tensor, failing the test on error.
func item(t testing.TB, x *torch.Tensor) float64 {
	t.Helper()
	v, err := x.Item()
	require.NoError(t, err)
	return v
}

// exactSlice reads a tensor of any supported dtype into a comparable form:
// integers and bools as int64, floats by bit pattern.
func exactSlice(t testing.TB, x *torch.Tensor) []int64 {
	t.Helper()
	conv := func(n int, f func(int) int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	switch x.DType() {
	case torch.Int64:
		return vals[int64](t, x)
	case torch.Int32:
		v := vals[int32](t, x)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Uint8:
		v := vals[uint8](t, x)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Bool:
		v := vals[bool](t, x)
		return conv(len(v), func(i int) int64 {
			if v[i] {
				return 1
			}
			return 0
		})
	case torch.Float32, torch.Float64:
		b := reftest.Bits(t, x)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	case torch.Float16, torch.BFloat16:
		// Widening to float32 is exact, so float32 bits identify the value.
		w := ok(t, x.To(torch.Float32))
		defer w.Close()
		b := reftest.Bits(t, w)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	}
	t.Fatalf("exactSlice: unsupported dtype %v", x.DType())
	return nil
}

// compare checks got against want: same dtype and shape, then bitwise for
// exact cases and non-float dtypes, else within tol (reftest.RelErr). It
// returns the relative error (0 for exact comparisons). label names the
// case and the tensor in failure messages.
func compare(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64 {
	t.Helper()
	require.NoErrorf(t, got.Err(), "%s", label)
	require.Equalf(t, want.DType(), got.DType(), "%s: dtype", label)
	require.Equalf(t, want.Shape(), got.Shape(), "%s: shape", label)
	if exact || !want.DType().IsFloat() {
		g, w := exactSlice(t, got), exactSlice(t, want)
		bad := 0
		first := -1
		for i := range w {
			if g[i] != w[i] {
				if first < 0 {
					first = i
				}
				bad++
			}
		}
		if bad > 0 {
			msg := fmt.Sprintf("%s: %d of %d elements differ (bitwise); first at flat index %d", label, bad, len(w), first)
			if want.DType() == torch.Float32 || want.DType() == torch.Float64 {
				gf, wf := reftest.Float64s(t, got), reftest.Float64s(t, want)
				msg += fmt.Sprintf(": got %v want %v (relErr %.3g)", gf[first], wf[first], reftest.RelErr(gf, wf))
			} else {
				msg += fmt.Sprintf(": got %d want %d", g[first], w[first])
			}
			t.Error(msg)
		}
		return 0
	}
	e := reftest.RelErr(reftest.Float64s(t, got), reftest.Float64s(t, want))
	if e > tol {
		t.Errorf("%s: relative error %.3g exceeds %.0e", label, e, tol)
	}
	return e
}
