package torch_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/golora/golora/torch"
)

// Benchmarks of the cost of one op call. The small cases measure dispatch
// overhead (cgo call, handle allocation, scope bookkeeping, libtorch's
// dispatcher); the 1024 case measures BLAS throughput.
// torch/testdata/bench_twin.py measures the same ops from Python;
// torch/BENCH.md compares the two.
//
// The inputs live in a scope, so every result joins it too (as in a
// training step) and Close pops it off the scope's list at once: the loop
// runs at constant memory and the benchmark includes the scope's cost.

func benchInputs(b *testing.B, n int64) (*torch.Tensor, *torch.Tensor) {
	b.Helper()
	if err := torch.ManualSeed(0); err != nil {
		b.Fatal(err)
	}
	s := torch.NewScope()
	b.Cleanup(s.Close)
	x := torch.Randn([]int64{n, n}, torch.In(s))
	y := torch.Randn([]int64{n, n}, torch.In(s))
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	return x, y
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchOp times op(x, y) and closes each result. Besides ns/op (wall
// time) it reports cpu-ns/op, the CPU time of the whole process (GC and
// all) per op: on a loaded machine wall time also counts the time other
// processes held the CPU, CPU time does not.
func benchOp(b *testing.B, n int64, op func(x, y *torch.Tensor) *torch.Tensor) {
	x, y := benchInputs(b, n)
	b.ReportAllocs()
	var cpu0 time.Duration
	for b.Loop() {
		if cpu0 == 0 {
			cpu0 = cpuTime(b)
		}
		if err := op(x, y).Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if n := x.Scope().Len(); n != 2 {
		b.Fatalf("the scope holds %d tensors after the loop, want the 2 inputs", n)
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

// BenchmarkDispatchCos4x4 is a 4×4 cos through libtorch's dispatcher by
// schema name (Op.Call1), the path of the long tail of ops.
func BenchmarkDispatchCos4x4(b *testing.B) {
	benchOp(b, 4, func(x, _ *torch.Tensor) *torch.Tensor { return x.Cos() })
}

// BenchmarkCgoCall is the floor of any op: one cgo call to a C function
// that reads an atomic counter (LiveBytes), and no libtorch.
func BenchmarkCgoCall(b *testing.B) {
	for b.Loop() {
		torch.LiveBytes()
	}
}

// BenchmarkMM1024 is a 1024×1024 float32 mm (2·1024³ flops per op).
func BenchmarkMM1024(b *testing.B) {
	benchOp(b, 1024, (*torch.Tensor).Mm)
	const flops = 2 * 1024 * 1024 * 1024
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
