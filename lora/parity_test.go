package lora_test

// Parity of lora.Linear and lora.Embedding with the reference PyTorch
// classes of the spec. The references are written by
// testdata/gen_lora.py (run it from the repository root with
// /usr/bin/python3); every case there is replayed here:
//
//   - seeded initialisation: weight, bias and lora_a bit for bit;
//   - the output at initialisation (lora_b = 0) equals the base layer's
//     exactly, computed here and in Python;
//   - with the file's non-zero lora_b: the output and the gradients of
//     lora_a, lora_b (and x for Linear) after backward of (y * g).sum();
//   - frozen weight and bias get no gradient; parameter names, trainable
//     flags and Scaling match the spec;
//   - the PyTorch layer's own state_dict() (weight, bias, lora_a, lora_b)
//     loads with module.LoadStateDict into a layer seeded otherwise, which
//     then computes PyTorch's output.

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// ---------------------------------------------------------------------------
// Comparison helpers. The parity passes run on reftest.Device
// (GOLORA_TEST_DEVICE: the layer is initialised on the CPU, where seeded
// draws match PyTorch's, then moved with module.To); results are compared
// on the CPU within reftest.Tolerance (see internal/reftest for the
// tolerances and the relative error).

// maxErr records the largest relative error per "<layer>/<dtype>", for the
// log.
var maxErr reftest.MaxErrors

// requireClose checks got against want (reftest.RequireClose) within tol
// and records the relative error under key.
func requireClose(t testing.TB, key string, got, want *torch.Tensor, tol float64, what string) {
	t.Helper()
	maxErr.Note(key, t.Name(), reftest.RequireClose(t, what, got, want, tol))
}

// requireNoGrad checks that a frozen parameter neither requires nor has a
// gradient.
func requireNoGrad(t testing.TB, p *torch.Tensor, what string) {
	t.Helper()
	require.False(t, p.RequiresGrad(), "%s must be frozen", what)
	require.Nil(t, p.Grad(), "%s must have no gradient", what)
}

// onDevice returns a copy of x on dev in scope s (a fresh copy on the CPU
// too, so that setting requires_grad never touches the reference).
func onDevice(s *torch.Scope, x *torch.Tensor, dev torch.Device) *torch.Tensor {
	if dev.IsCUDA() {
		return s.Own(x.To(dev))
	}
	return s.Own(x.Clone())
}

// ---------------------------------------------------------------------------
// Reference files.

type refCase struct {
	Name       string  `json:"name"`
	Seed       uint64  `json:"seed"`
	R          int64   `json:"r"`
	Alpha      any     `json:"alpha"` // "default" or a number
	Scaling    float64 `json:"scaling"`
	In         int64   `json:"in"`
	Out        int64   `json:"out"`
	Bias       bool    `json:"bias"`
	Num        int64   `json:"num"`
	Dim        int64   `json:"dim"`
	DType      string  `json:"dtype"`
	IndexDType string  `json:"index_dtype"`
	XShape     []int64 `json:"x_shape"`
}

func (c refCase) dtype() torch.DType {
	if c.DType == "float64" {
		return torch.Float64
	}
	return torch.Float32
}

// options returns the lora options that build the case's layer.
func (c refCase) options(t testing.TB) []lora.Option {
	t.Helper()
	var opts []lora.Option
	if c.DType == "float64" {
		opts = append(opts, lora.WithDType(torch.Float64))
	} else {
		require.Equal(t, "float32", c.DType)
	}
	switch a := c.Alpha.(type) {
	case string:
		require.Equal(t, "default", a)
	case float64:
		opts = append(opts, lora.WithAlpha(a))
	default:
		require.Failf(t, "alpha", "case %s: alpha %v (%T)", c.Name, c.Alpha, c.Alpha)
	}
	return opts
}

// alpha returns α as the case defines it (r by default).
func (c refCase) alpha() float64 {
	if a, ok := c.Alpha.(float64); ok {
		return a
	}
	return float64(c.R)
}

// refFile is a loaded reference file and its cases.
type refFile struct {
	*reftest.File
	cases []refCase
}

// get returns the tensor name of case c.
func (f *refFile) get(t testing.TB, c refCase, name string) *torch.Tensor {
	t.Helper()
	return f.Tensor(t, c.Name+"."+name)
}

// has reports whether case c has a tensor name.
func (f *refFile) has(c refCase, name string) bool {
	return f.Has(c.Name + "." + name)
}

func loadRefs(t *testing.T, file string) *refFile {
	t.Helper()
	f := reftest.Load(t, filepath.Join("testdata", file), "/usr/bin/python3 lora/testdata/gen_lora.py")
	var cases []refCase
	f.DecodeMeta(t, "cases", &cases)
	require.NotEmpty(t, cases)
	return &refFile{File: f, cases: cases}
}

func names(ps []module.NamedParameter) (ns []string, trainable []bool) {
	for _, p := range ps {
		ns = append(ns, p.Name)
		trainable = append(trainable, p.Trainable)
	}
	return ns, trainable
}

// ---------------------------------------------------------------------------
// Linear.

func TestLinearParity(t *testing.T) {
	refs := loadRefs(t, "linear.safetensors")
	dev := reftest.Device(t)
	t.Logf("device %v, %d cases", dev, len(refs.cases))
	require.GreaterOrEqual(t, len(refs.cases), 16)
	for _, c := range refs.cases {
		t.Run(c.Name, func(t *testing.T) { linearCase(t, refs, c, dev) })
	}
	maxErr.Log(t, "linear/")
}

func linearCase(t *testing.T, refs *refFile, c refCase, dev torch.Device) {
	dt := c.dtype()
	tol := reftest.Tolerance(dt, dev)
	key := "linear/" + c.DType

	require.NoError(t, torch.ManualSeed(c.Seed))
	l, err := lora.NewLinear(c.In, c.Out, c.Bias, c.R, c.options(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { module.Close(l) })

	// Seeded initialisation, bit for bit.
	reftest.RequireBitwise(t, "weight", l.Weight, refs.get(t, c, "weight"))
	if c.Bias {
		reftest.RequireBitwise(t, "bias", l.Bias, refs.get(t, c, "bias"))
	} else {
		require.Nil(t, l.Bias)
		require.False(t, refs.has(c, "bias"))
	}
	reftest.RequireBitwise(t, "lora_a", l.LoraA, refs.get(t, c, "lora_a"))
	require.Equal(t, make([]float64, c.Out*c.R), reftest.Float64s(t, l.LoraB), "lora_b starts at zero")
	require.Equal(t, dt, l.LoraB.DType())
	require.Equal(t, []int64{c.Out, c.R}, l.LoraB.Shape())

	// Hyper-parameters.
	require.Equal(t, c.R, l.Rank())
	require.Equal(t, c.alpha(), l.Alpha())
	require.Equal(t, c.Scaling, l.Scaling(), "Scaling() = alpha/r")
	require.Equal(t, c.alpha()/float64(c.R), l.Scaling())
	require.Equal(t, c.In, l.InFeatures())
	require.Equal(t, c.Out, l.OutFeatures())
	require.False(t, l.Merged())

	// Parameters: names, order and trainability as the spec's class.
	wantNames := []string{"weight", "bias", "lora_a", "lora_b"}
	wantTrain := []bool{false, false, true, true}
	if !c.Bias {
		wantNames = []string{"weight", "lora_a", "lora_b"}
		wantTrain = []bool{false, true, true}
	}
	gotNames, gotTrain := names(module.NamedParameters(l))
	require.Equal(t, wantNames, gotNames)
	require.Equal(t, wantTrain, gotTrain)
	require.Equal(t, wantNames, stateKeys(t, refs, c), "the PyTorch class's state_dict keys")
	total, trainable := module.Count(l)
	wantTrainable := c.R*c.In + c.Out*c.R
	wantTotal := c.Out*c.In + wantTrainable
	if c.Bias {
		wantTotal += c.Out
	}
	require.Equal(t, wantTotal, total)
	require.Equal(t, wantTrainable, trainable)

	// At initialisation (lora_b = 0) the output is the base layer's,
	// exactly: here and in Python.
	s := newScope(t)
	x := refs.get(t, c, "x")
	require.Equal(t, c.XShape, x.Shape())
	y0 := s.Own(l.Forward(x))
	base := s.Own(x.Linear(l.Weight, l.Bias))
	require.NoError(t, s.Err())
	reftest.RequireExact(t, "output at init vs x.Linear(W, b)", y0, base)
	// Against PyTorch the usual tolerance applies: libtorch 2.x may pick a
	// different BLAS blocking (thread count) than the generator did.
	requireClose(t, "init-"+dt.String(), y0, refs.get(t, c, "y_init"), reftest.Tolerance(dt, torch.CPU), "output at init vs PyTorch")

	// Train-time pass with a non-zero lora_b, on the test device.
	if dev.IsCUDA() {
		require.NoError(t, module.To(l, dev))
		require.Equal(t, dev, l.LoraA.Device())
		require.True(t, l.LoraA.RequiresGrad())
		require.False(t, l.Weight.RequiresGrad())
	}
	require.NoError(t, l.LoraB.Copy_(refs.get(t, c, "lora_b")).Err())
	require.True(t, l.LoraB.RequiresGrad())
	xd := onDevice(s, x, dev)
	require.NoError(t, xd.SetRequiresGrad(true))
	y := l.Forward(xd)
	loss := y.Mul(onDevice(s, refs.get(t, c, "g"), dev)).Sum() // (y * g).sum()
	require.NoError(t, loss.Backward())
	require.Equal(t, dev, y.Device())
	require.Equal(t, dt, y.DType())

	requireClose(t, key, y, refs.get(t, c, "y"), tol, "output")
	requireClose(t, key, gradOf(t, s, l.LoraA, "lora_a"), refs.get(t, c, "grad.lora_a"), tol, "grad lora_a")
	requireClose(t, key, gradOf(t, s, l.LoraB, "lora_b"), refs.get(t, c, "grad.lora_b"), tol, "grad lora_b")
	requireClose(t, key, gradOf(t, s, xd, "x"), refs.get(t, c, "grad.x"), tol, "grad x")
	requireNoGrad(t, l.Weight, "weight")
	if c.Bias {
		requireNoGrad(t, l.Bias, "bias")
	}
}

// stateKeys returns the keys of the PyTorch layer's state_dict that the
// reference file holds, in the spec class's registration order (weight,
// bias, lora_a, lora_b).
func stateKeys(t testing.TB, refs *refFile, c refCase) []string {
	t.Helper()
	var keys []string
	for _, k := range []string{"weight", "bias", "lora_a", "lora_b"} {
		if refs.has(c, "state_dict."+k) {
			keys = append(keys, k)
		}
	}
	require.NotEmpty(t, keys, "%s: no state_dict in the reference file", c.Name)
	return keys
}

// stateDict returns the PyTorch layer's state_dict (weight, bias, lora_a,
// lora_b as PyTorch names them) from the reference file.
func stateDict(t testing.TB, refs *refFile, c refCase) map[string]*torch.Tensor {
	t.Helper()
	sd := map[string]*torch.Tensor{}
	for _, k := range stateKeys(t, refs, c) {
		sd[k] = refs.get(t, c, "state_dict."+k)
	}
	return sd
}

// The state dict of the spec's PyTorch class loads into a lora.Linear
// seeded otherwise, strictly (no key missing or left over), and the layer
// then computes PyTorch's output; trainability is untouched by loading.
func TestLinearLoadPyTorchStateDict(t *testing.T) {
	refs := loadRefs(t, "linear.safetensors")
	for _, c := range refs.cases {
		t.Run(c.Name, func(t *testing.T) {
			require.NoError(t, torch.ManualSeed(c.Seed+1))
			l, err := lora.NewLinear(c.In, c.Out, c.Bias, c.R, c.options(t)...)
			require.NoError(t, err)
			t.Cleanup(func() { module.Close(l) })
			a := l.LoraA

			require.NoError(t, module.LoadStateDict(l, stateDict(t, refs, c)))
			require.Same(t, a, l.LoraA, "loading keeps the parameter tensors (optimizers hold them)")
			reftest.RequireBitwise(t, "weight", l.Weight, refs.get(t, c, "weight"))
			if c.Bias {
				reftest.RequireBitwise(t, "bias", l.Bias, refs.get(t, c, "bias"))
				require.False(t, l.Bias.RequiresGrad())
			}
			reftest.RequireBitwise(t, "lora_a", l.LoraA, refs.get(t, c, "lora_a"))
			reftest.RequireBitwise(t, "lora_b", l.LoraB, refs.get(t, c, "lora_b"))
			require.False(t, l.Weight.RequiresGrad())
			require.True(t, l.LoraA.RequiresGrad())
			require.True(t, l.LoraB.RequiresGrad())

			s := newScope(t)
			y := s.Own(l.Forward(refs.get(t, c, "x")))
			require.NoError(t, y.Err())
			requireClose(t, "load-"+c.DType, y, refs.get(t, c, "y"), reftest.Tolerance(c.dtype(), torch.CPU), "output after LoadStateDict")
		})
	}
}

// ---------------------------------------------------------------------------
// Embedding.

func TestEmbeddingParity(t *testing.T) {
	refs := loadRefs(t, "embedding.safetensors")
	dev := reftest.Device(t)
	t.Logf("device %v, %d cases", dev, len(refs.cases))
	require.GreaterOrEqual(t, len(refs.cases), 8)
	for _, c := range refs.cases {
		t.Run(c.Name, func(t *testing.T) { embeddingCase(t, refs, c, dev) })
	}
	maxErr.Log(t, "embedding/")
}

func embeddingCase(t *testing.T, refs *refFile, c refCase, dev torch.Device) {
	dt := c.dtype()
	tol := reftest.Tolerance(dt, dev)
	key := "embedding/" + c.DType

	require.NoError(t, torch.ManualSeed(c.Seed))
	e, err := lora.NewEmbedding(c.Num, c.Dim, c.R, c.options(t)...)
	require.NoError(t, err)
	t.Cleanup(func() { module.Close(e) })

	reftest.RequireBitwise(t, "weight", e.Weight, refs.get(t, c, "weight"))
	reftest.RequireBitwise(t, "lora_a", e.LoraA, refs.get(t, c, "lora_a"))
	require.Equal(t, []int64{c.Dim, c.R}, e.LoraB.Shape())
	require.Equal(t, make([]float64, c.Dim*c.R), reftest.Float64s(t, e.LoraB), "lora_b starts at zero")

	require.Equal(t, c.R, e.Rank())
	require.Equal(t, c.alpha(), e.Alpha())
	require.Equal(t, c.Scaling, e.Scaling(), "Scaling() = alpha/r")
	require.Equal(t, c.Num, e.NumEmbeddings())
	require.Equal(t, c.Dim, e.EmbeddingDim())

	gotNames, gotTrain := names(module.NamedParameters(e))
	require.Equal(t, []string{"weight", "lora_a", "lora_b"}, gotNames)
	require.Equal(t, gotNames, stateKeys(t, refs, c), "the PyTorch class's state_dict keys")
	require.Equal(t, []bool{false, true, true}, gotTrain)
	total, trainable := module.Count(e)
	require.Equal(t, c.Num*c.Dim+c.R*c.Num+c.Dim*c.R, total)
	require.Equal(t, c.R*c.Num+c.Dim*c.R, trainable)

	s := newScope(t)
	x := refs.get(t, c, "x")
	require.Equal(t, c.XShape, x.Shape())
	require.Equal(t, c.IndexDType, x.DType().String())
	y0 := s.Own(e.Forward(x))
	base := s.Own(torch.Embedding(x, e.Weight))
	require.NoError(t, s.Err())
	reftest.RequireExact(t, "output at init vs torch.Embedding(x, W)", y0, base)
	// Against PyTorch the usual tolerance applies: libtorch 2.x may pick a
	// different BLAS blocking (thread count) than the generator did.
	requireClose(t, "init-"+dt.String(), y0, refs.get(t, c, "y_init"), reftest.Tolerance(dt, torch.CPU), "output at init vs PyTorch")

	if dev.IsCUDA() {
		require.NoError(t, module.To(e, dev))
		require.Equal(t, dev, e.LoraA.Device())
	}
	require.NoError(t, e.LoraB.Copy_(refs.get(t, c, "lora_b")).Err())
	y := e.Forward(onDevice(s, x, dev))
	loss := y.Mul(onDevice(s, refs.get(t, c, "g"), dev)).Sum()
	require.NoError(t, loss.Backward())
	require.Equal(t, append(append([]int64{}, c.XShape...), c.Dim), y.Shape())

	requireClose(t, key, y, refs.get(t, c, "y"), tol, "output")
	requireClose(t, key, gradOf(t, s, e.LoraA, "lora_a"), refs.get(t, c, "grad.lora_a"), tol, "grad lora_a")
	requireClose(t, key, gradOf(t, s, e.LoraB, "lora_b"), refs.get(t, c, "grad.lora_b"), tol, "grad lora_b")
	requireNoGrad(t, e.Weight, "weight")
}

// The state dict of the spec's PyTorch Embedding loads into a
// lora.Embedding seeded otherwise and reproduces PyTorch's output.
func TestEmbeddingLoadPyTorchStateDict(t *testing.T) {
	refs := loadRefs(t, "embedding.safetensors")
	for _, c := range refs.cases {
		t.Run(c.Name, func(t *testing.T) {
			require.NoError(t, torch.ManualSeed(c.Seed+1))
			e, err := lora.NewEmbedding(c.Num, c.Dim, c.R, c.options(t)...)
			require.NoError(t, err)
			t.Cleanup(func() { module.Close(e) })

			require.NoError(t, module.LoadStateDict(e, stateDict(t, refs, c)))
			reftest.RequireBitwise(t, "weight", e.Weight, refs.get(t, c, "weight"))
			reftest.RequireBitwise(t, "lora_a", e.LoraA, refs.get(t, c, "lora_a"))
			reftest.RequireBitwise(t, "lora_b", e.LoraB, refs.get(t, c, "lora_b"))
			_, gotTrain := names(module.NamedParameters(e))
			require.Equal(t, []bool{false, true, true}, gotTrain)

			s := newScope(t)
			y := s.Own(e.Forward(refs.get(t, c, "x")))
			require.NoError(t, y.Err())
			requireClose(t, "load-"+c.DType, y, refs.get(t, c, "y"), reftest.Tolerance(c.dtype(), torch.CPU), "output after LoadStateDict")
		})
	}
}

// ---------------------------------------------------------------------------
// Memory: a training loop with one scope per step leaks nothing.

func TestForwardBackwardNoLeak(t *testing.T) {
	require.NoError(t, torch.ManualSeed(3))
	l, err := lora.NewLinear(8, 6, true, 2)
	require.NoError(t, err)
	defer module.Close(l)
	e, err := lora.NewEmbedding(10, 4, 2)
	require.NoError(t, err)
	defer module.Close(e)
	params := append(module.Parameters(l, true), module.Parameters(e, true)...)

	step := func() {
		s := torch.NewScope()
		defer s.Close()
		x := torch.Randn([]int64{5, 8}, torch.In(s))
		idx := s.Own(torch.FromSlice([]int64{1, 2, 2, 9}))
		loss := l.Forward(x).Sum().Add(e.Forward(idx).Sum())
		require.NoError(t, loss.Backward())
		clearGrads(t, params)
		require.NoError(t, s.Err())
	}
	step() // warm up
	before := reftest.SettledLiveTensors()
	for range 20 {
		step()
	}
	require.LessOrEqual(t, torch.LiveTensors(), before, "handles leaked")
}
