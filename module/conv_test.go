package module_test

// Conv1D and Conv2d against PyTorch (testdata/gen_conv.py): seeded
// initialisation bitwise, forward and gradients.

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func loadConvRefs(t *testing.T) *reftest.File {
	t.Helper()
	return reftest.Load(t, "testdata/conv_refs.safetensors", "/usr/bin/python3 module/testdata/gen_conv.py")
}

// checkFwdBwd runs layer on the reference input and compares the output and
// the gradients of (out * w).sum() with PyTorch's.
func checkFwdBwd(t *testing.T, r *reftest.File, name string, layer module.Layer, weight, bias *torch.Tensor) {
	t.Helper()
	s := newScope(t)
	x := s.Own(r.Tensor(t, name+".x").Clone())
	require.NoError(t, x.SetRequiresGrad(true))
	out := layer.Forward(x)
	reftest.RequireClose(t, "out", out, r.Tensor(t, name+".out"), 1e-5)
	loss := out.Mul(s.Own(r.Tensor(t, name+".w").Clone())).Sum()
	require.NoError(t, loss.Backward())
	reftest.RequireClose(t, "grad_x", s.Own(x.Grad()), r.Tensor(t, name+".grad_x"), 1e-5)
	reftest.RequireClose(t, "grad_weight", s.Own(weight.Grad()), r.Tensor(t, name+".grad_weight"), 1e-5)
	reftest.RequireClose(t, "grad_bias", s.Own(bias.Grad()), r.Tensor(t, name+".grad_bias"), 1e-5)
}

func TestConv2dMatchesPyTorch(t *testing.T) {
	r := loadConvRefs(t)
	var cases []struct {
		Name                    string
		In, Out                 int64
		Kernel, Stride, Padding []int64
		Dilation                []int64
		Groups                  int64
		Bias                    bool
		Seed                    uint64
	}
	r.DecodeMeta(t, "conv2d", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			o := torch.Conv2dOptions{
				Stride:   [2]int64{c.Stride[0], c.Stride[1]},
				Padding:  [2]int64{c.Padding[0], c.Padding[1]},
				Dilation: [2]int64{c.Dilation[0], c.Dilation[1]},
				Groups:   c.Groups,
			}
			require.NoError(t, torch.ManualSeed(c.Seed))
			m, err := module.NewConv2d(c.In, c.Out, [2]int64{c.Kernel[0], c.Kernel[1]}, c.Bias, o)
			require.NoError(t, err)
			defer module.Close(m)
			reftest.RequireBitwise(t, "weight", m.Weight, r.Tensor(t, c.Name+".weight"))
			require.Equal(t, c.In, m.InChannels())
			require.Equal(t, c.Out, m.OutChannels())
			require.Equal(t, [2]int64{c.Kernel[0], c.Kernel[1]}, m.KernelSize())
			if !c.Bias {
				require.Nil(t, m.Bias)
				require.Equal(t, []string{"weight"}, names(m))
				return
			}
			reftest.RequireBitwise(t, "bias", m.Bias, r.Tensor(t, c.Name+".bias"))
			require.Equal(t, []string{"weight", "bias"}, names(m))
			checkFwdBwd(t, r, c.Name, m, m.Weight, m.Bias)
		})
	}
}

func TestConv1DMatchesTransformers(t *testing.T) {
	r := loadConvRefs(t)
	var cases []struct {
		Name    string
		In, Out int64
		Seed    uint64
	}
	r.DecodeMeta(t, "conv1d", &cases)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			require.NoError(t, torch.ManualSeed(c.Seed))
			m, err := module.NewConv1D(c.In, c.Out)
			require.NoError(t, err)
			defer module.Close(m)
			reftest.RequireBitwise(t, "weight", m.Weight, r.Tensor(t, c.Name+".weight"))
			reftest.RequireBitwise(t, "bias", m.Bias, r.Tensor(t, c.Name+".bias"))
			require.Equal(t, c.In, m.InFeatures())
			require.Equal(t, c.Out, m.OutFeatures())
			require.Equal(t, []string{"weight", "bias"}, names(m))

			fw, err := module.Conv1DFrom(r.Tensor(t, c.Name+".weight").Clone(), r.Tensor(t, c.Name+".fwd_bias").Clone())
			require.NoError(t, err)
			defer module.Close(fw)
			checkFwdBwd(t, r, c.Name, fw, fw.Weight, fw.Bias)
		})
	}
}

func TestConvBadInput(t *testing.T) {
	_, err := module.NewConv1D(0, 3)
	require.ErrorContains(t, err, "must be positive")
	_, err = module.NewConv2d(3, 4, [2]int64{0, 3}, true, torch.Conv2dOptions{})
	require.ErrorContains(t, err, "kernel size")
	_, err = module.NewConv2d(3, 4, [2]int64{3, 3}, true, torch.Conv2dOptions{Groups: 2})
	require.ErrorContains(t, err, "groups 2 must divide")

	s := newScope(t)
	w := s.Own(torch.Zeros([]int64{4, 3}))
	_, err = module.Conv1DFrom(w, s.Own(torch.Zeros([]int64{4})))
	require.ErrorContains(t, err, "does not match out features 3")
	_, err = module.Conv2dFrom(w, nil, torch.Conv2dOptions{})
	require.ErrorContains(t, err, "must be 4-D")

	c, err := module.NewConv1D(4, 3)
	require.NoError(t, err)
	defer module.Close(c)
	_, err = s.Done(c.Forward(s.Own(torch.Zeros([]int64{2, 5}))))
	require.ErrorContains(t, err, "Conv1D")
	s2 := newScope(t)
	_, err = s2.Done(c.Forward(nil))
	require.Error(t, err)
	d, err := module.NewConv2d(3, 4, [2]int64{3, 3}, true, torch.Conv2dOptions{})
	require.NoError(t, err)
	defer module.Close(d)
	s3 := newScope(t)
	_, err = s3.Done(d.Forward(s3.Own(torch.Zeros([]int64{1, 2, 5, 5}))))
	require.ErrorContains(t, err, "Conv2d")
}

// A single row through a large Conv1D (decoding one token with GPT-2)
// takes libcgotorch's matrix-vector kernel: x·W + b to float32 rounding
// (checked against a float64 sum), and without a scope on x the result
// outlives the call. With autograd on, it is libtorch's addmm, bit for
// bit the multi-row result, and W's gradient for sum(y) is x in each
// column. Nothing leaks either way.
func TestConv1DOneRow(t *testing.T) {
	const in, out = 768, 2304
	start := reftest.SettledLiveTensors()
	require.NoError(t, torch.ManualSeed(5))
	m, err := module.NewConv1D(in, out)
	require.NoError(t, err)
	x := torch.Randn([]int64{1, 1, in})
	xs, err := torch.ToSlice[float32](x)
	require.NoError(t, err)
	w, err := torch.ToSlice[float32](m.Weight)
	require.NoError(t, err)
	b, err := torch.ToSlice[float32](m.Bias)
	require.NoError(t, err)

	var y *torch.Tensor
	require.NoError(t, torch.NoGrad(func() error { y = m.Forward(x); return y.Err() }))
	require.Equal(t, []int64{1, 1, out}, y.Shape())
	got, err := torch.ToSlice[float32](y)
	require.NoError(t, err)
	for j := 0; j < out; j++ {
		sum, mag := float64(b[j]), math.Abs(float64(b[j]))
		for i := 0; i < in; i++ {
			p := float64(xs[i]) * float64(w[i*out+j])
			sum += p
			mag += math.Abs(p)
		}
		require.InDelta(t, sum, float64(got[j]), in*math.Pow(2, -23)*mag/4, "column %d", j)
	}
	y.Close()

	// With autograd: addmm, as for several rows.
	two := torch.Cat([]*torch.Tensor{x, x}, 1)
	y1, y2 := m.Forward(x), m.Forward(two)
	reftest.RequireBitwise(t, "one row against two", y1, y2.Narrow(1, 0, 1))
	require.NoError(t, y1.Sum().Backward())
	g, err := torch.ToSlice[float32](m.Weight.Grad())
	require.NoError(t, err)
	for i := 0; i < in; i++ {
		for j := 0; j < out; j += 97 {
			require.Equal(t, xs[i], g[i*out+j], "grad[%d,%d]", i, j)
		}
	}
	torch.CloseAll(x, two, y1, y2)
	module.Close(m)
	require.Equal(t, start, reftest.SettledLiveTensors(), "nothing leaks")
}
