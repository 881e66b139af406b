// Package jsonfile reads the JSON files golora loads (config.json,
// generation_config.json, adapter_config.json, tokenizer.json,
// tokenizer_config.json, and cmd/train's run.json and history.json)
// with a size limit, so that a huge or endless file is an error naming
// the file and the limit rather than an allocation of its whole size.
//
// (A safetensors header, with a training checkpoint's metadata, and a
// sharded checkpoint's index are limited by internal/safetensors, to
// safetensors.MaxHeaderSize.)
package jsonfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Limits, in bytes.
const (
	// MaxConfigSize bounds small configuration files: config.json,
	// generation_config.json, adapter_config.json,
	// tokenizer_config.json, cmd/train's run.json. The largest real
	// ones are a few tens of kilobytes.
	MaxConfigSize = 16 << 20
	// MaxTokenizerSize bounds tokenizer.json, whose vocabulary and merges
	// reach tens of megabytes (Gemma's is 33 MB).
	MaxTokenizerSize = 512 << 20
	// MaxHistorySize bounds cmd/train's history.json, which grows by a
	// couple of hundred bytes a step.
	MaxHistorySize = 512 << 20
)

// ErrTooLarge is wrapped by Read's error for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// Read returns the contents of the regular file at path, which must be at
// most limit bytes. A larger file is refused before it is read (by its
// size) or as soon as more than limit bytes come (a file that grows while
// read), with an error that names path and limit and wraps ErrTooLarge. A
// path that is not a regular file (a directory, a FIFO, a device) is an
// error too. Errors from the file system are returned as they are
// (*fs.PathError, so errors.Is(err, fs.ErrNotExist) works).
func Read(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, tooLarge(path, limit, st.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(path, limit, -1)
	}
	return b, nil
}

func tooLarge(path string, limit, size int64) error {
	if size >= 0 {
		return fmt.Errorf("%s: %w: %d bytes, more than the %d-byte limit", path, ErrTooLarge, size, limit)
	}
	return fmt.Errorf("%s: %w: more than the %d-byte limit", path, ErrTooLarge, limit)
}
