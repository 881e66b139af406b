package lora_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// LoRA models and goroutines (run under -race): see the package doc's
// "Concurrency" section.

// ccNet is Linear(8→16) → tanh → Linear(16→4), both adapted.
type ccNet struct {
	module.Base
	Fc1, Fc2 module.Layer
}

func (n *ccNet) Forward(x *torch.Tensor) *torch.Tensor {
	return n.Fc2.Forward(n.Fc1.Forward(x).Tanh())
}

// ccSeedMu makes seeding the global generator and drawing a model's
// initial weights (base and adapters) one step. libtorch has one CPU
// generator per process: models built in parallel without it would
// interleave their draws and start from weights that depend on the
// schedule. It is the recommended way to build seeded models in parallel.
var ccSeedMu sync.Mutex

// newCCNet builds the seed's model: the base, then the adapters of cfg
// (and, when extra is set, a second adapter "b" of cfg, both active).
func newCCNet(seed uint64, cfg lora.Config, extra bool) (*ccNet, error) {
	ccSeedMu.Lock()
	defer ccSeedMu.Unlock()
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
	n := &ccNet{Fc1: fc1, Fc2: fc2}
	module.Child(&n.Base, "fc1", &n.Fc1)
	module.Child(&n.Base, "fc2", &n.Fc2)
	cfg.TargetModules = []string{"fc1", "fc2"}
	_, err = lora.Apply(n, cfg)
	if err == nil && extra {
		if _, err = lora.AddAdapter(n, "b", cfg); err == nil {
			err = lora.SetAdapter(n, "default", "b")
		}
	}
	if err != nil {
		module.Close(n)
		return nil, err
	}
	return n, nil
}

func ccBits(x *torch.Tensor) ([]uint32, error) {
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

// ccData returns a batch [6, 8] → [6, 4] from rng.
func ccData(rng *rand.Rand) (xs, ys []float32) {
	xs, ys = make([]float32, 6*8), make([]float32, 6*4)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := range ys {
		ys[i] = float32(rng.NormFloat64())
	}
	return xs, ys
}

// ccStep runs one optimizer step on a batch and returns the loss's bits.
func ccStep(m *ccNet, opt optim.Optimizer, xs, ys []float32) (uint32, error) {
	loss, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		x := s.Own(torch.FromSlice(xs, 6, 8))
		y := s.Own(torch.FromSlice(ys, 6, 4))
		return torch.MSELoss(m.Forward(x), y, torch.ReductionMean)
	})
	if err != nil {
		return 0, err
	}
	defer loss.Close()
	if err := loss.Backward(); err != nil {
		return 0, err
	}
	if err := opt.Step(); err != nil {
		return 0, err
	}
	if err := opt.ZeroGrad(); err != nil {
		return 0, err
	}
	b, err := ccBits(loss)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

type ccRun struct {
	losses []uint32
	params map[string][]uint32 // every parameter, frozen ones included
}

// trainCCNet trains the seed's LoRA model (DoRA when dora is set) for
// steps AdamW steps on data from a PCG seeded with seed.
func trainCCNet(seed uint64, dora bool, steps int) (ccRun, error) {
	var r ccRun
	m, err := newCCNet(seed, lora.Config{R: 4, Alpha: 8, UseDoRA: dora}, false)
	if err != nil {
		return r, err
	}
	defer module.Close(m)
	opt, err := optim.NewAdamW(module.Parameters(m, true), optim.LR(2e-2))
	if err != nil {
		return r, err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	for range steps {
		xs, ys := ccData(rng)
		l, err := ccStep(m, opt, xs, ys)
		if err != nil {
			return r, err
		}
		r.losses = append(r.losses, l)
	}
	r.params = map[string][]uint32{}
	for _, p := range module.NamedParameters(m) {
		b, err := ccBits(p.Tensor)
		if err != nil {
			return r, fmt.Errorf("%s: %w", p.Name, err)
		}
		r.params[p.Name] = b
	}
	return r, nil
}

// TestConcurrentIndependentLoRATraining trains four LoRA models (two of
// them DoRA, whose forward pass runs a NoGrad region of its own), each
// with its own seed, data and AdamW, alone and then in four goroutines at
// once: the losses and every final weight are bitwise the lone runs'.
func TestConcurrentIndependentLoRATraining(t *testing.T) {
	const workers, steps = 4, 12
	start := reftest.SettledLiveTensors()
	want := make([]ccRun, workers)
	for w := range workers {
		r, err := trainCCNet(uint64(w+1), w%2 == 1, steps)
		require.NoError(t, err)
		want[w] = r
	}
	for round := range 2 {
		got := make([]ccRun, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[w], errs[w] = trainCCNet(uint64(w+1), w%2 == 1, steps)
			}()
		}
		wg.Wait()
		for w := range workers {
			require.NoError(t, errs[w])
			assert.Equal(t, want[w].losses, got[w].losses, "round %d, worker %d: losses", round, w)
			assert.Equal(t, want[w].params, got[w].params, "round %d, worker %d: final weights", round, w)
		}
	}
	assert.True(t, torch.GradEnabled(), "the DoRA forwards' NoGrad left this thread's grad mode alone")
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// ccProbes returns n different inputs [3, 8].
func ccProbes(t *testing.T, n int) []*torch.Tensor {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]*torch.Tensor, n)
	for i := range xs {
		v := make([]float32, 3*8)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		xs[i] = torch.FromSlice(v, 3, 8)
		require.NoError(t, xs[i].Err())
	}
	return xs
}

// ccInfer runs m on x, without autograd, in a scope of its own, and
// returns the output's bits.
func ccInfer(m module.Layer, x *torch.Tensor) ([]uint32, error) {
	var bits []uint32
	err := torch.NoGrad(func() error {
		y, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return m.Forward(s.Borrow(x)) })
		if err != nil {
			return err
		}
		defer y.Close()
		bits, err = ccBits(y)
		return err
	})
	return bits, err
}

// TestConcurrentSharedLoRAInference shares one adapted model between
// eight goroutines: two active adapters, one plain and one DoRA (random
// A and B, so both count), in evaluation mode. Every goroutine's outputs
// on its own input are bitwise the sequential ones.
func TestConcurrentSharedLoRAInference(t *testing.T) {
	const workers, reps = 8, 30
	start := reftest.SettledLiveTensors()
	m, err := newCCNet(5, lora.Config{R: 4, Alpha: 8, Init: lora.InitRandom}, true)
	require.NoError(t, err)
	_, err = lora.AddAdapter(m, "dora", lora.Config{R: 2, TargetModules: []string{"fc1"}, UseDoRA: true, Init: lora.InitRandom})
	require.NoError(t, err)
	require.NoError(t, lora.SetAdapter(m, "default", "b", "dora"))
	m.Eval()
	xs := ccProbes(t, workers)
	want := make([][]uint32, workers)
	for w := range workers {
		want[w], err = ccInfer(m, xs[w])
		require.NoError(t, err)
	}
	require.NotEqual(t, want[0], want[1])
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range reps {
				got, err := ccInfer(m, xs[w])
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
	module.Close(m)
	torch.CloseAll(xs...)
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// TestTrainWhileServing is the supported way to serve a model that is
// being trained: a sync.RWMutex, held for writing by the trainer around
// each step (and the Train/Eval switches: the training flag is plain
// state), for reading by the inference goroutines around each forward
// pass. Every answer is then bitwise the model's output after some whole
// step (the step it records), never a mix of two; the trainer's adapters
// have dropout, which runs only in its own steps.
func TestTrainWhileServing(t *testing.T) {
	const readers, steps = 4, 10
	start := reftest.SettledLiveTensors()
	m, err := newCCNet(9, lora.Config{R: 4, Alpha: 8, Dropout: 0.1, Init: lora.InitRandom}, false)
	require.NoError(t, err)
	opt, err := optim.NewAdamW(module.Parameters(m, true), optim.LR(5e-2))
	require.NoError(t, err)
	probe := ccProbes(t, 1)[0]

	var mu sync.RWMutex
	m.Eval()
	refs := make([][]uint32, 1, steps+1) // refs[k]: the output after k steps; written under mu
	refs[0], err = ccInfer(m, probe)
	require.NoError(t, err)

	type answer struct {
		step int
		bits []uint32
	}
	answers := make([][]answer, readers)
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				mu.RLock()
				k := len(refs) - 1
				bits, err := ccInfer(m, probe)
				mu.RUnlock()
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				answers[r] = append(answers[r], answer{k, bits})
			}
		}()
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for k := 1; k <= steps; k++ {
		xs, ys := ccData(rng)
		mu.Lock()
		m.Train()
		_, err := ccStep(m, opt, xs, ys)
		m.Eval()
		var ref []uint32
		if err == nil {
			ref, err = ccInfer(m, probe)
		}
		refs = append(refs, ref)
		mu.Unlock()
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond) // let the readers in
	}
	done.Store(true)
	wg.Wait()
	require.NotEqual(t, refs[0], refs[steps], "training changed the output")
	seen := map[int]bool{}
	for r, as := range answers {
		require.NotEmpty(t, as, "reader %d", r)
		for _, a := range as {
			require.Equal(t, refs[a.step], a.bits, "reader %d: an answer at step %d", r, a.step)
			seen[a.step] = true
		}
	}
	t.Logf("answers at %d of %d model versions", len(seen), steps+1)
	opt.Close()
	module.Close(m)
	probe.Close()
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

func ccClosedErr(err error) bool {
	var e *torch.Error
	return errors.As(err, &e) && e.Msg == "use of closed tensor" && e.Arg != ""
}

// TestConcurrentCloseRacingLoRAForward closes an adapted model (plain and
// DoRA adapters) from two goroutines at once while four others run
// forward passes on it: each pass returns the right output or an error
// naming the closed tensor, never a crash or a wrong value.
func TestConcurrentCloseRacingLoRAForward(t *testing.T) {
	const workers, rounds = 4, 12
	start := reftest.SettledLiveTensors()
	xs := ccProbes(t, workers)
	var failed atomic.Int64
	for round := range rounds {
		m, err := newCCNet(uint64(30+round), lora.Config{R: 4, Init: lora.InitRandom, UseDoRA: round%2 == 0}, true)
		require.NoError(t, err)
		m.Eval()
		want := make([][]uint32, workers)
		for w := range workers {
			want[w], err = ccInfer(m, xs[w])
			require.NoError(t, err)
		}
		failed.Add(reftest.CloseRacingUse(t, round, want,
			func(w, _ int) ([]uint32, error) { return ccInfer(m, xs[w]) }, ccClosedErr, func() { module.Close(m) }))
		_, err = ccInfer(m, xs[0])
		assert.True(t, ccClosedErr(err), "a pass after Close: %v", err)
	}
	assert.Positive(t, failed.Load())
	torch.CloseAll(xs...)
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// TestWithAdapterNamesRefusesOverlap: WithAdapterNames and
// WithAdaptersDisabled set up per-layer state for the duration of f, so a
// second call on the same model while one is under way (in another
// goroutine, or nested) would change the layers under the first call's f
// and undo its set-up on return. Such a call is refused with an error,
// and the first call's result is unaffected.
func TestWithAdapterNamesRefusesOverlap(t *testing.T) {
	start := reftest.SettledLiveTensors()
	m, err := newCCNet(13, lora.Config{R: 4, Alpha: 8, Init: lora.InitRandom}, true)
	require.NoError(t, err)
	m.Eval()
	x := ccProbes(t, 1)[0]
	// mixedRun runs the batch of 3 rows with names and returns the
	// output's bits.
	mixedRun := func(names []string) ([]uint32, error) {
		var got []uint32
		err := lora.WithAdapterNames(m, names, func() error {
			var err error
			got, err = ccInfer(m, x)
			return err
		})
		return got, err
	}
	rows, err := mixedRun([]string{"default", "b", "default"}) // the sequential answer
	require.NoError(t, err)
	plain, err := ccInfer(m, x)
	require.NoError(t, err)
	require.NotEqual(t, plain, rows)

	inside, other := make(chan struct{}), make(chan error)
	var got []uint32
	var firstErr error
	go func() {
		defer close(other)
		firstErr = lora.WithAdapterNames(m, []string{"default", "b", "default"}, func() error {
			close(inside)
			for range 2 {
				if err := <-other; err == nil {
					return errors.New("a concurrent call was let in")
				}
			}
			var err error
			got, err = ccInfer(m, x)
			return err
		})
	}()
	<-inside
	_, err = mixedRun([]string{"b", "b", "b"})
	require.ErrorContains(t, err, "must not nest or overlap")
	other <- err
	err = lora.WithAdaptersDisabled(m, func() error { return nil })
	require.ErrorContains(t, err, "must not nest or overlap")
	other <- err
	<-other
	require.NoError(t, firstErr)
	assert.Equal(t, rows, got, "the first call's mixed batch")

	// Nested calls are refused too; after all of them the model is free.
	err = lora.WithAdaptersDisabled(m, func() error {
		_, err := mixedRun([]string{"b", "b", "b"})
		return err
	})
	require.ErrorContains(t, err, "must not nest or overlap")
	got, err = mixedRun([]string{"default", "b", "default"})
	require.NoError(t, err)
	assert.Equal(t, rows, got)
	got, err = ccInfer(m, x)
	require.NoError(t, err)
	assert.Equal(t, plain, got, "no set-up was left behind")
	module.Close(m)
	x.Close()
	assert.Equal(t, start, reftest.SettledLiveTensors())
}
