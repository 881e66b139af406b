package reftest_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]torch.Device{
		"": torch.CPU, "cpu": torch.CPU, " CPU ": torch.CPU,
		"cuda": torch.CUDA(0), "CUDA": torch.CUDA(0), "cuda:0": torch.CUDA(0), "cuda:3": torch.CUDA(3),
	} {
		got, err := reftest.ParseDevice(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"gpu", "cuda:", "cuda:-1", "cuda:x", "mps"} {
		_, err := reftest.ParseDevice(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), reftest.DeviceEnv)
	}
}

func TestDevice(t *testing.T) {
	want, err := reftest.ParseDevice(os.Getenv(reftest.DeviceEnv))
	require.NoError(t, err)
	require.Equal(t, want, reftest.Device(t))
}

func TestTolerance(t *testing.T) {
	cpu, gpu := torch.CPU, torch.CUDA(0)
	require.Equal(t, 1e-6, reftest.Tolerance(torch.Float32, cpu))
	require.Equal(t, 1e-12, reftest.Tolerance(torch.Float64, cpu))
	require.Equal(t, 1e-5, reftest.Tolerance(torch.Float32, gpu))
	require.Equal(t, 1e-12, reftest.Tolerance(torch.Float64, gpu))
	for _, dt := range []torch.DType{torch.Int64, torch.Int32, torch.Uint8, torch.Bool, torch.Float16, torch.BFloat16} {
		require.Zero(t, reftest.Tolerance(dt, cpu), dt.String())
		require.Zero(t, reftest.Tolerance(dt, gpu), dt.String())
	}
}

func TestRelErr(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	div := func(a, b float64) float64 { return a / b } // in float64, not constant arithmetic
	for _, c := range []struct {
		name      string
		got, want []float64
		err       float64
	}{
		{"empty", nil, nil, 0},
		{"equal", []float64{1, -2, 3}, []float64{1, -2, 3}, 0},
		{"signed zeros", []float64{0}, []float64{math.Copysign(0, -1)}, 0},
		{"scale is the largest |want|", []float64{1.5, -4}, []float64{1, -4}, 0.5 / 4},
		{"near-zero elements at the tensor's scale", []float64{1e-9, 10}, []float64{0, 10}, 1e-10},
		{"all-zero reference", []float64{1e-20, 0}, []float64{0, 0}, div(1e-20, reftest.TinyScale)},
		{"tiny reference", []float64{2e-40}, []float64{1e-40}, 1},
		{"length", []float64{1}, []float64{1, 2}, inf},
		{"NaN matches NaN", []float64{nan, 2}, []float64{nan, 4}, 0.5},
		{"same infinity", []float64{-inf, 1}, []float64{-inf, 1}, 0},
		{"NaN vs number", []float64{nan}, []float64{1}, inf},
		{"number vs NaN", []float64{1}, []float64{nan}, inf},
		{"opposite infinities", []float64{inf}, []float64{-inf}, inf},
		{"infinity vs number", []float64{1}, []float64{inf}, inf},
	} {
		require.Equal(t, c.err, reftest.RelErr(c.got, c.want), c.name)
	}
}

// fakeT records the failures of a require call; FailNow ends the goroutine
// the way testing.T's does.
type fakeT struct {
	testing.TB
	failed bool
	msg    strings.Builder
}

func (f *fakeT) Helper() {}

func (f *fakeT) Name() string { return "fakeT" }

func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = true
	fmt.Fprintf(&f.msg, format, args...)
}

func (f *fakeT) FailNow() {
	f.failed = true
	runtime.Goexit()
}

// fails runs check against a fakeT and returns whether it failed, and the
// failure message.
func fails(check func(t testing.TB)) (bool, string) {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(f)
	}()
	<-done
	return f.failed, f.msg.String()
}

// tensor makes a 1-D tensor of data that is freed when the test ends.
func tensor[T torch.Element](t *testing.T, data ...T) *torch.Tensor {
	t.Helper()
	x := torch.FromSlice(data)
	require.NoError(t, x.Err())
	t.Cleanup(func() { x.Close() })
	return x
}

func TestRequireClose(t *testing.T) {
	want := tensor(t, 1.0, -2.0, 4.0)
	for _, c := range []struct {
		name string
		got  *torch.Tensor
		tol  float64
		fail string // "" when the check passes, else part of the message
	}{
		{"equal", tensor(t, 1.0, -2.0, 4.0), 0, ""},
		{"within", tensor(t, 1.0, -2.0, 4.0+1e-12), 1e-12, ""},
		{"outside", tensor(t, 1.0, -2.0, 4.0+1e-11), 1e-12, "relative error"},
		{"dtype", tensor(t, float32(1), -2, 4), 1, "dtype"},
		{"shape", tensor(t, 1.0, -2.0), 1, "shape"},
		{"NaN", tensor(t, 1.0, math.NaN(), 4.0), 1, "not finite"},
		{"Inf", tensor(t, 1.0, math.Inf(-1), 4.0), 1, "not finite"},
		{"nil", nil, 1, "nil"},
		{"failed", torch.FromSlice([]float64{1}, 2), 1, "dtype"},
	} {
		failed, msg := fails(func(tb testing.TB) { reftest.RequireClose(tb, "x", c.got, want, c.tol) })
		require.Equal(t, c.fail != "", failed, "%s: %s", c.name, msg)
		require.Contains(t, msg, c.fail, c.name)
	}
	// A NaN reference never matches.
	nanWant := tensor(t, math.NaN())
	failed, _ := fails(func(tb testing.TB) { reftest.RequireClose(tb, "x", tensor(t, math.NaN()), nanWant, 1) })
	require.True(t, failed)
	require.Equal(t, 0.5, reftest.RequireClose(t, "x", tensor(t, float32(1.5), 1), tensor(t, float32(1), 1), 0.5))
}

func TestRequireSlicesClose(t *testing.T) {
	require.Equal(t, 0.25, reftest.RequireSlicesClose(t, "x", []float64{1, 4}, []float64{2, 4}, 0.25))
	for name, check := range map[string]func(tb testing.TB){
		"length":      func(tb testing.TB) { reftest.RequireSlicesClose(tb, "x", []float64{1}, []float64{1, 2}, 1) },
		"tolerance":   func(tb testing.TB) { reftest.RequireSlicesClose(tb, "x", []float64{1, 4.5}, []float64{2, 4}, 0.2) },
		"zero tol":    func(tb testing.TB) { reftest.RequireSlicesClose(tb, "x", []float64{1e-300}, []float64{0}, 0) },
		"NaN in got":  func(tb testing.TB) { reftest.RequireSlicesClose(tb, "x", []float64{math.NaN()}, []float64{1}, 1) },
		"NaN in want": func(tb testing.TB) { reftest.RequireSlicesClose(tb, "x", []float64{1}, []float64{math.NaN()}, 1) },
		"NaN in both": func(tb testing.TB) {
			reftest.RequireSlicesClose(tb, "x", []float64{math.NaN()}, []float64{math.NaN()}, 1)
		},
		"Inf in both": func(tb testing.TB) {
			reftest.RequireSlicesClose(tb, "x", []float64{math.Inf(1)}, []float64{math.Inf(1)}, 1)
		},
	} {
		failed, _ := fails(check)
		require.True(t, failed, name)
	}
}

func TestRequireExactAndBitwise(t *testing.T) {
	pz, nz := tensor(t, 0.0, 1.5), tensor(t, math.Copysign(0, -1), 1.5)
	reftest.RequireExact(t, "x", pz, nz) // +0 == -0 as numbers
	reftest.RequireBitwise(t, "x", pz, tensor(t, 0.0, 1.5))
	failed, msg := fails(func(tb testing.TB) { reftest.RequireBitwise(tb, "x", pz, nz) })
	require.True(t, failed)
	require.Contains(t, msg, "element 0")
	for name, check := range map[string]func(tb testing.TB){
		"exact value":    func(tb testing.TB) { reftest.RequireExact(tb, "x", tensor(t, 0.0, 1.5000001), pz) },
		"exact dtype":    func(tb testing.TB) { reftest.RequireExact(tb, "x", tensor(t, float32(0), 1.5), pz) },
		"exact shape":    func(tb testing.TB) { reftest.RequireExact(tb, "x", tensor(t, 0.0), pz) },
		"exact NaN":      func(tb testing.TB) { reftest.RequireExact(tb, "x", tensor(t, math.NaN()), tensor(t, math.NaN())) },
		"bitwise dtype":  func(tb testing.TB) { reftest.RequireBitwise(tb, "x", tensor(t, float32(0), 1.5), pz) },
		"bitwise shape":  func(tb testing.TB) { reftest.RequireBitwise(tb, "x", tensor(t, 0.0), pz) },
		"bitwise ints":   func(tb testing.TB) { reftest.RequireBitwise(tb, "x", tensor(t, int64(1)), tensor(t, int64(1))) },
		"bitwise nil":    func(tb testing.TB) { reftest.RequireBitwise(tb, "x", nil, pz) },
		"Float64s ints":  func(tb testing.TB) { reftest.Float64s(tb, tensor(t, int32(1))) },
		"Float64s nil":   func(tb testing.TB) { reftest.Float64s(tb, nil) },
		"Bits of a bool": func(tb testing.TB) { reftest.Bits(tb, tensor(t, true)) },
	} {
		failed, _ := fails(check)
		require.True(t, failed, name)
	}
}

func TestFloat64sAndBits(t *testing.T) {
	f32 := tensor(t, float32(0.1), -3, float32(math.Inf(1)))
	require.Equal(t, []float64{float64(float32(0.1)), -3, math.Inf(1)}, reftest.Float64s(t, f32))
	require.Equal(t, []uint64{uint64(math.Float32bits(0.1)), uint64(math.Float32bits(-3)), 0x7f800000}, reftest.Bits(t, f32))
	f64 := tensor(t, 0.1, math.Copysign(0, -1))
	require.Equal(t, []float64{0.1, 0}, reftest.Float64s(t, f64))
	require.Equal(t, []uint64{math.Float64bits(0.1), 1 << 63}, reftest.Bits(t, f64))
}

func TestMaxErrors(t *testing.T) {
	var m reftest.MaxErrors
	_, _, ok := m.Max("a")
	require.False(t, ok)
	m.Note("a/float32", "first", 1e-7)
	m.Note("a/float32", "second", 3e-7)
	m.Note("a/float32", "third", 2e-7)
	m.Note("a/float64", "", 0)
	m.Note("b/float32", "other", 5)
	e, src, ok := m.Max("a/float32")
	require.True(t, ok)
	require.Equal(t, 3e-7, e)
	require.Equal(t, "second", src)

	lines := m.Lines("a/")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "a/float32")
	require.Contains(t, lines[0], "3e-07 (second)")
	require.Contains(t, lines[1], "a/float64")
	require.NotContains(t, lines[1], "(")
	require.Len(t, m.Lines(""), 3)
	m.Log(t, "")
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "refs.safetensors")
	live := reftest.SettledLiveTensors()
	x := tensor(t, 1.0, 2.0)
	require.NoError(t, torch.SaveSafetensors(path, map[string]*torch.Tensor{"case.x": x}, map[string]string{"cases": `[{"name":"case"}]`, "bad": "{"}))

	t.Run("load", func(t *testing.T) {
		f := reftest.Load(t, path, "regenerate me")
		require.Equal(t, path, f.Path)
		require.True(t, f.Has("case.x"))
		require.False(t, f.Has("case.y"))
		reftest.RequireBitwise(t, "case.x", f.Tensor(t, "case.x"), x)
		var cases []struct{ Name string }
		f.DecodeMeta(t, "cases", &cases)
		require.Equal(t, "case", cases[0].Name)

		failed, msg := fails(func(tb testing.TB) { f.Tensor(tb, "case.y") })
		require.True(t, failed)
		require.Contains(t, msg, "case.y")
		failed, msg = fails(func(tb testing.TB) { f.DecodeMeta(tb, "missing", &cases) })
		require.True(t, failed)
		require.Contains(t, msg, "missing")
		failed, _ = fails(func(tb testing.TB) { f.DecodeMeta(tb, "bad", &cases) })
		require.True(t, failed)
	})
	// The file's tensors were closed with the subtest.
	require.Equal(t, live+1, torch.LiveTensors())

	failed, msg := fails(func(tb testing.TB) { reftest.Load(tb, path+".absent", "regenerate me") })
	require.True(t, failed)
	require.Contains(t, msg, "regenerate me")
}

func TestScope(t *testing.T) {
	var x *torch.Tensor
	t.Run("inner", func(t *testing.T) {
		x = torch.Zeros([]int64{2}, torch.In(reftest.Scope(t)))
		require.NoError(t, x.Err())
	})
	require.True(t, x.Closed(), "the scope is closed when its test ends")
}
