package reftest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// File is a loaded reference safetensors file: its tensors (on the CPU) and
// its "__metadata__".
type File struct {
	Path    string                   // the path it was loaded from
	Tensors map[string]*torch.Tensor // by name; closed when the test ends
	Meta    map[string]string        // the "__metadata__" strings
}

// Load reads the reference file at path (relative to the test's package
// directory). It fails t when the file cannot be read, with the command
// that regenerates it (regenerate, e.g. "/usr/bin/python3
// lora/testdata/gen_lora.py") in the message. The tensors are closed when t
// and its subtests end.
func Load(t testing.TB, path, regenerate string) *File {
	t.Helper()
	ts, meta, err := torch.LoadSafetensors(path)
	require.NoErrorf(t, err, "%s: regenerate with `%s` (from the repository root)", path, regenerate)
	t.Cleanup(func() { torch.CloseMap(ts) })
	return &File{Path: path, Tensors: ts, Meta: meta}
}

// Has reports whether the file has a tensor called name.
func (f *File) Has(name string) bool {
	_, ok := f.Tensors[name]
	return ok
}

// Tensor returns the tensor called name; it fails t when there is none.
// The tensor belongs to the file: callers must not close it.
func (f *File) Tensor(t testing.TB, name string) *torch.Tensor {
	t.Helper()
	x, ok := f.Tensors[name]
	require.Truef(t, ok, "%s: no reference tensor %q", f.Path, name)
	return x
}

// DecodeMeta decodes the JSON value of metadata key into out; it fails t
// when the key is missing or its value does not decode.
func (f *File) DecodeMeta(t testing.TB, key string, out any) {
	t.Helper()
	s, ok := f.Meta[key]
	require.Truef(t, ok, "%s: metadata %q missing", f.Path, key)
	require.NoErrorf(t, json.Unmarshal([]byte(s), out), "%s: metadata %q", f.Path, key)
}
