//go:build linux

package dist_test

import (
	"context"
	"fmt"
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

// Two hosts: rank 0 and rank 1 in two network namespaces joined by a veth
// pair, so that the store and Gloo talk over real interfaces (Gloo bound
// with GLOO_SOCKET_IFNAME) rather than loopback. The test makes the
// namespaces itself, which needs root and iproute2.
func TestTwoHostsOverVeth(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces (ip netns add)")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip to make network namespaces")
	}
	ip := func(args ...string) {
		t.Helper()
		out, err := exec.Command(ipBin, args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	id := os.Getpid() % 10000
	ns := [2]string{fmt.Sprintf("glns%d-0", id), fmt.Sprintf("glns%d-1", id)}
	veth := [2]string{fmt.Sprintf("glv%d-0", id), fmt.Sprintf("glv%d-1", id)}
	addr := [2]string{"10.213.7.1", "10.213.7.2"}
	t.Cleanup(func() {
		for _, n := range ns {
			_ = exec.Command(ipBin, "netns", "del", n).Run() // takes its veth end along
		}
	})
	// A sandbox may refuse namespaces or veth devices even to root (no
	// CAP_SYS_ADMIN, no veth module): then they cannot be made here.
	for _, args := range [][]string{
		{"netns", "add", ns[0]}, {"netns", "add", ns[1]},
		{"link", "add", veth[0], "type", "veth", "peer", "name", veth[1]},
	} {
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Skipf("network namespaces cannot be made here: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for i := range 2 {
		ip("link", "set", veth[i], "netns", ns[i])
		ip("-n", ns[i], "addr", "add", addr[i]+"/24", "dev", veth[i])
		ip("-n", ns[i], "link", "set", veth[i], "up")
		ip("-n", ns[i], "link", "set", "lo", "up")
	}

	out := filepath.Join(t.TempDir(), "veth.safetensors")
	port := strconv.Itoa(29400 + id%500)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type result struct {
		err  error
		logs []byte
	}
	done := make(chan result, 2)
	for r := range 2 {
		cmd := exec.CommandContext(ctx, ipBin, "netns", "exec", ns[r], os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"RANK="+strconv.Itoa(r), "WORLD_SIZE=2", "MASTER_ADDR="+addr[0], "MASTER_PORT="+port,
			"GLOO_SOCKET_IFNAME="+veth[r],
			"GOLORA_DIST_CHILD=train", "GOLORA_DIST_STEPS=20", "GOLORA_DIST_OUT="+out)
		go func() {
			logs, err := cmd.CombinedOutput()
			done <- result{err, logs}
		}()
	}
	for range 2 {
		r := <-done
		require.NoError(t, r.err, "%s", r.logs)
	}
	two, _, err := torch.LoadSafetensors(out)
	require.NoError(t, err)
	defer torch.CloseMap(two)
	one, err := trainRun(nil, 20, 0)
	require.NoError(t, err)
	defer torch.CloseMap(one)
	for name, want := range one {
		e := relNorm(t, two[name], want)
		t.Logf("%s: ‖two hosts − one‖/‖one‖ = %.2e", name, e)
		require.LessOrEqual(t, e, 1e-4, name)
	}
}
