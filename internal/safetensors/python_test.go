package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pythonTensors are the tensors testdata/python/gen.py writes with the
// reference implementation (safetensors 0.8.0).
func pythonTensors() map[string]Entry {
	f64 := make([]byte, 0, 32)
	for _, v := range []float64{0, 0.25, 0.5, -0.75} {
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(v))
	}
	return map[string]Entry{
		"f64":   {DType: F64, Shape: []int64{2, 2}, Data: f64},
		"f32":   {DType: F32, Shape: []int64{2, 3}, Data: f32Bytes(1.5, -2, 3, 4, 5, 6)},
		"f16":   {DType: F16, Shape: []int64{3}, Data: []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x38}}, // 1, 2, 0.5
		"bf16":  {DType: BF16, Shape: []int64{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},            // 1, -2
		"i64":   {DType: I64, Shape: []int64{}, Data: []byte{42, 0, 0, 0, 0, 0, 0, 0}},
		"i32":   {DType: I32, Shape: []int64{2}, Data: []byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0}},
		"i16":   {DType: I16, Shape: []int64{2}, Data: []byte{3, 0, 0xfc, 0xff}},
		"i8":    {DType: I8, Shape: []int64{2}, Data: []byte{0x80, 0x7f}},
		"u8":    {DType: U8, Shape: []int64{3}, Data: []byte{0, 255, 7}},
		"mask":  {DType: Bool, Shape: []int64{2, 2}, Data: []byte{1, 0, 0, 1}},
		"empty": {DType: F32, Shape: []int64{0, 3}, Data: []byte{}},
	}
}

// checkPythonReader checks r against pythonTensors.
func checkPythonReader(t *testing.T, r Reader) {
	t.Helper()
	want := pythonTensors()
	assert.Len(t, r.Names(), len(want))
	for name, e := range want {
		info, ok := r.Info(name)
		require.True(t, ok, name)
		assert.Equal(t, e.DType, info.DType, name)
		assert.Equal(t, e.Shape, info.Shape, name)
		b, err := r.Bytes(name)
		require.NoError(t, err, name)
		assert.Equal(t, string(e.Data), string(b), name)
	}
}

// TestPythonFiles reads files written by the reference Python
// implementation (see testdata/python/gen.py) with every reader, and checks
// that the Go writers produce the same bytes.
func TestPythonFiles(t *testing.T) {
	single := filepath.Join("testdata", "python", "single.safetensors")
	md := map[string]string{"format": "np", "writer": "safetensors 0.8.0"}

	got, gotMD, err := ReadFile(single)
	require.NoError(t, err)
	assert.Equal(t, md, gotMD)
	want := pythonTensors()
	require.Len(t, got, len(want))
	for name, e := range want {
		assert.Equal(t, e.DType, got[name].DType, name)
		assert.Equal(t, e.Shape, got[name].Shape, name)
		assert.Equal(t, string(e.Data), string(got[name].Data), name)
	}

	f, err := Open(single)
	require.NoError(t, err)
	assert.Equal(t, md, f.Metadata())
	checkPythonReader(t, f)
	require.NoError(t, f.Close())

	// Encode lays the file out exactly as the reference writer does.
	raw, err := os.ReadFile(single)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, Encode(&buf, want, md))
	assert.Equal(t, raw, buf.Bytes(), "Encode must match the reference writer byte for byte")

	// The sharded checkpoint, through OpenSharded and OpenAny.
	index := filepath.Join("testdata", "python", "sharded", IndexFileName)
	s, err := OpenSharded(index)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"total_size": "95"}, s.Metadata())
	checkPythonReader(t, s)
	require.NoError(t, s.Close())
	r, err := OpenAny(filepath.Dir(index))
	require.NoError(t, err)
	checkPythonReader(t, r)
	require.NoError(t, r.Close())

	// WriteSharded with a limit that reproduces gen.py's split writes the
	// same shard bytes and an equivalent index.
	dir := t.TempDir()
	require.NoError(t, WriteSharded(dir, "model", want, map[string]string{"format": "pt"}, 66))
	for _, shard := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		ref, err := os.ReadFile(filepath.Join(filepath.Dir(index), shard))
		require.NoError(t, err)
		ours, err := os.ReadFile(filepath.Join(dir, shard))
		require.NoError(t, err)
		assert.Equal(t, ref, ours, shard)
	}
	refMD, refMap := readIndex(t, index)
	ourMD, ourMap := readIndex(t, filepath.Join(dir, IndexFileName))
	assert.Equal(t, refMap, ourMap)
	assert.Equal(t, refMD["total_size"], ourMD["total_size"])
}
