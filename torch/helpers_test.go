package torch_test

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// The device the reference tests run their ops on comes from the
// environment variable GOLORA_TEST_DEVICE: "cpu" (the default), "cuda" or
// "cuda:N". Inputs are moved there, the op runs there, and results are
// compared on the CPU. Asking for CUDA where there is none fails the tests
// (it is an explicit request), it does not skip them.
const deviceEnv = "GOLORA_TEST_DEVICE"

var testDeviceOnce = sync.OnceValues(func() (torch.Device, error) {
	return parseTestDevice(os.Getenv(deviceEnv))
})

func parseTestDevice(s string) (torch.Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "cpu":
		return torch.CPU, nil
	case s == "cuda":
		return torch.CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || i < 0 {
			return torch.CPU, fmt.Errorf("%s=%q: bad CUDA index", deviceEnv, s)
		}
		return torch.CUDA(i), nil
	}
	return torch.CPU, fmt.Errorf("%s=%q: want cpu, cuda or cuda:N", deviceEnv, s)
}

// testDevice returns the device the reference tests use, failing the test
// when GOLORA_TEST_DEVICE is malformed or names a CUDA device that libtorch
// cannot use.
func testDevice(t testing.TB) torch.Device {
	t.Helper()
	d, err := testDeviceOnce()
	require.NoError(t, err)
	if d.IsCUDA() {
		require.Truef(t, torch.CUDAIsAvailable(), "%s=%v but CUDA is not available to libtorch", deviceEnv, d)
		require.Lessf(t, d.Index, torch.CUDADeviceCount(), "%s=%v: only %d CUDA devices", deviceEnv, d, torch.CUDADeviceCount())
	}
	return d
}

// Tolerances. The relative error of a result is
//
//	max_i |got_i - want_i| / max(max_i |want_i|, tinyScale)
//
// i.e. the largest absolute difference measured against the largest
// magnitude of the reference, so that elements near zero (where an
// element-wise relative error explodes) are judged at the tensor's scale.
// NaN or ±Inf where the reference has a different value counts as +Inf.
//
// On the CPU golora and the Python reference run the same libtorch
// kernels, so the bounds are tight: float32 1e-6, float64 1e-12.
//
// On CUDA the results are compared against the CPU reference: float32 gets
// 1e-5 (reduction order of the CUDA kernels, cuBLAS for matmul-like ops and
// CUDA's own transcendental functions differ from the CPU's by a few ulps),
// except conv2d, which cuDNN runs in TF32 on Ampere and newer GPUs (libtorch
// enables allow_tf32 for cuDNN by default; TF32 keeps 10 mantissa bits, so
// errors reach ~1e-3): it gets 5e-3. float64 keeps 1e-12. Seeded cases
// (random draws, dropout masks) always run on the CPU, because CUDA's
// generator (Philox) draws different numbers from the CPU's (mt19937).
const (
	tinyScale  = 1e-30
	tolF32     = 1e-6
	tolF64     = 1e-12
	tolF32CUDA = 1e-5
	tolTF32    = 5e-3
)

func tolerance(dt torch.DType, dev torch.Device, op string) float64 {
	switch dt {
	case torch.Float64:
		return tolF64
	case torch.Float32:
		if !dev.IsCUDA() {
			return tolF32
		}
		if op == "conv2d" {
			return tolTF32
		}
		return tolF32CUDA
	}
	return 0
}

// relErr is the relative error defined above.
func relErr(got, want []float64) float64 {
	var scale, diff float64
	for i := range want {
		g, w := got[i], want[i]
		if math.IsNaN(w) || math.IsNaN(g) || math.IsInf(w, 0) || math.IsInf(g, 0) {
			if (math.IsNaN(w) && math.IsNaN(g)) || g == w {
				continue
			}
			return math.Inf(1)
		}
		scale = math.Max(scale, math.Abs(w))
		diff = math.Max(diff, math.Abs(g-w))
	}
	return diff / math.Max(scale, tinyScale)
}

// asFloat64 reads a float32 or float64 tensor (on any device) as float64s.
func asFloat64(t testing.TB, x *torch.Tensor) []float64 {
	t.Helper()
	switch x.DType() {
	case torch.Float32:
		v, err := torch.ToSlice[float32](x)
		require.NoError(t, err)
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return out
	case torch.Float64:
		v, err := torch.ToSlice[float64](x)
		require.NoError(t, err)
		return v
	}
	t.Fatalf("asFloat64: tensor is %v", x.DType())
	return nil
}

// bitsOf reads a float tensor's elements as raw bit patterns.
func bitsOf(t testing.TB, x *torch.Tensor) []uint64 {
	t.Helper()
	switch x.DType() {
	case torch.Float32:
		v, err := torch.ToSlice[float32](x)
		require.NoError(t, err)
		out := make([]uint64, len(v))
		for i, f := range v {
			out[i] = uint64(math.Float32bits(f))
		}
		return out
	case torch.Float64:
		v, err := torch.ToSlice[float64](x)
		require.NoError(t, err)
		out := make([]uint64, len(v))
		for i, f := range v {
			out[i] = math.Float64bits(f)
		}
		return out
	}
	t.Fatalf("bitsOf: tensor is %v", x.DType())
	return nil
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
		v, err := torch.ToSlice[int64](x)
		require.NoError(t, err)
		return v
	case torch.Int32:
		v, err := torch.ToSlice[int32](x)
		require.NoError(t, err)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Uint8:
		v, err := torch.ToSlice[uint8](x)
		require.NoError(t, err)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Bool:
		v, err := torch.ToSlice[bool](x)
		require.NoError(t, err)
		return conv(len(v), func(i int) int64 {
			if v[i] {
				return 1
			}
			return 0
		})
	case torch.Float32, torch.Float64:
		b := bitsOf(t, x)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	case torch.Float16, torch.BFloat16:
		// Widening to float32 is exact, so float32 bits identify the value.
		w, err := x.To(torch.Float32)
		require.NoError(t, err)
		defer w.Close()
		b := bitsOf(t, w)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	}
	t.Fatalf("exactSlice: unsupported dtype %v", x.DType())
	return nil
}

// compare checks got against want: same dtype and shape, then bitwise for
// exact cases and non-float dtypes, else within tol (relErr). It returns the
// relative error (0 for exact comparisons). label names the case and the
// tensor in failure messages.
func compare(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64 {
	t.Helper()
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
				gf, wf := asFloat64(t, got), asFloat64(t, want)
				msg += fmt.Sprintf(": got %v want %v (relErr %.3g)", gf[first], wf[first], relErr(gf, wf))
			} else {
				msg += fmt.Sprintf(": got %d want %d", g[first], w[first])
			}
			t.Error(msg)
		}
		return 0
	}
	g, w := asFloat64(t, got), asFloat64(t, want)
	e := relErr(g, w)
	if e > tol {
		t.Errorf("%s: relative error %.3g exceeds %.0e", label, e, tol)
	}
	return e
}

// closeLater closes the tensors when the test ends.
func closeLater(t testing.TB, ts ...*torch.Tensor) {
	t.Cleanup(func() { torch.CloseAll(ts...) })
}

// result carries a call's two results so that try(x.Op()).must(t) can fail
// the test on the error in one expression.
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

// must fails the test if the call failed and returns its value.
func (r result[T]) must(t testing.TB) T {
	t.Helper()
	require.NoError(t, r.err)
	return r.v
}

// settledLiveTensors runs the garbage collector until the tensors that
// other tests dropped without Close have been freed by their cleanups, then
// returns LiveTensors.
func settledLiveTensors() int {
	prev := -1
	for i := 0; i < 50; i++ {
		runtime.GC()
		time.Sleep(2 * time.Millisecond)
		n := torch.LiveTensors()
		if n == prev {
			return n
		}
		prev = n
	}
	return prev
}
