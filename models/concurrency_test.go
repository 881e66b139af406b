package models_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// One loaded model serving many goroutines, a server's pattern (run under
// -race): see the package doc's "Concurrency" section.

// ccRequest is one goroutine's input: two rows of ids [2, 6], the second
// left-padded, and their mask.
type ccRequest struct {
	ids, mask []int64
	prompts   [][]int64
}

func ccRequests(n int) []ccRequest {
	rs := make([]ccRequest, n)
	for i := range rs {
		a := []int64{3, int64(4 + i), 5, int64(6 + 2*i), 7, 8}
		b := []int64{int64(9 + i), 10, 11, int64(12 + i)}
		rs[i] = ccRequest{
			ids:     append(slices.Clone(a), 0, 0, b[0], b[1], b[2], b[3]),
			mask:    []int64{1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1},
			prompts: [][]int64{a, b},
		}
	}
	return rs
}

// ccScore runs m.Score on r without autograd and returns the output's
// float32 bits.
func ccScore(m models.Model, r ccRequest) ([]uint32, error) {
	var bits []uint32
	err := torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		ids := s.Own(torch.FromSlice(r.ids, 2, 6))
		mask := s.Own(torch.FromSlice(r.mask, 2, 6))
		v, err := torch.ToSlice[float32](m.Score(module.Inputs{IDs: ids, AttentionMask: mask}))
		if err != nil {
			return err
		}
		bits = make([]uint32, len(v))
		for i, f := range v {
			bits[i] = math.Float32bits(f)
		}
		return nil
	})
	return bits, err
}

// ccGenerate generates from r's prompts with a KV cache of its own:
// greedily, or sampling with a seed (generate's private generator).
func ccGenerate(m models.Model, r ccRequest, sample bool) ([][]int64, error) {
	opts := []generate.Option{generate.MaxNewTokens(4)}
	if sample {
		opts = append(opts, generate.Sample(42), generate.Temperature(2))
	}
	out, err := generate.Generate(context.Background(), m, r.prompts, opts...)
	if err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// ccResult is a request's answer: the scores and, for a causal model, the
// greedy and the sampled tokens.
type ccResult struct {
	score           []uint32
	greedy, sampled [][]int64
}

func ccServe(m models.Model, r ccRequest) (ccResult, error) {
	var res ccResult
	var err error
	if res.score, err = ccScore(m, r); err != nil || m.Kind() != models.CausalLM {
		return res, err
	}
	if res.greedy, err = ccGenerate(m, r, false); err != nil {
		return res, err
	}
	res.sampled, err = ccGenerate(m, r, true)
	return res, err
}

func ccEqual(a, b ccResult) bool {
	eq := func(x, y [][]int64) bool { return slices.EqualFunc(x, y, slices.Equal) }
	return slices.Equal(a.score, b.score) && eq(a.greedy, b.greedy) && eq(a.sampled, b.sampled)
}

// TestConcurrentSharedModel shares one loaded model of each family
// between eight goroutines, each scoring its own batch (padded) and, for
// the causal ones, generating from it greedily and by seeded sampling,
// each generation with its own KV cache: every answer is bitwise the
// sequential one.
func TestConcurrentSharedModel(t *testing.T) {
	const workers, reps = 8, 2
	for _, typ := range []string{"llama", "gpt2", "bert"} {
		t.Run(typ, func(t *testing.T) {
			dir := writeCheckpoint(t, typ)
			start := reftest.SettledLiveTensors()
			m, err := models.Load(dir)
			require.NoError(t, err)
			reqs := ccRequests(workers)
			want := make([]ccResult, workers)
			for w := range workers {
				want[w], err = ccServe(m, reqs[w])
				require.NoError(t, err)
			}
			require.NotEqual(t, want[0].score, want[1].score)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range reps {
						got, err := ccServe(m, reqs[w])
						if err != nil {
							t.Errorf("worker %d, request %d: %v", w, i, err)
							return
						}
						if !ccEqual(got, want[w]) {
							t.Errorf("worker %d, request %d: the answer differs from the sequential one", w, i)
							return
						}
					}
				}()
			}
			wg.Wait()
			m.Close()
			assert.Equal(t, start, reftest.SettledLiveTensors())
		})
	}
}

// ccClosedErr reports whether err is (or wraps) torch's "use of closed
// tensor", naming the argument that was closed.
func ccClosedErr(err error) bool {
	var e *torch.Error
	return errors.As(err, &e) && e.Msg == "use of closed tensor" && e.Arg != ""
}

// TestConcurrentCloseRacingServe closes a shared model, from two
// goroutines at once, while four others score and generate with it: each
// request gets the right answer or an error naming the closed tensor
// (never a crash, a panic or a wrong answer), and every request after
// Close fails so.
func TestConcurrentCloseRacingServe(t *testing.T) {
	const workers, rounds = 4, 3
	reqs := ccRequests(workers)
	for _, typ := range []string{"llama", "gpt2", "bert"} {
		t.Run(typ, func(t *testing.T) {
			dir := writeCheckpoint(t, typ)
			start := reftest.SettledLiveTensors()
			var failed atomic.Int64
			var seenMu sync.Mutex
			seen := map[string]int{} // "op: arg" of the closed-tensor errors
			for round := range rounds {
				m, err := models.Load(dir)
				require.NoError(t, err)
				want := make([]ccResult, workers)
				for w := range workers {
					want[w], err = ccServe(m, reqs[w])
					require.NoError(t, err)
				}
				var ran atomic.Int64
				var wg sync.WaitGroup
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < 10_000; i++ {
							got, err := ccServe(m, reqs[w])
							if err != nil {
								if !ccClosedErr(err) {
									t.Errorf("round %d, worker %d: a request racing Close failed with %v", round, w, err)
								}
								var e *torch.Error
								if errors.As(err, &e) {
									seenMu.Lock()
									seen[e.Op+": "+e.Arg]++
									seenMu.Unlock()
								}
								failed.Add(1)
								return
							}
							if !ccEqual(got, want[w]) {
								t.Errorf("round %d, worker %d: a request racing Close got a wrong answer", round, w)
								return
							}
							ran.Add(1)
						}
						t.Errorf("round %d, worker %d: the model was never closed", round, w)
					}()
				}
				deadline := time.Now().Add(20 * time.Second)
				for ran.Load() < int64(round%2+1) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Microsecond)
				}
				var closers sync.WaitGroup
				for range 2 {
					closers.Add(1)
					go func() { defer closers.Done(); m.Close() }()
				}
				closers.Wait()
				wg.Wait()
				_, err = ccServe(m, reqs[0])
				assert.True(t, ccClosedErr(err), "a request after Close: %v", err)
			}
			assert.Positive(t, failed.Load())
			t.Logf("%d requests failed on the closed model, in %v", failed.Load(), seen)
			assert.Equal(t, start, reftest.SettledLiveTensors())
		})
	}
}
