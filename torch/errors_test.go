package torch_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// Bad inputs must come back as errors, never as panics or crashes, with a
// message that names the problem and carries no C++ backtrace.

// expectError runs f, which must return an error containing each of subs,
// without panicking and without a C++ backtrace in the message.
func expectError(t *testing.T, name string, f func() error, subs ...string) {
	t.Helper()
	var err error
	require.NotPanicsf(t, func() { err = f() }, "%s panicked", name)
	require.Errorf(t, err, "%s: expected an error", name)
	msg := err.Error()
	for _, s := range subs {
		assert.Containsf(t, msg, s, "%s: message %q", name, msg)
	}
	assert.NotContainsf(t, msg, "Exception raised from", "%s: C++ backtrace in %q", name, msg)
	assert.NotContainsf(t, msg, "frame #", "%s: C++ backtrace in %q", name, msg)
	t.Logf("%s: %s", name, msg)
}

// discard closes a result that should not exist and passes the error on.
func discard(x *torch.Tensor, err error) error {
	x.Close()
	return err
}

func TestErrorsShapes(t *testing.T) {
	a := try(torch.Ones([]int64{2, 3})).must(t)
	b := try(torch.Ones([]int64{4, 5})).must(t)
	w := try(torch.Ones([]int64{5, 4})).must(t)
	closeLater(t, a, b, w)

	expectError(t, "MatMul shape mismatch", func() error { return discard(a.MatMul(b)) },
		"MatMul", "shapes cannot be multiplied", "2x3", "4x5")
	expectError(t, "Mm shape mismatch", func() error { return discard(a.Mm(b)) }, "Mm", "2x3", "4x5")
	expectError(t, "Linear shape mismatch", func() error { return discard(torch.Linear(a, w, nil)) },
		"Linear", "input last dim is 3", "in_features=4")
	expectError(t, "Add broadcast", func() error { return discard(a.Add(b)) }, "Add", "size of tensor a (3) must match")
	expectError(t, "View incompatible", func() error {
		tr := try(a.T()).must(t)
		defer tr.Close()
		return discard(tr.View(6))
	}, "View", "view size is not compatible")
	expectError(t, "Reshape numel", func() error { return discard(a.Reshape(4, 2)) }, "Reshape", "invalid for input of size 6")
	expectError(t, "Cat empty", func() error { return discard(torch.Cat(nil, 0)) }, "Cat", "no tensors")
	expectError(t, "MSELoss shapes", func() error { return discard(torch.MSELoss(a, b, torch.ReductionMean)) },
		"MSELoss", "input shape [2, 3] != target shape [4, 5]")
	expectError(t, "FromSlice count", func() error { return discard(torch.FromSlice([]float32{1, 2}, 3)) },
		"FromSlice", "needs 3 elements but the slice has 2")
	expectError(t, "Slice step", func() error { return discard(a.Slice(1, 0, 3, 0)) }, "Slice", "step must be positive")
	expectError(t, "Dropout p", func() error { return discard(torch.Dropout(a, 1.5, true)) }, "Dropout", "p must be in [0, 1]")
	expectError(t, "Item of many", func() error { _, err := a.Item(); return err }, "Item", "a Tensor with 6 elements cannot be converted to Scalar")
}

func TestErrorsIndices(t *testing.T) {
	weight := try(torch.Randn([]int64{4, 3})).must(t)
	fidx := try(torch.FromSlice([]float32{0, 1})).must(t)
	big := try(torch.FromSlice([]int64{0, 4})).must(t)
	neg := try(torch.FromSlice([]int32{-1})).must(t)
	closeLater(t, weight, fidx, big, neg)

	expectError(t, "Embedding float indices", func() error { return discard(torch.Embedding(fidx, weight)) },
		"Embedding", "indices must be int64 or int32, got Float")
	expectError(t, "Embedding out of range", func() error { return discard(torch.Embedding(big, weight)) },
		"Embedding", "index out of range", "[0, 4]", "4 embeddings")
	expectError(t, "Embedding negative", func() error { return discard(torch.Embedding(neg, weight)) },
		"Embedding", "index out of range")
	expectError(t, "LoraEmbedding out of range", func() error {
		a := try(torch.Zeros([]int64{2, 4})).must(t)
		bm := try(torch.Zeros([]int64{3, 2})).must(t)
		defer torch.CloseAll(a, bm)
		return discard(torch.LoraEmbedding(big, weight, a, bm, 1))
	}, "LoraEmbedding", "index out of range")
	expectError(t, "IndexSelect out of range", func() error { return discard(weight.IndexSelect(0, big)) },
		"IndexSelect", "out of range")
	expectError(t, "IndexSelect float index", func() error { return discard(weight.IndexSelect(0, fidx)) },
		"IndexSelect", "index_select(): Expected dtype int32 or int64 for index")
	expectError(t, "CrossEntropy target out of range", func() error {
		tgt := try(torch.FromSlice([]int64{1, 9, 0, 2})).must(t)
		defer tgt.Close()
		return discard(torch.CrossEntropy(weight, tgt, -100, torch.ReductionMean))
	}, "CrossEntropy", "out of bounds")
}

func TestErrorsDims(t *testing.T) {
	expectError(t, "Zeros negative size", func() error { return discard(torch.Zeros([]int64{-1, 3})) },
		"Zeros", "negative dimension -1")
	expectError(t, "Randn negative size", func() error { return discard(torch.Randn([]int64{2, -5})) },
		"Randn", "negative dimension -5")
	x := try(torch.Ones([]int64{2, 3})).must(t)
	closeLater(t, x)
	expectError(t, "Transpose out of range", func() error { return discard(x.Transpose(0, 5)) },
		"Transpose", "Dimension out of range", "got 5")
	expectError(t, "SumDims out of range", func() error { return discard(x.SumDims([]int64{7}, false)) },
		"SumDims", "Dimension out of range", "got 7")
	expectError(t, "MaxDim out of range", func() error {
		v, i, err := x.MaxDim(-3, false)
		torch.CloseAll(v, i)
		return err
	}, "MaxDim", "Dimension out of range")
	expectError(t, "Softmax out of range", func() error { return discard(x.Softmax(2)) }, "Softmax", "Dimension out of range")
	expectError(t, "Permute wrong count", func() error { return discard(x.Permute(0)) }, "Permute", "does not match the length of the desired ordering")
	expectError(t, "Narrow past end", func() error { return discard(x.Narrow(1, 2, 5)) }, "Narrow", "exceeds dimension size")
	expectError(t, "T of 3-D", func() error {
		y := try(torch.Ones([]int64{2, 2, 2})).must(t)
		defer y.Close()
		return discard(y.T())
	}, "T expects a tensor with <= 2 dims, got 3")
}

// TestErrorsCUDA asks for CUDA. Without CUDA the requests must fail with a
// clear message; with CUDA they must work (and a device index past the
// last must fail).
func TestErrorsCUDA(t *testing.T) {
	x := try(torch.Ones([]int64{2, 2})).must(t)
	closeLater(t, x)
	if !torch.CUDAIsAvailable() {
		assert.Equal(t, 0, torch.CUDADeviceCount())
		expectError(t, "To(CUDA(0))", func() error { return discard(x.To(torch.CUDA(0))) }, "To", "cuda:0", "CUDA is not available")
		expectError(t, "Zeros on CUDA", func() error {
			return discard(torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(0))))
		}, "Zeros", "CUDA is not available")
		expectError(t, "Arange on CUDA", func() error {
			return discard(torch.Arange(0, 3, 1, torch.WithDevice(torch.CUDA(0))))
		}, "Arange", "CUDA is not available")
		expectError(t, "Synchronize", func() error { return torch.Synchronize(0) }, "Synchronize", "CUDA is not available")
		return
	}
	// CUDA is present: the same requests run on it.
	y := try(x.To(torch.CUDA(0))).must(t)
	closeLater(t, y)
	assert.Equal(t, torch.CUDA(0), y.Device())
	assert.True(t, y.Device().IsCUDA())
	z := try(torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(0)))).must(t)
	closeLater(t, z)
	assert.Equal(t, torch.CUDA(0), z.Device())
	s := try(y.Sum()).must(t)
	closeLater(t, s)
	assert.Equal(t, 4.0, try(s.Item()).must(t))
	require.NoError(t, torch.Synchronize(0))
	back := try(y.To(torch.CPU)).must(t)
	closeLater(t, back)
	assert.Equal(t, []float32{1, 1, 1, 1}, try(torch.ToSlice[float32](back)).must(t))
	n := torch.CUDADeviceCount()
	expectError(t, "Zeros on a missing GPU", func() error {
		return discard(torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(n))))
	}, "Zeros", "out of range")
	expectError(t, "Add across devices", func() error { return discard(x.Add(y)) }, "Add", "same device")
}

func TestErrorsClosedTensor(t *testing.T) {
	x := try(torch.Ones([]int64{2, 2})).must(t)
	closeLater(t, x)
	c := try(torch.Ones([]int64{2, 2})).must(t)
	require.NoError(t, c.Close())

	cases := map[string]func() error{
		"Add(closed)": func() error { return discard(x.Add(c)) },
		"closed.Add":  func() error { return discard(c.Add(x)) },
		"MatMul":      func() error { return discard(c.MatMul(x)) },
		"Relu":        func() error { return discard(c.Relu()) },
		"Reshape":     func() error { return discard(c.Reshape(4)) },
		"SumDims":     func() error { return discard(c.SumDims([]int64{0}, true)) },
		"To":          func() error { return discard(c.To(torch.Float64)) },
		"Clone":       func() error { return discard(c.Clone()) },
		"Detach":      func() error { return discard(c.Detach()) },
		"Grad":        func() error { return discard(c.Grad()) },
		"Backward":    func() error { return c.Backward() },
		"Item":        func() error { _, err := c.Item(); return err },
		"ToSlice":     func() error { _, err := torch.ToSlice[float32](c); return err },
		"Size":        func() error { _, err := c.Size(); return err },
		"Fill_":       func() error { return c.Fill_(1) },
		"Copy_":       func() error { return x.Copy_(c) },
		"SetRequires": func() error { return c.SetRequiresGrad(true) },
		"IndexSelect": func() error { return discard(x.IndexSelect(0, c)) },
		"MaskedFill":  func() error { return discard(x.MaskedFill(c, 0)) },
	}
	for name, f := range cases {
		expectError(t, name, f, "use of closed tensor")
	}
	expectError(t, "Linear(closed weight)", func() error { return discard(torch.Linear(x, c, nil)) },
		"Linear", "weight: use of closed tensor")
	expectError(t, "Cat(closed)", func() error { return discard(torch.Cat([]*torch.Tensor{x, c}, 0)) },
		"Cat", "tensor 1: use of closed tensor")
	expectError(t, "SaveSafetensors(closed)", func() error {
		return torch.SaveSafetensors(filepath.Join(t.TempDir(), "x.safetensors"), map[string]*torch.Tensor{"c": c}, nil)
	}, "SaveSafetensors", `tensor "c"`, "use of closed tensor")
	var nilT *torch.Tensor
	expectError(t, "nil tensor", func() error { return discard(nilT.Neg()) }, "Neg", "nil tensor")

	// Op errors are *torch.Error values naming the op.
	err := discard(c.Neg())
	var te *torch.Error
	require.True(t, errors.As(err, &te))
	assert.Equal(t, "Neg", te.Op)
}

func TestErrorsBackward(t *testing.T) {
	x := try(torch.Ones([]int64{3})).must(t)
	s := try(x.Sum()).must(t)
	closeLater(t, x, s)
	expectError(t, "Backward without grad", s.Backward, "Backward", "does not require grad")

	require.NoError(t, x.SetRequiresGrad(true))
	y := try(x.MulScalar(2)).must(t)
	closeLater(t, y)
	expectError(t, "Backward of non-scalar", y.Backward, "Backward", "grad can be implicitly created only for scalar outputs")
}

// writeFile writes raw bytes into the test's temporary directory.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

// rawSafetensors builds a safetensors file from a header and a data buffer
// without any validation.
func rawSafetensors(t *testing.T, header map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...)
}

func TestErrorsSafetensors(t *testing.T) {
	good := rawSafetensors(t, map[string]any{
		"a": map[string]any{"dtype": "F32", "shape": []int{2, 2}, "data_offsets": []int{0, 16}},
		"b": map[string]any{"dtype": "I64", "shape": []int{1}, "data_offsets": []int{16, 24}},
	}, make([]byte, 24))
	ts, _, err := torch.LoadSafetensors(writeFile(t, "good.safetensors", good))
	require.NoError(t, err, "the well-formed base file must load")
	torch.CloseMap(ts)

	tenGB := binary.LittleEndian.AppendUint64(nil, 10_000_000_000)
	tenGB = append(tenGB, []byte(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`)...)

	cases := []struct {
		name string
		data []byte
		subs []string
	}{
		{"truncated data", good[:len(good)-5], []string{"truncated"}},
		{"truncated header", good[:20], []string{"header length", "exceeds file size"}},
		{"shorter than the length prefix", good[:5], []string{"file too short"}},
		{"empty file", nil, []string{"file too short"}},
		{"header claims 10 GB", tenGB, []string{"header length 10000000000 exceeds"}},
		{"overlapping offsets", rawSafetensors(t, map[string]any{
			"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
			"b": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{4, 12}},
		}, make([]byte, 12)), []string{"overlap"}},
		{"offsets disagree with shape", rawSafetensors(t, map[string]any{
			"a": map[string]any{"dtype": "F32", "shape": []int{3}, "data_offsets": []int{0, 8}},
		}, make([]byte, 8)), []string{`tensor "a"`, "needs 12 bytes"}},
		{"unknown dtype", rawSafetensors(t, map[string]any{
			"a": map[string]any{"dtype": "Q7", "shape": []int{1}, "data_offsets": []int{0, 1}},
		}, make([]byte, 1)), []string{"Q7"}},
		{"not JSON", append(binary.LittleEndian.AppendUint64(nil, 4), []byte("nope")...), []string{"JSON"}},
	}
	for _, c := range cases {
		path := writeFile(t, "bad.safetensors", c.data)
		expectError(t, c.name, func() error {
			ts, meta, err := torch.LoadSafetensors(path)
			if err == nil {
				torch.CloseMap(ts)
			}
			assert.Nil(t, ts, c.name)
			assert.Nil(t, meta, c.name)
			return err
		}, append([]string{"LoadSafetensors"}, c.subs...)...)
	}
	expectError(t, "missing file", func() error {
		_, _, err := torch.LoadSafetensors(filepath.Join(t.TempDir(), "nope.safetensors"))
		return err
	}, "no such file")
	expectError(t, "save into a missing directory", func() error {
		x := try(torch.Ones([]int64{1})).must(t)
		defer x.Close()
		return torch.SaveSafetensors(filepath.Join(t.TempDir(), "no", "dir", "x.safetensors"), map[string]*torch.Tensor{"x": x}, nil)
	}, "SaveSafetensors")
}
