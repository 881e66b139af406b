//go:build !unix

package safetensors

import (
	"fmt"
	"math"
	"os"
)

// openNoBlock opens path read-only. Outside Unix there are no FIFOs that
// block in open; the caller refuses anything but a regular file.
func openNoBlock(path string) (*os.File, error) {
	return os.Open(path)
}

// mapData reads the length bytes at file offset off of f into memory: this
// platform has no syscall.Mmap, so File holds a private read-only copy.
func mapData(f *os.File, off, length int64) (mapping, data []byte, err error) {
	if length == 0 {
		return nil, nil, nil
	}
	if length > math.MaxInt {
		return nil, nil, fmt.Errorf("byte buffer of %d bytes does not fit in memory", length)
	}
	data = make([]byte, length)
	if err := readAt(f, data, off); err != nil {
		return nil, nil, fmt.Errorf("read byte buffer: %w", err)
	}
	return data, data, nil
}

// unmapData releases a mapping returned by mapData; the garbage collector
// frees the copy.
func unmapData([]byte) error { return nil }

func pageSize() int { return 4096 }

// dontNeed does nothing where the data is a private copy.
func dontNeed([]byte) {}

// willNeedPages does nothing where the data is a private copy.
func willNeedPages([]byte) {}

// mmapped: mapData reads the file into memory (File.Mapped).
const mmapped = false
