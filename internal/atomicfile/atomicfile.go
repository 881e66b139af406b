// Package atomicfile writes files atomically: a reader of the path sees
// either the previous file, whole, or the new one, whole; never a part.
//
// Write creates a temporary file in the destination's directory, hands it
// to the caller's write function, fsyncs and closes it, renames it over the
// destination, and fsyncs the directory, so that the rename itself is
// durable. On any error before the rename the temporary file is removed
// and the destination is left exactly as it was.
//
// A process killed (SIGKILL, power loss) in the middle of a write leaves the
// destination untouched and, at worst, its temporary file behind. Temporary
// files are named "." + base + ".tmp-" + random digits (IsTemp recognizes
// them): hidden, and never ending in the destination's extension, so no
// loader that looks for "model.safetensors", "*.json" or
// "adapter_model.safetensors" picks one up. RemoveTemps deletes leftovers.
//
// Every file golora writes (weights, adapters, training checkpoints,
// merged models, plots, and the files of cmd/train and cmd/infer) goes
// through this package.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// tempInfix separates a destination's base name from the random suffix in
// a temporary file's name.
const tempInfix = ".tmp-"

// hooks holds the test hooks (see SetTestHooks).
var hooks atomic.Pointer[Hooks]

// Hooks are test hooks into every Write; see SetTestHooks.
type Hooks struct {
	// Wrap, when not nil, wraps the writer that Write hands to its write
	// function; path is Write's destination. A test injects a write
	// error (a full disk) or pauses in the middle of a write with it.
	Wrap func(path string, w io.Writer) io.Writer
	// BeforeRename, when not nil, is called with the destination and the
	// temporary file's name once the temporary file is written, fsynced
	// and closed, just before the rename. An error from it fails the
	// Write, which removes the temporary file.
	BeforeRename func(path, tmp string) error
}

// SetTestHooks installs h for every later Write, in every goroutine, and
// returns a function that removes it again. It is for tests only.
func SetTestHooks(h Hooks) (restore func()) {
	hooks.Store(&h)
	return func() { hooks.Store(nil) }
}

// Write writes the file at path atomically with the given permission
// bits (set exactly, regardless of the umask): write is called with a
// temporary file in path's directory, which is then fsynced, closed,
// renamed over path, and the directory fsynced.
//
// On an error from write or from any step before the rename, the
// temporary file is removed, path keeps its previous content (or stays
// absent), and the error, which names path and wraps the cause (so that
// errors.Is(err, syscall.ENOSPC) works), is returned. An error syncing
// the directory after the rename is returned too, though path then already
// holds the new content.
//
// The directory must exist. path must not name a directory. A symbolic
// link at path is replaced by the new file, not followed.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("write %s: not a file name", path)
	}
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("write %s: create a temporary file: %w", path, unwrapPath(err))
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	h := hooks.Load()
	var w io.Writer = f
	if h != nil && h.Wrap != nil {
		w = h.Wrap(path, w)
	}
	if err := write(w); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return fmt.Errorf("write %s: chmod: %w", path, unwrapPath(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, unwrapPath(err))
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, unwrapPath(err))
	}
	if h != nil && h.BeforeRename != nil {
		if err := h.BeforeRename(path, tmp); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, unwrapLink(err))
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: written, but syncing its directory failed: %w", path, err)
	}
	return nil
}

// WriteFile writes data to path atomically with the given permission
// bits, as Write does.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// IsTemp reports whether name (a base name) is one of Write's temporary
// files, which a crash may leave behind.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if !strings.HasPrefix(name, ".") || i <= 1 {
		return false
	}
	rest := name[i+len(tempInfix):]
	if rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RemoveTemps removes the temporary files that interrupted writes left in
// dir (those IsTemp recognizes) and returns the names it removed. Do not
// call it while another process may be writing in dir.
func RemoveTemps(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if e.Type().IsRegular() && IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, errors.Join(errs...)
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// unwrapPath drops the temporary file's name from an *fs.PathError (the
// error then names the destination, not a temporary file), keeping the
// operation: "write: no space left on device".
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(filepath.Base(pe.Path), tempInfix) && err == error(pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// unwrapLink is unwrapPath for the *os.LinkError of a rename.
func unwrapLink(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) && err == error(le) {
		return le.Err
	}
	return err
}
