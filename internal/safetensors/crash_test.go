package safetensors_test

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/safetensors"
)

const (
	crashEnv   = "GOLORA_SAFETENSORS_CRASH_CHILD" // the child's output path
	crashBytes = 200 << 20                        // the new file's tensor data
	crashPause = 96 << 20                         // bytes written when the child pauses
	crashReady = "WRITING"
)

// pauser passes writes through until n bytes have gone, then tells the
// parent (a line on stdout) and sleeps forever, in the middle of the write.
type pauser struct {
	w    io.Writer
	n    int64
	done atomic.Bool
}

func (p *pauser) Write(b []byte) (int, error) {
	k, err := p.w.Write(b)
	p.n -= int64(k)
	if p.n <= 0 && p.done.CompareAndSwap(false, true) {
		os.Stdout.WriteString("\n" + crashReady + "\n")
		for {
			time.Sleep(time.Hour)
		}
	}
	return k, err
}

// TestCrashChild is the child of TestCrashKeepsPrevious: run with crashEnv
// set, it writes a 200 MB file through WriteFile and pauses in the middle.
// Without crashEnv it does nothing.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: func(_ string, w io.Writer) io.Writer {
		return &pauser{w: w, n: crashPause}
	}})
	pattern := make([]byte, 4096)
	for i := range pattern {
		pattern[i] = byte(i * 7)
	}
	data := bytes.Repeat(pattern, crashBytes/len(pattern))
	err := safetensors.WriteFile(path, map[string]safetensors.Entry{
		"big": {DType: safetensors.F32, Shape: []int64{crashBytes / 4}, Data: data},
	}, map[string]string{"format": "pt"})
	t.Fatalf("WriteFile returned (%v) instead of pausing", err)
}

// TestCrashKeepsPrevious kills (SIGKILL) a process in the middle of
// writing a 200 MB safetensors file over a previous one: the previous file
// still loads, bit for bit; what the kill leaves is a temporary file that
// no loader picks up (hidden, not *.safetensors), which RemoveTemps
// cleans. The child pauses at a known point (96 MB written) and says so
// before it is killed, so the test does not depend on timing.
func TestCrashKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, safetensors.SingleFileName)
	rng := rand.New(rand.NewPCG(1, 2))
	prev := map[string]safetensors.Entry{}
	for _, name := range []string{"a", "b.weight", "c.bias"} {
		d := make([]byte, 4*1024*64)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		prev[name] = safetensors.Entry{DType: safetensors.F32, Shape: []int64{1024, 64}, Data: d}
	}
	if err := safetensors.WriteFile(path, prev, map[string]string{"format": "pt", "step": "1"}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() && sc.Text() != crashReady {
		lines = append(lines, sc.Text())
	}
	if sc.Text() != crashReady {
		t.Fatalf("the child ended without reaching the middle of the write: %v; output %q", sc.Err(), lines)
	}
	// Mid-write: a temporary file beside the previous one, holding at
	// least the bytes written so far, and the previous file untouched.
	var tmp string
	for _, n := range dirNames(t, dir) {
		if atomicfile.IsTemp(n) {
			tmp = n
		}
	}
	if tmp == "" {
		t.Fatalf("no temporary file in the middle of the write: %v", dirNames(t, dir))
	}
	if st, err := os.Stat(filepath.Join(dir, tmp)); err != nil || st.Size() < crashPause {
		t.Fatalf("temporary file %s: %v, want ≥ %d bytes written", tmp, err, crashPause)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}

	// The previous file is whole, bit for bit, and loads.
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("the previous file changed: %d bytes, was %d", len(after), len(before))
	}
	r, err := safetensors.OpenAny(dir) // the loader's view of the directory
	if err != nil {
		t.Fatalf("the directory does not load after the crash: %v", err)
	}
	defer r.Close()
	if got := strings.Join(r.Names(), ","); got != "a,b.weight,c.bias" {
		t.Fatalf("tensors %s", got)
	}
	for name, e := range prev {
		b, err := r.Bytes(name)
		if err != nil || !bytes.Equal(b, e.Data) {
			t.Fatalf("tensor %s differs after the crash (%v)", name, err)
		}
	}
	if r.Metadata()["step"] != "1" {
		t.Fatalf("metadata %v", r.Metadata())
	}
	// What is left: the temporary file only, which looks like no output.
	for _, n := range dirNames(t, dir) {
		if n == safetensors.SingleFileName {
			continue
		}
		if !atomicfile.IsTemp(n) || !strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".safetensors") || strings.HasSuffix(n, ".json") {
			t.Errorf("left %s, which a loader could take for an output", n)
		}
	}
	if removed, err := atomicfile.RemoveTemps(dir); err != nil || len(removed) != 1 {
		t.Errorf("RemoveTemps: %v, %v", removed, err)
	}
	if got := dirNames(t, dir); len(got) != 1 {
		t.Errorf("after RemoveTemps: %v", got)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
