package torch_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// linearRef computes W·x + b in float64, the exact value the float32
// results are compared with.
func linearRef(w []float32, x []float32, b []float32, n, k int) []float64 {
	y := make([]float64, n)
	for i := 0; i < n; i++ {
		s := 0.0
		for j := 0; j < k; j++ {
			s += float64(w[i*k+j]) * float64(x[j])
		}
		if b != nil {
			s += float64(b[i])
		}
		y[i] = s
	}
	return y
}

func randFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// One row of input by a weight of 1 MiB or more takes libcgotorch's own
// matrix-vector kernel (cgotorch/gemv.cc): its result is W·x + b to float32
// rounding, for every in-feature count (vector body and scalar tail), with
// or without bias, for any leading shape of ones, and it agrees with
// libtorch's own linear on a 2-row input (which BLAS computes) within
// their rounding.
func TestLinearOneRowMatchesMaths(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	s := torch.NewScope()
	defer s.Close()
	for _, c := range []struct {
		n, k  int
		bias  bool
		shape []int64
	}{
		{512, 768, true, []int64{1, 1, 768}}, // GPT-2's c_proj, a decode step's [B=1, T=1, K]
		{400, 1000, false, []int64{1000}},    // K not a multiple of 16 or 64
		{4097, 64, true, []int64{1, 64}},     // many short rows
		{300, 1003, true, []int64{1, 1003}},  // odd K: the scalar tail
	} {
		w := randFloats(r, c.n*c.k)
		x := randFloats(r, c.k)
		var b []float32
		var bt *torch.Tensor
		if c.bias {
			b = randFloats(r, c.n)
			bt = s.Own(torch.FromSlice(b))
		}
		wt := s.Own(torch.FromSlice(w, int64(c.n), int64(c.k)))
		xt := s.Own(torch.FromSlice(x, c.shape...))
		y := torch.Linear(xt, wt, bt)
		require.NoError(t, y.Err())
		want := append(append([]int64{}, c.shape[:len(c.shape)-1]...), int64(c.n))
		assert.Equal(t, want, y.Shape())
		got := vals[float32](t, y)
		ref := linearRef(w, x, b, c.n, c.k)
		bound := 0.0
		for j := 0; j < c.k; j++ {
			bound = math.Max(bound, math.Abs(float64(x[j])))
		}
		tols := make([]float64, c.n)
		for i := range ref {
			// float32 sums of k products: error at most ~k·eps·Σ|w·x|;
			// checked against a bound k·2⁻²³·max|x|·Σ|w| per row.
			sumAbs := 0.0
			for j := 0; j < c.k; j++ {
				sumAbs += math.Abs(float64(w[i*c.k+j]))
			}
			tol := float64(c.k) * math.Pow(2, -23) * bound * sumAbs / 8
			tols[i] = tol
			if d := math.Abs(float64(got[i]) - ref[i]); d > tol {
				t.Fatalf("n=%d k=%d row %d: got %v, want %v (|diff| %g > %g)", c.n, c.k, i, got[i], ref[i], d, tol)
			}
		}

		// Two equal rows go through libtorch's linear (BLAS): the same
		// values within both's rounding.
		x2 := s.Own(torch.FromSlice(append(append([]float32{}, x...), x...), 2, int64(c.k)))
		blas := vals[float32](t, torch.Linear(x2, wt, bt))
		differ := 0
		for i := range ref {
			a, e := float64(got[i]), float64(blas[i])
			assert.InDelta(t, e, a, 2*tols[i], "row %d against BLAS", i)
			if a != e {
				differ++
			}
		}
		// The kernel sums in another order than BLAS: over hundreds of
		// rows some round differently, which shows it ran (a fallback to
		// libtorch would match BLAS bit for bit).
		assert.Greater(t, differ, 0, "n=%d k=%d: golora's kernel did not run", c.n, c.k)
	}
}

// The kernel is for inference only: with a weight that requires grad the
// op goes through libtorch's linear, and the gradient is W's true one
// (x for each row, for the loss sum(y)).
func TestLinearOneRowLeavesAutogradToLibtorch(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	r := rand.New(rand.NewSource(8))
	const n, k = 512, 768
	x := randFloats(r, k)
	w := s.Own(torch.FromSlice(randFloats(r, n*k), n, k))
	require.NoError(t, w.SetRequiresGrad(true))
	y := torch.Linear(s.Own(torch.FromSlice(x, 1, k)), w, nil)
	require.NoError(t, y.Sum().Backward())
	g := vals[float32](t, w.Grad())
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			if g[i*k+j] != x[j] {
				t.Fatalf("grad[%d,%d] = %v, want %v", i, j, g[i*k+j], x[j])
			}
		}
	}
}

// A weight passed as the transpose of a contiguous in×out matrix (GPT-2's
// Conv1D layout, as weight.T()) takes the kernel's column form: the same
// W·x + b to float32 rounding, and libtorch's addmm within their rounding.
func TestLinearOneRowTransposedWeight(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	s := torch.NewScope()
	defer s.Close()
	for _, c := range []struct{ k, n int }{{768, 2304}, {1001, 515}, {3072, 768}} {
		wio := randFloats(r, c.k*c.n) // k×n, row-major
		x := randFloats(r, c.k)
		b := randFloats(r, c.n)
		// The same matrix as n×k, for the reference.
		w := make([]float32, c.n*c.k)
		for i := 0; i < c.k; i++ {
			for j := 0; j < c.n; j++ {
				w[j*c.k+i] = wio[i*c.n+j]
			}
		}
		wt := s.Own(torch.FromSlice(wio, int64(c.k), int64(c.n)))
		xt := s.Own(torch.FromSlice(x, 1, int64(c.k)))
		bt := s.Own(torch.FromSlice(b))
		got := vals[float32](t, torch.Linear(xt, wt.T(), bt))
		ref := linearRef(w, x, b, c.n, c.k)
		addmm := vals[float32](t, torch.Linear(s.Own(torch.FromSlice(append(append([]float32{}, x...), x...), 2, int64(c.k))), wt.T(), bt))
		differ := 0
		for i := range ref {
			sumAbs := 0.0
			for j := 0; j < c.k; j++ {
				sumAbs += math.Abs(float64(w[i*c.k+j]) * float64(x[j]))
			}
			tol := float64(c.k) * math.Pow(2, -23) * sumAbs / 4
			if d := math.Abs(float64(got[i]) - ref[i]); d > tol {
				t.Fatalf("k=%d n=%d column %d: got %v, want %v (|diff| %g > %g)", c.k, c.n, i, got[i], ref[i], d, tol)
			}
			assert.InDelta(t, float64(addmm[i]), float64(got[i]), 2*tol, "column %d against addmm", i)
			if got[i] != addmm[i] {
				differ++
			}
		}
		assert.Greater(t, differ, 0, "k=%d n=%d: golora's kernel did not run", c.k, c.n)
	}
}
