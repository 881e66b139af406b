package train_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// ccSeedMu makes "seed libtorch's global generator, build the model and
// its adapters" one step, so that runs started in parallel start from the
// same weights as when started alone (see the package doc's
// "Concurrency").
var ccSeedMu sync.Mutex

func ccModel(seed uint64) (*llama.Model, error) {
	ccSeedMu.Lock()
	defer ccSeedMu.Unlock()
	if err := torch.ManualSeed(seed); err != nil {
		return nil, err
	}
	m, err := llama.New(llama.Config{ModelType: "llama", VocabSize: 20, HiddenSize: 16, IntermediateSize: 24,
		NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 32,
		RMSNormEps: 1e-6, HiddenAct: "silu", Rope: llama.Rope{Type: "default", Theta: 10000},
		InitializerRange: 0.2, BOSTokenID: 1, PadTokenID: 0, EOSTokenIDs: []int64{2}})
	if err == nil {
		err = module.Freeze(m)
	}
	if err == nil {
		// Random A and B, so that both train from the first step; no
		// dropout (it would draw from the shared generator).
		_, err = lora.Apply(m, lora.Config{R: 4, Alpha: 8, Init: lora.InitRandom, TargetRegexp: lora.AllLinear})
	}
	if err != nil && m != nil {
		m.Close()
	}
	return m, err
}

// ccExamples returns n examples of ids in [3, 20) from an LCG seeded with
// seed.
func ccExamples(seed uint32, n int) []train.Example {
	x := seed
	next := func() uint32 { x = x*1664525 + 1013904223; return x >> 8 }
	ex := make([]train.Example, n)
	for i := range ex {
		ids := []int64{1}
		for range 3 + next()%6 {
			ids = append(ids, 3+int64(next()%17))
		}
		ids = append(ids, 2)
		ex[i] = train.Example{IDs: ids, Labels: append([]int64(nil), ids...)}
	}
	return ex
}

// ccOutcome is a run's losses, evaluations and final trainable weights,
// as bits.
type ccOutcome struct {
	losses, evals []uint64
	weights       map[string][]uint32
}

// ccTrain runs train.Run for seed's model and data: AdamW, gradient
// accumulation, clipping, evaluation every 3 steps.
func ccTrain(seed uint64) (ccOutcome, error) {
	var o ccOutcome
	m, err := ccModel(seed)
	if err != nil {
		return o, err
	}
	defer m.Close()
	rows, err := train.Pack(ccExamples(uint32(seed), 24), 8, 0)
	if err != nil {
		return o, err
	}
	loader, err := train.NewLoader(rows, 3, seed)
	if err != nil {
		return o, err
	}
	opt, err := optim.NewAdamW(module.Parameters(m, true), optim.LR(1e-2))
	if err != nil {
		return o, err
	}
	defer opt.Close()
	tr, err := train.New(train.Config{Model: m, Logits: m.Forward, Optimizer: opt, Data: loader,
		Eval: rows[:4], Steps: 6, GradAccum: 2, GradClip: 0.5, EvalEvery: 3, Device: torch.CPU})
	if err != nil {
		return o, err
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		return o, err
	}
	for _, l := range res.Losses {
		o.losses = append(o.losses, math.Float64bits(l))
	}
	for _, e := range res.Evals {
		o.evals = append(o.evals, math.Float64bits(e.Loss))
	}
	o.weights = map[string][]uint32{}
	for _, p := range module.NamedParameters(m) {
		if !p.Trainable {
			continue
		}
		v, err := torch.ToSlice[float32](p.Tensor)
		if err != nil {
			return o, fmt.Errorf("%s: %w", p.Name, err)
		}
		b := make([]uint32, len(v))
		for i, f := range v {
			b[i] = math.Float32bits(f)
		}
		o.weights[p.Name] = b
	}
	return o, nil
}

// TestConcurrentRuns runs four independent trainings (each its own seeded
// LoRA Llama, data, AdamW and Trainer) alone, then in four goroutines at
// once: each run's step losses, evaluation losses and final trainable
// weights are bitwise those of its lone run. Run pins each goroutine to
// its OS thread, and the evaluations' NoGrad regions stay in their own.
func TestConcurrentRuns(t *testing.T) {
	const workers = 4
	start := reftest.SettledLiveTensors()
	want := make([]ccOutcome, workers)
	for w := range workers {
		o, err := ccTrain(uint64(w + 1))
		require.NoError(t, err)
		want[w] = o
	}
	require.NotEqual(t, want[0].losses, want[1].losses)
	got := make([]ccOutcome, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[w], errs[w] = ccTrain(uint64(w + 1))
		}()
	}
	wg.Wait()
	for w := range workers {
		require.NoError(t, errs[w])
		assert.Equal(t, want[w].losses, got[w].losses, "worker %d: step losses", w)
		assert.Equal(t, want[w].evals, got[w].evals, "worker %d: evaluation losses", w)
		assert.Equal(t, want[w].weights, got[w].weights, "worker %d: final weights", w)
	}
	assert.True(t, torch.GradEnabled())
	assert.Equal(t, start, reftest.SettledLiveTensors())
}
