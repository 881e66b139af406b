package tokenizer_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/tokenizer"
)

// A tokenizer.json over the size limit is refused without being read (a
// sparse file here), with an error naming the file and the limit.
func TestLoadSizeLimit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, jsonfile.MaxTokenizerSize+1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, dir} {
		_, err := tokenizer.Load(p)
		if !errors.Is(err, jsonfile.ErrTooLarge) || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), fmt.Sprintf("%d-byte limit", jsonfile.MaxTokenizerSize)) {
			t.Errorf("Load(%s) error %v, want one naming %s and the limit", p, err, path)
		}
	}
}
