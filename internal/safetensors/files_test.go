package safetensors_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/safetensors"
)

// diskFull fails every write to a file whose destination ends in suffix
// with ENOSPC once after bytes have gone through.
func diskFull(suffix string, after int) func(string, io.Writer) io.Writer {
	return func(path string, w io.Writer) io.Writer {
		if !strings.HasSuffix(path, suffix) {
			return w
		}
		return &limitWriter{w: w, n: after}
	}
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) <= l.n {
		l.n -= len(p)
		return l.w.Write(p)
	}
	k, _ := l.w.Write(p[:l.n])
	l.n = 0
	return k, syscall.ENOSPC
}

func entries(v byte, n int) map[string]safetensors.Entry {
	return map[string]safetensors.Entry{
		"a": {DType: safetensors.U8, Shape: []int64{int64(n)}, Data: bytes.Repeat([]byte{v}, n)},
		"b": {DType: safetensors.U8, Shape: []int64{int64(n)}, Data: bytes.Repeat([]byte{v + 1}, n)},
	}
}

// A full disk part way through WriteFile or WriteSharded: an error naming
// the file and the cause, the previous files whole, no temporary file.
func TestWriteDiskFull(t *testing.T) {
	cases := []struct {
		name  string
		write func(dir string) error
		fail  string // the file whose write fails
	}{
		{"WriteFile", func(dir string) error {
			return safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), entries(9, 1<<16), nil)
		}, "model.safetensors"},
		{"WriteSharded shard", func(dir string) error {
			return safetensors.WriteSharded(dir, "model", entries(9, 1<<16), nil, 1<<16)
		}, "model-00002-of-00002.safetensors"},
		{"WriteSharded index", func(dir string) error {
			return safetensors.WriteSharded(dir, "model", entries(9, 1<<16), nil, 1<<16)
		}, safetensors.IndexFileName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), entries(1, 100), nil); err != nil {
				t.Fatal(err)
			}
			if err := safetensors.WriteSharded(dir, "model", entries(1, 100), nil, 100); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for _, n := range dirNames(t, dir) {
				before[n], _ = os.ReadFile(filepath.Join(dir, n))
			}
			defer atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: diskFull(c.fail, 100)})()
			err := c.write(dir)
			path := filepath.Join(dir, c.fail)
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("error %v, want ENOSPC naming %s", err, path)
			}
			after := dirNames(t, dir)
			if len(after) != len(before) {
				t.Errorf("files %v, were %d", after, len(before))
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, before[c.fail]) {
				t.Errorf("%s changed", c.fail)
			}
			// Every file is whole, so the sharded checkpoint still opens
			// (with the new first shard when the second failed: the set
			// is not replaced as one, as WriteSharded documents).
			s, err := safetensors.OpenSharded(filepath.Join(dir, safetensors.IndexFileName))
			if err != nil {
				t.Fatalf("the sharded checkpoint does not open: %v", err)
			}
			s.Close()
		})
	}
}

// Index files and headers over their limits, and shard names that leave
// the index's directory, are refused with errors naming them.
func TestLoadLimitsAndNames(t *testing.T) {
	dir := t.TempDir()
	// An index over MaxHeaderSize (sparse: nothing is allocated).
	big := filepath.Join(dir, "big", safetensors.IndexFileName)
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(safetensors.MaxHeaderSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = safetensors.OpenAny(filepath.Dir(big))
	if err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), fmt.Sprintf("%d-byte limit", safetensors.MaxHeaderSize)) {
		t.Errorf("oversized index: %v", err)
	}

	outside := filepath.Join(dir, "outside.safetensors")
	if err := safetensors.WriteFile(outside, entries(1, 4), nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, shard, want string }{
		{"parent", "../outside.safetensors", "path separator"},
		{"absolute", outside, "absolute path"},
		{"dotdot", "..", "not a file name"},
		{"nested", "sub/x.safetensors", "path separator"},
		{"backslash", `..\outside.safetensors`, "path separator"},
		{"empty", "", "empty file name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "ckpt")
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			index := fmt.Sprintf(`{"metadata":{},"weight_map":{"a":%q,"b":%q}}`, c.shard, c.shard)
			if err := os.WriteFile(filepath.Join(d, safetensors.IndexFileName), []byte(index), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := safetensors.OpenAny(d)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("shard %q", c.shard)) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("shard %q: %v, want an error naming it with %q", c.shard, err, c.want)
			}
		})
	}
}

func TestPickleFiles(t *testing.T) {
	for _, c := range []struct {
		files []string
		want  string
	}{
		{[]string{"pytorch_model.bin", "config.json"}, "pytorch_model.bin"},
		{[]string{"adapter_model.bin", "adapter_config.json"}, "adapter_model.bin"},
		{[]string{"model.pt", "weights.pth", "tokenizer.json"}, "model.pt,weights.pth"},
		{[]string{"pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json"}, "pytorch_model-00001-of-00002.bin,pytorch_model.bin.index.json"},
		{[]string{"model.ckpt", "x.pkl"}, "model.ckpt,x.pkl"},
		{[]string{"model.safetensors", "config.json", "model.safetensors.index.json"}, ""},
	} {
		dir := t.TempDir()
		for _, f := range c.files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(safetensors.PickleFiles(dir), ","); got != c.want {
			t.Errorf("PickleFiles(%v) = %q, want %q", c.files, got, c.want)
		}
	}
	err := safetensors.PickleError("/d", "model.safetensors", []string{"pytorch_model.bin"})
	for _, s := range []string{"/d", "model.safetensors", "pytorch_model.bin", "never loads pickles", "convert them to safetensors"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("PickleError %q lacks %q", err, s)
		}
	}
}
