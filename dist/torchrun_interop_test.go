//go:build interop

package dist_test

// The torchrun path: PyTorch's own launcher (from the interop venv) starts
// two ranks of this binary with --no-python; they rendezvous through the
// TCPStore that torchrun's agent hosts (TORCHELASTIC_USE_AGENT_STORE), so
// rank 0 joins as a client too.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

func TestInteropTorchrun(t *testing.T) {
	py := os.Getenv("GOLORA_INTEROP_PYTHON")
	if py == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop")
	}
	torchrun := filepath.Join(filepath.Dir(py), "torchrun")
	require.FileExists(t, torchrun)
	out := filepath.Join(t.TempDir(), "torchrun.safetensors")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, torchrun, "--nproc-per-node=2", "--master-addr=127.0.0.1",
		"--master-port="+strconv.Itoa(freePort(t)), "--no-python", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOLORA_DIST_CHILD=train", "GOLORA_DIST_STEPS=20", "GOLORA_DIST_OUT="+out)
	logs, err := cmd.CombinedOutput()
	require.NoError(t, err, "torchrun: %s", logs)
	agent, err := os.ReadFile(out + ".env")
	require.NoError(t, err)
	require.Equal(t, "TORCHELASTIC_USE_AGENT_STORE=True", strings.TrimSpace(string(agent)),
		"torchrun hosted the store (rank 0 joined as a client)")

	two, _, err := torch.LoadSafetensors(out)
	require.NoError(t, err)
	defer torch.CloseMap(two)
	one, err := trainRun(nil, 20, 0)
	require.NoError(t, err)
	defer torch.CloseMap(one)
	for name, want := range one {
		e := relNorm(t, two[name], want)
		t.Logf("%s: ‖torchrun − one‖/‖one‖ = %.2e", name, e)
		require.LessOrEqual(t, e, 1e-4, name)
	}
}
