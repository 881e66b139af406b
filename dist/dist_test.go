package dist_test

// Data-parallel training across real processes: this test binary re-runs
// itself as the ranks (TestMain's child mode), joined through a TCPStore
// on loopback and Gloo, as torchrun would launch them.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/dist"
	"github.com/golora/golora/torch"
)

// The child mode: GOLORA_DIST_CHILD names what a rank runs.
func TestMain(m *testing.M) {
	if what := os.Getenv("GOLORA_DIST_CHILD"); what != "" {
		if err := child(what); err != nil {
			fmt.Fprintln(os.Stderr, "rank failed:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(what string) error {
	switch what {
	case "train":
		steps, _ := strconv.Atoi(os.Getenv("GOLORA_DIST_STEPS"))
		die, _ := strconv.Atoi(os.Getenv("GOLORA_DIST_DIE_AT")) // 0: never
		timeout, _ := time.ParseDuration(os.Getenv("GOLORA_DIST_TIMEOUT"))
		if timeout == 0 {
			timeout = time.Minute
		}
		g, err := dist.InitFromEnv(dist.WithTimeout(timeout))
		if err != nil {
			return err
		}
		defer g.Destroy()
		out, err := trainRun(g, steps, die)
		if err != nil {
			return err
		}
		if g.IsMain() {
			path := os.Getenv("GOLORA_DIST_OUT")
			v, _ := os.LookupEnv("TORCHELASTIC_USE_AGENT_STORE")
			if err := os.WriteFile(path+".env", []byte("TORCHELASTIC_USE_AGENT_STORE="+v+"\n"), 0o644); err != nil {
				return err
			}
			return torch.SaveSafetensors(path, out, nil)
		}
		return nil
	}
	return fmt.Errorf("unknown child mode %q", what)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type rankResult struct {
	rank   int
	err    error
	stderr string
	took   time.Duration
}

// launch starts world ranks of this binary in child mode with torchrun's
// variables set by hand, and waits for all of them (or ctx).
func launch(ctx context.Context, t *testing.T, world int, env func(rank int) []string) []rankResult {
	t.Helper()
	port := freePort(t)
	res := make([]rankResult, world)
	done := make(chan int, world)
	for r := 0; r < world; r++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(world),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(world),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Env = append(cmd.Env, env(r)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		require.NoError(t, cmd.Start())
		go func(r int) {
			err := cmd.Wait()
			res[r] = rankResult{rank: r, err: err, stderr: stderr.String(), took: time.Since(start)}
			done <- r
		}(r)
	}
	for range world {
		<-done
	}
	return res
}

func relNorm(t *testing.T, got, want *torch.Tensor) float64 {
	t.Helper()
	a, err := torch.ToSlice[float32](got)
	require.NoError(t, err)
	b, err := torch.ToSlice[float32](want)
	require.NoError(t, err)
	require.Len(t, a, len(b))
	var d, n float64
	for i := range a {
		d += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d) / math.Sqrt(n)
}

// Two processes with per-rank batch b end at the same adapter as one
// process with batch 2b over the same data in the same order, after 20
// steps: per tensor, ‖two − one‖ / ‖one‖ ≤ 1e-4. (A missing all-reduce
// gives about 0.5; see TestTwoProcessesWithoutSyncDiffer.)
func TestTwoProcessesMatchOne(t *testing.T) {
	out := filepath.Join(t.TempDir(), "two.safetensors")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := launch(ctx, t, 2, func(int) []string {
		return []string{"GOLORA_DIST_CHILD=train", "GOLORA_DIST_STEPS=20", "GOLORA_DIST_OUT=" + out}
	})
	for _, r := range res {
		require.NoError(t, r.err, "rank %d: %s", r.rank, r.stderr)
	}
	two, _, err := torch.LoadSafetensors(out)
	require.NoError(t, err)
	defer torch.CloseMap(two)

	one, err := trainRun(nil, 20, 0)
	require.NoError(t, err)
	defer torch.CloseMap(one)
	require.Len(t, two, len(one))
	for name, want := range one {
		e := relNorm(t, two[name], want)
		t.Logf("%s: ‖two − one‖/‖one‖ = %.2e", name, e)
		require.LessOrEqual(t, e, 1e-4, name)
	}
	// And the training moved the adapter: the check is not vacuous.
	start, err := trainRun(nil, 0, 0)
	require.NoError(t, err)
	defer torch.CloseMap(start)
	for name := range one {
		if e := relNorm(t, one[name], start[name]); !math.IsInf(e, 0) && !math.IsNaN(e) {
			require.Greater(t, e, 1e-3, name)
		}
	}
}

// A rank killed mid-run makes the other fail with an error within the
// timeout: no hang, and it writes nothing.
func TestKilledRankFailsTheOthers(t *testing.T) {
	out := filepath.Join(t.TempDir(), "never.safetensors")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := launch(ctx, t, 2, func(rank int) []string {
		env := []string{"GOLORA_DIST_CHILD=train", "GOLORA_DIST_STEPS=50", "GOLORA_DIST_OUT=" + out, "GOLORA_DIST_TIMEOUT=10s"}
		if rank == 1 {
			env = append(env, "GOLORA_DIST_DIE_AT=3")
		}
		return env
	})
	require.Error(t, res[1].err, "rank 1 was to die")
	require.Error(t, res[0].err, "rank 0 must fail, not finish: %s", res[0].stderr)
	require.Contains(t, res[0].stderr, "rank failed:")
	require.NotContains(t, res[0].stderr, ".cc:", "no C++ source location in the error")
	require.Less(t, res[0].took, 90*time.Second, "rank 0 took too long to notice")
	require.NoFileExists(t, out)
	t.Logf("rank 0 failed after %v: %s", res[0].took.Round(time.Millisecond), res[0].stderr)
}

func TestInitFromEnvErrors(t *testing.T) {
	base := map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
	for _, c := range []struct {
		name string
		set  map[string]string
		drop string
		want string
	}{
		{"no RANK", nil, "RANK", "RANK is not set"},
		{"no WORLD_SIZE", nil, "WORLD_SIZE", "WORLD_SIZE is not set"},
		{"no MASTER_ADDR", nil, "MASTER_ADDR", "MASTER_ADDR is not set"},
		{"no MASTER_PORT", nil, "MASTER_PORT", "MASTER_PORT is not set"},
		{"bad RANK", map[string]string{"RANK": "x"}, "", `RANK="x" is not a whole number`},
		{"negative RANK", map[string]string{"RANK": "-1"}, "", `RANK="-1"`},
		{"zero WORLD_SIZE", map[string]string{"WORLD_SIZE": "0"}, "", `WORLD_SIZE="0"`},
		{"rank too big", map[string]string{"RANK": "2"}, "", "RANK=2 is out of range for WORLD_SIZE=2"},
		{"bad port", map[string]string{"MASTER_PORT": "70000"}, "", "MASTER_PORT=70000 is out of range"},
		{"bad LOCAL_RANK", map[string]string{"LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "2"}, "", "LOCAL_RANK=3 is out of range"},
		{"bad agent flag", map[string]string{"TORCHELASTIC_USE_AGENT_STORE": "maybe"}, "", "TORCHELASTIC_USE_AGENT_STORE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range c.set {
				env[k] = v
			}
			delete(env, c.drop)
			_, err := dist.InitFromEnv(dist.WithLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
			require.ErrorContains(t, err, c.want)
			require.ErrorContains(t, err, "dist:")
		})
	}
	// A store nobody hosts: an error after the timeout, not a hang.
	port := strconv.Itoa(freePort(t))
	env := map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
	start := time.Now()
	_, err := dist.InitFromEnv(dist.WithTimeout(2*time.Second), dist.WithLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	require.Error(t, err)
	require.Less(t, time.Since(start), 60*time.Second)
}

func TestShardIndices(t *testing.T) {
	// DistributedSampler(range(10), num_replicas=3, shuffle=False):
	// padded to 12 by repeating the start, rank r takes r, r+3, ...
	want := [][]int{{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}
	for r, w := range want {
		got, err := dist.ShardIndices(10, r, 3, false, 0, 0, false)
		require.NoError(t, err)
		require.Equal(t, w, got)
	}
	// drop_last: ceil((10-3)/3) = 3 per rank, total 9.
	want = [][]int{{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}
	for r, w := range want {
		got, err := dist.ShardIndices(10, r, 3, false, 0, 0, true)
		require.NoError(t, err)
		require.Equal(t, w, got)
	}
	// Fewer samples than ranks, padded: [0 1 0 1 0] over 5 ranks.
	for r, w := range []int{0, 1, 0, 1, 0} {
		got, err := dist.ShardIndices(2, r, 5, false, 0, 0, false)
		require.NoError(t, err)
		require.Equal(t, []int{w}, got)
	}
	// Shuffled: the ranks' shards partition a permutation; another epoch
	// permutes differently; the same seed and epoch are reproducible.
	seen := map[int]bool{}
	var e0 []int
	for r := 0; r < 4; r++ {
		got, err := dist.ShardIndices(12, r, 4, true, 7, 0, false)
		require.NoError(t, err)
		require.Len(t, got, 3)
		for _, i := range got {
			require.False(t, seen[i])
			seen[i] = true
		}
		e0 = append(e0, got...)
	}
	require.Len(t, seen, 12)
	again, _ := dist.ShardIndices(12, 0, 4, true, 7, 0, false)
	require.Equal(t, e0[:3], again)
	e1, _ := dist.ShardIndices(12, 0, 4, true, 7, 1, false)
	require.NotEqual(t, e0[:3], e1)
	_, err := dist.ShardIndices(10, 3, 3, false, 0, 0, false)
	require.ErrorContains(t, err, "rank 3 is out of range")
}
