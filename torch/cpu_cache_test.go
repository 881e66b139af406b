package torch_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// restoreCPUCache puts the cache's limit back when the test ends and
// starts the test with an empty cache, so that counts are the test's own.
func restoreCPUCache(t *testing.T) {
	t.Helper()
	limit := torch.CPUCache().Limit
	torch.EmptyCPUCache()
	t.Cleanup(func() { torch.SetCPUCacheLimit(limit) })
}

const mib = 1 << 20

func TestCPUCacheInstalled(t *testing.T) {
	c := torch.CPUCache()
	assert.True(t, c.Installed, "libtorch's CPU allocator is the cache")
	assert.Greater(t, c.Limit, int64(0))
	assert.LessOrEqual(t, c.Limit, int64(2<<30))
}

// A freed block is handed out again for the next request of its size
// class, and what the new tensor holds is its own values, not the old
// ones: reused memory is not assumed to be zero.
func TestCPUCacheReusesFreedBlocks(t *testing.T) {
	restoreCPUCache(t)
	const n = 1 << 20 // 4 MiB of float32
	a := torch.Full([]int64{n}, 7)
	require.NoError(t, a.Err())
	require.NoError(t, a.Close())
	before := torch.CPUCache()
	assert.Equal(t, int64(4*mib+64), before.Cached, "the block and its 64-byte header wait")

	z := torch.Zeros([]int64{n - 1000}) // same class: (4, 5] MiB
	defer z.Close()
	after := torch.CPUCache()
	assert.Equal(t, before.Hits+1, after.Hits)
	assert.Equal(t, int64(0), after.Cached)
	vals, err := torch.ToSlice[float32](z)
	require.NoError(t, err)
	for i, v := range vals {
		if v != 0 {
			t.Fatalf("Zeros on a reused block: element %d is %v", i, v)
		}
	}

	// A request of another class (8 MiB) does not take it.
	z.Close()
	b := torch.Empty([]int64{2 * n})
	defer b.Close()
	last := torch.CPUCache()
	assert.Equal(t, after.Misses+1, last.Misses)
	assert.Equal(t, int64(4*mib+64), last.Cached, "the 4 MiB block went back to the cache and stays")
}

// At most Limit bytes wait; past it the least recently freed blocks go
// first, and a limit of 0 turns caching off.
func TestCPUCacheLimit(t *testing.T) {
	restoreCPUCache(t)
	const n = 1 << 20
	block := int64(4*mib + 64)
	torch.SetCPUCacheLimit(2*block + 100)
	ts := []*torch.Tensor{torch.Ones([]int64{n}), torch.Ones([]int64{n}), torch.Ones([]int64{n})}
	require.NoError(t, torch.FirstErr(ts...))
	torch.CloseAll(ts...)
	assert.Equal(t, 2*block, torch.CPUCache().Cached, "two of three fit")

	torch.SetCPUCacheLimit(block)
	assert.Equal(t, block, torch.CPUCache().Cached, "lowering the limit frees the oldest")

	torch.SetCPUCacheLimit(0)
	assert.Equal(t, int64(0), torch.CPUCache().Cached)
	x := torch.Ones([]int64{n})
	require.NoError(t, x.Close())
	assert.Equal(t, int64(0), torch.CPUCache().Cached, "caching is off")

	torch.SetCPUCacheLimit(64 * mib)
	x = torch.Ones([]int64{n})
	require.NoError(t, x.Close())
	assert.Equal(t, block, torch.CPUCache().Cached)
	torch.EmptyCPUCache()
	c := torch.CPUCache()
	assert.Equal(t, int64(0), c.Cached)
	assert.Equal(t, int64(64*mib), c.Limit, "EmptyCPUCache keeps the limit")
}

// Small blocks are not cached: they go to libtorch's own allocator.
func TestCPUCacheSkipsSmallBlocks(t *testing.T) {
	restoreCPUCache(t)
	before := torch.CPUCache()
	x := torch.Ones([]int64{1000})
	require.NoError(t, x.Close())
	after := torch.CPUCache()
	assert.Equal(t, before.Hits+before.Misses, after.Hits+after.Misses)
	assert.Equal(t, int64(0), after.Cached)
}

// Products computed in reused blocks equal those computed in fresh ones,
// and goroutines allocating and freeing large blocks at once (through the
// cache's lock) get correct results.
func TestCPUCacheConcurrentUse(t *testing.T) {
	restoreCPUCache(t)
	torch.ManualSeed(3)
	a := torch.Randn([]int64{512, 512})
	b := torch.Randn([]int64{512, 512})
	defer torch.CloseAll(a, b)
	torch.SetCPUCacheLimit(0)
	y0 := a.Mm(b)
	ref, err := torch.ToSlice[float32](y0)
	require.NoError(t, err)
	y0.Close()
	torch.SetCPUCacheLimit(256 * mib)

	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				y := a.Mm(b)
				got, err := torch.ToSlice[float32](y)
				y.Close()
				if err != nil {
					errs <- err.Error()
					return
				}
				for j := range got {
					if got[j] != ref[j] {
						errs <- "a product in a reused block differs"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	assert.Greater(t, torch.CPUCache().Hits, int64(0))
}

// A limit set through the environment is read when the library loads: a
// child process sees it, and a bad value keeps the default and is named
// in a warning.
func TestCPUCacheLimitFromEnvironment(t *testing.T) {
	if os.Getenv("GOLORA_CPU_CACHE_CHILD") == "1" {
		fmt.Printf("limit=%d\n", torch.CPUCache().Limit)
		return
	}
	run := func(value string, set bool) string {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCPUCacheLimitFromEnvironment$", "-test.count", "1")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GOLORA_CPU_CACHE_MIB=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "GOLORA_CPU_CACHE_CHILD=1")
		if set {
			cmd.Env = append(cmd.Env, "GOLORA_CPU_CACHE_MIB="+value)
		}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	assert.Contains(t, run("48", true), fmt.Sprintf("limit=%d\n", 48<<20))
	assert.Contains(t, run("0", true), "limit=0\n")
	unset := run("", false)
	require.Contains(t, unset, "limit=")
	def := strings.TrimSpace(strings.SplitN(strings.SplitN(unset, "limit=", 2)[1], "\n", 2)[0])
	assert.NotEqual(t, "0", def)
	for _, bad := range []string{"lots", "-5", "1.5"} {
		out := run(bad, true)
		assert.Contains(t, out, "limit="+def+"\n", "value %q", bad)
		assert.Contains(t, out, "GOLORA_CPU_CACHE_MIB", "value %q: the warning names the variable", bad)
	}
}
