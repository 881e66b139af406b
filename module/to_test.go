package module_test

// Tests of module.To: in place, atomic, tied once, gradients moved.

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// To changes each tensor in place: a pointer held before To (by an
// optimizer, an adapter, the user) is still the parameter and sees the
// new dtype. The old To replaced the tensors and closed the old ones.
func TestToKeepsTensorIdentity(t *testing.T) {
	lin := torch.Must(module.NewLinear(3, 2, true))
	defer module.Close(lin)
	p, b := lin.Weight, lin.Bias
	want := reftest.Float64s(t, p)
	live := torch.LiveTensors()

	require.NoError(t, module.To(lin, torch.Float64))
	require.Same(t, p, lin.Weight)
	require.Same(t, b, lin.Bias)
	require.False(t, p.Closed())
	require.Equal(t, torch.Float64, p.DType())
	require.Equal(t, torch.Float64, b.DType())
	require.True(t, p.RequiresGrad())
	require.Equal(t, want, reftest.Float64s(t, p), "float32 values convert exactly")
	require.Equal(t, live, torch.LiveTensors(), "To leaves no handle behind")

	// A device target: CPU to CPU keeps everything.
	require.NoError(t, module.To(lin, torch.CPU))
	require.Same(t, p, lin.Weight)
	require.Equal(t, torch.CPU, p.Device())

	// The held pointer trains: backward through the converted layer fills
	// its gradient.
	s := newScope(t)
	x := s.Own(torch.Ones([]int64{1, 3}, torch.WithDType(torch.Float64)))
	require.NoError(t, lin.Forward(x).Sum().Backward())
	g := p.Grad()
	require.NotNil(t, g)
	require.Equal(t, torch.Float64, s.Own(g).DType())
}

// A failing conversion part-way changes nothing. The first Linear is
// frozen, so its weight converts to int64; the second is trainable and
// libtorch refuses requires_grad on an int64 tensor. Every parameter stays
// float32 with its values. (The old To had converted the first layer
// before it failed on the second.)
func TestToIsAtomic(t *testing.T) {
	a := torch.Must(module.NewLinear(3, 4, true))
	b := torch.Must(module.NewLinear(4, 2, true))
	seq := module.NewSequential(a, b)
	defer module.Close(seq)
	require.NoError(t, module.Freeze(a))
	ptrs := module.Parameters(seq, false)
	before := snapshot(t, seq)
	live := torch.LiveTensors()

	err := module.To(seq, torch.Int64)
	require.Error(t, err)
	require.Contains(t, err.Error(), "1.weight", "the error names the parameter that failed")
	require.Contains(t, err.Error(), "trainable parameter cannot become int64")
	t.Logf("libtorch's refusal: %v", err)
	require.Equal(t, live, torch.LiveTensors(), "the converted tensors are freed")
	require.Equal(t, ptrs, module.Parameters(seq, false))
	for _, p := range module.NamedParameters(seq) {
		require.Equal(t, torch.Float32, p.Tensor.DType(), p.Name)
	}
	require.Equal(t, before, snapshot(t, seq))
	require.True(t, b.Weight.RequiresGrad())
	require.False(t, a.Weight.RequiresGrad())

	// Frozen throughout, the same conversion is allowed.
	require.NoError(t, module.Freeze(seq))
	require.NoError(t, module.To(seq, torch.Int64))
	for _, p := range module.NamedParameters(seq) {
		require.Equal(t, torch.Int64, p.Tensor.DType(), p.Name)
	}

	// CUDA where there is none fails before anything changes too.
	if !torch.CUDAIsAvailable() {
		l := torch.Must(module.NewLinear(2, 2, true))
		defer module.Close(l)
		w := l.Weight
		require.Error(t, module.To(l, torch.CUDA(0)))
		require.Same(t, w, l.Weight)
		require.Equal(t, torch.CPU, w.Device())
		require.False(t, w.Closed())
	}
}

// Tied parameters convert once and stay shared; gradients move with their
// parameter.
func TestToTiedAndGradients(t *testing.T) {
	m := newTied(t)
	defer module.Close(m)
	s := newScope(t)
	ids := s.Own(torch.FromSlice([]int64{1, 2}))
	require.NoError(t, m.Out.Forward(m.Emb.Forward(ids)).Sum().Backward())
	grad := reftest.Float64s(t, s.Own(m.Emb.Weight.Grad()))

	require.NoError(t, module.To(m, torch.Float64))
	require.Same(t, m.Emb.Weight, m.Out.Weight)
	require.Equal(t, torch.Float64, m.Out.Weight.DType())
	require.False(t, m.Out.Weight.Closed())
	g := s.Own(m.Emb.Weight.Grad())
	require.Equal(t, torch.Float64, g.DType(), "the gradient moved with its parameter")
	require.Equal(t, grad, reftest.Float64s(t, g))

	// The next backward accumulates into the converted gradient.
	x := s.Own(torch.FromSlice([]int64{1, 2}))
	require.NoError(t, m.Out.Forward(m.Emb.Forward(x)).Sum().Backward())
	g2 := reftest.Float64s(t, s.Own(m.Emb.Weight.Grad()))
	for i := range grad {
		require.InDelta(t, 2*grad[i], g2[i], 1e-6, "element %d: the float64 backward adds to the converted gradient", i)
	}
}

func TestToFloat64KeepsTrainability(t *testing.T) {
	n := newNet(t, 1)
	require.NoError(t, module.Freeze(n.Blocks))
	before := map[string][]float64{}
	trainable := map[string]bool{}
	for _, p := range module.NamedParameters(n) {
		before[p.Name] = reftest.Float64s(t, p.Tensor)
		trainable[p.Name] = p.Trainable
	}
	oldPos := n.Pos
	live := torch.LiveTensors()

	require.NoError(t, module.To(n, torch.Float64))
	require.Equal(t, live, torch.LiveTensors())
	require.Same(t, oldPos, n.Pos, "the fields keep their tensors")
	require.Equal(t, netOrder, names(n))
	for _, p := range module.NamedParameters(n) {
		require.Equal(t, torch.Float64, p.Tensor.DType(), p.Name)
		require.Equal(t, trainable[p.Name], p.Trainable, p.Name)
		require.Equal(t, before[p.Name], reftest.Float64s(t, p.Tensor), "%s: float32 values convert exactly", p.Name)
	}
	// Converted parameters are leaves: backward fills their gradients.
	s := newScope(t)
	out := n.Forward(s.Own(torch.FromSlice([]int64{1, 2, 3})))
	require.Equal(t, torch.Float64, out.DType())
	require.NoError(t, out.Sum().Backward())
	for _, p := range module.NamedParameters(n) {
		g := p.Tensor.Grad()
		require.Equal(t, trainable[p.Name], g != nil, "%s: gradient iff trainable", p.Name)
		g.Close()
	}
	require.NoError(t, module.ZeroGrad(n))
	for _, p := range module.NamedParameters(n) {
		require.Nil(t, p.Tensor.Grad(), "%s: ZeroGrad drops the gradient", p.Name)
	}

	// And back: the float32 bits are the original ones.
	require.NoError(t, module.To(n, torch.Float32))
	for _, p := range module.NamedParameters(n) {
		require.Equal(t, torch.Float32, p.Tensor.DType(), p.Name)
		require.Equal(t, before[p.Name], reftest.Float64s(t, p.Tensor), p.Name)
	}
}

// module keeps no goroutine- or thread-local state: its sources never
// switch autograd's per-thread grad mode or pin threads (the old To ran
// under torch.NoGrad), and modules convert and load concurrently.
func TestNoGoroutineLocalState(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, banned := range []string{"torch.NoGrad", "torch.EnableGrad", "torch.GradEnabled", "LockOSThread", "goroutine id", "runtime.Stack"} {
			require.NotContains(t, string(src), banned, "%s uses %s", f, banned)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := torch.Must(module.NewLinear(8, 8, true))
			defer module.Close(a)
			b := torch.Must(module.NewLinear(8, 8, true))
			defer module.Close(b)
			for j := 0; j < 20; j++ {
				if err := module.To(a, torch.Float64); err != nil {
					errs <- err
					return
				}
				if err := module.LoadStateDict(b, module.StateDict(a)); err != nil {
					errs <- err
					return
				}
				if err := module.To(a, torch.Float32); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
