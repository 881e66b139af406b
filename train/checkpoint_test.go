package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
)

// snapshot is everything LoadCheckpoint may change, as bytes.
type snapshot struct {
	weights map[string][]uint32
	optim   map[string][]float32
	optMeta map[string]string
	step    int
	lr      float64
	rng     []uint8
}

func takeSnapshot(t *testing.T, st State) snapshot {
	t.Helper()
	var s snapshot
	var err error
	if s.weights, err = weights(st.Model); err != nil {
		t.Fatal(err)
	}
	if st.Optimizer != nil {
		ts, md, err := st.Optimizer.StateDict()
		if err != nil {
			t.Fatal(err)
		}
		defer torch.CloseMap(ts)
		s.optMeta = md
		s.optim = map[string][]float32{}
		for k, v := range ts {
			f := v.To(torch.Float32)
			s.optim[k], err = torch.ToSlice[float32](f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		s.lr = st.Optimizer.LR()
	}
	if st.Scheduler != nil {
		s.step = st.Scheduler.StepCount()
	}
	r := torch.RNGState(torch.CPU)
	defer r.Close()
	if s.rng, err = torch.ToSlice[uint8](r); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	eqSlices := func(a, b map[string][]float32) bool {
		return maps.EqualFunc(a, b, func(x, y []float32) bool { return slices.Equal(x, y) })
	}
	return maps.EqualFunc(s.weights, o.weights, func(x, y []uint32) bool { return slices.Equal(x, y) }) &&
		eqSlices(s.optim, o.optim) && maps.Equal(s.optMeta, o.optMeta) &&
		s.step == o.step && s.lr == o.lr && bytes.Equal(s.rng, o.rng)
}

// TestRoundTrip: a checkpoint loaded into a fresh run restores the
// weights, the optimizer and scheduler state, the generator and the
// position exactly.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	a := newRun(t)
	if _, err := a.steps(4); err != nil {
		t.Fatal(err)
	}
	if err := a.save(path); err != nil {
		t.Fatal(err)
	}
	want := takeSnapshot(t, a.state())
	wantPos, err := a.position()
	if err != nil {
		t.Fatal(err)
	}

	b := newRun(t)
	if takeSnapshot(t, b.state()).equal(want) {
		t.Fatal("a fresh run already has the saved state: the test proves nothing")
	}
	pos, err := LoadCheckpoint(path, b.state())
	if err != nil {
		t.Fatal(err)
	}
	if pos.Step != 4 || !bytes.Equal(pos.Data, wantPos.Data) {
		t.Errorf("position %d %s, want 4 %s", pos.Step, pos.Data, wantPos.Data)
	}
	if got := takeSnapshot(t, b.state()); !got.equal(want) {
		t.Errorf("loaded state differs from the saved one")
	}
	if b.sched.StepCount() != 4 || b.opt.LR() != a.opt.LR() {
		t.Errorf("scheduler at step %d lr %v, want 4 lr %v", b.sched.StepCount(), b.opt.LR(), a.opt.LR())
	}
	rp, err := ReadPosition(path)
	if err != nil || rp.Step != 4 || !bytes.Equal(rp.Data, wantPos.Data) {
		t.Errorf("ReadPosition = %d %s, %v; want 4 %s", rp.Step, rp.Data, err, wantPos.Data)
	}
}

// TestLayout checks the file against the package doc.
func TestLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	r := newRun(t)
	if _, err := r.steps(1); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(path, r.state(), Position{Step: 1, Data: json.RawMessage(`{ "epoch": 0,  "batch": 1 }`)}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	for _, want := range []string{
		"model.fc1.lora_a", "model.fc1.lora_b", "model.fc2.lora_a", "model.fc2.lora_b",
		"optim.state.fc1.lora_a.step", "optim.state.fc1.lora_a.exp_avg", "optim.state.fc2.lora_b.exp_avg_sq",
		"rng.cpu",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("no tensor %q in %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "weight") || strings.Contains(n, "bias") {
			t.Errorf("frozen parameter %q saved", n)
		}
	}
	if info, _ := f.Info("rng.cpu"); info.DType != safetensors.U8 {
		t.Errorf("rng.cpu is %s, want U8", info.DType)
	}
	md := f.Metadata()
	for k, v := range map[string]string{
		"format": "golora.checkpoint.1", "step": "1", "data_position": `{"epoch":0,"batch":1}`,
		"optim.algorithm": "AdamW", "schedule.kind": "warmup_cosine", "schedule.step": "1",
	} {
		if md[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, md[k], v)
		}
	}
	if _, ok := md["optim.param_groups"]; !ok {
		t.Errorf("no optim.param_groups metadata")
	}
}

// rewrite writes a copy of the checkpoint at src to dst after edit has
// changed its tensors and metadata.
func rewrite(t *testing.T, src, dst string, edit func(ts map[string]*torch.Tensor, md map[string]string)) {
	t.Helper()
	ts, md, err := torch.LoadSafetensors(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { torch.CloseMap(ts) }()
	edit(ts, md)
	if err := torch.SaveSafetensors(dst, ts, md); err != nil {
		t.Fatal(err)
	}
}

// TestLoadMismatch: a checkpoint that does not fit is an error that names
// the file and what does not fit, and changes nothing.
func TestLoadMismatch(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	src := newRun(t)
	if _, err := src.steps(2); err != nil {
		t.Fatal(err)
	}
	if err := src.save(good); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.safetensors") // model only
	if err := SaveCheckpoint(bare, State{Model: src.model}, Position{Step: 2}); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.safetensors") // a module.Save file
	if err := module.Save(src.model, plain, nil); err != nil {
		t.Fatal(err)
	}

	// The target: a run one step in, so that it has state to keep.
	target := func(t *testing.T, hidden int64, adam bool) *run {
		r, err := newRunErr(hidden, adam)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.close)
		if _, err := r.steps(1); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tampered := func(name string, edit func(ts map[string]*torch.Tensor, md map[string]string)) string {
		p := filepath.Join(dir, name)
		rewrite(t, good, p, edit)
		return p
	}
	cases := []struct {
		name string
		path string
		st   func(t *testing.T) State
		want []string
	}{
		{"other hidden size", good, func(t *testing.T) State { return target(t, 24, false).state() },
			[]string{"model: fc1.lora_b: shape [32 4] in the checkpoint, [24 4] in the model", "fc2.lora_a: shape [4 32] in the checkpoint, [4 24]"}},
		{"more trainable", good, func(t *testing.T) State {
			r := target(t, nHidden, false)
			if err := r.model.Fc1.(*lora.Linear).Bias.SetRequiresGrad(true); err != nil {
				t.Fatal(err)
			}
			return r.state()
		}, []string{"model: no weights for trainable parameters fc1.bias"}},
		{"fewer trainable", good, func(t *testing.T) State {
			r := target(t, nHidden, false)
			if err := r.model.Fc2.(*lora.Linear).LoraA.SetRequiresGrad(false); err != nil {
				t.Fatal(err)
			}
			return r.state()
		}, []string{"weights for parameters this model does not train: fc2.lora_a (frozen in this model)"}},
		{"Adam for AdamW", good, func(t *testing.T) State { return target(t, nHidden, true).state() },
			[]string{"optimizer: the checkpoint's is AdamW, State.Optimizer is Adam"}},
		{"other parameter names", good, func(t *testing.T) State {
			r := target(t, nHidden, false)
			opt, err := optim.NewAdamW(r.opt.Params(), optim.LR(1e-2))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { opt.Close() })
			st := r.state()
			st.Optimizer = opt
			st.Scheduler = nil
			return st
		}, []string{`optimizer: group 0 is "group.0" in the checkpoint, "default" in State.Optimizer`,
			`group 0 has parameters [fc1.lora_a, fc1.lora_b, fc2.lora_a, fc2.lora_b] in the checkpoint, [param.0, param.1, param.2, param.3]`,
			"state of parameters State.Optimizer does not have: fc1.lora_a, fc1.lora_b, fc2.lora_a, fc2.lora_b;",
			"the checkpoint has schedule state (warmup_cosine) but State.Scheduler is nil"}},
		{"no optimizer given", good, func(t *testing.T) State {
			st := target(t, nHidden, false).state()
			st.Optimizer = nil
			return st
		}, []string{"the checkpoint has AdamW optimizer state but State.Optimizer is nil"}},
		{"no optimizer saved", bare, func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{"the checkpoint has no optimizer state but State.Optimizer is set", "the checkpoint has no schedule state but State.Scheduler is set"}},
		{"other schedule", good, func(t *testing.T) State {
			r := target(t, nHidden, false)
			sched, err := schedule.New(r.opt, schedule.Must(schedule.WarmupLinear(1e-2, 3, 2*halfSteps, 1e-3)))
			if err != nil {
				t.Fatal(err)
			}
			r.sched = sched
			return r.state()
		}, []string{"(nothing loaded): schedule: LoadState: the state was saved by another schedule", `kind: saved "warmup_cosine", this schedule has "warmup_linear"`}},
		{"short generator state", tampered("rng.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			short := ts["rng.cpu"].Narrow(0, 0, 10)
			ts["rng.cpu"].Close()
			ts["rng.cpu"] = short
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{"generators: rng.cpu is uint8 [10], this libtorch's cpu state is uint8"}},
		{"no generator state", tampered("norng.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			ts["rng.cpu"].Close()
			delete(ts, "rng.cpu")
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{`generators: no CPU generator state ("rng.cpu")`}},
		{"unknown tensors", tampered("extra.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			ts["extra"] = torch.Zeros([]int64{2})
			ts["rng.cuda.x"] = torch.Zeros([]int64{2})
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{"tensors of no known part: extra, rng.cuda.x"}},
		{"misshaped optimizer state", tampered("optshape.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			// Passes the checks of train; the optimizer's own catch it.
			k := "optim.state.fc2.lora_b.exp_avg"
			ts[k].Close()
			ts[k] = torch.Zeros([]int64{2, 2})
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{"optim: AdamW.LoadStateDict: the state does not fit this optimizer (nothing loaded): mismatched: state.fc2.lora_b.exp_avg: shape [2 2], the parameter's is [4 4]"}},
		{"other format", tampered("format.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			md["format"] = "golora.checkpoint.99"
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{`checkpoint format "golora.checkpoint.99", this golora reads "golora.checkpoint.1"`}},
		{"bad step", tampered("step.safetensors", func(ts map[string]*torch.Tensor, md map[string]string) {
			md["step"] = "-1"
		}), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{`metadata "step" = "-1" is not a step count`}},
		{"not a checkpoint", plain, func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{`not a golora training checkpoint (no "format" metadata)`}},
		{"no file", filepath.Join(dir, "missing.safetensors"), func(t *testing.T) State { return target(t, nHidden, false).state() },
			[]string{"no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.st(t)
			before := takeSnapshot(t, st)
			_, err := LoadCheckpoint(c.path, st)
			if err == nil {
				t.Fatal("LoadCheckpoint succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.path) {
				t.Errorf("the error does not name the file %s: %v", c.path, err)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error lacks %q:\n%v", w, err)
				}
			}
			if after := takeSnapshot(t, st); !after.equal(before) {
				t.Errorf("a failed load changed the state")
			}
		})
	}
}

// TestLoadWithoutOptimizer: a checkpoint of the model alone loads into a
// State of the model alone.
func TestLoadWithoutOptimizer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	a := newRun(t)
	if _, err := a.steps(2); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(path, State{Model: a.model}, Position{Step: 2}); err != nil {
		t.Fatal(err)
	}
	b := newRun(t)
	pos, err := LoadCheckpoint(path, State{Model: b.model})
	if err != nil {
		t.Fatal(err)
	}
	if pos.Step != 2 || pos.Data != nil {
		t.Errorf("position %d %q, want 2 and no data", pos.Step, pos.Data)
	}
	wa, _ := weights(a.model)
	wb, _ := weights(b.model)
	if !maps.EqualFunc(wa, wb, func(x, y []uint32) bool { return slices.Equal(x, y) }) {
		t.Errorf("weights differ after loading")
	}
}

// TestSaveErrors: bad arguments and unwritable paths are errors naming
// the file, and leave no file behind.
func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	r := newRun(t)
	path := filepath.Join(dir, "c.safetensors")
	var nilOpt *struct{ optim.Optimizer }
	cases := []struct {
		name string
		path string
		st   State
		pos  Position
		want string
	}{
		{"nil model", path, State{}, Position{}, "State.Model is nil"},
		{"nil optimizer pointer", path, State{Model: r.model, Optimizer: nilOpt}, Position{}, "State.Optimizer is a nil"},
		{"negative step", path, r.state(), Position{Step: -1}, "Position.Step is -1"},
		{"bad JSON", path, r.state(), Position{Data: json.RawMessage(`{"a":`)}, "Position.Data is not valid JSON"},
		{"no directory", filepath.Join(dir, "nope", "c.safetensors"), r.state(), Position{}, "no such file or directory"},
		{"a directory", dir + "/", r.state(), Position{}, "the path names a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := SaveCheckpoint(c.path, c.st, c.pos)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("SaveCheckpoint = %v, want an error naming %s with %q", err, c.path, c.want)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left: %v", ents)
	}
}

// TestWriteFailureKeepsPrevious: an error at any point of the write (a
// tensor that fails to serialise; a failure just before the rename)
// leaves the previous checkpoint as it was and no temporary file.
func TestWriteFailureKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	old := makeCheckpoint(t, dir, "c.safetensors")
	r := newRun(t)
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one with %q", err, want)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
			t.Errorf("the previous checkpoint changed")
		}
		if tmp := tempFiles(t, dir); len(tmp) != 0 {
			t.Errorf("temporary files left: %v", tmp)
		}
	}
	t.Run("failed tensor", func(t *testing.T) {
		bad := torch.Zeros([]int64{-1}) // a failed tensor
		if bad.Err() == nil {
			t.Fatal("Zeros([-1]) did not fail")
		}
		good := torch.Zeros([]int64{1000})
		defer good.Close()
		err := writeFile(path, map[string]*torch.Tensor{"a": good, "b": bad}, map[string]string{"format": formatValue})
		check(t, err, `tensor "b"`)
	})
	t.Run("closed weight", func(t *testing.T) {
		w := torch.Zeros([]int64{4})
		w.Close()
		err := writeFile(path, map[string]*torch.Tensor{"a": w}, nil)
		check(t, err, "closed")
	})
	t.Run("before rename", func(t *testing.T) {
		var seen string
		testHookBeforeRename = func(tmp string) error {
			seen = tmp
			if st, err := os.Stat(tmp); err != nil || st.Size() < int64(len(old))/2 {
				t.Errorf("temporary file %s not written before the rename: %v", tmp, err)
			}
			return errors.New("injected failure")
		}
		defer func() { testHookBeforeRename = nil }()
		check(t, r.save(path), "injected failure")
		if filepath.Dir(seen) != dir || !strings.HasPrefix(filepath.Base(seen), ".c.safetensors.tmp-") {
			t.Errorf("temporary file %s, want .c.safetensors.tmp-* in %s", seen, dir)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes to read-only directories")
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o755)
		check(t, r.save(path), "permission denied")
	})
	// And the previous checkpoint still loads.
	if err := newRun(t).load(path); err != nil {
		t.Fatal(err)
	}
}

// TestCUDAStates: CUDA generator states load into the devices this
// process has (with their sizes checked) and are skipped for the others.
func TestCUDAStates(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	makeCheckpoint(t, dir, "good.safetensors")
	path := filepath.Join(dir, "cuda.safetensors")
	n := 0
	if torch.CUDAIsAvailable() {
		n = torch.CUDADeviceCount()
	}
	rewrite(t, good, path, func(ts map[string]*torch.Tensor, md map[string]string) {
		ts["rng.cuda."+strconv.Itoa(n)] = torch.Zeros([]int64{3}, torch.WithDType(torch.Uint8)) // a device this process lacks
		if n > 0 {
			ts["rng.cuda.0"] = torch.Zeros([]int64{3}, torch.WithDType(torch.Uint8)) // of the wrong size
		}
	})
	r := newRun(t)
	_, err := LoadCheckpoint(path, r.state())
	switch {
	case n == 0 && err != nil:
		t.Errorf("a CUDA state without CUDA: %v, want it skipped", err)
	case n > 0 && (err == nil || !strings.Contains(err.Error(), "generators: rng.cuda.0 is uint8 [3]")):
		t.Errorf("a CUDA state of the wrong size: %v, want an error naming rng.cuda.0", err)
	}
	if strings.Contains(fmt.Sprint(err), "rng.cuda."+strconv.Itoa(n)) {
		t.Errorf("the state of a device this process lacks is not skipped: %v", err)
	}
}

// TestReadPositionErrors: ReadPosition refuses what is not a checkpoint.
func TestReadPositionErrors(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.safetensors")
	if err := torch.SaveSafetensors(plain, map[string]*torch.Tensor{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPosition(plain); err == nil || !strings.Contains(err.Error(), plain) || !strings.Contains(err.Error(), "not a golora training checkpoint") {
		t.Errorf("ReadPosition of a plain file: %v", err)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := ReadPosition(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadPosition of a missing file: %v", err)
	}
}
