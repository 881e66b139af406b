//go:build interop

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInteropTorchrunTrain: PyTorch's own launcher runs the program as two
// data-parallel ranks (torchrun --nproc-per-node=2 --no-python; its agent
// hosts the store, so rank 0 joins as a client too), and they end at the
// adapter of one process with the global batch: per tensor
// ‖torchrun − one‖/‖one‖ ≤ 1e-4. torchrun must come from the PyTorch whose
// libtorch golora is linked against (make interop builds golora against the
// venv's libtorch): the venv's, next to $GOLORA_INTEROP_PYTHON.
func TestInteropTorchrunTrain(t *testing.T) {
	py := os.Getenv("GOLORA_INTEROP_PYTHON")
	if py == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop")
	}
	torchrun := filepath.Join(filepath.Dir(py), "torchrun")
	if _, err := os.Stat(torchrun); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	two := filepath.Join(dir, "two")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append([]string{"--nproc-per-node=2", "--master-addr=127.0.0.1", "--master-port=" + strconv.Itoa(freePort(t)),
		"--no-python", os.Args[0], "-test.run=^$", "--"}, distArgs(two, "--batch", "2")...)
	cmd := exec.CommandContext(ctx, torchrun, args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1", "OMP_NUM_THREADS=1")
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, logs)
	}
	if !strings.Contains(string(logs), "global batch 2 × 2 = 4") {
		t.Errorf("rank 0 does not state the global batch:\n%s", logs)
	}
	one := filepath.Join(dir, "one")
	if r := runIn(t, distArgs(one, "--batch", "4")...); r.code != 0 {
		t.Fatalf("one process: exit %d:\n%s", r.code, r.stderr)
	}
	diffs := adapterRelDiff(t, two, one)
	for name, d := range diffs {
		if d > 1e-4 {
			t.Errorf("%s: ‖torchrun − one‖/‖one‖ = %.2e > 1e-4", name, d)
		}
	}
	name, worst := maxOf(diffs)
	t.Logf("torchrun, two ranks × batch 2, against one process × batch 4: max %.2e (%s)", worst, name)
}
