package module_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// Models and goroutines. Run these under -race: they check the package
// doc's "Concurrency" rules — independent models train in parallel with
// exactly the results of a lone run, one model serves forward passes to
// many goroutines, and Close racing those passes or the garbage collector
// never crashes.

// ccMLP is Linear(8→16) → tanh → Linear(16→4).
type ccMLP struct {
	module.Base
	Fc1, Fc2 module.Layer
}

func (m *ccMLP) Forward(x *torch.Tensor) *torch.Tensor {
	return m.Fc2.Forward(m.Fc1.Forward(x).Tanh())
}

// seedMu makes "seed the global generator, then draw the model's initial
// weights" one step: libtorch has one CPU generator for the whole process,
// so two goroutines building models at once would interleave their draws.
// This is the package doc's recommended way to build seeded models in
// parallel.
var seedMu sync.Mutex

func newCCMLP(seed uint64) (*ccMLP, error) {
	seedMu.Lock()
	defer seedMu.Unlock()
	if err := torch.ManualSeed(seed); err != nil {
		return nil, err
	}
	fc1, err := module.NewLinear(8, 16, true)
	if err != nil {
		return nil, err
	}
	fc2, err := module.NewLinear(16, 4, true)
	if err != nil {
		module.Close(fc1)
		return nil, err
	}
	m := &ccMLP{Fc1: fc1, Fc2: fc2}
	module.Child(&m.Base, "fc1", &m.Fc1)
	module.Child(&m.Base, "fc2", &m.Fc2)
	return m, nil
}

// f32bits reads a float32 tensor's elements as bit patterns; it returns an
// error rather than failing a test, so that goroutines can call it.
func f32bits(x *torch.Tensor) ([]uint32, error) {
	v, err := torch.ToSlice[float32](x)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(v))
	for i, f := range v {
		out[i] = math.Float32bits(f)
	}
	return out, nil
}

// ccRun is what a training run produced: each step's loss and the final
// parameters, as float32 bits.
type ccRun struct {
	losses []uint32
	params map[string][]uint32
}

// trainCC builds the model of seed and trains it steps steps with AdamW
// on data from a PCG seeded with seed: the hand-written loop of the
// package doc (forward in a scope, backward, step, zero).
func trainCC(seed uint64, steps int) (ccRun, error) {
	var r ccRun
	m, err := newCCMLP(seed)
	if err != nil {
		return r, err
	}
	defer module.Close(m)
	opt, err := optim.NewAdamW(module.Parameters(m, true), optim.LR(1e-2))
	if err != nil {
		return r, err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(seed, 99))
	for range steps {
		xs, ys := make([]float32, 6*8), make([]float32, 6*4)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		for i := range ys {
			ys[i] = float32(rng.NormFloat64())
		}
		loss, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
			x := s.Own(torch.FromSlice(xs, 6, 8))
			y := s.Own(torch.FromSlice(ys, 6, 4))
			return torch.MSELoss(m.Forward(x), y, torch.ReductionMean)
		})
		if err != nil {
			return r, err
		}
		err = loss.Backward()
		if err == nil {
			err = opt.Step()
		}
		if err == nil {
			err = opt.ZeroGrad()
		}
		var b []uint32
		if err == nil {
			b, err = f32bits(loss)
		}
		loss.Close()
		if err != nil {
			return r, err
		}
		r.losses = append(r.losses, b[0])
	}
	r.params = map[string][]uint32{}
	for _, p := range module.NamedParameters(m) {
		b, err := f32bits(p.Tensor)
		if err != nil {
			return r, fmt.Errorf("%s: %w", p.Name, err)
		}
		r.params[p.Name] = b
	}
	return r, nil
}

// TestConcurrentIndependentTraining trains four models, each with its own
// seed, data and optimizer, first one after the other and then in four
// goroutines at once (twice over): every run's losses and final weights
// are bitwise those of its lone run.
func TestConcurrentIndependentTraining(t *testing.T) {
	const workers, steps = 4, 15
	start := reftest.SettledLiveTensors()
	want := make([]ccRun, workers)
	for w := range workers {
		r, err := trainCC(uint64(w+1), steps)
		require.NoError(t, err)
		want[w] = r
	}
	require.NotEqual(t, want[0].losses, want[1].losses, "the runs must differ for the test to mean anything")
	for round := range 2 {
		got := make([]ccRun, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[w], errs[w] = trainCC(uint64(w+1), steps)
			}()
		}
		wg.Wait()
		for w := range workers {
			require.NoError(t, errs[w])
			assert.Equal(t, want[w].losses, got[w].losses, "round %d, worker %d: losses", round, w)
			assert.Equal(t, want[w].params, got[w].params, "round %d, worker %d: final weights", round, w)
		}
	}
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// ccInputs returns n different inputs [3, 8], owned by the caller.
func ccInputs(t *testing.T, n int) []*torch.Tensor {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	xs := make([]*torch.Tensor, n)
	for i := range xs {
		v := make([]float32, 3*8)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		xs[i] = torch.FromSlice(v, 3, 8)
		require.NoError(t, xs[i].Err())
		t.Cleanup(func() { xs[i].Close() })
	}
	return xs
}

// ccForward runs m on x in a scope of its own and returns the output's
// bits; with noGrad it runs under torch.NoGrad.
func ccForward(m module.Layer, x *torch.Tensor, noGrad bool) ([]uint32, error) {
	var bits []uint32
	run := func() error {
		y, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return m.Forward(s.Borrow(x)) })
		if err != nil {
			return err
		}
		defer y.Close()
		bits, err = f32bits(y)
		return err
	}
	if noGrad {
		return bits, torch.NoGrad(run)
	}
	return bits, run()
}

// TestConcurrentSharedForward shares one model between eight goroutines,
// each running forward passes on its own input, half of them under
// NoGrad (which pins the goroutine to its thread) and half recording
// autograd graphs on the shared parameters: every output is bitwise the
// sequential one.
func TestConcurrentSharedForward(t *testing.T) {
	const workers, reps = 8, 40
	start := reftest.SettledLiveTensors()
	m, err := newCCMLP(11)
	require.NoError(t, err)
	defer module.Close(m)
	m.Eval()
	xs := ccInputs(t, workers)
	want := make([][]uint32, workers)
	for w := range workers {
		want[w], err = ccForward(m, xs[w], false)
		require.NoError(t, err)
	}
	require.NotEqual(t, want[0], want[1])
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range reps {
				got, err := ccForward(m, xs[w], (w+i)%2 == 0)
				if err != nil {
					t.Errorf("worker %d, pass %d: %v", w, i, err)
					return
				}
				if !slices.Equal(got, want[w]) {
					t.Errorf("worker %d, pass %d: the output differs from the sequential one", w, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.True(t, torch.GradEnabled(), "NoGrad in other goroutines left this thread's grad mode alone")
	module.Close(m)
	for _, x := range xs {
		x.Close()
	}
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// closedTensorErr reports whether err is torch's "use of closed tensor",
// naming the argument that was closed.
func closedTensorErr(err error) bool {
	var e *torch.Error
	return errors.As(err, &e) && e.Msg == "use of closed tensor" && e.Arg != ""
}

// TestConcurrentCloseRacingForward closes a model, from two goroutines at
// once, while four others run forward passes on it: each pass returns
// either the right output or an error naming the closed tensor (never a
// crash, a wrong value or a freed handle given to libtorch), Close frees
// each parameter once, and every pass after Close fails.
func TestConcurrentCloseRacingForward(t *testing.T) {
	const workers, rounds = 4, 15
	start := reftest.SettledLiveTensors()
	xs := ccInputs(t, workers)
	var failedSeen atomic.Int64
	for round := range rounds {
		m, err := newCCMLP(uint64(20 + round))
		require.NoError(t, err)
		m.Eval()
		want := make([][]uint32, workers)
		for w := range workers {
			want[w], err = ccForward(m, xs[w], false)
			require.NoError(t, err)
		}
		failedSeen.Add(reftest.CloseRacingUse(t, round, want,
			func(w, i int) ([]uint32, error) { return ccForward(m, xs[w], i%2 == 0) }, closedTensorErr, func() { module.Close(m) }))
		for _, p := range module.NamedParameters(m) {
			assert.True(t, p.Tensor.Closed(), p.Name)
		}
		_, err = ccForward(m, xs[0], false)
		assert.True(t, closedTensorErr(err), "a pass after Close: %v", err)
	}
	assert.Positive(t, failedSeen.Load())
	for _, x := range xs {
		x.Close()
	}
	assert.Equal(t, start, reftest.SettledLiveTensors(), "two Close calls freed each parameter once")
}

// TestConcurrentFinalizerAndBorrowedTensor drops models (no Close) while
// other goroutines keep computing with handles they borrowed from the
// models' parameters (Alias, or a scope's Borrow): the garbage collector
// frees the dropped parameters' handles, but a borrowed handle keeps the
// memory alive, so the borrowers' results stay right, before and after the
// collection, until they close their handles.
func TestConcurrentFinalizerAndBorrowedTensor(t *testing.T) {
	const workers, reps = 4, 100
	start := reftest.SettledLiveTensors()
	x := ccInputs(t, 1)[0]
	var wg sync.WaitGroup
	for w := range workers {
		m, err := newCCMLP(uint64(40 + w))
		require.NoError(t, err)
		fc1 := m.Fc1.(*module.Linear)
		// The reference, and the borrowed handles, taken while m lives.
		ref, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
			return s.Borrow(x).Linear(s.Borrow(fc1.Weight), s.Borrow(fc1.Bias)).Tanh()
		})
		require.NoError(t, err)
		want, err := f32bits(ref)
		require.NoError(t, err)
		ref.Close()
		bs := torch.NewScope()
		weight, bias := fc1.Weight.Alias(), bs.Borrow(fc1.Bias)
		require.NoError(t, torch.FirstErr(weight, bias))
		// collected is closed once the model's own weight tensor has been
		// collected (its handle is freed by a cleanup of the same cycle).
		collected := make(chan struct{})
		runtime.AddCleanup(fc1.Weight, func(c chan struct{}) { close(c) }, collected)
		// Drop every reference to the model: its parameters are now
		// garbage, freed by their cleanups at the next collections.
		m, fc1 = nil, nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer bs.Close()
			defer weight.Close()
			deadline := time.Now().Add(20 * time.Second)
			after := 0 // passes since the model was collected
			for i := 0; after < reps; i++ {
				select {
				case <-collected:
					after++
				default:
					if time.Now().After(deadline) {
						t.Errorf("worker %d: the dropped model was never collected", w)
						return
					}
				}
				y, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
					return s.Borrow(x).Linear(weight, bias).Tanh()
				})
				if err != nil {
					t.Errorf("worker %d, pass %d: %v", w, i, err)
					return
				}
				got, err := f32bits(y)
				y.Close()
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("worker %d, pass %d: the borrowed weights changed under the collector (%v)", w, i, err)
					return
				}
			}
		}()
	}
	// Collect while the borrowers run.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for collecting := true; collecting; {
		runtime.GC()
		select {
		case <-done:
			collecting = false
		case <-time.After(time.Millisecond):
		}
	}
	x.Close()
	assert.Equal(t, start, reftest.SettledLiveTensors(), "the dropped models were freed by the collector")
}
