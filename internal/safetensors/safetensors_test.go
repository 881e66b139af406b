package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// f32Bytes returns the little-endian encoding of vs.
func f32Bytes(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// fileBytes assembles a safetensors file from a literal header and buffer,
// with no padding, so invalid layouts can be built directly.
func fileBytes(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func sampleTensors() map[string]Entry {
	return map[string]Entry{
		"w.f32":   {DType: F32, Shape: []int64{2, 3}, Data: f32Bytes(1, 2, 3, 4, 5, 6)},
		"w.f64":   {DType: F64, Shape: []int64{2}, Data: bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 2)},
		"w.f16":   {DType: F16, Shape: []int64{3}, Data: []byte{0, 0x3c, 0, 0x40, 0, 0x42}},
		"w.bf16":  {DType: BF16, Shape: []int64{1, 1, 2}, Data: []byte{0x80, 0x3f, 0, 0x40}},
		"idx":     {DType: I64, Shape: []int64{}, Data: []byte{42, 0, 0, 0, 0, 0, 0, 0}}, // scalar
		"i32":     {DType: I32, Shape: []int64{1}, Data: []byte{0xff, 0xff, 0xff, 0xff}},
		"i16":     {DType: I16, Shape: []int64{2}, Data: []byte{1, 0, 2, 0}},
		"i8":      {DType: I8, Shape: []int64{3}, Data: []byte{0xff, 0, 1}},
		"u8":      {DType: U8, Shape: []int64{5}, Data: []byte{1, 2, 3, 4, 5}},
		"mask":    {DType: Bool, Shape: []int64{2, 2}, Data: []byte{1, 0, 0, 1}},
		"empty":   {DType: F32, Shape: []int64{0, 4}, Data: []byte{}},
		"empty2":  {DType: I8, Shape: []int64{3, 0}, Data: nil},
		"scalar8": {DType: U8, Shape: []int64{}, Data: []byte{7}},
	}
}

func TestElemSize(t *testing.T) {
	want := map[string]int{F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, Bool: 1}
	for dt, n := range want {
		got, err := ElemSize(dt)
		require.NoError(t, err, dt)
		assert.Equal(t, n, got, dt)
	}
	_, err := ElemSize("F8_E4M3")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `safetensors: unknown dtype "F8_E4M3"`)
}

func TestRoundTrip(t *testing.T) {
	tensors := sampleTensors()
	md := map[string]string{"format": "pt", "note": "<&> ünïcode"}
	var buf bytes.Buffer
	require.NoError(t, Encode(&buf, tensors, md))

	raw := buf.Bytes()
	n := binary.LittleEndian.Uint64(raw[:8])
	assert.Zero(t, (8+n)%8, "byte buffer must start 8-byte aligned")

	got, gotMD, err := Decode(raw)
	require.NoError(t, err)
	assert.Equal(t, md, gotMD)
	require.Len(t, got, len(tensors))
	for name, want := range tensors {
		g, ok := got[name]
		require.True(t, ok, name)
		assert.Equal(t, want.DType, g.DType, name)
		assert.Equal(t, want.Shape, g.Shape, name)
		assert.Equal(t, len(want.Data), len(g.Data), name)
		assert.Equal(t, len(g.Data), cap(g.Data), "%s: capacity must be clipped", name)
		if len(want.Data) > 0 {
			assert.Equal(t, want.Data, g.Data, name)
		}
	}

	// Widest dtypes come first, so 8-byte tensors are 8-byte aligned.
	assert.Equal(t, 8+int(n), bytes.Index(raw, tensors["idx"].Data))
}

func TestRoundTripNoMetadata(t *testing.T) {
	for _, md := range []map[string]string{nil, {}} {
		var buf bytes.Buffer
		require.NoError(t, Encode(&buf, map[string]Entry{"x": {DType: U8, Shape: []int64{1}, Data: []byte{9}}}, md))
		assert.NotContains(t, buf.String(), MetadataKey)
		got, gotMD, err := Decode(buf.Bytes())
		require.NoError(t, err)
		assert.Nil(t, gotMD)
		assert.Equal(t, []byte{9}, got["x"].Data)
	}
}

func TestEmptyFile(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Encode(&buf, nil, nil))
	assert.Equal(t, append([]byte{8, 0, 0, 0, 0, 0, 0, 0}, "{}      "...), buf.Bytes())
	got, md, err := Decode(buf.Bytes())
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Nil(t, md)
}

func TestDeterministic(t *testing.T) {
	md := map[string]string{"z": "1", "a": "2", "m": "3"}
	var first []byte
	for i := 0; i < 20; i++ {
		var buf bytes.Buffer
		require.NoError(t, Encode(&buf, sampleTensors(), md))
		if first == nil {
			first = buf.Bytes()
			continue
		}
		require.Equal(t, first, buf.Bytes(), "iteration %d", i)
	}
	// Re-encoding decoded output reproduces the same bytes.
	got, gotMD, err := Decode(first)
	require.NoError(t, err)
	var again bytes.Buffer
	require.NoError(t, Encode(&again, got, gotMD))
	assert.Equal(t, first, again.Bytes())
}

// TestByteLevel checks the exact bytes against a hand-computed file.
func TestByteLevel(t *testing.T) {
	t.Run("metadata and one tensor", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, Encode(&buf,
			map[string]Entry{"a": {DType: F32, Shape: []int64{2}, Data: f32Bytes(1, 2)}},
			map[string]string{"format": "pt"}))

		// The header JSON is 85 bytes; 3 spaces pad it to 88 so that the
		// buffer starts at 8+88 = 96, a multiple of 8.
		header := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` + "   "
		require.Len(t, header, 88)
		want := []byte{88, 0, 0, 0, 0, 0, 0, 0} // u64 little-endian 88
		want = append(want, header...)
		want = append(want, 0x00, 0x00, 0x80, 0x3f) // float32 1.0
		want = append(want, 0x00, 0x00, 0x00, 0x40) // float32 2.0
		assert.Equal(t, want, buf.Bytes())
	})
	t.Run("dtype order then name", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, Encode(&buf, map[string]Entry{
			"a": {DType: U8, Shape: []int64{3}, Data: []byte{1, 2, 3}},
			"b": {DType: I64, Shape: []int64{}, Data: []byte{5, 0, 0, 0, 0, 0, 0, 0}},
		}, nil))
		// 106 bytes of JSON + 6 spaces = 112. I64 "b" is laid out before U8 "a".
		header := `{"b":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}` + "      "
		require.Len(t, header, 112)
		want := []byte{112, 0, 0, 0, 0, 0, 0, 0}
		want = append(want, header...)
		want = append(want, 5, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3)
		assert.Equal(t, want, buf.Bytes())
	})
}

// TestPythonWritten decodes headers exactly as the reference Python writer
// emits them, padded and (as older versions did) unpadded.
func TestPythonWritten(t *testing.T) {
	const header = `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	for _, h := range []string{header + "   ", header} {
		tensors, md, err := Decode(fileBytes(h, f32Bytes(1.5, -2)))
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"format": "pt"}, md)
		require.Contains(t, tensors, "a")
		assert.Equal(t, F32, tensors["a"].DType)
		assert.Equal(t, []int64{2}, tensors["a"].Shape)
		assert.Equal(t, f32Bytes(1.5, -2), tensors["a"].Data)
	}

	// Whitespace, field order and unknown fields are tolerated.
	h := "{ \"a\" : {\"shape\": [1], \"extra\": {\"x\": [1, 2]}, \"data_offsets\": [0, 2], \"dtype\": \"BF16\"},\n \"__metadata__\": null }  "
	tensors, md, err := Decode(fileBytes(h, []byte{0x80, 0x3f}))
	require.NoError(t, err)
	assert.Nil(t, md)
	assert.Equal(t, Entry{DType: BF16, Shape: []int64{1}, Data: []byte{0x80, 0x3f}}, tensors["a"])
}

// decodeErrorCase is a malformed file and a substring of the error that
// Decode, ReadFile and Open must report for it.
type decodeErrorCase struct {
	name string
	file []byte
	want string
}

// decodeErrorCases returns one malformed file per validation rule.
func decodeErrorCases() []decodeErrorCase {
	tensor := func(name, dtype, shape, offsets string) string {
		return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
	}
	ok := tensor("w", "F32", "[2]", "[0,8]")
	eight := make([]byte, 8)

	hugeHeader := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeHeader, 10_000_000_000) // claims 10 GB
	overFile := make([]byte, 16)
	binary.LittleEndian.PutUint64(overFile, 9) // 9 > 8 bytes available

	return []decodeErrorCase{
		{"empty file", nil, "file too short: 0 bytes"},
		{"short file", []byte{1, 2, 3}, "file too short: 3 bytes"},
		{"header over limit", hugeHeader, "header length 10000000000 exceeds the 100000000-byte limit"},
		{"header over file", overFile, "header length 9 exceeds file size (8 bytes"},
		{"empty header", fileBytes("", nil), "invalid JSON header"},
		{"invalid json", fileBytes(`{"w":`, nil), "invalid JSON header"},
		{"bad token", fileBytes(`{"w" 1}`, nil), "invalid JSON header"},
		{"invalid utf8", fileBytes("{\"\xff\":1}", nil), "header is not valid UTF-8"},
		{"not object array", fileBytes(`[1,2]`, nil), "header is not a JSON object (starts with an array)"},
		{"not object string", fileBytes(`"x"`, nil), "header is not a JSON object (starts with string"},
		{"trailing json", fileBytes(`{}{}`, nil), "unexpected an object after the top-level object"},
		{"trailing garbage in header", fileBytes(`{} x`, nil), "invalid JSON header after the top-level object"},
		{"duplicate tensor", fileBytes(`{`+ok+`,`+tensor("w", "F32", "[2]", "[8,16]")+`}`, make([]byte, 16)),
			`duplicate tensor name "w"`},
		{"duplicate metadata", fileBytes(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate "__metadata__"`},
		{"duplicate metadata key", fileBytes(`{"__metadata__":{"k":"a","k":"b"}}`, nil), `duplicate __metadata__ key "k"`},
		{"metadata number", fileBytes(`{"__metadata__":{"k":1}}`, nil), `__metadata__ value for "k" is number 1, want a string`},
		{"metadata nested", fileBytes(`{"__metadata__":{"k":{"x":"y"}}}`, nil), `__metadata__ value for "k" is an object, want a string`},
		{"metadata not object", fileBytes(`{"__metadata__":"pt"}`, nil), `"__metadata__" is string "pt", want an object of strings`},
		{"empty name", fileBytes(`{`+tensor("", "F32", "[0]", "[0,0]")+`}`, nil), "empty tensor name"},
		{"tensor not object", fileBytes(`{"w":[1]}`, nil), `tensor "w": tensor info is an array, want an object`},
		{"unknown dtype", fileBytes(`{`+tensor("w", "F8_E4M3", "[2]", "[0,2]")+`}`, make([]byte, 2)),
			`tensor "w": unknown dtype "F8_E4M3"`},
		{"dtype not string", fileBytes(`{"w":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)),
			`tensor "w": dtype is number 4, want a string`},
		{"missing dtype", fileBytes(`{"w":{"shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "w": missing field "dtype"`},
		{"missing shape", fileBytes(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "w": missing field "shape"`},
		{"missing offsets", fileBytes(`{"w":{"dtype":"F32","shape":[]}}`, nil), `tensor "w": missing field "data_offsets"`},
		{"duplicate field", fileBytes(`{"w":{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)),
			`tensor "w": duplicate field "dtype"`},
		{"negative dim", fileBytes(`{`+tensor("w", "F32", "[2,-1]", "[0,8]")+`}`, eight),
			`tensor "w": negative dimension -1 at index 1 in shape [2 -1]`},
		{"fractional dim", fileBytes(`{`+tensor("w", "F32", "[2.5]", "[0,8]")+`}`, eight),
			`tensor "w": shape element 0 is 2.5, want an integer`},
		{"nested shape", fileBytes(`{`+tensor("w", "F32", "[[2]]", "[0,8]")+`}`, eight),
			`tensor "w": shape element 0 is an array, want an integer`},
		{"shape not array", fileBytes(`{`+tensor("w", "F32", "2", "[0,8]")+`}`, eight),
			`tensor "w": shape is number 2, want an array of integers`},
		{"dim beyond int64", fileBytes(`{`+tensor("w", "F32", "[99999999999999999999]", "[0,8]")+`}`, eight),
			`tensor "w": shape element 0 is 99999999999999999999, want an integer that fits in int64`},
		{"shape overflow", fileBytes(`{`+tensor("w", "F32", "[4294967296,4294967296]", "[0,8]")+`}`, eight),
			`tensor "w": shape [4294967296 4294967296] element count overflows int64`},
		{"byte size overflow", fileBytes(`{`+tensor("w", "F32", "[4611686018427387904]", "[0,8]")+`}`, eight),
			`tensor "w": shape [4611686018427387904] byte size overflows int64`},
		{"offsets one value", fileBytes(`{`+tensor("w", "F32", "[2]", "[8]")+`}`, eight),
			`tensor "w": data_offsets [8] must be two non-negative integers`},
		{"offsets three values", fileBytes(`{`+tensor("w", "F32", "[2]", "[0,8,8]")+`}`, eight),
			`tensor "w": data_offsets [0 8 8] must be two non-negative integers`},
		{"offsets negative", fileBytes(`{`+tensor("w", "F32", "[2]", "[-8,0]")+`}`, eight),
			`tensor "w": data_offsets [-8 0] must be two non-negative integers`},
		{"offsets strings", fileBytes(`{`+tensor("w", "F32", "[2]", `["0","8"]`)+`}`, eight),
			`tensor "w": data_offsets element 0 is string "0", want an integer`},
		{"offsets reversed", fileBytes(`{`+tensor("w", "F32", "[2]", "[8,0]")+`}`, eight),
			`tensor "w": data_offsets [8 0]: begin is after end`},
		{"size mismatch", fileBytes(`{`+tensor("w", "F32", "[2,3]", "[0,40]")+`}`, make([]byte, 40)),
			`tensor "w": data_offsets [0 40] but F32 [2 3] needs 24 bytes`},
		{"first not at zero", fileBytes(`{`+tensor("w", "F32", "[2]", "[8,16]")+`}`, make([]byte, 16)),
			`tensor "w": data_offsets [8 16]: first tensor must begin at 0 (gap of 8 bytes)`},
		{"gap", fileBytes(`{`+ok+`,`+tensor("v", "U8", "[1]", "[9,10]")+`}`, make([]byte, 10)),
			`tensor "v": data_offsets [9 10]: gap of 1 bytes after tensor "w", which ends at 8`},
		{"overlap", fileBytes(`{`+ok+`,`+tensor("v", "U8", "[2]", "[7,9]")+`}`, make([]byte, 9)),
			`tensor "v": data_offsets [7 9] overlap tensor "w", which ends at 8`},
		{"same range twice", fileBytes(`{`+ok+`,`+tensor("v", "F32", "[2]", "[0,8]")+`}`, eight),
			`tensor "w": data_offsets [0 8] overlap tensor "v", which ends at 8`},
		{"truncated", fileBytes(`{`+ok+`}`, make([]byte, 5)),
			`file truncated: tensor "w": data_offsets [0 8] but the byte buffer has only 5 bytes`},
		{"truncated second", fileBytes(`{`+ok+`,`+tensor("v", "F32", "[2]", "[8,16]")+`}`, make([]byte, 12)),
			`file truncated: tensor "v": data_offsets [8 16] but the byte buffer has only 12 bytes`},
		{"trailing bytes", fileBytes(`{`+ok+`}`, make([]byte, 11)),
			"byte buffer has 11 bytes but tensors cover only 8: 3 trailing bytes"},
		{"trailing bytes no tensors", fileBytes(`{}`, []byte{1}),
			"byte buffer has 1 bytes but tensors cover only 0: 1 trailing bytes"},
		{"bool byte 2", fileBytes(`{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 0, 2}),
			`tensor "m": BOOL byte at offset 2 is 2, want 0 or 1`},
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range decodeErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			tensors, md, err := Decode(tc.file)
			require.Error(t, err)
			assert.Nil(t, tensors)
			assert.Nil(t, md)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeZeroSizeTensors(t *testing.T) {
	// Zero-size tensors may sit anywhere, including at the very end and at
	// the same offset as each other.
	h := `{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},` +
		`"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},` +
		`"c":{"dtype":"I64","shape":[3,0],"data_offsets":[2,2]},` +
		`"d":{"dtype":"BOOL","shape":[0],"data_offsets":[2,2]}}`
	tensors, _, err := Decode(fileBytes(h, []byte{7, 8}))
	require.NoError(t, err)
	require.Len(t, tensors, 4)
	assert.Equal(t, []byte{7, 8}, tensors["b"].Data)
	for _, n := range []string{"a", "c", "d"} {
		assert.Empty(t, tensors[n].Data, n)
	}
	assert.Equal(t, []int64{3, 0}, tensors["c"].Shape)
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name    string
		tensors map[string]Entry
		md      map[string]string
		want    string
	}{
		{"empty name", map[string]Entry{"": {DType: U8, Shape: []int64{}, Data: []byte{1}}}, nil, "empty tensor name"},
		{"reserved name", map[string]Entry{MetadataKey: {DType: U8, Shape: []int64{}, Data: []byte{1}}}, nil,
			`tensor name "__metadata__" is reserved`},
		{"bad utf8 name", map[string]Entry{"\xff": {DType: U8, Shape: []int64{}, Data: []byte{1}}}, nil, "not valid UTF-8"},
		{"unknown dtype", map[string]Entry{"w": {DType: "F8", Shape: []int64{1}, Data: []byte{1}}}, nil, `tensor "w": unknown dtype "F8"`},
		{"negative dim", map[string]Entry{"w": {DType: U8, Shape: []int64{-1}, Data: nil}}, nil, `tensor "w": negative dimension -1`},
		{"overflow", map[string]Entry{"w": {DType: U8, Shape: []int64{math.MaxInt64, 2}, Data: nil}}, nil,
			`tensor "w": shape [9223372036854775807 2] element count overflows int64`},
		{"short data", map[string]Entry{"w": {DType: F32, Shape: []int64{2, 3}, Data: make([]byte, 20)}}, nil,
			`tensor "w": data has 20 bytes but F32 [2 3] needs 24 bytes`},
		{"long data", map[string]Entry{"w": {DType: U8, Shape: []int64{}, Data: make([]byte, 2)}}, nil,
			`tensor "w": data has 2 bytes but U8 [] needs 1 bytes`},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xfe"}, `metadata "k": value is not valid UTF-8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, tc.tensors, tc.md)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			assert.Zero(t, buf.Len(), "nothing is written on validation failure")
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestEncodeWriteError(t *testing.T) {
	err := Encode(failWriter{}, sampleTensors(), nil)
	require.ErrorIs(t, err, os.ErrClosed)
	assert.True(t, strings.HasPrefix(err.Error(), "safetensors: write"), err.Error())
}

// dirNames lists the entries of dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	md := map[string]string{"format": "pt"}
	require.NoError(t, WriteFile(path, sampleTensors(), md))
	assert.Equal(t, []string{"model.safetensors"}, dirNames(t, dir), "no temp file left behind")

	var want bytes.Buffer
	require.NoError(t, Encode(&want, sampleTensors(), md))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want.Bytes(), raw)

	got, gotMD, err := ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, md, gotMD)
	assert.Equal(t, f32Bytes(1, 2, 3, 4, 5, 6), got["w.f32"].Data)

	// Overwriting replaces the file atomically.
	small := map[string]Entry{"x": {DType: U8, Shape: []int64{1}, Data: []byte{1}}}
	require.NoError(t, WriteFile(path, small, nil))
	assert.Equal(t, []string{"model.safetensors"}, dirNames(t, dir))
	got, _, err = ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, []string{"x"}, keys(got))
}

func keys(m map[string]Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	require.NoError(t, WriteFile(path, map[string]Entry{"x": {DType: U8, Shape: []int64{1}, Data: []byte{1}}}, nil))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	// Encoding failure: the existing file is untouched, no temp file remains.
	bad := map[string]Entry{"w": {DType: F32, Shape: []int64{2}, Data: []byte{1}}}
	err = WriteFile(path, bad, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "safetensors: "+path+`: tensor "w": data has 1 bytes but F32 [2] needs 8 bytes`)
	assert.Equal(t, []string{"model.safetensors"}, dirNames(t, dir))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// Rename failure: the target is a non-empty directory.
	target := filepath.Join(dir, "sub")
	require.NoError(t, os.MkdirAll(filepath.Join(target, "keep"), 0o755))
	err = WriteFile(target, map[string]Entry{"x": {DType: U8, Shape: []int64{1}, Data: []byte{1}}}, nil)
	require.Error(t, err)
	assert.ElementsMatch(t, []string{"model.safetensors", "sub"}, dirNames(t, dir))

	// Missing directory: nothing is created.
	err = WriteFile(filepath.Join(dir, "missing", "m.safetensors"), nil, nil)
	require.Error(t, err)
	assert.ElementsMatch(t, []string{"model.safetensors", "sub"}, dirNames(t, dir))
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := ReadFile(filepath.Join(dir, "nope.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())

	path := filepath.Join(dir, "model.safetensors")
	h := `{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,40]}}`
	require.NoError(t, os.WriteFile(path, fileBytes(h, make([]byte, 40)), 0o644))
	_, _, err = ReadFile(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+`: tensor "w": data_offsets [0 40] but F32 [2 3] needs 24 bytes`, err.Error())
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, sampleTensors(), map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(fileBytes(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `, f32Bytes(1, 2)))
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}))
	f.Add(fileBytes(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(fileBytes(`{"__metadata__":{"k":"a","k":"b"}}`, nil))
	f.Add(fileBytes(`{}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		tensors, md, err := Decode(data)
		require.Equal(t, orig, data, "Decode must not modify its input")
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "safetensors: "), err.Error())
			return
		}
		// Anything Decode accepts must re-encode and decode to the same content.
		var out bytes.Buffer
		require.NoError(t, Encode(&out, tensors, md))
		tensors2, md2, err := Decode(out.Bytes())
		require.NoError(t, err)
		require.Equal(t, len(md), len(md2))
		for k, v := range md {
			require.Equal(t, v, md2[k])
		}
		require.Equal(t, len(tensors), len(tensors2))
		for name, e := range tensors {
			e2 := tensors2[name]
			require.Equal(t, e.DType, e2.DType, name)
			require.Equal(t, e.Shape, e2.Shape, name)
			require.True(t, bytes.Equal(e.Data, e2.Data), name)
		}
	})
}
