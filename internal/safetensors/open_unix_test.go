//go:build unix

package safetensors

import (
	"bufio"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastLimit bounds how long refusing a malformed file may take; the point is
// that nothing past the header is read.
const fastLimit = time.Second

// timed runs fn and returns how long it took.
func timed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

// sparseFile writes prefix and extends the file to size bytes without
// writing (or allocating) the rest.
func sparseFile(t *testing.T, prefix []byte, size int64) string {
	t.Helper()
	path := writeRaw(t, "sparse.safetensors", prefix)
	require.NoError(t, os.Truncate(path, size))
	return path
}

// rssKB returns the process's resident set size in kB, or -1 where
// /proc/self/status is unavailable.
func rssKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func TestOpenDevZero(t *testing.T) {
	const path = "/dev/zero"
	if _, err := os.Stat(path); err != nil {
		t.Skip(err)
	}
	const want = "safetensors: /dev/zero: not a regular file (a character device)"
	var err error
	d := timed(func() { _, err = Open(path) })
	require.Error(t, err)
	assert.Equal(t, want, err.Error())
	assert.Less(t, d, fastLimit)
	t.Logf("Open(/dev/zero) failed in %v", d)

	d = timed(func() { _, _, err = ReadFile(path) })
	require.Error(t, err)
	assert.Equal(t, want, err.Error())
	assert.Less(t, d, fastLimit)
	t.Logf("ReadFile(/dev/zero) failed in %v", d)

	_, err = OpenSharded(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: /dev/zero: not a regular file (a character device)", err.Error())
}

func TestOpenFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo.safetensors")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	// Opening a FIFO for reading blocks until a writer appears unless
	// O_NONBLOCK is used: run each opener with a deadline, and on timeout
	// open the write end to release it, so the test fails instead of hanging.
	openers := map[string]func() error{
		"Open":        func() error { _, err := Open(path); return err },
		"ReadFile":    func() error { _, _, err := ReadFile(path); return err },
		"OpenSharded": func() error { _, err := OpenSharded(path); return err },
	}
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- open() }()
			select {
			case err := <-done:
				d := time.Since(start)
				require.Error(t, err)
				assert.Contains(t, err.Error(), "safetensors: "+path+": not a regular file (a FIFO)")
				assert.Less(t, d, fastLimit)
				t.Logf("%s(FIFO) failed in %v", name, d)
			case <-time.After(10 * time.Second):
				if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					_ = w.Close()
				}
				t.Fatalf("%s blocked on a FIFO", name)
			}
		})
	}
}

// TestOpenSparseBadHeader checks that a 4 GiB file whose header is bad is
// refused after reading the header only.
func TestOpenSparseBadHeader(t *testing.T) {
	const size = 4 << 30
	cases := []struct {
		name, header, want string
	}{
		{"invalid JSON", `{nope}`, "invalid JSON header: invalid character 'n'"},
		{"bad offsets", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,9]}}`,
			`tensor "w": data_offsets [0 9] but F32 [2] needs 8 bytes`},
		{"trailing data", `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`,
			"byte buffer has 4294967234 bytes but tensors cover only 8: 4294967226 trailing bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := sparseFile(t, fileBytes(tc.header, nil), size)
			rss := rssKB()
			var err error
			d := timed(func() { _, err = Open(path) })
			require.Error(t, err)
			assert.Contains(t, err.Error(), "safetensors: "+path+": "+tc.want)
			assert.Less(t, d, fastLimit)
			t.Logf("Open(4 GiB sparse, %s) failed in %v", tc.name, d)

			d = timed(func() { _, _, err = ReadFile(path) })
			require.Error(t, err)
			assert.Contains(t, err.Error(), "safetensors: "+path+": "+tc.want)
			assert.Less(t, d, fastLimit)
			t.Logf("ReadFile(4 GiB sparse, %s) failed in %v", tc.name, d)
			if rss >= 0 {
				grew := rssKB() - rss
				assert.Less(t, grew, int64(64<<10), "RSS grew by %d kB", grew)
			}
		})
	}
}

// TestOpenSparseValid maps a valid 4 GiB file without reading it.
func TestOpenSparseValid(t *testing.T) {
	if math.MaxInt < 8<<30 {
		t.Skip("needs a 64-bit address space")
	}
	const size, hlen = 4 << 30, 128
	n := int64(size - 8 - hlen)
	header := `{"big":{"dtype":"U8","shape":[` + strconv.FormatInt(n, 10) + `],"data_offsets":[0,` + strconv.FormatInt(n, 10) + `]}}`
	header += strings.Repeat(" ", hlen-len(header))
	path := sparseFile(t, fileBytes(header, nil), size)

	rss := rssKB()
	var (
		f   *File
		b   []byte
		err error
	)
	d := timed(func() {
		f, err = Open(path)
		if err == nil {
			b, err = f.Bytes("big")
		}
	})
	require.NoError(t, err)
	defer f.Close()
	assert.Less(t, d, fastLimit)
	t.Logf("Open+Bytes(4 GiB sparse, valid) took %v", d)
	require.Len(t, b, int(n))
	assert.Zero(t, b[0])
	assert.Zero(t, b[len(b)-1])
	info, ok := f.Info("big")
	require.True(t, ok)
	assert.Equal(t, Info{DType: U8, Shape: []int64{n}, Offset: 8 + hlen, Size: n}, info)
	if rss >= 0 {
		grew := rssKB() - rss
		assert.Less(t, grew, int64(64<<10), "RSS grew by %d kB", grew)
	}
	require.NoError(t, f.Close())
}

func TestOpenHeaderTooLarge(t *testing.T) {
	// Over MaxHeaderSize, in a file large enough to hold it.
	prefix := make([]byte, 8)
	binary.LittleEndian.PutUint64(prefix, MaxHeaderSize+1)
	path := sparseFile(t, prefix, 2*MaxHeaderSize)
	var err error
	d := timed(func() { _, err = Open(path) })
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": header length 100000001 exceeds the 100000000-byte limit", err.Error())
	assert.Less(t, d, fastLimit)
	t.Logf("Open(header over 100 MB) failed in %v", d)

	// Larger than the file.
	binary.LittleEndian.PutUint64(prefix, 1<<20)
	path = sparseFile(t, prefix, 1000)
	d = timed(func() { _, err = Open(path) })
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": header length 1048576 exceeds file size (992 bytes after the length prefix)", err.Error())
	assert.Less(t, d, fastLimit)
	t.Logf("Open(header past the end of the file) failed in %v", d)

	// A length prefix of 2^64-1 must not overflow the comparison.
	binary.LittleEndian.PutUint64(prefix, math.MaxUint64)
	path = sparseFile(t, prefix, 16)
	_, err = Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "header length 18446744073709551615 exceeds the 100000000-byte limit")

	path = sparseFile(t, prefix[:3], 3)
	_, err = Open(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": file too short: 3 bytes, need at least 8 for the header length", err.Error())
}

// TestOpenTruncatedWhileOpen checks that the BOOL check in Bytes turns the
// fault from reading a page past a truncated end into an error.
func TestOpenTruncatedWhileOpen(t *testing.T) {
	mask := make([]byte, 3*os.Getpagesize())
	path := filepath.Join(t.TempDir(), "t.safetensors")
	require.NoError(t, WriteFile(path, map[string]Entry{"mask": {DType: Bool, Shape: []int64{int64(len(mask))}, Data: mask}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	info, _ := f.Info("mask")
	require.NoError(t, os.Truncate(path, info.Offset))
	_, err = f.Bytes("mask")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "safetensors: "+path+`: tensor "mask": reading the mapped data failed (was the file truncated?)`)
}
