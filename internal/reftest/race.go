package reftest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CloseRacingUse runs use(w, i) in workers goroutines, over and over,
// while two goroutines call closeModel at once, as soon as every worker
// has succeeded once (or after 20 s). Each call must give want[w] exactly,
// or, once the close has begun, an error closed accepts; a worker stops at
// its first error. It returns how many workers saw such an error. It is
// the harness of the "Close racing a use never crashes" tests of module,
// lora and models.
func CloseRacingUse[T comparable](t testing.TB, round int, want [][]T,
	use func(w, i int) ([]T, error), closed func(error) bool, closeModel func()) int64 {
	t.Helper()
	workers := len(want)
	var ran, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				got, err := use(w, i)
				if err != nil {
					if !closed(err) {
						t.Errorf("round %d, worker %d: a pass racing Close failed with %v", round, w, err)
					}
					failed.Add(1)
					return
				}
				if !slices.Equal(got, want[w]) {
					t.Errorf("round %d, worker %d: a pass racing Close gave a wrong output", round, w)
					return
				}
				ran.Add(1)
			}
			t.Errorf("round %d, worker %d: the model was never closed", round, w)
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for ran.Load() < int64(workers) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
	var closers sync.WaitGroup
	for range 2 {
		closers.Add(1)
		go func() { defer closers.Done(); closeModel() }()
	}
	closers.Wait()
	wg.Wait()
	return failed.Load()
}
