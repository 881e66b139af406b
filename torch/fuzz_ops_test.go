package torch_test

import (
	"testing"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// fuzzBytes hands out the fuzz input a byte at a time (zero once spent).
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}

// dim is a size in 0..8.
func (b *fuzzBytes) dim() int64 { return int64(b.next() % 9) }

// arg is a small signed argument in -6..9: dims, negative and out of
// range, strides, padding, groups.
func (b *fuzzBytes) arg() int64 { return int64(b.next()%16) - 6 }

func (b *fuzzBytes) shape() []int64 {
	s := make([]int64, b.next()%5)
	for i := range s {
		s[i] = b.dim()
	}
	return s
}

var fuzzDTypes = []torch.DType{torch.Float32, torch.Float64, torch.Int64, torch.Bool, torch.BFloat16, torch.Float16}

func (b *fuzzBytes) dtype() torch.DType { return fuzzDTypes[int(b.next())%len(fuzzDTypes)] }

// tensor makes a tensor of a random small shape and dtype in s.
func (b *fuzzBytes) tensor(s *torch.Scope) *torch.Tensor {
	shape, dt := b.shape(), b.dtype()
	return torch.Rand(shape, torch.In(s)).MulScalar(8).To(dt)
}

// leakSlack is how many tensors over the baseline a fuzz call may leave
// to the finalizers before the leak check settles them.
const leakSlack = 200

// FuzzOps decodes the input into shapes (rank 0..4, dims 0..8), dtypes
// and arguments, and calls Linear, Embedding, MatMul, Cat, Stack,
// View/Reshape, Conv2d and ScaledDotProductAttention with them: every
// call gives a value or an error, never a panic or an abort, and the
// scope frees every tensor (none leaks).
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 2, 3, 4, 0, 2, 5, 4, 0})
	f.Add([]byte{1, 2, 3, 4, 1, 1, 2, 4, 2, 4, 0, 0, 0})
	f.Add([]byte{2, 3, 2, 3, 4, 0, 3, 2, 4, 5, 0, 7})
	f.Add([]byte{3, 2, 2, 3, 0, 2, 2, 5, 0, 6, 2})
	f.Add([]byte{4, 2, 2, 3, 0, 8, 7, 6})
	f.Add([]byte{5, 4, 1, 2, 5, 5, 0, 4, 2, 2, 3, 3, 0, 1, 8, 7, 8, 6, 7, 8, 6})
	f.Add([]byte{6, 4, 1, 2, 3, 4, 0, 4, 1, 2, 3, 4, 0, 4, 1, 2, 3, 4, 0, 0, 0, 1})
	f.Add([]byte{7, 1, 0, 0, 2, 0, 8, 0})
	f.Add([]byte{8, 4, 0, 8, 0, 8, 3, 9})
	f.Add([]byte{})
	live := reftest.SettledLiveTensors()
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		s := torch.NewScope()
		var out *torch.Tensor
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic: %v", p)
				}
			}()
			switch b.next() % 9 {
			case 0:
				out = torch.Linear(b.tensor(s), b.tensor(s), nil)
			case 1:
				x, w := b.tensor(s), b.tensor(s)
				var bias *torch.Tensor
				if b.next()%2 == 0 {
					bias = b.tensor(s)
				}
				out = x.Linear(w, bias)
			case 2:
				idx := torch.Full(b.shape(), float64(b.arg()), torch.WithDType(torch.Int64), torch.In(s))
				out = torch.Embedding(idx, b.tensor(s))
			case 3:
				out = b.tensor(s).MatMul(b.tensor(s))
			case 4:
				ts := make([]*torch.Tensor, b.next()%4)
				for i := range ts {
					ts[i] = b.tensor(s)
				}
				if b.next()%2 == 0 {
					out = torch.Cat(ts, b.arg())
				} else {
					out = torch.Stack(ts, b.arg())
				}
			case 5:
				x := b.tensor(s)
				shape := make([]int64, b.next()%5)
				for i := range shape {
					shape[i] = b.arg()
				}
				if b.next()%2 == 0 {
					out = x.View(shape...)
				} else {
					out = x.Reshape(shape...)
				}
			case 6:
				x, w := b.tensor(s), b.tensor(s)
				var bias *torch.Tensor
				if b.next()%2 == 0 {
					bias = b.tensor(s)
				}
				o := torch.Conv2dOptions{
					Stride:   [2]int64{b.arg(), b.arg()},
					Padding:  [2]int64{b.arg(), b.arg()},
					Dilation: [2]int64{b.arg(), b.arg()},
					Groups:   b.arg(),
				}
				out = torch.Conv2d(x, w, bias, o)
			default:
				q, k, v := b.tensor(s), b.tensor(s), b.tensor(s)
				var mask *torch.Tensor
				if b.next()%2 == 0 {
					mask = b.tensor(s)
				}
				dropout := float64(b.arg()) / 4
				out = torch.ScaledDotProductAttention(q, k, v, mask, dropout, b.next()%2 == 0)
			}
		}()
		if out == nil {
			t.Fatal("an op returned nil, not a tensor or a failed tensor")
		}
		if err := out.Err(); err == nil {
			// A value: its shape is readable and its data converts.
			_ = out.Shape()
			if _, err := torch.ToSlice[float64](out.To(torch.Float64)); err != nil {
				t.Fatalf("reading a result: %v", err)
			}
		} else if err.Error() == "" {
			t.Fatal("an empty error")
		}
		s.Close()
		// The scope freed everything: settle only when many are pending
		// (a leak grows past any slack).
		if n := torch.LiveTensors(); n > live+leakSlack {
			if settled := reftest.SettledLiveTensors(); settled > live {
				t.Fatalf("%d live tensors, %d before", settled, live)
			}
		}
	})
}
