package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
)

// The shipped demo: the base model (made by --full --init data/init on
// data/base_train.txt) and the new task's data. They are embedded so that
// the binary runs anywhere; run from the repository root, the files of
// cmd/train/base are used in place.
//
//go:embed base
var baseFS embed.FS

//go:embed data/task_train.txt data/task_eval.txt
var dataFS embed.FS

const (
	shippedBaseDir = "cmd/train/base"
	taskTrain      = "data/task_train.txt"
	taskEval       = "data/task_eval.txt"
)

// baseFiles are the shipped base's files.
var baseFiles = []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}

// shippedBase returns the directory of the shipped base model: the
// repository's cmd/train/base when the working directory is the
// repository root and its files equal the embedded ones, else a copy of
// the embedded files in the user's cache directory (written once).
func shippedBase() (string, error) {
	if _, err := baseFS.ReadFile("base/model.safetensors"); err != nil {
		return "", errors.New("this binary was built without the demo base (cmd/train/base/model.safetensors); pass --base DIR")
	}
	if same(shippedBaseDir) {
		return filepath.Abs(shippedBaseDir)
	}
	h := sha256.New()
	for _, f := range baseFiles {
		b, err := baseFS.ReadFile("base/" + f)
		if err != nil {
			return "", fmt.Errorf("the embedded demo base lacks %s", f)
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "golora", "train-base-"+hex.EncodeToString(h.Sum(nil))[:12])
	if same(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("extracting the demo base: %w", err)
	}
	for _, f := range baseFiles {
		b, _ := baseFS.ReadFile("base/" + f)
		if err := atomicfile.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", fmt.Errorf("extracting the demo base: %w", err)
		}
	}
	return dir, nil
}

// same reports whether dir holds the embedded base's files, byte for byte.
func same(dir string) bool {
	for _, f := range baseFiles {
		want, err := fs.ReadFile(baseFS, "base/"+f)
		if err != nil {
			return false
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}
