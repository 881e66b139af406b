//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// openNoBlock opens path read-only with O_NONBLOCK, so that opening a FIFO
// returns at once instead of waiting for a writer; the caller then refuses
// anything but a regular file, for which O_NONBLOCK has no effect.
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// mapData maps the length bytes at file offset off of f read-only and
// shared. It returns the whole mapping, to hand to unmapData, and the slice
// of it holding those bytes. A zero length maps nothing and returns nils.
func mapData(f *os.File, off, length int64) (mapping, data []byte, err error) {
	if length == 0 {
		return nil, nil, nil
	}
	// The mapping must start at a page boundary.
	start := off &^ int64(os.Getpagesize()-1)
	size := off + length - start
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("byte buffer of %d bytes does not fit in the address space", length)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var mapErr error
	if err := conn.Control(func(fd uintptr) {
		mapping, mapErr = syscall.Mmap(int(fd), start, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	}); err != nil {
		return nil, nil, err
	}
	if mapErr != nil {
		return nil, nil, fmt.Errorf("mmap: %w", mapErr)
	}
	return mapping, mapping[off-start:], nil
}

// unmapData releases a mapping returned by mapData.
func unmapData(mapping []byte) error {
	if mapping == nil {
		return nil
	}
	return syscall.Munmap(mapping)
}

func pageSize() int { return os.Getpagesize() }

// dontNeed drops b's pages from the process's resident set.
func dontNeed(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_DONTNEED)
	}
}

// willNeedPages asks the kernel to read b's pages ahead.
func willNeedPages(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_WILLNEED)
	}
}

// mmapped: mapData maps the file (File.Mapped).
const mmapped = true
