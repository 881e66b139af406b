package module_test

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// The reference files are written by testdata/gen_module.py and
// testdata/gen_gpt2block.py.
const (
	refsPath     = "testdata/module_refs.safetensors"
	netStatePath = "testdata/net_state.safetensors"
	bertPath     = "testdata/bert_emb_state.safetensors"
)

// loadRefs loads the reference file refsPath, closed when t ends.
func loadRefs(t *testing.T) *reftest.File {
	t.Helper()
	return reftest.Load(t, refsPath, "/usr/bin/python3 module/testdata/gen_module.py")
}

// newScope returns a scope closed when t ends.
func newScope(t testing.TB) *torch.Scope { return reftest.Scope(t) }

// own returns a handle to x (a reference tensor, say) that belongs to s,
// so that ops on it put their results in s; x itself is left alone.
func own(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Own(x.Alias()) }

// leaf returns a copy of x in s that is a fresh leaf requiring grad.
func leaf(t *testing.T, s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	t.Helper()
	c := s.Own(x.Detach()).Clone()
	require.NoError(t, c.SetRequiresGrad(true))
	return c
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

// maxRel records the largest relative error against PyTorch per dtype, for
// the log of TestMain.
var maxRel reftest.MaxErrors

// requireClose fails unless got matches want in dtype and shape and within
// the dtype's CPU tolerance (reftest.RequireClose); it records and returns
// the relative error.
func requireClose(t *testing.T, what string, got, want *torch.Tensor) float64 {
	t.Helper()
	require.NoError(t, got.Err(), what)
	e := reftest.RequireClose(t, what, got, want, reftest.Tolerance(want.DType(), torch.CPU))
	maxRel.Note(want.DType().String(), t.Name(), e)
	return e
}

// requireGradClose compares p's gradient with want; the gradient handle
// is made in s.
func requireGradClose(t *testing.T, s *torch.Scope, what string, p, want *torch.Tensor) float64 {
	t.Helper()
	g := p.Grad()
	require.NotNil(t, g, "%s: no gradient", what)
	return requireClose(t, what, s.Own(g), want)
}

// weightedBackward runs backward of (out * w).sum(), the loss the
// generators use; the intermediates join out's scope.
func weightedBackward(t *testing.T, out, w *torch.Tensor) {
	t.Helper()
	require.NoError(t, out.Mul(w).Sum().Backward())
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
		out[p.Name] = reftest.Bits(t, p.Tensor)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// TestMain checks that the tests left no tensor live and reports the largest
// relative errors against PyTorch.
func TestMain(m *testing.M) {
	code := m.Run()
	// Every test closes what it creates: nothing is left to the GC.
	if n := torch.LiveTensors(); code == 0 && n != 0 {
		fmt.Printf("module: %d tensors still live after the tests\n", n)
		code = 1
	}
	for _, l := range maxRel.Lines("") {
		fmt.Println("module:", l)
	}
	os.Exit(code)
}
