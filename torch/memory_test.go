package torch_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Leak tests: every handle an op returns is counted by LiveTensors until it
// is freed (by Close, by its scope, or by the GC's safety net). These loops
// free everything they make, so the count must come back to where it
// started.

func TestNoLeakOpsLoop(t *testing.T) {
	start := reftest.SettledLiveTensors()
	a := ok(t, torch.Randn([]int64{8, 8}))
	b := ok(t, torch.Randn([]int64{8, 8}))

	const iters = 10_000
	for i := 0; i < iters; i++ {
		// One scope per iteration, as a training step has.
		s := torch.NewScope()
		r := s.Borrow(a).Add(b).MatMul(b).Relu()
		require.NoError(t, r.Err())
		// An op that fails must not leave a handle behind either.
		if i%1000 == 0 {
			bad := r.Reshape(3, 5)
			require.Error(t, bad.Err())
			require.True(t, bad.Closed())
		}
		s.Close()

		// The same chain with unowned tensors, closed by hand.
		x := a.Add(b)
		m := x.MatMul(b)
		y := m.Relu()
		require.NoError(t, y.Err())
		torch.CloseAll(x, m, y)
	}
	torch.CloseAll(a, b)
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after %d add/matmul/relu chains", iters)
}

func TestNoLeakBackwardLoop(t *testing.T) {
	start := reftest.SettledLiveTensors()
	w := ok(t, torch.Randn([]int64{16, 8}))
	x := ok(t, torch.Randn([]int64{4, 8}))
	require.NoError(t, w.SetRequiresGrad(true))

	const iters = 1_000
	for i := 0; i < iters; i++ {
		s := torch.NewScope()
		a := s.Borrow(x).Linear(w, nil).Tanh()
		require.NoError(t, a.Mean().Backward())
		g := s.Own(w.Grad()) // w has no scope: its gradient handle would be unowned
		require.NoError(t, w.AddScaled_(g, -0.01))
		require.NoError(t, w.ZeroGrad())
		v, idx := a.MaxDim(1, false)
		require.NoError(t, torch.FirstErr(v, idx))
		require.NoError(t, s.Err())
		s.Close()
	}
	require.NoError(t, w.ClearGrad())
	torch.CloseAll(w, x)
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after %d forward/backward/step loops", iters)
}

func TestNoLeakBadSafetensors(t *testing.T) {
	dir := t.TempDir()

	// A file that passes the format checks but holds a dtype golora does
	// not support (I8) among several good tensors: loading must fail after
	// some tensors were already made, and free them.
	header := map[string]any{}
	var data []byte
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		header[name] = map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{len(data), len(data) + 8}}
		data = append(data, make([]byte, 8)...)
	}
	header["z_int8"] = map[string]any{"dtype": "I8", "shape": []int{4}, "data_offsets": []int{len(data), len(data) + 4}}
	data = append(data, 1, 2, 3, 4)
	unsupported := writeFile(t, "unsupported.safetensors", rawSafetensors(t, header, data))

	truncated := filepath.Join(dir, "truncated.safetensors")
	x := ok(t, torch.Ones([]int64{4, 4}))
	require.NoError(t, torch.SaveSafetensors(truncated, map[string]*torch.Tensor{"x": x}, nil))
	require.NoError(t, x.Close())
	good, err := os.ReadFile(truncated)
	require.NoError(t, err)
	truncated = writeFile(t, "truncated.safetensors", good[:len(good)-1])

	huge := writeFile(t, "huge.safetensors", binary.LittleEndian.AppendUint64(nil, 10_000_000_000))

	start := reftest.SettledLiveTensors()
	for i := 0; i < 20; i++ {
		for _, p := range []string{unsupported, truncated, huge} {
			ts, _, err := torch.LoadSafetensors(p)
			require.Error(t, err, p)
			require.Nil(t, ts)
		}
	}
	_, _, err = torch.LoadSafetensors(unsupported)
	assert.ErrorContains(t, err, "dtype I8 is not supported")
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after failed loads")
}

// ---------------------------------------------------------------------------
// Scopes free what they own whichever way they end.

// scopeWork makes a few tensors in s and computes from them, as a forward
// pass would; it returns the result (failed when fail is set).
func scopeWork(s *torch.Scope, fail bool) *torch.Tensor {
	x := torch.Randn([]int64{4, 8}, torch.In(s))
	w := torch.Randn([]int64{3, 8}, torch.In(s))
	if fail {
		w = torch.Randn([]int64{3, 7}, torch.In(s)) // Linear's shapes no longer agree
	}
	return x.Linear(w, nil).Gelu().Softmax(-1).Sum()
}

func TestScopeFreesOnSuccess(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	out := scopeWork(s, false)
	require.NoError(t, out.Err())
	assert.Greater(t, torch.LiveTensors(), start+4, "the work made tensors")
	assert.Equal(t, torch.LiveTensors()-start, s.Len(), "every tensor made belongs to the scope")
	s.Close()
	assert.Equal(t, start, torch.LiveTensors())
	assert.True(t, out.Closed(), "the result was freed with its scope")
	require.ErrorContains(t, out.Neg().Err(), "use of closed tensor")
	s.Close() // idempotent
	assert.Equal(t, start, torch.LiveTensors())
}

func TestScopeFreesOnError(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	out, err := s.Done(scopeWork(s, true))
	require.Error(t, err)
	assert.Nil(t, out)
	assert.Equal(t, "Linear", errOp(err))
	assert.Equal(t, start, torch.LiveTensors(), "Done on error frees everything")

	// WithScope: the same through the helper.
	out, err = torch.WithScope(func(s *torch.Scope) *torch.Tensor { return scopeWork(s, true) })
	require.Error(t, err)
	assert.Nil(t, out)
	assert.Equal(t, start, torch.LiveTensors())

	// A nil result is an error too, and frees the scope.
	out, err = torch.WithScope(func(s *torch.Scope) *torch.Tensor { scopeWork(s, false); return nil })
	require.ErrorContains(t, err, "nil result")
	assert.Nil(t, out)
	assert.Equal(t, start, torch.LiveTensors())
}

func TestScopeFreesOnPanic(t *testing.T) {
	start := reftest.SettledLiveTensors()
	var made int
	recovered := func() (r any) {
		defer func() { r = recover() }()
		torch.WithScope(func(s *torch.Scope) *torch.Tensor {
			scopeWork(s, false)
			made = s.Len()
			panic("boom")
		})
		return nil
	}()
	assert.Equal(t, "boom", recovered, "the panic goes on")
	assert.Greater(t, made, 4)
	assert.Equal(t, start, torch.LiveTensors(), "WithScope freed the scope while panicking")

	// The same with a deferred Close.
	recovered = func() (r any) {
		defer func() { r = recover() }()
		s := torch.NewScope()
		defer s.Close()
		scopeWork(s, false)
		panic("boom")
	}()
	assert.Equal(t, "boom", recovered)
	assert.Equal(t, start, torch.LiveTensors())
}

func TestScopeDoneKeepsOnlyOut(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	x := torch.Randn([]int64{4, 8}, torch.In(s))
	h := x.Tanh()
	out, err := s.Done(scopeWork(s, false))
	require.NoError(t, err)
	assert.Equal(t, start+1, torch.LiveTensors(), "Done kept exactly its result")
	assert.True(t, x.Closed())
	assert.True(t, h.Closed())
	assert.False(t, out.Closed())
	assert.Nil(t, out.Scope(), "without a parent the result belongs to the caller")
	assert.Greater(t, item(t, out), 0.0)
	require.NoError(t, out.Close())
	assert.Equal(t, start, torch.LiveTensors())

	// With a parent, the result moves there; Keep moves more.
	parent := torch.NewScope()
	child := parent.Child()
	a := torch.Ones([]int64{2}, torch.In(child))
	b := a.MulScalar(3)
	c := a.AddScalar(1)
	child.Keep(b)
	out, err = child.Done(c)
	require.NoError(t, err)
	assert.Same(t, parent, out.Scope())
	assert.Same(t, parent, b.Scope())
	assert.True(t, a.Closed())
	assert.Equal(t, []float32{3, 3}, vals[float32](t, b))
	assert.Equal(t, 2, parent.Len())
	parent.Close()
	assert.True(t, out.Closed())
	assert.True(t, b.Closed())
	assert.Equal(t, start, torch.LiveTensors())

	// Own moves a tensor between scopes; Keep without a parent unowns it.
	s1, s2 := torch.NewScope(), torch.NewScope()
	y := torch.Ones([]int64{2}, torch.In(s1))
	assert.Same(t, y, s2.Own(y))
	assert.Same(t, s2, y.Scope())
	assert.Equal(t, 0, s1.Len())
	s1.Close()
	assert.False(t, y.Closed(), "y belongs to s2 now")
	s2.Keep(y)
	assert.Nil(t, y.Scope())
	s2.Close()
	assert.False(t, y.Closed(), "kept out of s2")
	require.NoError(t, y.Close())
	assert.Equal(t, start, torch.LiveTensors())

	// A closed scope adopts nothing: results of ops on its (closed) tensors
	// fail, and Own into it fails.
	z := ok(t, torch.Ones([]int64{1}))
	defer z.Close()
	require.ErrorContains(t, s2.Own(z).Err(), "scope is closed")
	assert.False(t, z.Closed())
	assert.Nil(t, z.Scope())
}

// TestScopeBorrow: a borrowed handle belongs to the scope, so ops on it put
// their results there, and closing the scope leaves the original alone.
func TestScopeBorrow(t *testing.T) {
	start := reftest.SettledLiveTensors()
	w := ok(t, torch.FromSlice([]float32{1, 2, 3}))
	defer w.Close()
	s := torch.NewScope()
	b := s.Borrow(w)
	require.NoError(t, b.Err())
	assert.NotSame(t, w, b)
	assert.Same(t, s, b.Scope())
	assert.Nil(t, w.Scope(), "w is not moved")
	y := b.MulScalar(2)
	assert.Same(t, s, y.Scope())
	require.NoError(t, b.Fill_(4))
	assert.Equal(t, []float32{4, 4, 4}, vals[float32](t, w), "the borrowed handle shares w's memory")
	s.Close()
	assert.True(t, b.Closed())
	assert.True(t, y.Closed())
	assert.False(t, w.Closed())
	assert.Equal(t, start+1, torch.LiveTensors())

	// Borrowing a closed tensor fails and records the error in the scope.
	s2 := torch.NewScope()
	defer s2.Close()
	c := ok(t, torch.Ones([]int64{1}))
	require.NoError(t, c.Close())
	bad := s2.Borrow(c)
	require.ErrorContains(t, bad.Err(), "use of closed tensor")
	assert.True(t, s2.Err() == bad.Err())
}

// TestFailed: code outside the package returns its own errors the sticky
// way, with torch.Failed.
func TestFailed(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2}, torch.In(s))
	myErr := errors.New("module: input has 3 features, want 2")
	f := torch.Failed(myErr)
	assert.True(t, f.Err() == myErr)
	assert.True(t, f.Closed())
	assert.True(t, f.Add(x).Relu().Err() == myErr, "ops pass a Failed error on unchanged")
	assert.True(t, x.Add(f).Err() == myErr)
	assert.True(t, s.Err() == myErr, "the scope of the other operand records it")
	res, err := s.Done(f)
	assert.Nil(t, res)
	assert.True(t, err == myErr)

	require.Error(t, torch.Failed(nil).Err(), "Failed(nil) is still a failure")
}

// errOp returns the Op of a *torch.Error, or "".
func errOp(err error) string {
	if e, ok := torch.AsError(err); ok {
		return e.Op
	}
	return ""
}

// ---------------------------------------------------------------------------
// The GC's safety net bounds memory when nothing is closed.

// vmRSS returns the process's resident set size in bytes, from
// /proc/self/status (0 where that file does not exist).
func vmRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	return 0
}

// TestBoundedMemoryWithoutClose makes thousands of 256×256 float32
// intermediates (256 KiB each, GBs in all) and closes none of them: they
// belong to no scope, so only the GC's safety net frees them. libtorch's
// memory is invisible to Go's GC (each handle is a few dozen bytes of Go
// heap), so without the pressure accounting the GC would hardly run and
// the process would grow by gigabytes.
func TestBoundedMemoryWithoutClose(t *testing.T) {
	const (
		iters = 6000
		each  = 256 * 256 * 4
		limit = 1 << 30 // 1 GiB, against iters·2·each = 3 GiB made
	)
	x := ok(t, torch.Randn([]int64{256, 256}))
	defer x.Close()
	runtime.GC()
	baseBytes, baseRSS := torch.LiveBytes(), vmRSS(t)
	var peakBytes, peakRSS int64
	begin := time.Now()
	for i := 0; i < iters; i++ {
		y := x.MulScalar(0.5).AddScalar(1) // two unowned intermediates, never closed
		require.NoError(t, y.Err())
		if i%64 == 0 {
			peakBytes = max(peakBytes, torch.LiveBytes()-baseBytes)
			peakRSS = max(peakRSS, vmRSS(t)-baseRSS)
		}
	}
	t.Logf("%d iterations (%d MiB made) in %v: peak LiveBytes +%d MiB, peak VmRSS +%d MiB",
		iters, iters*2*each>>20, time.Since(begin).Round(time.Millisecond), peakBytes>>20, peakRSS>>20)
	assert.Less(t, peakBytes, int64(limit), "LiveBytes grew without bound")
	assert.Less(t, peakRSS, int64(limit), "VmRSS grew without bound")
	assert.Less(t, peakBytes, int64(iters*2*each/2), "the safety net freed less than half")
}

// TestBoundedMemoryAfterFrees: after a program frees a large amount of
// memory with Close (say, it held 600 MiB of unowned tensors, which set the
// safety net's baseline high), garbage must again be collected once it
// reaches the threshold, not only when it doubles the stale baseline.
func TestBoundedMemoryAfterFrees(t *testing.T) {
	const (
		each  = 256 * 256 * 4
		held  = 2400 // 600 MiB
		limit = 400 << 20
	)
	x := ok(t, torch.Randn([]int64{256, 256}))
	defer x.Close()
	runtime.GC()
	base := torch.LiveBytes()
	keep := make([]*torch.Tensor, held)
	for i := range keep {
		keep[i] = x.MulScalar(float64(i)) // unowned and reachable: the collections free nothing
	}
	require.NoError(t, torch.FirstErr(keep...))
	assert.GreaterOrEqual(t, torch.LiveBytes(), int64(held*each), "the kept tensors are alive")
	time.Sleep(50 * time.Millisecond) // let the last background collection set its baseline
	torch.CloseAll(keep...)
	keep = nil

	var peak int64
	for i := 0; i < 3000; i++ {
		require.NoError(t, x.AddScalar(1).Err()) // garbage: 750 MiB in all
		if i%16 == 0 {
			peak = max(peak, torch.LiveBytes()-base)
		}
	}
	t.Logf("after freeing %d MiB: peak LiveBytes +%d MiB while making 750 MiB of garbage", held*each>>20, peak>>20)
	assert.Less(t, peak, int64(limit), "the safety net waited for the stale baseline")
}

// TestScopeCloseOutOfOrder: a long-lived scope whose tensors are closed by
// hand, not in exactly the reverse order of their making, must not keep a
// growing list of closed tensors.
func TestScopeCloseOutOfOrder(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	x := torch.Randn([]int64{4, 4}, torch.In(s))
	for i := 0; i < 10_000; i++ {
		a := x.Tanh()
		b := a.Exp()
		c := b.Neg()
		require.NoError(t, c.Err())
		a.Close() // oldest first
		c.Close()
		b.Close()
	}
	assert.Equal(t, 1, s.Len(), "the scope still lists closed tensors")
	assert.Equal(t, start+1, reftest.SettledLiveTensors())
	s.Close()
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// Scope.Close frees its tensors 64 to a cgo call: every one of them, in
// more than one batch, and the bytes libcgotorch counts go back too.
func TestScopeCloseFreesInBatches(t *testing.T) {
	start := reftest.SettledLiveTensors()
	startBytes := torch.LiveBytes()
	s := torch.NewScope()
	x := torch.Ones([]int64{16}, torch.In(s))
	for i := 0; i < 150; i++ {
		x = x.Add(x)
	}
	require.NoError(t, s.Err())
	assert.Equal(t, start+151, torch.LiveTensors())
	assert.Equal(t, startBytes+151*64, torch.LiveBytes())
	s.Close()
	assert.Equal(t, start, reftest.SettledLiveTensors())
	assert.True(t, x.Closed())
}
