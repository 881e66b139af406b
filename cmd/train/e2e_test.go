package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// probeIDs is a batch of token ids of the demo's vocabulary for comparing
// logits: BOS and the characters of a sentence of the new task.
func probeIDs(t *testing.T) *torch.Tensor {
	t.Helper()
	// "<s>eht tac sees a god." in the shipped tokenizer's ids.
	ids := []int64{1, 8, 11, 23, 30, 6, 4, 23, 30, 22, 8, 8, 22, 30, 4, 30, 10, 18, 7, 31}
	return torch.FromSlice(ids, 1, int64(len(ids)))
}

// logitsOf loads the checkpoint in dir (with the adapter in adapter, if
// not empty) and returns its float32 logits of probeIDs.
func logitsOf(t *testing.T, dir, adapter string) []float32 {
	t.Helper()
	m, err := models.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if adapter != "" {
		if err := lora.LoadAdapter(m.Unwrap(), adapter, lora.DefaultAdapter); err != nil {
			t.Fatal(err)
		}
	}
	module.Eval(m)
	s := torch.NewScope()
	defer s.Close()
	var out []float32
	err = torch.NoGrad(func() error {
		lg, err := s.Done(m.Score(module.Inputs{IDs: s.Own(probeIDs(t))}))
		if err != nil {
			return err
		}
		defer lg.Close()
		out, err = torch.ToSlice[float32](lg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// maxRel is max|a-b| over max|b|.
func maxRel(a, b []float32) float64 {
	d, m := 0.0, 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// TestEndToEnd: a short LoRA run on the demo task lowers the validation
// loss; the adapter it writes loads back onto the base (its logits equal
// the merged model's that --merge writes, and differ from the base's), and
// its config names the base.
func TestEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	logFile := filepath.Join(t.TempDir(), "log.jsonl")
	args := tiny(out, "--steps", "16", "--eval-every", "8", "--lr", "5e-3", "--batch", "4", "--seq", "32", "--merge",
		"--samples", "1", "--max-new-tokens", "8", "--log-json", logFile)
	r := runIn(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"trainable", "validation loss before training", "validation loss after 16 steps", "samples before", "samples after", "msg=step", "msg=eval"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	h := readHistory(t, out)
	if len(h.Steps) != 16 || len(h.Evals) != 3 {
		t.Fatalf("history: %d steps, %d evals; want 16 and 3 (steps 0, 8, 16)", len(h.Steps), len(h.Evals))
	}
	first, last := h.Evals[0], h.Evals[len(h.Evals)-1]
	if first.Step != 0 || last.Step != 16 || !(last.Loss < first.Loss) {
		t.Errorf("validation loss %v at step %d, %v at step %d: want a decrease", first.Loss, first.Step, last.Loss, last.Step)
	}

	// --log-json: one line per step and per evaluation during the run
	// (the evaluation before training is printed, not logged).
	lb, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var steps, evals int
	for _, line := range strings.Split(strings.TrimSpace(string(lb)), "\n") {
		var rec struct {
			Type string   `json:"type"`
			Step int64    `json:"step"`
			Loss *float64 `json:"loss"`
			Eval *float64 `json:"eval_loss"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-json line %q: %v", line, err)
		}
		switch {
		case rec.Type == "step" && rec.Loss != nil && rec.Step == int64(steps+1):
			if *rec.Loss != h.Steps[steps].Loss {
				t.Errorf("--log-json step %d loss %v, history %v", rec.Step, *rec.Loss, h.Steps[steps].Loss)
			}
			steps++
		case rec.Type == "eval" && rec.Eval != nil:
			evals++
		default:
			t.Errorf("--log-json: unexpected line %q", line)
		}
	}
	if steps != 16 || evals != 2 {
		t.Errorf("--log-json: %d step lines and %d eval lines, want 16 and 2", steps, evals)
	}

	var cfg map[string]any
	b, err := os.ReadFile(filepath.Join(out, lora.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	absBase, _ := filepath.Abs(testBase)
	if cfg["base_model_name_or_path"] != absBase || cfg["peft_type"] != "LORA" || cfg["r"] != 8.0 {
		t.Errorf("adapter_config.json: base %v, peft_type %v, r %v", cfg["base_model_name_or_path"], cfg["peft_type"], cfg["r"])
	}

	base := logitsOf(t, testBase, "")
	adapted := logitsOf(t, testBase, out)
	merged := logitsOf(t, filepath.Join(out, mergedDir), "")
	// Merging rounds W0 + ΔW once per weight: float32 rounding, far below
	// what the adapter changes.
	if d := maxRel(merged, adapted); d > 1e-5 {
		t.Errorf("merged model's logits differ from base+adapter by %.3g of max|logit|", d)
	}
	if d := maxRel(adapted, base); d < 1e-3 {
		t.Errorf("the adapter changes the logits by only %.3g of max|logit|", d)
	}
	if _, err := os.Stat(filepath.Join(out, plotFile)); err != nil {
		t.Error(err)
	}
}

// TestInterruptResume: a run interrupted by SIGINT saves a checkpoint and
// exits with 130; resumed in a fresh process with --resume, it ends with
// bitwise the same losses (every step's and every evaluation's) and the
// same adapter file as the run that was never interrupted.
func TestInterruptResume(t *testing.T) {
	dir := t.TempDir()
	args := func(out string) []string {
		return tiny(out, "--steps", "12", "--save-every", "5", "--eval-every", "4", "--dropout", "0.1", "--lr", "3e-3")
	}
	straight := filepath.Join(dir, "straight")
	cmd, serr := runProc(t, io.Discard, args(straight)...)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("straight run: exit %d:\n%s", code, serr)
	}

	cut := filepath.Join(dir, "cut")
	pr, pw := io.Pipe()
	cmd = exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args(cut)...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cerr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = pw, cerr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // SIGINT once step 3 is logged
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), "step=3/12") {
				_ = cmd.Process.Signal(os.Interrupt)
				sent = true
			}
		}
	}()
	code := exitCode(t, cmd)
	pw.Close()
	if code != 130 {
		t.Fatalf("interrupted run: exit %d, want 130:\n%s", code, cerr.String())
	}
	if !strings.Contains(cerr.String(), "--resume") {
		t.Errorf("interrupted run's message does not say how to resume: %s", cerr.String())
	}
	h := readHistory(t, cut)
	if n := len(h.Steps); n < 3 || n >= 12 {
		t.Fatalf("interrupted at step %d, want 3 ≤ step < 12", n)
	}
	for _, f := range []string{"adapter_model.safetensors", plotFile} {
		if _, err := os.Stat(filepath.Join(cut, f)); err == nil {
			t.Errorf("the interrupted run wrote %s", f)
		}
	}

	cmd, rerr := runProc(t, io.Discard, append(args(cut), "--resume")...)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("resumed run: exit %d:\n%s", code, rerr)
	}
	want, got := readHistory(t, straight), readHistory(t, cut)
	if len(got.Steps) != len(want.Steps) {
		t.Fatalf("resumed history has %d steps, straight %d", len(got.Steps), len(want.Steps))
	}
	for i := range want.Steps {
		if math.Float64bits(got.Steps[i].Loss) != math.Float64bits(want.Steps[i].Loss) || got.Steps[i].LR != want.Steps[i].LR {
			t.Errorf("step %d: loss %v lr %v, straight run %v %v", i+1, got.Steps[i].Loss, got.Steps[i].LR, want.Steps[i].Loss, want.Steps[i].LR)
		}
	}
	if len(got.Evals) != len(want.Evals) {
		t.Errorf("evaluations: %+v, straight %+v", got.Evals, want.Evals)
	} else {
		for i := range want.Evals {
			if got.Evals[i].Step != want.Evals[i].Step || math.Float64bits(got.Evals[i].Loss) != math.Float64bits(want.Evals[i].Loss) {
				t.Errorf("eval %d: %+v, straight %+v", i, got.Evals[i], want.Evals[i])
			}
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
		t.Errorf("the resumed run's adapter file differs from the straight run's")
	}
	t.Logf("interrupted after step %d; losses %v", len(h.Steps), lossesOf(want))
}

func lossesOf(h history) []float64 {
	var l []float64
	for _, s := range h.Steps {
		l = append(l, s.Loss)
	}
	return l
}

// TestSIGTERM: SIGTERM stops a run like Ctrl-C.
func TestSIGTERM(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	o := &syncBuffer{}
	cmd, cerr := runProc(t, o, tiny(out, "--steps", "100000", "--save-every", "0", "--eval-every", "0")...)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(o.String(), "msg=step") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("no step logged in 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd); code != 130 {
		t.Fatalf("exit %d, want 130:\n%s", code, cerr)
	}
	if _, err := os.Stat(filepath.Join(out, ckptFile)); err != nil {
		t.Errorf("no checkpoint after SIGTERM: %v", err)
	}
}
