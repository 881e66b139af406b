package main

// Files: everything the program writes in --out (run.json, history.json,
// loss.png, the tokenizer files of a full or merged model) is written
// atomically, so a full disk leaves the previous file whole; the JSON
// files it reads have size limits; the temporary files of interrupted
// writes are cleaned by --overwrite, and nothing else is.

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
	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/train"
)

func fullDisk(target string) func() {
	return atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: func(path string, w io.Writer) io.Writer {
		if path != target {
			return w
		}
		return enospc{}
	}})
}

type enospc struct{}

func (enospc) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func TestOutputsAtomic(t *testing.T) {
	h := history{Steps: []train.StepMetrics{{Step: 1, Loss: 2}, {Step: 2, Loss: 1.5}}, Evals: []train.EvalMetrics{{Step: 2, Loss: 1.7}}}
	base := t.TempDir()
	for _, f := range tokenizerFiles {
		if err := os.WriteFile(filepath.Join(base, f), []byte(`{"new": "`+f+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		file  string
		write func(dir string) error
	}{
		{runFile, func(dir string) error { return writeJSON(filepath.Join(dir, runFile), runInfo{RunID: "new"}) }},
		{historyFile, func(dir string) error { return writeJSON(filepath.Join(dir, historyFile), h) }},
		{plotFile, func(dir string) error { return plotLoss(filepath.Join(dir, plotFile), h, "LoRA") }},
		{"tokenizer.json", func(dir string) error { return copyTokenizer(base, dir) }},
		{"generation_config.json", func(dir string) error { return copyTokenizer(base, dir) }},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, c.file)
			old := []byte("previous " + c.file)
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			restore := fullDisk(path)
			err := c.write(dir)
			restore()
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want ENOSPC naming %s", err, path)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, old) {
				t.Fatalf("%s changed: %q", c.file, got)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if atomicfile.IsTemp(e.Name()) {
					t.Errorf("temporary file %s left", e.Name())
				}
			}
			// Without the fault the write replaces the file.
			if err := c.write(dir); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || bytes.Equal(got, old) {
				t.Fatalf("%s not replaced: %v", c.file, err)
			}
			if c.file == plotFile && !bytes.HasPrefix(got, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("loss.png is not a PNG: % x", got[:min(8, len(got))])
			}
		})
	}
}

// The JSON files the program reads have size limits: a tokenizer file to
// copy, or a run's history.json, over its limit is an error naming the
// file and the limit, not an allocation of its size.
func TestReadLimits(t *testing.T) {
	base, out := t.TempDir(), t.TempDir()
	tok := filepath.Join(base, "tokenizer.json")
	if err := os.WriteFile(tok, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(tok, jsonfile.MaxTokenizerSize+1); err != nil { // sparse
		t.Fatal(err)
	}
	err := copyTokenizer(base, out)
	if !errors.Is(err, jsonfile.ErrTooLarge) || !strings.Contains(err.Error(), tok) ||
		!strings.Contains(err.Error(), fmt.Sprintf("%d-byte limit", jsonfile.MaxTokenizerSize)) {
		t.Fatalf("copyTokenizer error %v, want one naming %s and the limit", err, tok)
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tokenizer.json was written: %v", err)
	}
}

// --overwrite removes the program's files and the temporary files of
// interrupted writes, and nothing else.
func TestRemoveOwnedTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{runFile, ".checkpoint.safetensors.tmp-12345", ".run.json.tmp-9", "notes.txt", ".hidden", "data.tmp-1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removeOwned(dir)
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if got := strings.Join(left, ","); got != ".hidden,data.tmp-1,notes.txt" {
		t.Errorf("left %s", got)
	}
}
