package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
)

// loopEnv makes the test binary run a loop helper (see loopHelper) instead
// of the tests: GOLORA_TRAIN_LOOP=<mode>, GOLORA_TRAIN_DIR=<dir>.
const loopEnv = "GOLORA_TRAIN_LOOP"

func TestMain(m *testing.M) {
	if mode := os.Getenv(loopEnv); mode != "" {
		if err := loopHelper(mode, os.Getenv("GOLORA_TRAIN_DIR")); err != nil {
			fmt.Fprintf(os.Stderr, "loop helper %s: %v\n", mode, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The loop test's run: a 2-layer Llama with a 20-token vocabulary, LoRA
// (r 4, dropout 0.1) on every linear layer, AdamW under warmup-cosine,
// gradient accumulation 2 and clipping, on packed rows of random ids.
const loopSteps = 8 // the resume test stops after loopSteps/2

type loopRun struct {
	model *llama.Model
	opt   optim.Optimizer
	tr    *Trainer
}

func (r *loopRun) close() {
	r.opt.Close()
	r.model.Close()
}

func newLoopRun(ckpt string) (*loopRun, error) {
	if err := torch.ManualSeed(5); err != nil {
		return nil, err
	}
	m, err := llama.New(llama.Config{ModelType: "llama", VocabSize: 20, HiddenSize: 16, IntermediateSize: 32,
		NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 32,
		RMSNormEps: 1e-6, HiddenAct: "silu", Rope: llama.Rope{Type: "default", Theta: 10000},
		InitializerRange: 0.2, BOSTokenID: 1, PadTokenID: 0, EOSTokenIDs: []int64{2}})
	if err != nil {
		return nil, err
	}
	if err := module.Freeze(m); err != nil {
		return nil, err
	}
	if _, err := lora.Apply(m, lora.Config{R: 4, Alpha: 8, Dropout: 0.1, TargetRegexp: lora.AllLinear}); err != nil {
		return nil, err
	}
	// B starts at zero; give it values so that the first steps already
	// depend on A, B and dropout.
	for _, p := range module.NamedParameters(m) {
		if p.Trainable && strings.Contains(p.Name, "lora_b") {
			r := torch.Randn(p.Tensor.Shape())
			err := p.Tensor.SetData(r.MulScalar(0.1))
			r.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	// The data: 40 examples of random ids, packed into rows of 8.
	data := rngData(40)
	rows, err := Pack(data, 8, 0)
	if err != nil {
		return nil, err
	}
	loader, err := NewLoader(rows, 3, 11)
	if err != nil {
		return nil, err
	}
	opt, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(m)}, optim.LR(1e-2))
	if err != nil {
		return nil, err
	}
	sched, err := schedule.New(opt, schedule.Must(schedule.WarmupCosine(1e-2, 2, loopSteps, 0)))
	if err != nil {
		return nil, err
	}
	tr, err := New(Config{Model: m, Logits: m.Forward, Optimizer: opt, Scheduler: sched, Data: loader,
		Eval: rows[:4], Steps: loopSteps, GradAccum: 2, GradClip: 0.5, Device: torch.CPU,
		EvalEvery: 3, SaveEvery: 3, Checkpoint: ckpt, RunID: "loop-test"})
	if err != nil {
		return nil, err
	}
	return &loopRun{model: m, opt: opt, tr: tr}, nil
}

// rngData returns n examples of 3 to 9 ids in [3, 20), from a fixed LCG.
func rngData(n int) []Example {
	x := uint32(12345)
	next := func() uint32 { x = x*1664525 + 1013904223; return x >> 8 }
	var ex []Example
	for range n {
		l := 3 + int(next()%7)
		ids := []int64{1}
		for range l {
			ids = append(ids, 3+int64(next()%17))
		}
		ids = append(ids, 2)
		ex = append(ex, Example{IDs: ids, Labels: append([]int64(nil), ids...)})
	}
	return ex
}

// loopResult is what a helper reports: its steps' losses, its evaluations
// and the trainable weights at the end, as float32 bits.
type loopResult struct {
	Losses  []uint64            `json:"losses"`
	Evals   []uint64            `json:"evals"`
	Weights map[string][]uint32 `json:"weights"`
	Step    int64               `json:"step"`
}

func loopHelper(mode, dir string) error {
	ckpt := filepath.Join(dir, "ckpt.safetensors")
	r, err := newLoopRun(ckpt)
	if err != nil {
		return err
	}
	defer r.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch mode {
	case "straight":
	case "first": // stop after half the steps, as Ctrl-C would
		r.tr.cfg.OnStep = func(m StepMetrics) error {
			if m.Step == loopSteps/2 {
				cancel()
			}
			return nil
		}
	case "resume":
		if err := r.tr.Resume(""); err != nil {
			return err
		}
	case "saver": // save a checkpoint after every step, for ever
		for i := 0; ; i++ {
			if _, err := r.tr.trainStep(); err != nil {
				return err
			}
			r.tr.step++
			if err := r.tr.Save(""); err != nil {
				return err
			}
			fmt.Println("saved", r.tr.step)
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	res, err := r.tr.Run(ctx)
	if mode == "first" {
		if !errors.Is(err, ErrInterrupted) {
			return fmt.Errorf("the first half ended with %v, want ErrInterrupted", err)
		}
	} else if err != nil {
		return err
	}
	out := loopResult{Weights: map[string][]uint32{}, Step: res.Step}
	for _, l := range res.Losses {
		out.Losses = append(out.Losses, math.Float64bits(l))
	}
	for _, e := range res.Evals {
		out.Evals = append(out.Evals, math.Float64bits(e.Loss))
	}
	for _, p := range module.NamedParameters(r.model) {
		if !p.Trainable {
			continue
		}
		v, err := torch.ToSlice[float32](p.Tensor)
		if err != nil {
			return err
		}
		bits := make([]uint32, len(v))
		for i, f := range v {
			bits[i] = math.Float32bits(f)
		}
		out.Weights[p.Name] = bits
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, mode+".json"), b, 0o644)
}

func loopCmd(mode, dir string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loopEnv+"="+mode, "GOLORA_TRAIN_DIR="+dir)
	return cmd
}

func runLoop(t *testing.T, mode, dir string) loopResult {
	t.Helper()
	if out, err := loopCmd(mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("helper %s: %v\n%s", mode, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, mode+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r loopResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTrainerResumeBitwise: a Trainer run of N steps, and one interrupted
// (its context cancelled) after N/2 steps, saved and resumed in a fresh
// process, give bitwise the same step losses, evaluation losses and
// adapter weights (dropout, gradient accumulation, clipping, a schedule
// and the data order all in play).
func TestTrainerResumeBitwise(t *testing.T) {
	dir := t.TempDir()
	straight := runLoop(t, "straight", filepath.Join(mkdir(t, dir, "s")))
	cut := mkdir(t, dir, "c")
	first := runLoop(t, "first", cut)
	resumed := runLoop(t, "resume", cut)

	if len(straight.Losses) != loopSteps || len(first.Losses) != loopSteps/2 || len(resumed.Losses) != loopSteps/2 {
		t.Fatalf("losses: straight %d, first %d, resumed %d", len(straight.Losses), len(first.Losses), len(resumed.Losses))
	}
	got := append(append([]uint64{}, first.Losses...), resumed.Losses...)
	for i := range got {
		if got[i] != straight.Losses[i] {
			t.Errorf("step %d: loss %v, straight %v", i+1, math.Float64frombits(got[i]), math.Float64frombits(straight.Losses[i]))
		}
	}
	// Evaluations at steps 3, 6 and 8 (the end); the first half ran the
	// one of step 3, the resumed half those of 6 and 8.
	gotE := append(append([]uint64{}, first.Evals...), resumed.Evals...)
	if fmt.Sprint(gotE) != fmt.Sprint(straight.Evals) || len(straight.Evals) != 3 {
		t.Errorf("evaluations: %v, straight %v", gotE, straight.Evals)
	}
	if len(straight.Weights) == 0 {
		t.Fatal("no trainable weight")
	}
	for name, w := range straight.Weights {
		if fmt.Sprint(resumed.Weights[name]) != fmt.Sprint(w) {
			t.Errorf("%s differs after the resume", name)
		}
	}
	if straight.Step != loopSteps || resumed.Step != loopSteps || first.Step != loopSteps/2 {
		t.Errorf("steps: straight %d, first %d, resumed %d", straight.Step, first.Step, resumed.Step)
	}
	// The losses moved: the test trains something.
	if straight.Losses[0] == straight.Losses[loopSteps-1] {
		t.Error("the loss did not change")
	}
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestKillMidCheckpoint: a process saving a checkpoint after every step,
// killed with SIGKILL at arbitrary moments (in the middle of a write, some
// of the time), always leaves a checkpoint that loads whole.
func TestKillMidCheckpoint(t *testing.T) {
	dir := t.TempDir()
	midWrite := 0
	var leftovers []string // temporary files of earlier kills
	for round := range 4 {
		cmd := loopCmd("saver", dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		saves := 0
		for saves < 1+round && sc.Scan() { // at least one whole checkpoint
			if strings.HasPrefix(sc.Text(), "saved") {
				saves++
			}
		}
		// Kill it as soon as a temporary checkpoint file shows up (the
		// middle of a write), or after 2 s.
		go func() { // keep draining stdout so the writer never blocks
			for sc.Scan() {
			}
		}()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(dir, ".ckpt.safetensors.tmp-*")); len(m) > len(leftovers) {
				midWrite++
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		leftovers, _ = filepath.Glob(filepath.Join(dir, ".ckpt.safetensors.tmp-*"))

		r, err := newLoopRun(filepath.Join(dir, "ckpt.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.tr.Resume(""); err != nil {
			t.Errorf("round %d: the checkpoint left by the killed writer does not load: %v", round, err)
		} else if r.tr.Step() < 1 {
			t.Errorf("round %d: the checkpoint is of step %d", round, r.tr.Step())
		}
		r.close()
	}
	t.Logf("killed while a temporary checkpoint file existed in %d of 4 rounds; %d leftover(s)", midWrite, len(leftovers))
}
