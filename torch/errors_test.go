package torch_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Bad inputs must come back as errors, never as panics or crashes, with a
// message that names the problem and carries no C++ backtrace or source
// location.

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
	assert.NotContainsf(t, msg, ".cpp:", "%s: C++ source location in %q", name, msg)
	t.Logf("%s: %s", name, msg)
}

// errOf returns x's error and closes x: the result of a call that should
// have failed.
func errOf(x *torch.Tensor) error {
	err := x.Err()
	x.Close()
	return err
}

func TestErrorsShapes(t *testing.T) {
	s := testScope(t)
	a := torch.Ones([]int64{2, 3}, torch.In(s))
	b := torch.Ones([]int64{4, 5}, torch.In(s))
	w := torch.Ones([]int64{5, 4}, torch.In(s))
	require.NoError(t, s.Err())

	expectError(t, "MatMul shape mismatch", func() error { return errOf(a.MatMul(b)) },
		"MatMul", "shapes cannot be multiplied", "2x3", "4x5")
	expectError(t, "Mm shape mismatch", func() error { return errOf(a.Mm(b)) }, "Mm", "2x3", "4x5")
	expectError(t, "Linear shape mismatch", func() error { return errOf(a.Linear(w, nil)) },
		"Linear", "input last dim is 3", "in_features=4")
	expectError(t, "Add broadcast", func() error { return errOf(a.Add(b)) }, "Add", "size of tensor a (3) must match")
	expectError(t, "View incompatible", func() error { return errOf(a.T().View(6)) }, "View", "view size is not compatible")
	expectError(t, "Reshape numel", func() error { return errOf(a.Reshape(4, 2)) }, "Reshape", "invalid for input of size 6")
	expectError(t, "Cat empty", func() error { return errOf(torch.Cat(nil, 0)) }, "Cat", "no tensors")
	expectError(t, "MSELoss shapes", func() error { return errOf(torch.MSELoss(a, b, torch.ReductionMean)) },
		"MSELoss", "input shape [2, 3] != target shape [4, 5]")
	expectError(t, "FromSlice count", func() error { return errOf(torch.FromSlice([]float32{1, 2}, 3)) },
		"FromSlice", "needs 3 elements but the slice has 2")
	expectError(t, "Slice step", func() error { return errOf(a.Slice(1, 0, 3, 0)) }, "Slice", "step", "step must be positive")
	expectError(t, "Dropout p", func() error { return errOf(torch.Dropout(a, 1.5, true)) }, "Dropout", "p must be in [0, 1]")
	expectError(t, "Item of many", func() error { _, err := a.Item(); return err }, "Item", "a Tensor with 6 elements cannot be converted to Scalar")
}

func TestErrorsIndices(t *testing.T) {
	s := testScope(t)
	weight := torch.Randn([]int64{4, 3}, torch.In(s))
	fidx := s.Own(torch.FromSlice([]float32{0, 1}))
	big := s.Own(torch.FromSlice([]int64{0, 4}))
	neg := s.Own(torch.FromSlice([]int32{-1}))
	require.NoError(t, s.Err())

	expectError(t, "Embedding float indices", func() error { return errOf(torch.Embedding(fidx, weight)) },
		"Embedding", "indices must be int64 or int32, got Float")
	expectError(t, "Embedding out of range", func() error { return errOf(torch.Embedding(big, weight)) },
		"Embedding", "index out of range", "[0, 4]", "4 embeddings")
	expectError(t, "Embedding negative", func() error { return errOf(torch.Embedding(neg, weight)) },
		"Embedding", "index out of range")
	expectError(t, "LoraEmbedding out of range", func() error {
		a := torch.Zeros([]int64{2, 4}, torch.In(s))
		bm := torch.Zeros([]int64{3, 2}, torch.In(s))
		return errOf(torch.LoraEmbedding(big, weight, a, bm, 1))
	}, "LoraEmbedding", "index out of range")
	expectError(t, "IndexSelect out of range", func() error { return errOf(weight.IndexSelect(0, big)) },
		"IndexSelect", "out of range")
	expectError(t, "IndexSelect float index", func() error { return errOf(weight.IndexSelect(0, fidx)) },
		"IndexSelect", "index_select(): Expected dtype int32 or int64 for index")
	expectError(t, "CrossEntropy target out of range", func() error {
		tgt := s.Own(torch.FromSlice([]int64{1, 9, 0, 2}))
		return errOf(torch.CrossEntropy(weight, tgt, -100, torch.ReductionMean))
	}, "CrossEntropy", "out of bounds")
}

func TestErrorsDims(t *testing.T) {
	expectError(t, "Zeros negative size", func() error { return errOf(torch.Zeros([]int64{-1, 3})) },
		"Zeros", "negative dimension -1")
	expectError(t, "Randn negative size", func() error { return errOf(torch.Randn([]int64{2, -5})) },
		"Randn", "negative dimension -5")
	s := testScope(t)
	x := torch.Ones([]int64{2, 3}, torch.In(s))
	expectError(t, "Transpose out of range", func() error { return errOf(x.Transpose(0, 5)) },
		"Transpose", "Dimension out of range", "got 5")
	expectError(t, "SumDims out of range", func() error { return errOf(x.SumDims([]int64{7}, false)) },
		"SumDims", "Dimension out of range", "got 7")
	expectError(t, "MaxDim out of range", func() error {
		v, i := x.MaxDim(-3, false)
		assert.Equal(t, v.Err(), i.Err(), "both results of a failed MaxDim carry its error")
		return errOf(v)
	}, "MaxDim", "Dimension out of range")
	expectError(t, "Softmax out of range", func() error { return errOf(x.Softmax(2)) }, "Softmax", "Dimension out of range")
	expectError(t, "Permute wrong count", func() error { return errOf(x.Permute(0)) }, "Permute", "does not match the length of the desired ordering")
	expectError(t, "Narrow past end", func() error { return errOf(x.Narrow(1, 2, 5)) }, "Narrow", "exceeds dimension size")
	expectError(t, "T of 3-D", func() error {
		return errOf(torch.Ones([]int64{2, 2, 2}, torch.In(s)).T())
	}, "T expects a tensor with <= 2 dims, got 3")
}

// TestErrorsCUDA asks for CUDA. Without CUDA the requests must fail with a
// clear message; with CUDA they must work (and a device index past the
// last must fail).
func TestErrorsCUDA(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2, 2}, torch.In(s))
	if !torch.CUDAIsAvailable() {
		assert.Equal(t, 0, torch.CUDADeviceCount())
		expectError(t, "To(CUDA(0))", func() error { return errOf(x.To(torch.CUDA(0))) }, "To", "device", "cuda:0", "CUDA is not available")
		expectError(t, "Zeros on CUDA", func() error {
			return errOf(torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(0))))
		}, "Zeros", "CUDA is not available")
		expectError(t, "Arange on CUDA", func() error {
			return errOf(torch.Arange(0, 3, 1, torch.WithDevice(torch.CUDA(0))))
		}, "Arange", "CUDA is not available")
		expectError(t, "Synchronize", func() error { return torch.Synchronize(0) }, "Synchronize", "CUDA is not available")
		expectError(t, "RNGState(CUDA(0))", func() error { return errOf(torch.RNGState(torch.CUDA(0))) }, "RNGState", "CUDA is not available")
		return
	}
	// CUDA is present: the same requests run on it.
	y := x.To(torch.CUDA(0))
	assert.Equal(t, torch.CUDA(0), y.Device())
	assert.True(t, y.Device().IsCUDA())
	z := torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(0)), torch.In(s))
	assert.Equal(t, torch.CUDA(0), z.Device())
	assert.Equal(t, 4.0, item(t, y.Sum()))
	require.NoError(t, torch.Synchronize(0))
	assert.Equal(t, []float32{1, 1, 1, 1}, vals[float32](t, y.To(torch.CPU)))
	require.NoError(t, s.Err())
	n := torch.CUDADeviceCount()
	expectError(t, "Zeros on a missing GPU", func() error {
		return errOf(torch.Zeros([]int64{2}, torch.WithDevice(torch.CUDA(n))))
	}, "Zeros", "out of range")
	expectError(t, "Add across devices", func() error { return errOf(x.Add(y)) }, "Add", "same device")

	// Out-of-range indices on CUDA are Go errors, checked before the
	// kernel: a device-side assert would lose the CUDA context, and the
	// ops after them would fail too.
	cuda := torch.WithDevice(torch.CUDA(0))
	w := torch.Ones([]int64{4, 3}, cuda, torch.In(s))
	big := torch.FromSlice([]int64{0, 4}).To(torch.CUDA(0))
	s.Own(big)
	expectError(t, "Embedding on CUDA out of range", func() error { return errOf(torch.Embedding(big, w)) },
		"Embedding", "index out of range", "[0, 4]", "4 embeddings")
	expectError(t, "EmbeddingPadded on CUDA out of range", func() error { return errOf(torch.EmbeddingPadded(big, w, 0)) },
		"EmbeddingPadded", "index 4 is out of range")
	tgt := s.Own(torch.FromSlice([]int64{1, 9, 0, 2}).To(torch.CUDA(0)))
	logits := torch.Ones([]int64{4, 3}, cuda, torch.In(s))
	expectError(t, "CrossEntropy on CUDA out of range", func() error {
		return errOf(torch.CrossEntropy(logits, tgt, -100, torch.ReductionMean))
	}, "CrossEntropy", "target 9 is out of bounds for 3 classes")
	expectError(t, "NLLLoss on CUDA out of range", func() error {
		return errOf(torch.NLLLoss(logits, tgt, nil, torch.ReductionMean, -100))
	}, "NLLLoss", "target 9 is out of bounds")
	require.NoError(t, torch.Synchronize(0), "the CUDA context survives")
	assert.Equal(t, 12.0, item(t, w.Sum()))
}

func TestErrorsClosedTensor(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2, 2}, torch.In(s))
	c := torch.Ones([]int64{2, 2}, torch.In(s))
	require.NoError(t, c.Close())

	cases := map[string]func() error{
		"Add(closed)":  func() error { return errOf(x.Add(c)) },
		"closed.Add":   func() error { return errOf(c.Add(x)) },
		"MatMul":       func() error { return errOf(c.MatMul(x)) },
		"Relu":         func() error { return errOf(c.Relu()) },
		"Reshape":      func() error { return errOf(c.Reshape(4)) },
		"SumDims":      func() error { return errOf(c.SumDims([]int64{0}, true)) },
		"To":           func() error { return errOf(c.To(torch.Float64)) },
		"Clone":        func() error { return errOf(c.Clone()) },
		"Detach":       func() error { return errOf(c.Detach()) },
		"Grad":         func() error { return errOf(c.Grad()) },
		"Alias":        func() error { return errOf(c.Alias()) },
		"Cos":          func() error { return errOf(c.Cos()) },
		"Backward":     func() error { return c.Backward() },
		"Item":         func() error { _, err := c.Item(); return err },
		"ToSlice":      func() error { _, err := torch.ToSlice[float32](c); return err },
		"Size":         func() error { _, err := c.Size(); return err },
		"Fill_":        func() error { return c.Fill_(1) },
		"Copy_":        func() error { return errOf(x.Copy_(c)) },
		"Mul_":         func() error { return errOf(x.Mul_(c)) },
		"SetData":      func() error { return x.SetData(c) },
		"SetRequires":  func() error { return c.SetRequiresGrad(true) },
		"IndexSelect":  func() error { return errOf(x.IndexSelect(0, c)) },
		"MaskedFill":   func() error { return errOf(x.MaskedFill(c, 0)) },
		"SetRNGState":  func() error { return torch.SetRNGState(torch.CPU, c) },
		"Own":          func() error { return errOf(torch.NewScope().Own(c)) },
		"Call":         func() error { _, err := torch.Call("aten::cos", "", c); return err },
		"Call in list": func() error { _, err := torch.Call("aten::cat", "", []*torch.Tensor{x, c}, 0); return err },
	}
	for name, f := range cases {
		expectError(t, name, f, "use of closed tensor")
	}
	expectError(t, "Linear(closed weight)", func() error { return errOf(x.Linear(c, nil)) },
		"Linear", "weight: use of closed tensor")
	expectError(t, "Cat(closed)", func() error { return errOf(torch.Cat([]*torch.Tensor{x, c}, 0)) },
		"Cat", "tensors[1]: use of closed tensor")
	expectError(t, "SaveSafetensors(closed)", func() error {
		return torch.SaveSafetensors(filepath.Join(t.TempDir(), "x.safetensors"), map[string]*torch.Tensor{"c": c}, nil)
	}, "SaveSafetensors", `tensor "c"`, "use of closed tensor")
	var nilT *torch.Tensor
	expectError(t, "nil tensor", func() error { return errOf(nilT.Neg()) }, "Neg", "self: nil tensor")
	expectError(t, "nil operand", func() error { return errOf(x.Add(nil)) }, "Add", "other: nil tensor")
	expectError(t, "FirstErr(nil)", func() error { return torch.FirstErr(x, nil) }, "tensor 1", "nil tensor")

	// Op errors are *torch.Error values naming the op and the argument.
	err := errOf(c.Neg())
	var te *torch.Error
	require.True(t, errors.As(err, &te))
	assert.Equal(t, "Neg", te.Op)
	assert.Equal(t, "self", te.Arg)
	assert.Equal(t, "use of closed tensor", te.Msg)
	te2, isErr := torch.AsError(err)
	require.True(t, isErr)
	assert.Same(t, te, te2)
	_, isErr = torch.AsError(errors.New("plain"))
	assert.False(t, isErr)
}

func TestErrorsBackward(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{3}, torch.In(s))
	expectError(t, "Backward without grad", x.Sum().Backward, "Backward", "does not require grad")

	require.NoError(t, x.SetRequiresGrad(true))
	expectError(t, "Backward of non-scalar", x.MulScalar(2).Backward, "Backward", "grad can be implicitly created only for scalar outputs")
}

// TestStickyErrorChain: a chain whose first op fails returns a failed
// tensor carrying that op's error (op, message, the caller's line); the
// later ops do not run, and the scope reports the same error.
func TestStickyErrorChain(t *testing.T) {
	start := reftest.SettledLiveTensors()
	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{2, 3}, torch.In(s))
	w := torch.Randn([]int64{4, 5}, torch.In(s)) // Linear needs (4, 3)
	b := torch.Zeros([]int64{4}, torch.In(s))
	y := torch.Randn([]int64{2, 4}, torch.In(s))
	require.NoError(t, s.Err())
	made := torch.LiveTensors()

	_, _, line, _ := runtime.Caller(0)
	out := x.Linear(w, b).Gelu().Add(y) // this line is line+1
	err := out.Err()
	require.Error(t, err)
	te, isErr := torch.AsError(err)
	require.True(t, isErr, "%T", err)
	assert.Equal(t, "Linear", te.Op)
	assert.Contains(t, te.Msg, "input last dim is 3")
	where := fmt.Sprintf("errors_test.go:%d", line+1)
	assert.Equal(t, where, te.Where, "Where is the line of the chain in the caller")
	assert.Equal(t, "torch: Linear: "+te.Msg+" (at "+where+")", err.Error())
	assert.True(t, out.Closed())

	// Gelu and Add did not run: they made no tensor, and an op that would
	// fail on its own (no shape has -7 elements) passes the first error on
	// unchanged instead of reporting its own.
	assert.Equal(t, made, torch.LiveTensors(), "the ops after the failure allocated nothing")
	later := out.Reshape(-7).Softmax(9).MatMul(y)
	require.True(t, later.Err() == err, "later ops pass the very same error on, got %v", later.Err())
	v, idx := out.MaxDim(0, false)
	assert.True(t, v.Err() == err && idx.Err() == err)
	_, gotErr := out.Item()
	assert.True(t, gotErr == err)
	assert.True(t, out.Backward() == err)
	_, gotErr = torch.ToSlice[float32](out)
	assert.True(t, gotErr == err)
	assert.Equal(t, made, torch.LiveTensors())

	// The scope saw the first error, and a later failure does not replace it.
	assert.True(t, s.Err() == err, "Scope.Err is the first error: %v", s.Err())
	require.Error(t, x.Reshape(5).Err())
	assert.True(t, s.Err() == err)
	assert.True(t, torch.FirstErr(x, out, later) == err)

	// Done reports it, returns no result and frees the scope.
	res, doneErr := s.Done(y)
	assert.Nil(t, res)
	assert.True(t, doneErr == err, "Done returns the scope's first error: %v", doneErr)
	assert.Equal(t, start, torch.LiveTensors())
	assert.Panics(t, func() { out.Must() })
}

// TestStickyErrorLaterOp: the failing op may be anywhere in the chain; the
// error names it.
func TestStickyErrorLaterOp(t *testing.T) {
	s := testScope(t)
	x := torch.Randn([]int64{2, 3}, torch.In(s))
	w := torch.Randn([]int64{4, 3}, torch.In(s))
	bad := torch.Randn([]int64{3, 4}, torch.In(s))
	err := x.Linear(w, nil).Gelu().Add(bad).Relu().Err()
	assert.Equal(t, "Add", errOp(err))
	assert.Contains(t, err.Error(), "must match the size of tensor b")
	assert.True(t, s.Err() == err)
}

// TestErrorsNameTheArgument: a nil, closed or failed-validation operand is
// named in the error, by its name in the op's signature.
func TestErrorsNameTheArgument(t *testing.T) {
	s := testScope(t)
	x := torch.Zeros([]int64{2, 3}, torch.In(s))
	w := torch.Zeros([]int64{4, 3}, torch.In(s))
	closed := ok(t, torch.Ones([]int64{2, 3}).To(torch.Bool))
	require.NoError(t, closed.Close())

	for _, c := range []struct {
		name   string
		result *torch.Tensor
		op     string
		arg    string
		msg    string
	}{
		{"MaskedFill nil mask", x.MaskedFill(nil, 1), "MaskedFill", "mask", "nil tensor"},
		{"MaskedFill closed mask", x.MaskedFill(closed, 1), "MaskedFill", "mask", "use of closed tensor"},
		{"MaskedFill_ closed mask", x.MaskedFill_(closed, 1), "MaskedFill_", "mask", "use of closed tensor"},
		{"Where closed other (dispatcher)", torch.Where(x.GtScalar(0), x, closed), "Where", "other", "use of closed tensor"},
		{"Cos closed (dispatcher)", closed.Cos(), "Cos", "self", "use of closed tensor"},
		{"Linear nil weight", x.Linear(nil, nil), "Linear", "weight", "nil tensor"},
		{"Linear closed bias", x.Linear(w, closed), "Linear", "bias", "use of closed tensor"},
		{"Linear nil input", torch.Linear(nil, w, nil), "Linear", "input", "nil tensor"},
		{"Add nil", x.Add(nil), "Add", "other", "nil tensor"},
		{"Cat nil entry", torch.Cat([]*torch.Tensor{x, nil}, 0), "Cat", "tensors[1]", "nil tensor"},
		{"Embedding nil indices", torch.Embedding(nil, w), "Embedding", "indices", "nil tensor"},
		{"SDPA closed mask", torch.ScaledDotProductAttention(x, x, x, closed, 0, false), "ScaledDotProductAttention", "attn_mask", "use of closed tensor"},
		{"Slice step", x.Slice(0, 0, 1, -1), "Slice", "step", "step must be positive"},
		{"To dtype", x.To(torch.DType(77)), "To", "dtype", "unsupported dtype"},
		{"FromSlice shape", torch.FromSlice([]float32{1}, 2), "FromSlice", "shape", "needs 2 elements"},
	} {
		e, isErr := torch.AsError(c.result.Err())
		if !assert.Truef(t, isErr, "%s: error %v", c.name, c.result.Err()) {
			continue
		}
		assert.Equal(t, c.op, e.Op, c.name)
		if c.arg != "" {
			assert.Equal(t, c.arg, e.Arg, c.name)
			assert.Contains(t, e.Error(), c.op+": "+c.arg+": ", c.name)
		}
		assert.Contains(t, e.Msg, c.msg, c.name)
		assert.Regexp(t, `^errors_test\.go:\d+$`, e.Where, c.name)
	}
	require.NoError(t, torch.FirstErr(x, w))
}

// TestErrorsNoCppLocation: libtorch's messages lose their C++ source
// locations ("[enforce fail at alloc_cpu.cpp:75] err == 0. ", "file.cpp:12").
func TestErrorsNoCppLocation(t *testing.T) {
	// 10^15 float32 elements: 4 PB, more than any address space.
	err := torch.Zeros([]int64{1000000, 1000000, 1000}).Err()
	require.Error(t, err)
	msg := err.Error()
	t.Log(msg)
	assert.Contains(t, msg, "Zeros")
	assert.Contains(t, msg, "can't allocate memory")
	assert.NotContains(t, msg, "alloc_cpu.cpp")
	assert.NotContains(t, msg, "[enforce fail")
	assert.NotContains(t, msg, ".cpp")

	x := testScope(t).Own(torch.Ones([]int64{2, 3}))
	err = x.Narrow(5, 0, 1).Err()
	require.Error(t, err)
	msg = err.Error()
	t.Log(msg)
	assert.Contains(t, msg, "Narrow")
	assert.Contains(t, msg, "Dimension out of range")
	assert.NotContains(t, msg, ".cpp:")
	assert.NotContains(t, msg, "Exception raised from")
}

// TestMaskedFillNeedsBoolMask: a float mask is an error. libtorch 1.13
// takes a float mask of all 1.0 and silently fills nothing.
func TestMaskedFillNeedsBoolMask(t *testing.T) {
	s := testScope(t)
	x := torch.Zeros([]int64{2, 2}, torch.In(s))
	ones := torch.Ones([]int64{2, 2}, torch.In(s)) // float32 1.0 everywhere

	err := x.MaskedFill(ones, 5).Err()
	require.Error(t, err)
	assert.Equal(t, "MaskedFill", errOp(err))
	assert.Contains(t, err.Error(), "mask must be a bool tensor, got float32")

	err = x.MaskedFill_(ones, 5).Err()
	require.Error(t, err)
	assert.Equal(t, "MaskedFill_", errOp(err))
	assert.Contains(t, err.Error(), "mask must be a bool tensor")
	assert.Equal(t, []float32{0, 0, 0, 0}, vals[float32](t, x), "a refused in-place fill leaves x alone")

	u8 := ones.To(torch.Uint8)
	require.Error(t, x.MaskedFill(u8, 5).Err(), "a uint8 mask is refused too")

	// The bool mask does what the float one seemed to ask for.
	assert.Equal(t, []float32{5, 5, 5, 5}, vals[float32](t, x.MaskedFill(ones.To(torch.Bool), 5)))
	assert.Same(t, x, x.MaskedFill_(ones.To(torch.Bool), 3))
	assert.Equal(t, []float32{3, 3, 3, 3}, vals[float32](t, x))
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
		x := ok(t, torch.Ones([]int64{1}))
		defer x.Close()
		return torch.SaveSafetensors(filepath.Join(t.TempDir(), "no", "dir", "x.safetensors"), map[string]*torch.Tensor{"x": x}, nil)
	}, "SaveSafetensors")
}
