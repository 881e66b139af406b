package jsonfile_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/golora/golora/internal/jsonfile"
)

// A file that grows past the limit while it is read (/proc files report
// size 0) is cut at the limit, not read whole.
func TestReadUnknownSize(t *testing.T) {
	p := "/proc/self/maps"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	_, err := jsonfile.Read(p, 8)
	if !errors.Is(err, jsonfile.ErrTooLarge) || !strings.Contains(err.Error(), "8-byte limit") {
		t.Fatalf("Read(%s, 8) error %v, want ErrTooLarge", p, err)
	}
}
