package train

// Files: SaveCheckpoint is atomic under a full disk (injected, and a real
// 1 MiB tmpfs where mounting is allowed), and a checkpoint whose weight has
// the wrong dtype or shape is refused with an error naming it.

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/torch"
)

type enospcAfter struct {
	w io.Writer
	n int
}

func (e *enospcAfter) Write(p []byte) (int, error) {
	if len(p) <= e.n {
		e.n -= len(p)
		return e.w.Write(p)
	}
	k, _ := e.w.Write(p[:e.n])
	e.n = 0
	return k, syscall.ENOSPC
}

func requireDiskFullKeeps(t *testing.T, dir, path string, old []byte, err error) {
	t.Helper()
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("SaveCheckpoint error %v, want ENOSPC naming %s", err, path)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Fatal("the previous checkpoint changed")
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	if err := newRun(t).load(path); err != nil {
		t.Fatalf("the previous checkpoint does not load: %v", err)
	}
}

func TestSaveCheckpointDiskFull(t *testing.T) {
	for _, after := range []int{0, 8, 4096} { // in the length, the header, the data
		dir := t.TempDir()
		path := filepath.Join(dir, "c.safetensors")
		old := makeCheckpoint(t, dir, "c.safetensors")
		r := newRun(t)
		if _, err := r.steps(1); err != nil {
			t.Fatal(err)
		}
		restore := atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: func(_ string, w io.Writer) io.Writer {
			return &enospcAfter{w: w, n: after}
		}})
		err := r.save(path)
		restore()
		requireDiskFullKeeps(t, dir, path, old, err)
	}
}

// A real full disk, where mount(2) is allowed (root); only this variant is
// skipped elsewhere.
func TestSaveCheckpointDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs here (%v: %s); TestSaveCheckpointDiskFull injects ENOSPC instead", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "c.safetensors")
	old := makeCheckpoint(t, dir, "c.safetensors")
	// Fill the disk but for less than a checkpoint.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	st, _ := os.Stat(filler)
	if err := os.Truncate(filler, st.Size()-int64(len(old))/2); err != nil {
		t.Fatal(err)
	}
	r := newRun(t)
	if _, err := r.steps(1); err != nil {
		t.Fatal(err)
	}
	requireDiskFullKeeps(t, dir, path, old, r.save(path))
}

// A model weight of the wrong dtype or shape: an error naming it, and
// nothing loaded.
func TestLoadCheckpointMismatchNamesKey(t *testing.T) {
	dir := t.TempDir()
	makeCheckpoint(t, dir, "c.safetensors")
	for _, c := range []struct {
		name string
		edit func(*torch.Tensor) *torch.Tensor
		want string
	}{
		{"int64", func(x *torch.Tensor) *torch.Tensor { return x.To(torch.Int64) }, "model: fc1.lora_a: dtype int64 in the checkpoint, float32 in the model"},
		{"bool", func(x *torch.Tensor) *torch.Tensor { return x.To(torch.Bool) }, "model: fc1.lora_a: dtype bool in the checkpoint, float32 in the model"},
		{"shape", func(x *torch.Tensor) *torch.Tensor { return x.Reshape(-1) }, "model: fc1.lora_a: shape [64] in the checkpoint, [4 16] in the model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts, md, err := torch.LoadSafetensors(filepath.Join(dir, "c.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { torch.CloseMap(ts) }()
			k := "model.fc1.lora_a"
			old := ts[k]
			if old == nil {
				t.Fatalf("no %s in %v", k, reflect.ValueOf(ts).MapKeys())
			}
			ts[k] = c.edit(old).Contiguous()
			old.Close()
			bad := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := torch.SaveSafetensors(bad, ts, md); err != nil {
				t.Fatal(err)
			}
			r := newRun(t)
			before := takeSnapshot(t, r.state())
			err = r.load(bad)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadCheckpoint error %v, want %q", err, c.want)
			}
			if after := takeSnapshot(t, r.state()); !reflect.DeepEqual(before, after) {
				t.Error("the failed load changed the state")
			}
		})
	}
}
