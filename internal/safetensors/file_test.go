package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeRaw writes raw bytes to name in a fresh temporary directory.
func writeRaw(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func TestOpenRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	md := map[string]string{"format": "pt", "note": "ünïcode"}
	tensors := sampleTensors()
	require.NoError(t, WriteFile(path, tensors, md))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, path, f.Path())

	want := slices.Sorted(maps.Keys(tensors))
	assert.Equal(t, want, f.Names())
	assert.Equal(t, md, f.Metadata())

	for name, e := range tensors {
		info, ok := f.Info(name)
		require.True(t, ok, name)
		assert.Equal(t, e.DType, info.DType, name)
		assert.Equal(t, e.Shape, info.Shape, name)
		assert.Equal(t, int64(len(e.Data)), info.Size, name)
		assert.Equal(t, string(e.Data), string(raw[info.Offset:info.Offset+info.Size]), "%s: Offset is from the start of the file", name)

		b, err := f.Bytes(name)
		require.NoError(t, err, name)
		assert.Len(t, b, len(e.Data), name)
		assert.Equal(t, len(b), cap(b), "%s: capacity must be clipped", name)
		if len(e.Data) > 0 {
			assert.Equal(t, e.Data, b, name)
		}
	}

	// Accessors hand out copies.
	names := f.Names()
	names[0] = "mutated"
	assert.NotEqual(t, "mutated", f.Names()[0])
	m := f.Metadata()
	m["format"] = "mutated"
	assert.Equal(t, "pt", f.Metadata()["format"])
	info, _ := f.Info("w.f32")
	info.Shape[0] = 99
	info, _ = f.Info("w.f32")
	assert.Equal(t, []int64{2, 3}, info.Shape)

	// Unknown names.
	_, ok := f.Info("nope")
	assert.False(t, ok)
	_, err = f.Bytes("nope")
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+`: no tensor "nope"`, err.Error())

	// Close is idempotent; Bytes fails afterwards, Info still works.
	require.NoError(t, f.Close())
	require.NoError(t, f.Close())
	_, err = f.Bytes("w.f32")
	require.ErrorIs(t, err, os.ErrClosed)
	assert.Contains(t, err.Error(), "safetensors: "+path+`: tensor "w.f32"`)
	_, err = f.Bytes("empty")
	require.ErrorIs(t, err, os.ErrClosed)
	_, ok = f.Info("w.f32")
	assert.True(t, ok)
}

func TestOpenNoMetadataNoData(t *testing.T) {
	for _, tensors := range []map[string]Entry{
		nil,
		{"z": {DType: F32, Shape: []int64{0, 2}}},
	} {
		path := filepath.Join(t.TempDir(), "m.safetensors")
		require.NoError(t, WriteFile(path, tensors, nil))
		f, err := Open(path)
		require.NoError(t, err)
		assert.Nil(t, f.Metadata())
		assert.Len(t, f.Names(), len(tensors))
		assert.Nil(t, f.mapping, "an empty byte buffer needs no mapping")
		for name := range tensors {
			b, err := f.Bytes(name)
			require.NoError(t, err)
			assert.NotNil(t, b)
			assert.Empty(t, b)
		}
		require.NoError(t, f.Close())
	}
}

// TestOpenErrors checks that Open and ReadFile reject every malformed file
// Decode rejects, with Decode's message prefixed by the path.
func TestOpenErrors(t *testing.T) {
	for _, tc := range decodeErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRaw(t, "bad.safetensors", tc.file)
			_, _, decErr := Decode(tc.file)
			require.Error(t, decErr)
			want := "safetensors: " + path + ": " + strings.TrimPrefix(decErr.Error(), "safetensors: ")

			_, _, err := ReadFile(path)
			require.Error(t, err)
			assert.Equal(t, want, err.Error(), "ReadFile")
			assert.Contains(t, err.Error(), tc.want)

			f, err := Open(path)
			if tc.name == "bool byte 2" {
				// Open maps the data without reading it; Bytes checks BOOLs.
				require.NoError(t, err)
				defer f.Close()
				_, err = f.Bytes("m")
			}
			require.Error(t, err)
			assert.Equal(t, want, err.Error(), "Open")
		})
	}
}

func TestOpenPlainErrors(t *testing.T) {
	dir := t.TempDir()

	_, err := Open(filepath.Join(dir, "missing.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "safetensors: open "+dir), err.Error())

	_, err = Open(dir)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+dir+": not a regular file (a directory)", err.Error())
	_, _, err = ReadFile(dir)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+dir+": not a regular file (a directory)", err.Error())

	// A header length past the end of the file.
	raw := fileBytes(`{}`, nil)
	raw[0] = 200
	path := writeRaw(t, "past.safetensors", raw)
	_, err = Open(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": header length 200 exceeds file size (2 bytes after the length prefix)", err.Error())
}

func TestBoolValidation(t *testing.T) {
	// The bad byte sits past the first eight-byte word and is not the last.
	data := make([]byte, 21)
	data[0], data[9] = 1, 1
	data[13] = 0x80
	h := `{"mask":{"dtype":"BOOL","shape":[21],"data_offsets":[0,21]},"u":{"dtype":"U8","shape":[1],"data_offsets":[21,22]}}`
	raw := fileBytes(h, append(data, 7))
	const want = `tensor "mask": BOOL byte at offset 13 is 128, want 0 or 1`

	_, _, err := Decode(raw)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+want, err.Error())

	path := writeRaw(t, "bool.safetensors", raw)
	_, _, err = ReadFile(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": "+want, err.Error())

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	for i := 0; i < 2; i++ { // a failed check is not cached as a success
		_, err = f.Bytes("mask")
		require.Error(t, err)
		assert.Equal(t, "safetensors: "+path+": "+want, err.Error())
	}
	u, err := f.Bytes("u")
	require.NoError(t, err)
	assert.Equal(t, []byte{7}, u)

	// Encode refuses to write what the readers would reject.
	var buf bytes.Buffer
	err = Encode(&buf, map[string]Entry{"mask": {DType: Bool, Shape: []int64{21}, Data: data}}, nil)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+want, err.Error())
	assert.Zero(t, buf.Len())

	// Only the last byte bad, in a tail shorter than a word.
	good := bytes.Repeat([]byte{1, 0}, 6)
	good[11] = 2
	err = checkBool("t", good)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "offset 11 is 2")
	require.NoError(t, checkBool("t", bytes.Repeat([]byte{1, 0, 0}, 100)))
}

func TestFileConcurrent(t *testing.T) {
	mask := make([]byte, 4096)
	for i := range mask {
		mask[i] = byte(i % 2)
	}
	tensors := map[string]Entry{
		"mask": {DType: Bool, Shape: []int64{4096}, Data: mask},
		"w":    {DType: F32, Shape: []int64{3}, Data: f32Bytes(1, 2, 3)},
	}
	path := filepath.Join(t.TempDir(), "c.safetensors")
	require.NoError(t, WriteFile(path, tensors, nil))
	f, err := Open(path)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for name, e := range tensors {
					b, err := f.Bytes(name)
					if err != nil || !bytes.Equal(b, e.Data) {
						t.Errorf("Bytes(%q) = %v", name, err)
						return
					}
				}
				_ = f.Names()
				_, _ = f.Info("w")
			}
		}()
	}
	wg.Wait()

	// Close racing with readers: each Bytes either succeeds or reports the
	// closed file.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := f.Bytes("mask"); err != nil && !errors.Is(err, os.ErrClosed) {
					t.Errorf("Bytes: %v", err)
				}
			}
		}()
	}
	require.NoError(t, f.Close())
	wg.Wait()
}

func TestOpenAny(t *testing.T) {
	tensors := map[string]Entry{
		"a": {DType: F32, Shape: []int64{2}, Data: f32Bytes(1, 2)},
		"b": {DType: U8, Shape: []int64{3}, Data: []byte{1, 2, 3}},
	}
	check := func(t *testing.T, r Reader) {
		t.Helper()
		assert.Equal(t, []string{"a", "b"}, r.Names())
		b, err := r.Bytes("b")
		require.NoError(t, err)
		assert.Equal(t, []byte{1, 2, 3}, b)
		info, ok := r.Info("a")
		require.True(t, ok)
		assert.Equal(t, F32, info.DType)
		require.NoError(t, r.Close())
		require.NoError(t, r.Close())
	}

	single := t.TempDir()
	require.NoError(t, WriteFile(filepath.Join(single, SingleFileName), tensors, nil))
	sharded := t.TempDir()
	require.NoError(t, WriteSharded(sharded, "model", tensors, nil, 8))

	for name, path := range map[string]string{
		"single file":       filepath.Join(single, SingleFileName),
		"single directory":  single,
		"index file":        filepath.Join(sharded, IndexFileName),
		"sharded directory": sharded,
	} {
		t.Run(name, func(t *testing.T) {
			r, err := OpenAny(path)
			require.NoError(t, err)
			if strings.Contains(name, "index") || strings.Contains(name, "sharded") {
				assert.IsType(t, &Sharded{}, r)
			} else {
				assert.IsType(t, &File{}, r)
			}
			check(t, r)
		})
	}

	// A directory holding both is ambiguous; one holding neither is empty.
	require.NoError(t, WriteFile(filepath.Join(sharded, SingleFileName), tensors, nil))
	_, err := OpenAny(sharded)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "safetensors: "+sharded+": holds both model.safetensors and model.safetensors.index.json")
	empty := t.TempDir()
	_, err = OpenAny(empty)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "safetensors: "+empty+": holds neither")
	_, err = OpenAny(filepath.Join(empty, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// Errors from the underlying openers come through, with no typed nil.
	bad := writeRaw(t, "bad.safetensors", []byte{1})
	r, err := OpenAny(bad)
	require.Error(t, err)
	assert.Nil(t, r)
	badIndex := writeRaw(t, "x.safetensors.index.json", []byte("[]"))
	r, err = OpenAny(badIndex)
	require.Error(t, err)
	assert.Nil(t, r)
}

// FuzzOpen writes the input to a file, opens it and reads every tensor: any
// input gives tensors or an error, never a panic, and Open agrees with
// Decode, error message included.
func FuzzOpen(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzOpen.
	var buf bytes.Buffer
	if err := Encode(&buf, sampleTensors(), map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(fileBytes(`{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 0, 2}))
	f.Add([]byte{})

	// One file, rewritten by each call: calls in a process are sequential.
	path := filepath.Join(f.TempDir(), "f.safetensors")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		want, wantMD, decErr := Decode(data)

		file, err := Open(path)
		if err != nil {
			require.Error(t, decErr, "Open refused what Decode accepts: %v", err)
			require.Equal(t, "safetensors: "+path+": "+strings.TrimPrefix(decErr.Error(), "safetensors: "), err.Error())
			return
		}
		defer file.Close()
		names := file.Names()
		require.True(t, slices.IsSorted(names))
		var bytesErr error
		for _, name := range names {
			info, ok := file.Info(name)
			require.True(t, ok, name)
			b, err := file.Bytes(name)
			if err != nil {
				require.Equal(t, Bool, info.DType, "only BOOL data is checked by Bytes: %v", err)
				require.Contains(t, err.Error(), "safetensors: "+path+": tensor "+strconv.Quote(name)+": BOOL byte at offset ")
				bytesErr = err
				continue
			}
			require.Equal(t, info.Size, int64(len(b)), name)
			require.Equal(t, data[info.Offset:info.Offset+info.Size], b, name)
			if decErr == nil {
				require.Equal(t, want[name].DType, info.DType, name)
				require.Equal(t, want[name].Shape, info.Shape, name)
			}
		}
		if decErr != nil {
			// Decode checks BOOL data eagerly, Open lazily in Bytes.
			require.Error(t, bytesErr, "Open and Bytes accepted what Decode refuses: %v", decErr)
			require.Contains(t, decErr.Error(), "BOOL byte at offset ")
			return
		}
		require.NoError(t, bytesErr)
		require.Len(t, names, len(want))
		require.Equal(t, len(wantMD), len(file.Metadata()))
		for k, v := range wantMD {
			require.Equal(t, v, file.Metadata()[k])
		}
		require.NoError(t, file.Close())
		if len(names) > 0 {
			_, err = file.Bytes(names[0])
			require.ErrorIs(t, err, os.ErrClosed)
		}
	})
}
