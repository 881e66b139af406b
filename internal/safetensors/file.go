package safetensors

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Info describes one tensor of an opened file without touching its data.
type Info struct {
	DType string  // header dtype name (F32, BF16, ...)
	Shape []int64 // dimensions, empty for a scalar
	// Offset is the byte offset of the tensor's data from the start of the
	// file holding it (for a Sharded, its shard), and Size its length,
	// numel*ElemSize(DType).
	Offset, Size int64
}

// Reader is the read interface shared by File and Sharded.
type Reader interface {
	// Names returns the tensor names, sorted.
	Names() []string
	// Info describes the named tensor; ok is false if there is none.
	Info(name string) (info Info, ok bool)
	// Bytes returns the named tensor's raw little-endian data, read-only
	// and valid until Close.
	Bytes(name string) ([]byte, error)
	// Metadata returns the string metadata (nil when there is none).
	Metadata() map[string]string
	// Close releases the underlying files; it is idempotent.
	Close() error
}

var (
	_ Reader = (*File)(nil)
	_ Reader = (*Sharded)(nil)
)

// File is an open safetensors file whose byte buffer is memory-mapped
// read-only. Its methods are safe for concurrent use; Close waits for
// calls to Bytes in progress.
type File struct {
	path     string
	names    []string
	tensors  map[string]*fileTensor
	metadata map[string]string

	mu      sync.RWMutex
	closed  bool
	mapping []byte // the whole mapping, for unmapData
	data    []byte // the byte buffer within mapping
}

// fileTensor is one tensor of a File.
type fileTensor struct {
	name       string
	dtype      string
	shape      []int64
	begin, end int64 // offsets in the byte buffer
	offset     int64 // offset in the file
	boolOK     atomic.Bool
}

// Open opens the safetensors file at path and maps its byte buffer
// read-only (on Unix; elsewhere it is read into memory).
//
// Open reads only the 8-byte header length and the header, and validates
// them before anything else: a length over MaxHeaderSize or past the end of
// the file (by its size from Stat) is refused without reading further, and
// the header gets the same strict checks as Decode, the tensors' data_offsets
// being checked against the file's size. Only regular files are accepted: a
// FIFO, a device such as /dev/zero, or a directory is refused at once. The
// byte buffer itself is not read, so opening a large file is cheap; BOOL
// tensors' bytes are checked by Bytes. Errors start with "safetensors: " and
// name the file and, where one is at fault, the tensor.
//
// The file must not be truncated or rewritten in place while it is open: the
// mapping shares the file's pages, so it would see the changes, and reading
// a page past a truncated end faults. WriteFile and WriteSharded replace
// files by rename, which open Files do not see.
func Open(path string) (*File, error) {
	f, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// open implements Open; its errors lack the "safetensors: " prefix.
func open(path string) (*File, error) {
	f, h, err := openHeader(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	mapping, data, err := mapData(f, h.dataStart, h.dataLen)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	file := &File{
		path:     path,
		names:    make([]string, 0, len(h.infos)),
		tensors:  make(map[string]*fileTensor, len(h.infos)),
		metadata: h.metadata,
		mapping:  mapping,
		data:     data,
	}
	for _, t := range h.infos {
		file.names = append(file.names, t.name)
		file.tensors[t.name] = &fileTensor{
			name:   t.name,
			dtype:  t.dtype,
			shape:  t.shape,
			begin:  t.begin,
			end:    t.end,
			offset: h.dataStart + t.begin,
		}
	}
	slices.Sort(file.names)
	return file, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the names of the file's tensors, sorted. The slice is the
// caller's.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Metadata returns a copy of the file's "__metadata__" map, or nil if the
// header has none.
func (f *File) Metadata() map[string]string { return maps.Clone(f.metadata) }

// Info describes the named tensor; Offset is from the start of the file. It
// reports false if the file has no such tensor. It works after Close.
func (f *File) Info(name string) (Info, bool) {
	t, ok := f.tensors[name]
	if !ok {
		return Info{}, false
	}
	return Info{DType: t.dtype, Shape: slices.Clone(t.shape), Offset: t.offset, Size: t.end - t.begin}, true
}

// Bytes returns the named tensor's raw little-endian data as a slice of the
// mapping, without copying (its capacity is clipped to its length).
//
// The bytes are read-only: writing to them faults (SIGSEGV) and crashes the
// program. They are valid until Close, after which touching them faults
// too; copy what must outlive the File.
//
// For a BOOL tensor every byte is checked to be 0 or 1 (once; later calls
// reuse the result), and the error names the tensor and the first bad
// offset. Bytes fails for an unknown name and after Close.
func (f *File) Bytes(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, os.ErrClosed)
	}
	if t.begin == t.end {
		return []byte{}, nil
	}
	b := f.data[t.begin:t.end:t.end]
	if t.dtype == Bool && !t.boolOK.Load() {
		if err := checkBoolMapped(name, b); err != nil {
			return nil, fmt.Errorf("safetensors: %s: %w", f.path, err)
		}
		t.boolOK.Store(true)
	}
	return b, nil
}

// checkBoolMapped is checkBool on mapped memory: a fault, as when the file
// was truncated after it was mapped, becomes an error instead of a crash.
func checkBoolMapped(name string, data []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tensor %q: reading the mapped data failed (was the file truncated?): %v", name, r)
		}
	}()
	return checkBool(name, data)
}

// Close unmaps the file. Slices returned by Bytes must not be used after
// Close. Calling Close again does nothing and returns nil.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	mapping := f.mapping
	f.mapping, f.data = nil, nil
	if err := unmapData(mapping); err != nil {
		return fmt.Errorf("safetensors: %s: munmap: %w", f.path, err)
	}
	return nil
}

// Checkpoint file names looked for by OpenAny in a directory, as written by
// Hugging Face transformers.
const (
	// SingleFileName is an unsharded checkpoint.
	SingleFileName = "model.safetensors"
	// IndexFileName is the index of a sharded checkpoint (see OpenSharded).
	IndexFileName = "model.safetensors.index.json"
)

// OpenAny opens a checkpoint: a path ending in ".json" is a sharded index
// (OpenSharded), any other file a single safetensors file (Open), and a
// directory must hold exactly one of SingleFileName and IndexFileName.
func OpenAny(path string) (Reader, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if fi.IsDir() {
		single := filepath.Join(path, SingleFileName)
		index := filepath.Join(path, IndexFileName)
		hasSingle, err := exists(single)
		if err != nil {
			return nil, err
		}
		hasIndex, err := exists(index)
		if err != nil {
			return nil, err
		}
		switch {
		case hasSingle && hasIndex:
			return nil, fmt.Errorf("safetensors: %s: holds both %s and %s; open one of them", path, SingleFileName, IndexFileName)
		case hasSingle:
			path = single
		case hasIndex:
			path = index
		default:
			return nil, fmt.Errorf("safetensors: %s: holds neither %s nor %s", path, SingleFileName, IndexFileName)
		}
	}
	if strings.HasSuffix(path, ".json") {
		s, err := OpenSharded(path)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// exists reports whether path exists.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("safetensors: %w", err)
	}
	return true, nil
}

// Evict tells the kernel that the named tensor's mapped pages are no longer
// needed by this process (madvise MADV_DONTNEED on Unix; nothing elsewhere),
// so that a loader that has copied the tensor does not keep the whole file
// in its resident set: loading a 1 GB file then peaks near 1 GB, not 2.
// The pages stay in the page cache, and a later Bytes reads them again.
func (f *File) Evict(name string) { f.advise(name, false) }

func (f *File) advise(name string, willNeed bool) {
	t, ok := f.tensors[name]
	if !ok || t.begin == t.end {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return
	}
	// Pages that t shares with its neighbours are evicted too: they are
	// read back from the page cache if a neighbour is read later.
	base := int64(len(f.mapping) - len(f.data)) // offset of data within mapping
	page := int64(pageSize())
	lo := (base + t.begin) &^ (page - 1)
	hi := min((base+t.end+page-1)&^(page-1), int64(len(f.mapping)))
	if willNeed {
		willNeedPages(f.mapping[lo:hi])
	} else {
		dontNeed(f.mapping[lo:hi])
	}
}

// Prefetch asks the kernel to read the named tensor's pages ahead
// (madvise MADV_WILLNEED on Unix), so that copying it takes few page faults.
func (f *File) Prefetch(name string) {
	f.advise(name, true)
}

// Evict is File.Evict on the shard holding the named tensor.
func (s *Sharded) Evict(name string) {
	if f, ok := s.shardOf[name]; ok {
		f.Evict(name)
	}
}

// Prefetch is File.Prefetch on the shard holding the named tensor.
func (s *Sharded) Prefetch(name string) {
	if f, ok := s.shardOf[name]; ok {
		f.Prefetch(name)
	}
}

// Mapped reports whether Bytes returns slices of a file mapping (mmap) —
// memory that madvise(MADV_DONTNEED) may drop and read back — rather than
// of a heap copy (platforms without mmap).
func (f *File) Mapped() bool { return mmapped }

// Mapped is File.Mapped: every shard is opened the same way.
func (s *Sharded) Mapped() bool { return mmapped }
