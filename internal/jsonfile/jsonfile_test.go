package jsonfile_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/golora/golora/internal/jsonfile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte(" "), int(min(size, 1<<10)))); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil { // sparse beyond 1 KiB
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		path  string
		limit int64
		size  int   // want len
		is    error // want errors.Is
		want  string
	}{
		{"small", write("config.json", 100), 1 << 10, 100, nil, ""},
		{"at the limit", write("at.json", 4096), 4096, 4096, nil, ""},
		{"one over", write("over.json", 4097), 4096, 0, jsonfile.ErrTooLarge, "4097 bytes, more than the 4096-byte limit"},
		{"huge config", write("huge.json", 1<<40), jsonfile.MaxConfigSize, 0, jsonfile.ErrTooLarge, "more than the 16777216-byte limit"},
		{"huge tokenizer", write("tokenizer.json", 1<<40), jsonfile.MaxTokenizerSize, 0, jsonfile.ErrTooLarge, "-byte limit"},
		{"missing", filepath.Join(dir, "nope.json"), 1 << 10, 0, fs.ErrNotExist, "nope.json"},
		{"directory", dir, 1 << 10, 0, nil, "not a regular file"},
		{"fifo", fifo, 1 << 10, 0, nil, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := jsonfile.Read(c.path, c.limit)
			if c.want == "" {
				if err != nil || len(b) != c.size {
					t.Fatalf("Read = %d bytes, %v; want %d bytes", len(b), err, c.size)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read error %v, want one naming %s with %q", err, c.path, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v does not wrap %v", err, c.is)
			}
		})
	}
}
