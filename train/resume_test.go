package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/torch"
)

// TestHelperProcess is not a test: the tests below run it in a new process
// of the test binary (the os/exec pattern) so that a run resumes in a
// fresh process. GOLORA_TRAIN_HELPER names what it does, GOLORA_TRAIN_DIR
// where; it writes <mode>.json there and exits.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("run by the resume tests in a process of its own")
	}
	dir := os.Getenv("GOLORA_TRAIN_DIR")
	if err := helper(mode, dir); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		os.Exit(2)
	}
	os.Exit(0)
}

func helper(mode, dir string) error {
	r, err := newRunErr(nHidden, false)
	if err != nil {
		return err
	}
	defer r.close()
	ckpt := filepath.Join(dir, "ckpt.safetensors")
	var losses []uint32
	switch mode {
	case "straight": // 2N steps in one go
		losses, err = r.steps(2 * halfSteps)
	case "first": // N steps, then save
		if losses, err = r.steps(halfSteps); err == nil {
			err = r.save(ckpt)
		}
	case "resume": // load, N more
		if err = r.load(ckpt); err == nil {
			losses, err = r.steps(halfSteps)
		}
	case "resume-no-rng": // load, but keep this process's generator state
		before := torch.RNGState(torch.CPU)
		defer before.Close()
		if err = r.load(ckpt); err == nil {
			err = torch.SetRNGState(torch.CPU, before)
		}
		if err == nil {
			losses, err = r.steps(halfSteps)
		}
	case "resume-no-data": // load, but restart the data stream
		if err = r.load(ckpt); err == nil {
			r.pcg = rand.NewPCG(dataSeed, dataSeed+1)
			losses, err = r.steps(halfSteps)
		}
	case "crash": // load, one step, then die in the middle of saving
		path := filepath.Join(dir, "crash.safetensors")
		if err = r.load(path); err == nil {
			_, err = r.steps(1)
		}
		if err != nil {
			return err
		}
		testHookBeforeRename = func(string) error {
			os.Exit(3) // the temporary file is written and synced, not renamed
			return nil
		}
		err = r.save(path)
		return fmt.Errorf("save returned (%v) instead of crashing", err)
	case "fsize": // load, one step, then save under a file size limit
		path := filepath.Join(dir, "fsize.safetensors")
		if err = r.load(path); err == nil {
			_, err = r.steps(1)
		}
		if err != nil {
			return err
		}
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			return err
		}
		lim.Cur = 2048 // the checkpoint is larger: its write fails part way
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			return err
		}
		err = r.save(path)
		if err == nil {
			return errors.New("save under a 2 KiB file size limit succeeded")
		}
		fmt.Println("save failed as intended:", err)
		return nil
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	w, err := weights(r.model)
	if err != nil {
		return err
	}
	b, err := json.Marshal(result{Losses: losses, Weights: w, Step: r.step, LR: r.opt.LR()})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, mode+".json"), b, 0o644)
}

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []uint32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func f32(bits []uint32, i int) any {
	if i < len(bits) {
		return math.Float32frombits(bits[i])
	}
	return "none"
}

// TestResumeBitwise: 2N steps straight, and N steps saved, reloaded in a
// fresh process and continued for N more, give bitwise identical losses
// and weights; dropout makes the generator state matter, and the data
// generator the data position.
func TestResumeBitwise(t *testing.T) {
	dir := t.TempDir()
	straight := mustHelper(t, "straight", dir)
	first := mustHelper(t, "first", dir)
	resumed := mustHelper(t, "resume", dir)

	if len(straight.Losses) != 2*halfSteps {
		t.Fatalf("straight run: %d losses, want %d", len(straight.Losses), 2*halfSteps)
	}
	if i := firstDiff(first.Losses, straight.Losses[:halfSteps]); i >= 0 {
		t.Errorf("first half: loss %d is %v, the straight run's %v", i, f32(first.Losses, i), f32(straight.Losses, i))
	}
	if i := firstDiff(resumed.Losses, straight.Losses[halfSteps:]); i >= 0 {
		t.Errorf("resumed: loss of step %d is %v, the straight run's %v", halfSteps+i, f32(resumed.Losses, i), f32(straight.Losses, halfSteps+i))
	}
	if len(straight.Weights) != 4 {
		t.Errorf("straight run: trainable weights %v, want fc1/fc2 lora_a/lora_b", slices.Sorted(maps.Keys(straight.Weights)))
	}
	for name, w := range straight.Weights {
		if i := firstDiff(resumed.Weights[name], w); i >= 0 {
			t.Errorf("resumed: %s[%d] is %v, the straight run's %v", name, i, f32(resumed.Weights[name], i), f32(w, i))
		}
	}
	if len(resumed.Weights) != len(straight.Weights) {
		t.Errorf("resumed: %d trainable weights, straight %d", len(resumed.Weights), len(straight.Weights))
	}
	if resumed.Step != straight.Step || resumed.LR != straight.LR {
		t.Errorf("resumed: step %d lr %v, straight step %d lr %v", resumed.Step, resumed.LR, straight.Step, straight.LR)
	}
	t.Logf("straight losses %v", f32s(straight.Losses))

	// The state restored matters: without the generator state dropout
	// draws other masks, and without the data position other batches.
	for _, mode := range []string{"resume-no-rng", "resume-no-data"} {
		r := mustHelper(t, mode, dir)
		i := firstDiff(r.Losses, straight.Losses[halfSteps:])
		if i < 0 {
			t.Errorf("%s: losses equal the straight run's: the state it leaves out does not matter", mode)
			continue
		}
		if i != 0 {
			t.Errorf("%s: the first resumed loss equals the straight run's; it differs from step %d", mode, halfSteps+i)
		}
	}
}

func f32s(bits []uint32) []float32 {
	out := make([]float32, len(bits))
	for i, b := range bits {
		out[i] = math.Float32frombits(b)
	}
	return out
}

// makeCheckpoint writes a checkpoint of a run of 3 steps to dir/name and
// returns its bytes.
func makeCheckpoint(t *testing.T, dir, name string) []byte {
	t.Helper()
	r := newRun(t)
	if _, err := r.steps(3); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := r.save(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCrashMidSave: a process killed after writing the temporary file but
// before renaming it leaves the previous checkpoint whole and loadable.
func TestCrashMidSave(t *testing.T) {
	dir := t.TempDir()
	old := makeCheckpoint(t, dir, "crash.safetensors")
	code, out := runHelper(t, "crash", dir)
	if code != 3 {
		t.Fatalf("crash helper exited %d, want 3 (died mid-save):\n%s", code, out)
	}
	path := filepath.Join(dir, "crash.safetensors")
	now, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, old) {
		t.Fatalf("the previous checkpoint changed (%d bytes, was %d)", len(now), len(old))
	}
	if tmp := tempFiles(t, dir); len(tmp) != 1 {
		t.Errorf("temporary files after the crash: %v, want the one the crash left", tmp)
	}
	r := newRun(t)
	if err := r.load(path); err != nil {
		t.Fatalf("loading the previous checkpoint after the crash: %v", err)
	}
	if r.step != 3 {
		t.Errorf("step %d after loading, want 3", r.step)
	}
	// A later save succeeds beside the leftover.
	if err := r.save(path); err != nil {
		t.Fatal(err)
	}
}

// TestFailedWriteKeepsPrevious: a write that fails part way (the file size
// limit reached) leaves the previous checkpoint intact and no temporary
// file.
func TestFailedWriteKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	old := makeCheckpoint(t, dir, "fsize.safetensors")
	if len(old) <= 2048 {
		t.Fatalf("checkpoint of %d bytes: too small for the 2 KiB limit to cut it", len(old))
	}
	code, out := runHelper(t, "fsize", dir)
	if code != 0 {
		t.Fatalf("fsize helper exited %d:\n%s", code, out)
	}
	t.Logf("helper: %s", strings.TrimSpace(out))
	now, err := os.ReadFile(filepath.Join(dir, "fsize.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, old) {
		t.Fatalf("the previous checkpoint changed (%d bytes, was %d)", len(now), len(old))
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}
