package main

// Data-parallel runs of the program: this test binary re-runs itself as
// the ranks (TestMain's mainEnv mode runs main's body, as the built
// command would), with torchrun's variables set by hand, joined over
// loopback with Gloo.

import (
	"bytes"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golora/golora/dist"
	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// distArgs are the settings of the data-parallel tests: tiny's, with
// absolute paths (every rank runs in a directory of its own), the shipped
// base and the demo's data (4,338 rows of 16 tokens: 20 steps stay in the
// first epoch), dropout 0 unless extra sets it.
func distArgs(out string, extra ...string) []string {
	base, _ := filepath.Abs(testBase)
	eval, _ := filepath.Abs(testEval)
	return tiny(out, append([]string{"--base", base, "--eval-data", eval, "--steps", "20", "--warmup", "1",
		"--eval-every", "10", "--save-every", "5", "--dropout", "0", "--lr", "3e-3"}, extra...)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rankProc is one rank of a job launched by launchRanks.
type rankProc struct {
	cmd    *exec.Cmd
	dir    string // its working directory (empty at the start)
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
	took   time.Duration
}

// launchRanks starts world ranks of the program, each in an empty working
// directory of its own, with args(rank) and torchrun's variables set by
// hand (one libtorch thread each: the machine's cores are shared).
func launchRanks(t *testing.T, world int, args func(rank int) []string) []*rankProc {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	ps := make([]*rankProc, world)
	for r := range world {
		p := &rankProc{dir: t.TempDir(), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
		p.cmd = exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args(r)...)...)
		p.cmd.Dir = p.dir
		p.cmd.Env = append(os.Environ(), mainEnv+"=1", "OMP_NUM_THREADS=1",
			"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(world),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(world),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port)
		p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
		start := time.Now()
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			err := p.cmd.Wait()
			p.took = time.Since(start)
			p.code = 0
			if ee, ok := err.(*exec.ExitError); ok {
				p.code = ee.ExitCode()
			} else if err != nil {
				p.code = -1
			}
			close(p.done)
		}()
		ps[r] = p
	}
	t.Cleanup(func() {
		for _, p := range ps {
			select {
			case <-p.done:
			default:
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return ps
}

// wait waits for every rank (at most limit) and returns their exit codes.
func wait(t *testing.T, ps []*rankProc, limit time.Duration) []int {
	t.Helper()
	deadline := time.After(limit)
	codes := make([]int, len(ps))
	for i, p := range ps {
		select {
		case <-p.done:
			codes[i] = p.code
		case <-deadline:
			t.Fatalf("rank %d still running after %v:\n%s", i, limit, p.stderr)
		}
	}
	return codes
}

// waitFor waits until the rank's stdout holds s.
func waitFor(t *testing.T, p *rankProc, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(p.stdout.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("the rank exited (%d) before printing %q:\n%s\n%s", p.code, s, p.stdout, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in 2 minutes", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adapterRelDiff returns, per tensor, ‖a − b‖/‖b‖ of the adapters in
// dirs a and b.
func adapterRelDiff(t *testing.T, a, b string) map[string]float64 {
	t.Helper()
	ta, _, err := torch.LoadSafetensors(filepath.Join(a, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer torch.CloseMap(ta)
	tb, _, err := torch.LoadSafetensors(filepath.Join(b, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer torch.CloseMap(tb)
	if len(ta) != len(tb) || len(tb) == 0 {
		t.Fatalf("adapters of %d and %d tensors", len(ta), len(tb))
	}
	out := map[string]float64{}
	for name, want := range tb {
		got, ok := ta[name]
		if !ok {
			t.Fatalf("%s: no tensor %s", a, name)
		}
		x, err := torch.ToSlice[float32](got)
		if err != nil {
			t.Fatal(err)
		}
		y, err := torch.ToSlice[float32](want)
		if err != nil {
			t.Fatal(err)
		}
		var d, n float64
		for i := range y {
			d += (float64(x[i]) - float64(y[i])) * (float64(x[i]) - float64(y[i]))
			n += float64(y[i]) * float64(y[i])
		}
		if n == 0 {
			t.Fatalf("%s: %s is zero: the run did not train", b, name)
		}
		out[name] = math.Sqrt(d / n)
	}
	return out
}

func maxOf(m map[string]float64) (string, float64) {
	name, v := "", -1.0
	for k, x := range m {
		if x > v {
			name, v = k, x
		}
	}
	return name, v
}

// listFiles lists the files under dir (relative paths).
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// TestDataParallelMatchesOneProcess: two ranks with per-rank batch 2 end
// at the adapter of one process with batch 4 over the same data in the
// same order, after 20 steps: per tensor ‖two − one‖/‖one‖ ≤ 1e-4, while
// one process with batch 2 (what each rank would learn without the
// all-reduce) is far off. Only rank 0 writes: rank 1, given its own --out
// and --log-json and working directory, leaves them all untouched, and
// prints nothing.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "two")
	ps := launchRanks(t, 2, func(rank int) []string {
		out, log := two, filepath.Join(dir, "two.jsonl")
		if rank > 0 {
			out, log = filepath.Join(dir, "rank1-out"), filepath.Join(dir, "rank1.jsonl")
		}
		return distArgs(out, "--batch", "2", "--log-json", log)
	})
	for r, code := range wait(t, ps, 2*time.Minute) {
		if code != 0 {
			t.Fatalf("rank %d: exit %d:\n%s", r, code, ps[r].stderr)
		}
	}
	if !strings.Contains(ps[0].stdout.String(), "global batch 2 × 2 = 4") {
		t.Errorf("rank 0 does not state the global batch:\n%s", ps[0].stdout)
	}
	// Rank 0 reports the all-reduce: the trainable float32 gradients and
	// the step's three statistics, every step.
	tm := regexp.MustCompile(`params +trainable ([\d,]+) of`).FindStringSubmatch(ps[0].stdout.String())
	am := regexp.MustCompile(`parallel +all-reduce ([\d,]+) bytes a step \(\w+\): median \S+, [\d.]+% of the run`).FindStringSubmatch(ps[0].stdout.String())
	if tm == nil || am == nil {
		t.Errorf("rank 0 does not report the trainable parameters and the all-reduce:\n%s", ps[0].stdout)
	} else {
		n, _ := strconv.ParseInt(strings.ReplaceAll(tm[1], ",", ""), 10, 64)
		b, _ := strconv.ParseInt(strings.ReplaceAll(am[1], ",", ""), 10, 64)
		if b != 4*n+12 {
			t.Errorf("all-reduce of %d bytes a step, want 4 × %d trainable + 12", b, n)
		}
	}
	for _, f := range []string{"rank1-out", "rank1.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("rank 1 wrote %s (%v)", f, err)
		}
	}
	for r, p := range ps {
		if files := listFiles(t, p.dir); len(files) > 0 {
			t.Errorf("rank %d wrote in its working directory: %v", r, files)
		}
	}
	if s := ps[1].stdout.String() + ps[1].stderr.String(); s != "" {
		t.Errorf("rank 1 printed:\n%s", s)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json", ckptFile, historyFile, runFile, plotFile} {
		if _, err := os.Stat(filepath.Join(two, f)); err != nil {
			t.Errorf("rank 0 did not write %s: %v", f, err)
		}
	}
	if h := readHistory(t, two); len(h.Steps) != 20 || len(h.Evals) != 3 {
		t.Errorf("history: %d steps, %d evals; want 20 and 3", len(h.Steps), len(h.Evals))
	}

	one := filepath.Join(dir, "one")
	if r := runIn(t, distArgs(one, "--batch", "4")...); r.code != 0 {
		t.Fatalf("one process: exit %d:\n%s", r.code, r.stderr)
	}
	diffs := adapterRelDiff(t, two, one)
	for name, d := range diffs {
		if d > 1e-4 {
			t.Errorf("%s: ‖two − one‖/‖one‖ = %.2e > 1e-4", name, d)
		}
	}
	name, worst := maxOf(diffs)
	t.Logf("two ranks × batch 2 against one process × batch 4: max over %d tensors of ‖two − one‖/‖one‖ = %.2e (%s)", len(diffs), worst, name)

	half := filepath.Join(dir, "half")
	if r := runIn(t, distArgs(half, "--batch", "2")...); r.code != 0 {
		t.Fatalf("one process, batch 2: exit %d:\n%s", r.code, r.stderr)
	}
	name, off := maxOf(adapterRelDiff(t, half, one))
	if off < 1e-2 {
		t.Errorf("one process × batch 2 is within %.2e of batch 4 (%s): the comparison cannot tell", off, name)
	}
	t.Logf("one process × batch 2 against batch 4 (no all-reduce): max %.2e", off)
}

// TestDataParallelResume: a two-rank run (dropout 0.1: each rank draws
// its own masks) interrupted by a SIGINT to rank 1 alone stops on both
// ranks after the same step with a checkpoint (exit 130), and resumed
// with --resume ends with bitwise the same losses and adapter file as a
// two-rank run that was never interrupted: the checkpoint holds every
// rank's generator state. A resume by one process is refused, naming
// both world sizes.
func TestDataParallelResume(t *testing.T) {
	dir := t.TempDir()
	args := func(out string, extra ...string) func(int) []string {
		return func(int) []string { return distArgs(out, append([]string{"--dropout", "0.1"}, extra...)...) }
	}
	straight := filepath.Join(dir, "straight")
	ps := launchRanks(t, 2, args(straight))
	for r, code := range wait(t, ps, 2*time.Minute) {
		if code != 0 {
			t.Fatalf("straight run, rank %d: exit %d:\n%s", r, code, ps[r].stderr)
		}
	}

	cut := filepath.Join(dir, "cut")
	ps = launchRanks(t, 2, args(cut))
	waitFor(t, ps[0], "step=3/20")
	if err := ps[1].cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for r, code := range wait(t, ps, 2*time.Minute) {
		if code != 130 {
			t.Fatalf("interrupted run, rank %d: exit %d, want 130:\n%s", r, code, ps[r].stderr)
		}
	}
	if !strings.Contains(ps[0].stderr.String(), "--resume") {
		t.Errorf("rank 0's message does not say how to resume: %s", ps[0].stderr)
	}
	h := readHistory(t, cut)
	n := len(h.Steps)
	if n < 3 || n >= 20 {
		t.Fatalf("interrupted at step %d, want 3 ≤ step < 20", n)
	}
	if _, err := os.Stat(filepath.Join(cut, "adapter_model.safetensors")); err == nil {
		t.Error("the interrupted run wrote its adapter")
	}

	ps = launchRanks(t, 2, args(cut, "--resume"))
	for r, code := range wait(t, ps, 2*time.Minute) {
		if code != 0 {
			t.Fatalf("resumed run, rank %d: exit %d:\n%s", r, code, ps[r].stderr)
		}
	}
	want, got := readHistory(t, straight), readHistory(t, cut)
	if len(got.Steps) != len(want.Steps) {
		t.Fatalf("resumed history has %d steps, straight %d", len(got.Steps), len(want.Steps))
	}
	for i := range want.Steps {
		if math.Float64bits(got.Steps[i].Loss) != math.Float64bits(want.Steps[i].Loss) {
			t.Errorf("step %d: loss %v, straight run %v", i+1, got.Steps[i].Loss, want.Steps[i].Loss)
		}
	}
	a, err := os.ReadFile(filepath.Join(straight, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cut, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		name, d := maxOf(adapterRelDiff(t, cut, straight))
		t.Errorf("the resumed run's adapter differs from the straight run's: up to %.2e (%s)", d, name)
	} else {
		t.Logf("interrupted after step %d of 20; resumed to the straight run's adapter bit for bit", n)
	}

	// Another world size: refused, both sizes named, nothing changed.
	r := runIn(t, append(args(cut)(0), "--resume")...)
	if r.code != 1 || !strings.Contains(r.stderr, "2 process(es)") || !strings.Contains(r.stderr, "this run has 1") {
		t.Errorf("a one-process resume of a two-rank checkpoint: exit %d: %s", r.code, r.stderr)
	}
	c, err := os.ReadFile(filepath.Join(cut, "adapter_model.safetensors"))
	if err != nil || !bytes.Equal(b, c) {
		t.Errorf("the refused resume changed the adapter (%v)", err)
	}
}

// TestDataParallelDeadPeer: a rank that dies (SIGKILL) or hangs (SIGSTOP)
// mid-run makes rank 0 exit 1 with an error naming the failed collective
// and the peer or the timeout, soon (a dead peer's connection closes at
// once; a hung one is given --dist-timeout), and leaves no checkpoint
// half-written.
func TestDataParallelDeadPeer(t *testing.T) {
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		limit time.Duration
		want  string
	}{
		{"killed", syscall.SIGKILL, 30 * time.Second, "peer"},
		{"hung", syscall.SIGSTOP, 40 * time.Second, "--dist-timeout 3s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			ps := launchRanks(t, 2, func(int) []string {
				return distArgs(out, "--steps", "100000", "--save-every", "3", "--eval-every", "0", "--dist-timeout", "3s")
			})
			waitFor(t, ps[0], "msg=step")
			time.Sleep(200 * time.Millisecond)
			if err := ps[1].cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			select {
			case <-ps[0].done:
			case <-time.After(c.limit):
				t.Fatalf("rank 0 still running %v after rank 1's %v", c.limit, c.sig)
			}
			took := time.Since(start)
			_ = ps[1].cmd.Process.Kill()
			errs := ps[0].stderr.String()
			if ps[0].code != 1 {
				t.Fatalf("rank 0: exit %d, want 1:\n%s", ps[0].code, errs)
			}
			for _, w := range []string{"rank 0 of 2", c.want} {
				if !strings.Contains(errs, w) {
					t.Errorf("rank 0's error lacks %q: %s", w, errs)
				}
			}
			if strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Errorf("rank 0's error is not one line: %s", errs)
			}
			// A failed run leaves nothing behind: no checkpoint, no
			// temporary file of one.
			for _, f := range listFiles(t, out) {
				if atomicfile.IsTemp(filepath.Base(f)) || f == ckptFile {
					t.Errorf("left behind: %s", f)
				}
			}
			t.Logf("rank 0 exited %v after rank 1's %v: %s", took.Round(time.Millisecond), c.sig, strings.TrimSpace(errs))
		})
	}
}

// TestShardedLoader: train.NewShardedLoader has DistributedSampler's
// semantics (dist.ShardIndices without shuffle, applied to the single
// process's order of the epoch): every rank serves ceil(n/world) rows an
// epoch, the ranks' shards interleave into that order padded by repeating
// its start, the ranks' batches at each step are the single process's
// batch of batch×world rows when no padding is involved, every rank is at
// the same position, and world 1 is NewLoader.
func TestShardedLoader(t *testing.T) {
	rowsOf := func(n int) []train.Row {
		rows := make([]train.Row, n)
		for i := range rows {
			rows[i] = train.Row{IDs: []int64{int64(i), 0}, Labels: []int64{0, 0}}
		}
		return rows
	}
	ids := func(rows []train.Row) []int64 {
		var out []int64
		for _, r := range rows {
			out = append(out, r.IDs[0])
		}
		return out
	}
	for _, n := range []int{1, 2, 7, 10, 12, 13} {
		for _, world := range []int{1, 2, 3, 5} {
			for _, batch := range []int{1, 2, 3} {
				rows := rowsOf(n)
				single, err := train.NewLoader(rows, 1, 7)
				if err != nil {
					t.Fatal(err)
				}
				ranks := make([]*train.Loader, world)
				for r := range ranks {
					if ranks[r], err = train.NewShardedLoader(rows, batch, 7, r, world); err != nil {
						t.Fatal(err)
					}
				}
				per := (n + world - 1) / world
				for epoch := range 2 {
					var order []int64 // the single process's order of the epoch
					for range n {
						order = append(order, ids(single.Next())...)
					}
					for r, l := range ranks {
						if l.EpochLen() != per || l.BatchesPerEpoch() != (per+batch-1)/batch {
							t.Fatalf("n=%d world=%d: rank %d serves %d rows in %d batches, want %d", n, world, r, l.EpochLen(), l.BatchesPerEpoch(), per)
						}
						var got []int64
						for range l.BatchesPerEpoch() {
							got = append(got, ids(l.Next())...)
						}
						want, err := dist.ShardIndices(n, r, world, false, 0, 0, false)
						if err != nil {
							t.Fatal(err)
						}
						for i, k := range want {
							if got[i] != order[k] {
								t.Fatalf("n=%d world=%d batch=%d epoch %d: rank %d's rows %v, want the order %v's %v", n, world, batch, epoch, r, got, order, want)
							}
						}
						if p := l.Position(); p != ranks[0].Position() || p.Epoch != int64(epoch) || p.Index != per {
							t.Fatalf("rank %d at %+v, rank 0 at %+v", r, p, ranks[0].Position())
						}
					}
				}
			}
		}
	}
	// The ranks' batches at step i are the single process's batch i of
	// batch×world rows (12 rows: no padding, batches split evenly).
	rows := rowsOf(12)
	single, _ := train.NewLoader(rows, 4, 3)
	r0, _ := train.NewShardedLoader(rows, 2, 3, 0, 2)
	r1, _ := train.NewShardedLoader(rows, 2, 3, 1, 2)
	for step := range 9 {
		got := append(ids(r0.Next()), ids(r1.Next())...)
		want := ids(single.Next())
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: the ranks' rows %v, one process's %v", step, got, want)
		}
	}
	if _, err := train.NewShardedLoader(rows, 2, 3, 2, 2); err == nil {
		t.Error("rank 2 of 2 accepted")
	}
}
