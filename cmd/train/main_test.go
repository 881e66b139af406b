package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/golora/golora/torch"
)

// mainEnv makes the test binary run the program itself (main's body) with
// the arguments after "--", so tests can run it in a fresh process and
// signal it.
const mainEnv = "GOLORA_TRAIN_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	// One libtorch thread per test process: the machine's cores are
	// shared, and the figures do not depend on it.
	_ = torch.SetNumThreads(1)
	os.Exit(m.Run())
}

// testBase is the shipped base model, read in place; testEval is a small
// eval file of the demo task (its first 8 lines) that keeps evaluations
// short.
const (
	testBase = "base"
	testEval = "testdata/eval_small.txt"
)

// tiny are settings that make a run take a second: few short rows, the
// demo's training data, a small eval file.
func tiny(out string, extra ...string) []string {
	args := []string{"--base", testBase, "--eval-data", testEval, "--out", out, "--steps", "4", "--batch", "2", "--seq", "16",
		"--warmup", "1", "--eval-every", "2", "--save-every", "2", "--samples", "0"}
	return append(args, extra...)
}

// result is one run of the program.
type result struct {
	code           int
	stdout, stderr string
}

// runIn runs the program in this process.
func runIn(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// runProc starts the program in a fresh process of the test binary.
func runProc(t *testing.T, stdout io.Writer, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	errb := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, errb
}

// syncBuffer is a bytes.Buffer that a process's output copier may write
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// readHistory reads a run's history.json.
func readHistory(t *testing.T, dir string) history {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, historyFile))
	if err != nil {
		t.Fatal(err)
	}
	var h history
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// listDir returns the names in dir, or nil when it does not exist.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func oneErrorLine(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit status %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "train: ") {
		t.Errorf("stderr is not one line \"train: ...\":\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not say %q", r.stderr, want)
	}
}
