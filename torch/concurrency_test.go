package torch_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Sharing tensors and scopes between goroutines. Run these under -race:
// the tensor's lock must order every use of its handle before Close frees
// it, so Close racing an op either waits for the op or makes it fail with
// "use of closed tensor", and never hands libtorch a freed handle.

// waitFor spins until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// TestConcurrentUseAndClose races ops on x in several goroutines against
// x.Close, called twice at once.
func TestConcurrentUseAndClose(t *testing.T) {
	start := reftest.SettledLiveTensors()
	const (
		rounds  = 20
		workers = 4
		maxOps  = 200_000 // per worker and round: the loops are bounded
	)
	var done, closedSeen atomic.Int64
	for round := 0; round < rounds; round++ {
		x := ok(t, torch.Randn([]int64{16, 16}))
		w := ok(t, torch.Randn([]int64{16, 16}))
		var ran atomic.Int64
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for g := 0; g < workers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < maxOps; i++ {
					var y *torch.Tensor
					if i%2 == 0 {
						y = x.MatMul(w)
					} else {
						y = w.MatMul(x).Relu()
					}
					if err := y.Err(); err != nil {
						if !strings.Contains(err.Error(), "use of closed tensor") {
							errs <- err
						}
						closedSeen.Add(1)
						return
					}
					ran.Add(1)
					done.Add(1)
					y.Close()
				}
				errs <- nil // x was never closed: the round is useless, not wrong
			}()
		}
		waitFor(t, "the workers to start", func() bool { return ran.Load() >= 2*workers })
		var closers sync.WaitGroup
		for k := 0; k < 2; k++ {
			closers.Add(1)
			go func() {
				defer closers.Done()
				assert.NoError(t, x.Close())
			}()
		}
		closers.Wait()
		assert.True(t, x.Closed())
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "an op racing Close failed with another error")
		}
		e, isErr := torch.AsError(x.MatMul(w).Err())
		require.True(t, isErr)
		assert.Equal(t, "MatMul", e.Op)
		assert.Equal(t, "self", e.Arg)
		assert.Equal(t, "use of closed tensor", e.Msg)
		require.NoError(t, w.Close())
	}
	t.Logf("%d ops ran, %d failed after Close", done.Load(), closedSeen.Load())
	assert.Positive(t, closedSeen.Load(), "no op ever saw the closed tensor")
	assert.Equal(t, start, reftest.SettledLiveTensors(), "two Close calls freed x once; every result was freed")
}

// TestConcurrentCloseOfScopedTensor: Close of a scoped tensor racing the
// scope's own Close and ops that join the scope.
func TestConcurrentCloseOfScopedTensor(t *testing.T) {
	start := reftest.SettledLiveTensors()
	for round := 0; round < 50; round++ {
		s := torch.NewScope()
		x := torch.Randn([]int64{8, 8}, torch.In(s))
		require.NoError(t, s.Err())
		var wg sync.WaitGroup
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 1000; i++ {
					if x.Tanh().Err() != nil {
						return
					}
				}
			}()
		}
		var closers sync.WaitGroup
		closers.Add(3)
		go func() { defer closers.Done(); x.Close() }()
		go func() { defer closers.Done(); x.Close() }()
		go func() { defer closers.Done(); s.Close() }()
		closers.Wait()
		wg.Wait()
		s.Close()
	}
	// Results that joined s after it closed belong to no scope: the GC's
	// safety net frees them.
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// TestConcurrentScope shares one scope between goroutines: ops whose
// results join it, Own, Close of single results, Err, Len and Keep all run
// at once, and Close frees everything in the end.
func TestConcurrentScope(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	base := torch.Ones([]int64{8}, torch.In(s))
	parentless := make(chan *torch.Tensor, 8*100)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				a := base.AddScalar(float64(i)) // joins s
				b := a.Mul(base)                // joins s
				c := s.Own(torch.Full([]int64{8}, float64(g)))
				if i%3 == 0 {
					b.Close() // usually not the scope's last entry: Close skips it later
				}
				if i%100 == 0 {
					s.Keep(c) // moves c out: the test closes it
					parentless <- c
				}
				_ = s.Err()
				_ = s.Len()
				if a.Scope() != s {
					t.Errorf("a result joined %p, not the shared scope", a.Scope())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(parentless)
	require.NoError(t, s.Err())
	kept := 0
	for c := range parentless {
		assert.Nil(t, c.Scope())
		require.NoError(t, c.Close())
		kept++
	}
	assert.Equal(t, 8*3, kept)
	s.Close()
	assert.True(t, base.Closed())
	assert.Equal(t, start, torch.LiveTensors(), "Close freed every tensor the scope owned")
	assert.Equal(t, start, reftest.SettledLiveTensors())
}

// TestConcurrentSameOperandTwice: an op that takes one tensor twice
// (x.Mul(x), Cat of x with itself) racing x.Close. A read lock taken twice
// by one op deadlocks when Close queues for the write lock between the two
// (sync.RWMutex forbids recursive read locking), so an op must lock each
// tensor once however often it appears.
func TestConcurrentSameOperandTwice(t *testing.T) {
	start := reftest.SettledLiveTensors()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for round := 0; round < 200; round++ {
			x := ok(t, torch.Randn([]int64{32, 32}))
			var wg sync.WaitGroup
			for g := 0; g < 3; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10_000; i++ {
						var y *torch.Tensor
						switch i % 3 {
						case 0:
							y = x.Mul(x)
						case 1:
							y = torch.Cat([]*torch.Tensor{x, x, x}, 0)
						default:
							y = x.MatMul(x).Add(x)
						}
						if y.Err() != nil {
							return
						}
						y.Close()
					}
				}()
			}
			time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
			x.Close()
			wg.Wait()
		}
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: ops that use a tensor twice racing its Close did not finish")
	}
	assert.Equal(t, start, reftest.SettledLiveTensors())
}
