package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/internal/atomicfile"
)

// errWriter fails with err once n bytes have gone through: a disk that
// fills up in the middle of a write.
type errWriter struct {
	w   io.Writer
	n   int
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if len(p) <= e.n {
		e.n -= len(p)
		return e.w.Write(p)
	}
	k, err := e.w.Write(p[:e.n])
	e.n -= k
	if err != nil {
		return k, err
	}
	return k, e.err
}

func names(t *testing.T, dir string) []string {
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

func requireFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes %.40q, want %d bytes %.40q", path, len(got), got, len(want), want)
	}
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := atomicfile.WriteFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	requireFile(t, path, []byte("first"))
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, "second, longer")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	requireFile(t, path, []byte("second, longer"))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "model.safetensors" {
		t.Errorf("directory holds %v, want only model.safetensors", got)
	}
	// A relative path writes in the working directory's terms.
	t.Chdir(dir)
	if err := atomicfile.WriteFile("rel.json", []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	requireFile(t, filepath.Join(dir, "rel.json"), []byte("{}"))
}

// Every failure before the rename leaves the previous file as it was and
// no temporary file, and the error names the path and the cause.
func TestWriteFailureKeepsPrevious(t *testing.T) {
	old := bytes.Repeat([]byte("previous "), 1000)
	big := bytes.Repeat([]byte{7}, 1<<20)
	errBoom := errors.New("boom")
	cases := []struct {
		name  string
		hooks atomicfile.Hooks
		write func(w io.Writer) error
		is    error  // errors.Is(err, is)
		want  string // in err.Error()
	}{
		{"write function fails", atomicfile.Hooks{}, func(w io.Writer) error {
			if _, err := w.Write(big[:1000]); err != nil {
				return err
			}
			return errBoom
		}, errBoom, "boom"},
		{"disk full at the first byte", atomicfile.Hooks{Wrap: func(_ string, w io.Writer) io.Writer {
			return &errWriter{w: w, n: 0, err: syscall.ENOSPC}
		}}, func(w io.Writer) error { _, err := w.Write(big); return err }, syscall.ENOSPC, "no space left on device"},
		{"disk full in the middle", atomicfile.Hooks{Wrap: func(_ string, w io.Writer) io.Writer {
			return &errWriter{w: w, n: 300_000, err: syscall.ENOSPC}
		}}, func(w io.Writer) error {
			for range 4 {
				if _, err := w.Write(big[:100_000]); err != nil {
					return fmt.Errorf("write tensor %q: %w", "w", err)
				}
			}
			return nil
		}, syscall.ENOSPC, `write tensor "w": no space left on device`},
		{"quota exceeded", atomicfile.Hooks{Wrap: func(_ string, w io.Writer) io.Writer {
			return &errWriter{w: w, n: 10, err: syscall.EDQUOT}
		}}, func(w io.Writer) error { _, err := w.Write(big); return err }, syscall.EDQUOT, "quota"},
		{"failure before the rename", atomicfile.Hooks{BeforeRename: func(_, tmp string) error {
			if st, err := os.Stat(tmp); err != nil || st.Size() != int64(len(big)) {
				return fmt.Errorf("temporary file not complete before the rename: %v", err)
			}
			return errBoom
		}}, func(w io.Writer) error { _, err := w.Write(big); return err }, errBoom, "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "adapter_model.safetensors")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			defer atomicfile.SetTestHooks(c.hooks)()
			err := atomicfile.Write(path, 0o644, c.write)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %v does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to name %s and %q", err, path, c.want)
			}
			if strings.Contains(err.Error(), ".tmp-") {
				t.Errorf("error %q names the temporary file, not the destination", err)
			}
			requireFile(t, path, old)
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("directory holds %v, want only the previous file", got)
			}
		})
	}
}

// Failures of the file system itself: each error names the path, nothing
// is left behind.
func TestWriteFileSystemErrors(t *testing.T) {
	dir := t.TempDir()
	ok := func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }

	// The destination is a non-empty directory: the rename fails.
	target := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(target, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.Write(target, 0o644, ok)
	if err == nil || !strings.Contains(err.Error(), "write "+target+": rename") {
		t.Errorf("rename over a directory: %v", err)
	}
	// A missing directory.
	missing := filepath.Join(dir, "missing", "config.json")
	err = atomicfile.Write(missing, 0o644, ok)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: %v", err)
	}
	// Not a file name.
	for _, p := range []string{dir + "/", filepath.Join(dir, "..") + "/..", "."} {
		if err := atomicfile.Write(p, 0o644, ok); err == nil {
			t.Errorf("Write(%q) succeeded", p)
		}
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "sub" {
		t.Errorf("directory holds %v, want only sub", got)
	}
}

// A real full disk: a 1 MiB tmpfs. It needs mount(2) (root, or a sandbox
// that allows it); only this variant is skipped where that is refused,
// the injected ENOSPC of TestWriteFailureKeepsPrevious runs everywhere.
func TestWriteDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs here (%v: %s); the injected-ENOSPC variant covers the logic", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "model.safetensors")
	old := bytes.Repeat([]byte("old"), 100_000) // 300 kB
	if err := atomicfile.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.WriteFile(path, bytes.Repeat([]byte{1}, 2<<20), 0o644) // 2 MiB: does not fit
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want ENOSPC naming %s", err, path)
	}
	requireFile(t, path, old)
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v, want only the previous file", got)
	}
	// The space of the removed temporary file is free again: a write
	// that fits succeeds.
	if err := atomicfile.WriteFile(path, []byte("fits"), 0o644); err != nil {
		t.Fatal(err)
	}
	requireFile(t, path, []byte("fits"))
}

func TestIsTemp(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{".model.safetensors.tmp-123456", true},
		{".adapter_config.json.tmp-1", true},
		{".c.safetensors.tmp-0042", true},
		{"model.safetensors", false},
		{"model.safetensors.tmp-123", false}, // not hidden
		{".model.safetensors.tmp-", false},
		{".model.safetensors.tmp-12a", false},
		{".tmp-123", false},
		{".x.tmp-123.safetensors", false},
		{"config.json", false},
	} {
		if got := atomicfile.IsTemp(c.name); got != c.want {
			t.Errorf("IsTemp(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

// The temporary files Write makes are what IsTemp recognizes, and they do
// not look like any file a loader looks for.
func TestTempNames(t *testing.T) {
	dir := t.TempDir()
	for _, base := range []string{"model.safetensors", "adapter_config.json", "model.safetensors.index.json", "loss.png"} {
		var seen string
		restore := atomicfile.SetTestHooks(atomicfile.Hooks{BeforeRename: func(_, tmp string) error {
			seen = tmp
			return errors.New("stop")
		}})
		_ = atomicfile.WriteFile(filepath.Join(dir, base), []byte("x"), 0o644)
		restore()
		name := filepath.Base(seen)
		if filepath.Dir(seen) != dir || !atomicfile.IsTemp(name) {
			t.Errorf("temporary file %s: not in %s or not IsTemp", seen, dir)
		}
		if !strings.HasPrefix(name, ".") || strings.HasSuffix(name, filepath.Ext(base)) {
			t.Errorf("temporary file %s of %s: want a hidden name not ending in %s", name, base, filepath.Ext(base))
		}
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"model.safetensors", ".model.safetensors.tmp-123", ".a.json.tmp-9", "notes.tmp-1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := atomicfile.RemoveTemps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, ",") != ".a.json.tmp-9,.model.safetensors.tmp-123" {
		t.Errorf("removed %v", removed)
	}
	if got := strings.Join(names(t, dir), ","); got != "model.safetensors,notes.tmp-1" {
		t.Errorf("left %s", got)
	}
}
