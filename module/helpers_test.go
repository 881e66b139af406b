package module_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// The reference files are written by testdata/gen_module.py.
const (
	refsPath     = "testdata/module_refs.safetensors"
	netStatePath = "testdata/net_state.safetensors"
)

// refs holds the PyTorch references of one test; Close frees them.
type refs struct {
	t       *testing.T
	tensors map[string]*torch.Tensor
	meta    map[string]string
}

func loadRefs(t *testing.T) *refs {
	t.Helper()
	sd, meta, err := torch.LoadSafetensors(refsPath)
	require.NoError(t, err, "regenerate with /usr/bin/python3 module/testdata/gen_module.py")
	t.Cleanup(func() { torch.CloseMap(sd) })
	return &refs{t: t, tensors: sd, meta: meta}
}

// get returns the reference tensor name; the test fails if it is absent.
func (r *refs) get(name string) *torch.Tensor {
	r.t.Helper()
	x, ok := r.tensors[name]
	require.True(r.t, ok, "reference tensor %q missing from %s", name, refsPath)
	return x
}

// has reports whether the reference tensor name exists.
func (r *refs) has(name string) bool {
	_, ok := r.tensors[name]
	return ok
}

// cases decodes the JSON list in metadata key into out.
func (r *refs) cases(key string, out any) {
	r.t.Helper()
	s, ok := r.meta[key]
	require.True(r.t, ok, "metadata %q missing from %s", key, refsPath)
	require.NoError(r.t, json.Unmarshal([]byte(s), out))
}

// dtypeOf maps the generator's dtype names to torch.DType.
func dtypeOf(t *testing.T, name string) torch.DType {
	t.Helper()
	switch name {
	case "float32":
		return torch.Float32
	case "float64":
		return torch.Float64
	}
	t.Fatalf("unknown dtype %q", name)
	return torch.Invalid
}

// tolerance is the largest relative error accepted for a dtype.
func tolerance(dt torch.DType) float64 {
	if dt == torch.Float64 {
		return 1e-12
	}
	return 1e-6
}

// maxRel records the largest relative error seen per dtype, for the log.
var maxRel = struct {
	sync.Mutex
	m map[torch.DType]float64
}{m: map[torch.DType]float64{}}

// floats returns the elements of a float tensor as float64s.
func floats(t *testing.T, x *torch.Tensor) []float64 {
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
	t.Fatalf("floats: unsupported dtype %v", x.DType())
	return nil
}

// bits returns the raw bit patterns of a float tensor's elements.
func bits(t *testing.T, x *torch.Tensor) []uint64 {
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
	t.Fatalf("bits: unsupported dtype %v", x.DType())
	return nil
}

// requireBitwise fails unless got and want have the same dtype, shape and
// bit patterns.
func requireBitwise(t *testing.T, what string, got, want *torch.Tensor) {
	t.Helper()
	require.Equal(t, want.DType(), got.DType(), "%s: dtype", what)
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", what)
	g, w := bits(t, got), bits(t, want)
	for i := range w {
		if g[i] != w[i] {
			gf, wf := floats(t, got), floats(t, want)
			t.Fatalf("%s: element %d differs: got %v, want %v (not bit for bit)", what, i, gf[i], wf[i])
		}
	}
}

// relErr is max|got-want| / max|want| (absolute error when want is all
// zeros).
func relErr(got, want []float64) float64 {
	var diff, scale float64
	for i := range want {
		diff = math.Max(diff, math.Abs(got[i]-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// requireClose fails unless got matches want in dtype and shape and within
// the dtype's relative tolerance; it returns the relative error.
func requireClose(t *testing.T, what string, got, want *torch.Tensor) float64 {
	t.Helper()
	require.NotNil(t, got, "%s: got nil tensor", what)
	require.Equal(t, want.DType(), got.DType(), "%s: dtype", what)
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", what)
	g, w := floats(t, got), floats(t, want)
	for i := range g {
		require.False(t, math.IsNaN(g[i]) || math.IsInf(g[i], 0), "%s: element %d is %v", what, i, g[i])
	}
	e := relErr(g, w)
	dt := want.DType()
	require.LessOrEqual(t, e, tolerance(dt), "%s: relative error %.3g above %.0g", what, e, tolerance(dt))
	maxRel.Lock()
	if cur, ok := maxRel.m[dt]; !ok || e > cur {
		maxRel.m[dt] = e
	}
	maxRel.Unlock()
	return e
}

// requireGradClose compares p's gradient with want.
func requireGradClose(t *testing.T, what string, p, want *torch.Tensor) float64 {
	t.Helper()
	g, err := p.Grad()
	require.NoError(t, err)
	require.NotNil(t, g, "%s: no gradient", what)
	defer g.Close()
	return requireClose(t, what, g, want)
}

// weightedBackward runs backward of (out * w).sum(), the loss the
// generator used.
func weightedBackward(t *testing.T, out, w *torch.Tensor) {
	t.Helper()
	prod := torch.Must(out.Mul(w))
	defer prod.Close()
	loss := torch.Must(prod.Sum())
	defer loss.Close()
	require.NoError(t, loss.Backward())
}

// leaf returns a copy of x that is a fresh leaf requiring grad.
func leaf(t *testing.T, x *torch.Tensor) *torch.Tensor {
	t.Helper()
	d := torch.Must(x.Detach())
	defer d.Close()
	c := torch.Must(d.Clone())
	require.NoError(t, c.SetRequiresGrad(true))
	t.Cleanup(func() { c.Close() })
	return c
}

// tensorOf makes a float32 tensor of the given shape, closed at cleanup.
func tensorOf(t *testing.T, data []float32, shape ...int64) *torch.Tensor {
	t.Helper()
	x, err := torch.FromSlice(data, shape...)
	require.NoError(t, err)
	t.Cleanup(func() { x.Close() })
	return x
}

// names returns the dotted names of m's parameters in order.
func names(m module.Module) []string {
	var out []string
	for _, p := range module.NamedParameters(m) {
		out = append(out, p.Name)
	}
	return out
}

// snapshot copies every parameter's bits, by name.
func snapshot(t *testing.T, m module.Module) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, p := range module.NamedParameters(m) {
		out[p.Name] = bits(t, p.Tensor)
	}
	return out
}

// settle lets the finalizers of unreachable tensors from earlier tests run,
// so that LiveTensors is stable before a leak check.
func settle() int {
	prev := -1
	for i := 0; i < 20; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		n := torch.LiveTensors()
		if n == prev {
			return n
		}
		prev = n
	}
	return prev
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestMain reports the largest relative errors against PyTorch.
func TestMain(m *testing.M) {
	code := m.Run()
	// Every test closes what it creates: nothing is left to finalizers.
	if n := torch.LiveTensors(); code == 0 && n != 0 {
		fmt.Printf("module: %d tensors still live after the tests\n", n)
		code = 1
	}
	maxRel.Lock()
	for _, dt := range []torch.DType{torch.Float32, torch.Float64} {
		if e, ok := maxRel.m[dt]; ok {
			fmt.Printf("module: max relative error vs PyTorch (%v): %.3g\n", dt, e)
		}
	}
	maxRel.Unlock()
	os.Exit(code)
}
