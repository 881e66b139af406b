package lora_test

// Merge folds scaling·B·A into W0 (Linear) or scaling·(B·A)ᵀ (Embedding);
// Unmerge takes it out again. The expected weights are computed here from
// plain Go slices.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

var dtypes = []torch.DType{torch.Float32, torch.Float64}

// cpuTol is the CPU tolerance of dt: 1e-6 for float32, 1e-12 for float64.
func cpuTol(dt torch.DType) float64 { return reftest.Tolerance(dt, torch.CPU) }

// tensorOf makes a tensor of dtype dt from float64 values, in a scope
// closed with the test.
func tensorOf(t testing.TB, dt torch.DType, data []float64, shape ...int64) *torch.Tensor {
	t.Helper()
	return own(t, torch.FromSlice(data, shape...)).To(dt).Must()
}

// unowned is tensorOf for a tensor that a layer takes over (WithWeights):
// it belongs to no scope.
func unowned(t testing.TB, dt torch.DType, data []float64, shape ...int64) *torch.Tensor {
	t.Helper()
	x64 := torch.FromSlice(data, shape...)
	defer x64.Close()
	return x64.To(dt).Must()
}

// matmul returns the rows×cols product of a (rows×inner) and b
// (inner×cols), all row-major.
func matmul(a, b []float64, rows, inner, cols int) []float64 {
	out := make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			var s float64
			for k := 0; k < inner; k++ {
				s += a[i*inner+k] * b[k*cols+j]
			}
			out[i*cols+j] = s
		}
	}
	return out
}

// transpose returns the cols×rows transpose of m (rows×cols).
func transpose(m []float64, rows, cols int) []float64 {
	out := make([]float64, len(m))
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			out[j*rows+i] = m[i*cols+j]
		}
	}
	return out
}

// addScaled returns a + s·b.
func addScaled(a, b []float64, s float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] + s*b[i]
	}
	return out
}

func TestLinearMergeHandDerived(t *testing.T) {
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) {
			tol := cpuTol(dt)
			// in k = 3, out d = 2, r = 2, α = 3: scaling 1.5.
			w0 := []float64{
				1, 2, 3,
				4, 5, 6,
			}
			bias := []float64{0.5, -1}
			a := []float64{ // r×in
				1, 0, -1,
				2, 1, 0,
			}
			b := []float64{ // out×r
				1, 2,
				0, -1,
			}
			const scaling = 1.5
			// B·A = [[5 2 -1] [-2 -1 0]], so W0 + 1.5·B·A is:
			handMerged := []float64{
				8.5, 5, 1.5,
				1, 3.5, 6,
			}
			merged := addScaled(w0, matmul(b, a, 2, 2, 3), scaling)
			require.Equal(t, handMerged, merged, "slice arithmetic")

			l, err := lora.NewLinear(3, 2, true, 2, lora.WithAlpha(3),
				lora.WithWeights(unowned(t, dt, w0, 2, 3), unowned(t, dt, bias, 2)))
			require.NoError(t, err)
			require.Equal(t, scaling, l.Scaling())
			require.Equal(t, dt, l.LoraA.DType(), "lora_a takes the dtype of the given weight")
			require.NoError(t, l.LoraA.Copy_(tensorOf(t, dt, a, 2, 3)).Err())
			require.NoError(t, l.LoraB.Copy_(tensorOf(t, dt, b, 2, 2)).Err())

			x := []float64{
				1, -1, 2,
				0.5, 0, -3,
				2, 2, 2,
				-1, 0.25, 1,
			}
			xt := tensorOf(t, dt, x, 4, 3)
			// y = x·W'ᵀ + b with W' the merged weight, by hand.
			wantY := matmul(x, transpose(merged, 2, 3), 4, 3, 2)
			for i := range wantY {
				wantY[i] += bias[i%2]
			}

			unmerged := forward(t, l, xt)
			reftest.RequireSlicesClose(t, "unmerged forward vs hand", unmerged, wantY, tol)

			require.False(t, l.Merged())
			require.NoError(t, l.Merge())
			require.True(t, l.Merged())
			reftest.RequireSlicesClose(t, "merged weight = W0 + scaling·B·A", reftest.Float64s(t, l.Weight), merged, tol)
			require.False(t, l.Weight.RequiresGrad(), "merging keeps W0 frozen")
			reftest.RequireSlicesClose(t, "bias untouched", reftest.Float64s(t, l.Bias), bias, 0)
			reftest.RequireSlicesClose(t, "lora_a untouched", reftest.Float64s(t, l.LoraA), a, 0)
			reftest.RequireSlicesClose(t, "lora_b untouched", reftest.Float64s(t, l.LoraB), b, 0)

			mergedY := forward(t, l, xt)
			reftest.RequireSlicesClose(t, "merged forward vs unmerged", mergedY, unmerged, tol)

			err = l.Merge()
			require.Error(t, err)
			require.Contains(t, err.Error(), "already merged")
			reftest.RequireSlicesClose(t, "a refused Merge changes nothing", reftest.Float64s(t, l.Weight), merged, tol)

			require.NoError(t, l.Unmerge())
			require.False(t, l.Merged())
			reftest.RequireSlicesClose(t, "Unmerge restores W0", reftest.Float64s(t, l.Weight), w0, tol)
			reftest.RequireSlicesClose(t, "forward after Unmerge", forward(t, l, xt), unmerged, tol)
			err = l.Unmerge()
			require.Error(t, err)
			require.Contains(t, err.Error(), "not merged")
			module.Close(l)
		})
	}
}

func TestEmbeddingMergeHandDerived(t *testing.T) {
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) {
			tol := cpuTol(dt)
			// num = 4, dim = 3, r = 2, α = 1: scaling 0.5.
			w0 := []float64{ // num×dim
				1, 0, -1,
				2, 2, 2,
				0.5, -0.5, 0,
				3, 1, 4,
			}
			a := []float64{ // r×num
				1, 0, 2, -1,
				0, 1, 1, 3,
			}
			b := []float64{ // dim×r
				1, 1,
				2, 0,
				-1, 0.5,
			}
			const scaling = 0.5
			// B·A (dim×num) = [[1 1 3 2] [2 0 4 -2] [-1 0.5 -1.5 2.5]];
			// ΔW = (B·A)ᵀ (num×dim), so W0 + 0.5·ΔW is:
			handMerged := []float64{
				1.5, 1, -1.5,
				2.5, 2, 2.25,
				2, 1.5, -0.75,
				4, 0, 5.25,
			}
			merged := addScaled(w0, transpose(matmul(b, a, 3, 2, 4), 3, 4), scaling)
			require.Equal(t, handMerged, merged, "slice arithmetic")

			e, err := lora.NewEmbedding(4, 3, 2, lora.WithAlpha(1), lora.WithWeights(unowned(t, dt, w0, 4, 3), nil))
			require.NoError(t, err)
			require.Equal(t, scaling, e.Scaling())
			require.NoError(t, e.LoraA.Copy_(tensorOf(t, dt, a, 2, 4)).Err())
			require.NoError(t, e.LoraB.Copy_(tensorOf(t, dt, b, 3, 2)).Err())

			idx := []int64{3, 0, 3, 1, 2, 2}
			x := own(t, torch.FromSlice(idx, 2, 3))
			var wantY []float64
			for _, i := range idx {
				wantY = append(wantY, merged[i*3:i*3+3]...)
			}

			unmerged := forward(t, e, x)
			reftest.RequireSlicesClose(t, "unmerged forward vs hand", unmerged, wantY, tol)

			require.NoError(t, e.Merge())
			require.True(t, e.Merged())
			reftest.RequireSlicesClose(t, "merged weight = W0 + scaling·(B·A)ᵀ", reftest.Float64s(t, e.Weight), merged, tol)
			require.False(t, e.Weight.RequiresGrad())
			reftest.RequireSlicesClose(t, "merged forward vs unmerged", forward(t, e, x), unmerged, tol)

			err = e.Merge()
			require.Error(t, err)
			require.Contains(t, err.Error(), "already merged")

			require.NoError(t, e.Unmerge())
			require.False(t, e.Merged())
			reftest.RequireSlicesClose(t, "Unmerge restores W0", reftest.Float64s(t, e.Weight), w0, tol)
			reftest.RequireSlicesClose(t, "forward after Unmerge", forward(t, e, x), unmerged, tol)
			err = e.Unmerge()
			require.Error(t, err)
			require.Contains(t, err.Error(), "not merged")
			module.Close(e)
		})
	}
}

// Seeded layers of a more realistic size: Merge, Forward, Unmerge against
// the same arithmetic on slices.
func TestMergeSeeded(t *testing.T) {
	for _, dt := range dtypes {
		t.Run("linear_"+dt.String(), func(t *testing.T) {
			tol := cpuTol(dt)
			const in, out, r = 24, 16, 4
			require.NoError(t, torch.ManualSeed(11))
			l, err := lora.NewLinear(in, out, true, r, lora.WithAlpha(8), lora.WithDType(dt))
			require.NoError(t, err)
			defer module.Close(l)
			s := newScope(t)
			require.NoError(t, l.LoraB.Copy_(torch.Randn([]int64{out, r}, torch.WithDType(dt), torch.In(s))).Err())
			x := torch.Randn([]int64{2, 5, in}, torch.WithDType(dt), torch.In(s))

			w0 := reftest.Float64s(t, l.Weight)
			want := addScaled(w0, matmul(reftest.Float64s(t, l.LoraB), reftest.Float64s(t, l.LoraA), out, r, in), l.Scaling())
			unmerged := forward(t, l, x)

			require.NoError(t, l.Merge())
			reftest.RequireSlicesClose(t, "merged weight", reftest.Float64s(t, l.Weight), want, tol)
			reftest.RequireSlicesClose(t, "merged forward", forward(t, l, x), unmerged, tol)
			require.NoError(t, l.Unmerge())
			reftest.RequireSlicesClose(t, "unmerged weight", reftest.Float64s(t, l.Weight), w0, tol)
			reftest.RequireSlicesClose(t, "forward after Unmerge", forward(t, l, x), unmerged, tol)
		})
		t.Run("embedding_"+dt.String(), func(t *testing.T) {
			tol := cpuTol(dt)
			const num, dim, r = 30, 12, 8
			require.NoError(t, torch.ManualSeed(12))
			e, err := lora.NewEmbedding(num, dim, r, lora.WithAlpha(2.5), lora.WithDType(dt))
			require.NoError(t, err)
			defer module.Close(e)
			s := newScope(t)
			require.NoError(t, e.LoraB.Copy_(torch.Randn([]int64{dim, r}, torch.WithDType(dt), torch.In(s))).Err())
			x := s.Own(torch.FromSlice([]int32{0, 29, 5, 5, 17, 0, 29, 3}, 2, 4))

			w0 := reftest.Float64s(t, e.Weight)
			delta := transpose(matmul(reftest.Float64s(t, e.LoraB), reftest.Float64s(t, e.LoraA), dim, r, num), dim, num)
			want := addScaled(w0, delta, e.Scaling())
			unmerged := forward(t, e, x)

			require.NoError(t, e.Merge())
			reftest.RequireSlicesClose(t, "merged weight", reftest.Float64s(t, e.Weight), want, tol)
			reftest.RequireSlicesClose(t, "merged forward", forward(t, e, x), unmerged, tol)
			require.NoError(t, e.Unmerge())
			reftest.RequireSlicesClose(t, "unmerged weight", reftest.Float64s(t, e.Weight), w0, tol)
			reftest.RequireSlicesClose(t, "forward after Unmerge", forward(t, e, x), unmerged, tol)
		})
	}
}
