package torch_test

import (
	"testing"

	"github.com/golora/golora/torch"
)

// Benchmarks of the cost of one op call. The small cases measure dispatch
// overhead (cgo call, handle allocation, libtorch dispatcher); the 1024 case
// measures BLAS throughput. torch/testdata/bench_twin.py measures the same
// ops from Python; torch/BENCH.md compares the two.

func benchInputs(b *testing.B, n int64) (*torch.Tensor, *torch.Tensor) {
	b.Helper()
	if err := torch.ManualSeed(0); err != nil {
		b.Fatal(err)
	}
	x, err := torch.Randn([]int64{n, n})
	if err != nil {
		b.Fatal(err)
	}
	y, err := torch.Randn([]int64{n, n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { torch.CloseAll(x, y) })
	return x, y
}

func benchOp(b *testing.B, n int64, op func(x, y *torch.Tensor) (*torch.Tensor, error)) {
	x, y := benchInputs(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		z, err := op(x, y)
		if err != nil {
			b.Fatal(err)
		}
		z.Close()
	}
}

// BenchmarkDispatchMM4x4 is a 4×4 mm whose result is closed at once: almost
// all of its time is per-call overhead.
func BenchmarkDispatchMM4x4(b *testing.B) {
	benchOp(b, 4, (*torch.Tensor).Mm)
}

// BenchmarkDispatchAdd is a 4×4 add, the cheapest kernel there is.
func BenchmarkDispatchAdd(b *testing.B) {
	benchOp(b, 4, (*torch.Tensor).Add)
}

// BenchmarkMM1024 is a 1024×1024 float32 mm (2·1024³ flops per op).
func BenchmarkMM1024(b *testing.B) {
	benchOp(b, 1024, (*torch.Tensor).Mm)
	const flops = 2 * 1024 * 1024 * 1024
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
