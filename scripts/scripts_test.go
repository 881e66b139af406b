// Package scripts_test runs the shell scripts that the Dockerfile's RUN
// steps call, here, without Docker (there is no Docker engine on the CI
// machine): install_go.sh and install_libtorch.sh in --dry-run mode for
// every CUDA variant the image may use, build_programs.sh for real, and
// the built golora-train as the image's CMD runs it (from another
// directory, with the base it embeds).
package scripts_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// run runs a script of this folder and returns its combined output.
func run(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Every RUN step of the Dockerfile calls a script of scripts/, and each of
// those scripts is one this file runs.
func TestDockerfileRunsScripts(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	tested := map[string]bool{"install_go.sh": true, "install_libtorch.sh": true, "build_programs.sh": true}
	re := regexp.MustCompile(`^RUN\s+(\S+)`)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		script := filepath.Base(m[1])
		require.True(t, strings.HasPrefix(m[1], "scripts/") || strings.HasPrefix(m[1], "/tmp/"), "RUN %s: not a repository script", m[1])
		require.True(t, tested[script], "RUN %s: no test runs %s", m[1], script)
		_, err := os.Stat(script)
		require.NoError(t, err, "RUN %s", m[1])
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, n, 4)
}

// install_go.sh --dry-run names the packages and go.dev's tarball, and
// refuses a malformed version.
func TestInstallGoDryRun(t *testing.T) {
	out, err := run(t, ".", "./install_go.sh", "--dry-run", "--version=1.24.6")
	require.NoError(t, err, out)
	require.Contains(t, out, "would apt-get install build-essential")
	require.Regexp(t, `would download https://go\.dev/dl/go1\.24\.6\.linux-(amd64|arm64)\.tar\.gz`, out)
	out, err = run(t, ".", "./install_go.sh", "--dry-run", "--version=latest")
	require.Error(t, err)
	require.Contains(t, out, "--version=latest is not a Go version")
}

// install_libtorch.sh --dry-run prints, for each CUDA variant of the
// official zips, the URL it would download, where it would unpack it and
// what it would build, and changes nothing.
func TestInstallLibtorchDryRun(t *testing.T) {
	for _, v := range []string{"cpu", "cu118", "cu126", "cu128"} {
		t.Run(v, func(t *testing.T) {
			dest := "/opt/libtorch-2.8.0-" + v
			_, statErr := os.Stat(dest)
			out, err := run(t, ".", "./install_libtorch.sh", "--dry-run", "--cuda="+v, "--version=2.8.0")
			require.NoError(t, err, out)
			require.Contains(t, out, "would download https://download.pytorch.org/libtorch/"+v+"/libtorch-shared-with-deps-2.8.0%2B"+v+".zip")
			require.Contains(t, out, "libtorch: official zip 2.8.0+"+v)
			require.Contains(t, out, "would build cgotorch/build/libcgotorch.so")
			if os.IsNotExist(statErr) {
				_, err := os.Stat(dest)
				require.True(t, os.IsNotExist(err), "--dry-run created %s", dest)
			}
		})
	}
	out, err := run(t, ".", "./install_libtorch.sh", "--dry-run", "--cuda=cu999x")
	require.Error(t, err, out)
}

// build_programs.sh builds golora-train and golora-infer; golora-train,
// run from an empty directory as the image's CMD runs it, fine-tunes its
// embedded base and writes a PEFT adapter.
func TestBuildPrograms(t *testing.T) {
	bin := t.TempDir()
	out, err := run(t, ".", "./build_programs.sh", bin)
	require.NoError(t, err, out)
	for _, p := range []string{"golora-train", "golora-infer"} {
		out, err := run(t, bin, filepath.Join(bin, p), "--help")
		require.NoError(t, err, "%s --help: %s", p, out)
	}
	work := t.TempDir()
	out, err = run(t, work, filepath.Join(bin, "golora-train"), "--steps", "2", "--eval-every", "0", "--device", "cpu", "--out", "train-out")
	require.NoError(t, err, out)
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		_, err := os.Stat(filepath.Join(work, "train-out", f))
		require.NoError(t, err, "golora-train wrote no %s:\n%s", f, out)
	}
}
