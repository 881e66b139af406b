package torch_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// The reference tests run their ops on reftest.Device (GOLORA_TEST_DEVICE:
// cpu, cuda or cuda:N) and compare the results on the CPU with the
// tolerances of reftest.Tolerance and the relative error of reftest.RelErr.
//
// One op has its own bound: conv2d in float32 on CUDA, which cuDNN runs in
// TF32 on Ampere and newer GPUs (libtorch enables allow_tf32 for cuDNN by
// default; TF32 keeps 10 mantissa bits, so errors reach ~1e-3): it gets
// tolTF32. Seeded cases (random draws, dropout masks) always run on the
// CPU, because CUDA's generator (Philox) draws different numbers from the
// CPU's (mt19937).
const tolTF32 = 5e-3

// atenTolTruth32 bounds float32 results against a float64 truth (the
// "truth" cases of gen_ops_aten.py): a few float32 roundings (ε = 6e-8)
// in each of the matmul, softmax and matmul of attention over sums of at
// most 8 terms, measured against the tensor's largest magnitude
// (reftest.RelErr).
const atenTolTruth32 = 2e-6

// tolerance is the bound for a result of dtype dt of case c on dev:
// reftest.Tolerance, with the exceptions of conv2d above and of float32
// results against a float64 truth (atenTolTruth32).
func tolerance(c refCase, dt torch.DType, dev torch.Device) float64 {
	if c.Op == "conv2d" && dt == torch.Float32 && dev.IsCUDA() {
		return tolTF32
	}
	tol := reftest.Tolerance(dt, dev)
	if c.Truth && dt == torch.Float32 && tol < atenTolTruth32 {
		tol = atenTolTruth32
	}
	return tol
}

// testScope returns a scope that is closed when the test ends: tensors
// made in it (torch.In(s), s.Own) and every result computed from them are
// freed then.
func testScope(t testing.TB) *torch.Scope { return reftest.Scope(t) }

// ok fails the test if x is a failed tensor (or nil) and returns x: the
// check at the end of a chain.
func ok(t testing.TB, x *torch.Tensor) *torch.Tensor {
	t.Helper()
	require.NotNil(t, x)
	require.NoError(t, x.Err())
	return x
}

// vals reads x's elements, failing the test on error.
func vals[T torch.Element](t testing.TB, x *torch.Tensor) []T {
	t.Helper()
	v, err := torch.ToSlice[T](x)
	require.NoError(t, err)
	return v
}

// item reads a one-element tensor, failing the test on error.
func item(t testing.TB, x *torch.Tensor) float64 {
	t.Helper()
	v, err := x.Item()
	require.NoError(t, err)
	return v
}

// exactSlice reads a tensor of any supported dtype into a comparable form:
// integers and bools as int64, floats by bit pattern.
func exactSlice(t testing.TB, x *torch.Tensor) []int64 {
	t.Helper()
	conv := func(n int, f func(int) int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	switch x.DType() {
	case torch.Int64:
		return vals[int64](t, x)
	case torch.Int32:
		v := vals[int32](t, x)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Uint8:
		v := vals[uint8](t, x)
		return conv(len(v), func(i int) int64 { return int64(v[i]) })
	case torch.Bool:
		v := vals[bool](t, x)
		return conv(len(v), func(i int) int64 {
			if v[i] {
				return 1
			}
			return 0
		})
	case torch.Float32, torch.Float64:
		b := reftest.Bits(t, x)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	case torch.Float16, torch.BFloat16:
		// Widening to float32 is exact, so float32 bits identify the value.
		w := ok(t, x.To(torch.Float32))
		defer w.Close()
		b := reftest.Bits(t, w)
		return conv(len(b), func(i int) int64 { return int64(b[i]) })
	}
	t.Fatalf("exactSlice: unsupported dtype %v", x.DType())
	return nil
}

// mismatches counts the elements in which g and w (of equal length)
// differ, and returns the first index at which they do (-1 for none).
func mismatches(g, w []int64) (bad, first int) {
	first = -1
	for i := range w {
		if g[i] != w[i] {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	return bad, first
}

// compare checks got against want: same dtype and shape, then bitwise for
// exact cases and non-float dtypes, else within tol (reftest.RelErr). It
// returns the relative error (0 for exact comparisons). label names the
// case and the tensor in failure messages.
func compare(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64 {
	t.Helper()
	require.NoErrorf(t, got.Err(), "%s", label)
	require.Equalf(t, want.DType(), got.DType(), "%s: dtype", label)
	require.Equalf(t, want.Shape(), got.Shape(), "%s: shape", label)
	if exact || !want.DType().IsFloat() {
		g, w := exactSlice(t, got), exactSlice(t, want)
		if bad, first := mismatches(g, w); bad > 0 {
			msg := fmt.Sprintf("%s: %d of %d elements differ (bitwise); first at flat index %d", label, bad, len(w), first)
			if want.DType() == torch.Float32 || want.DType() == torch.Float64 {
				gf, wf := reftest.Float64s(t, got), reftest.Float64s(t, want)
				msg += fmt.Sprintf(": got %v want %v (relErr %.3g)", gf[first], wf[first], reftest.RelErr(gf, wf))
			} else {
				msg += fmt.Sprintf(": got %d want %d", g[first], w[first])
			}
			t.Error(msg)
		}
		return 0
	}
	e := reftest.RelErr(reftest.Float64s(t, got), reftest.Float64s(t, want))
	if e > tol {
		t.Errorf("%s: relative error %.3g exceeds %.0e", label, e, tol)
	}
	return e
}

// ---------------------------------------------------------------------------
// Reference suites: ref_test.go (gen_refs.py) and ops_aten_test.go
// (gen_ops_aten.py) store each op's cases the same way: inputs, outputs, a
// fixed loss weight per float output and the gradients of
// loss = Σ_j (out_j · w_j).sum(). A refSuite replays them through golora.

// refCase is one entry of a reference file's "cases" metadata.
type refCase struct {
	Name    string    `json:"name"`
	Op      string    `json:"op"`
	Params  refParams `json:"params"`
	NIn     int       `json:"n_in"`
	NOut    int       `json:"n_out"`
	Grad    []int     `json:"grad"`
	Exact   bool      `json:"exact"`
	CPUOnly bool      `json:"cpu_only"`
	Truth   bool      `json:"truth"` // gen_ops_aten.py: the reference is a float64 truth (atenTolTruth32)
}

// refParams are a case's op parameters. The accessors panic on a missing or
// mistyped key; runCase turns the panic into a test failure naming the case.
type refParams map[string]any

func (p refParams) get(k string) any {
	v, ok := p[k]
	if !ok {
		panic(fmt.Sprintf("missing param %q", k))
	}
	return v
}

func (p refParams) f(k string) float64 {
	if s, ok := p.get(k).(string); ok && s == "inf" { // JSON has no infinity
		return math.Inf(1)
	}
	return p.get(k).(float64)
}

func (p refParams) i(k string) int64 {
	v := p.f(k)
	if v != math.Trunc(v) {
		panic(fmt.Sprintf("param %q = %v is not an integer", k, v))
	}
	return int64(v)
}

func (p refParams) b(k string) bool { return p.get(k).(bool) }

func (p refParams) s(k string) string { return p.get(k).(string) }

// ints returns an int list; JSON null gives nil (PyTorch's None: all dims).
func (p refParams) ints(k string) []int64 {
	raw := p.get(k)
	if raw == nil {
		return nil
	}
	vs := raw.([]any)
	out := make([]int64, len(vs))
	for j, v := range vs {
		out[j] = int64(v.(float64))
	}
	return out
}

// named returns the value of the name that p[k] holds; it panics on a
// name that is not in values.
func named[T any](p refParams, k string, values map[string]T) T {
	v, ok := values[p.s(k)]
	if !ok {
		panic(fmt.Sprintf("unknown %s %q", k, p.s(k)))
	}
	return v
}

func (p refParams) reduction() torch.Reduction {
	return named(p, "reduction", map[string]torch.Reduction{
		"none": torch.ReductionNone, "mean": torch.ReductionMean, "sum": torch.ReductionSum})
}

// refEnv is what a refOp needs besides its inputs: the test (for the calls
// that return an error, such as ManualSeed and the initialisers, and for
// the checks an op makes itself), the case's scope (creation functions
// make their tensors in it; ops on the inputs put their results there by
// themselves) and the device.
type refEnv struct {
	t   testing.TB
	s   *torch.Scope
	dev torch.Device
}

// refOp runs one op of the Go API on the inputs (already on the device, in
// env.s) and returns its outputs. A failure comes back as failed tensors.
type refOp func(env refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor

func one(t *torch.Tensor) []*torch.Tensor { return []*torch.Tensor{t} }

func two(a, b *torch.Tensor) []*torch.Tensor { return []*torch.Tensor{a, b} }

func unaryOp(f func(*torch.Tensor) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, _ refParams) []*torch.Tensor { return one(f(in[0])) }
}

func binaryOp(f func(a, b *torch.Tensor) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, _ refParams) []*torch.Tensor { return one(f(in[0], in[1])) }
}

func scalarOp(f func(*torch.Tensor, float64) *torch.Tensor) refOp { return floatOp("s", f) }

// floatOp, intOp, intsOp, dimsOp and dimPairOp call f on in[0] with the
// parameters named by key (or "dims", "dim" and "keepdim").
func floatOp(key string, f func(*torch.Tensor, float64) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor { return one(f(in[0], p.f(key))) }
}

func intOp(key string, f func(*torch.Tensor, int64) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor { return one(f(in[0], p.i(key))) }
}

func intsOp(key string, f func(*torch.Tensor, ...int64) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor { return one(f(in[0], p.ints(key)...)) }
}

func dimsOp(f func(*torch.Tensor, []int64, bool) *torch.Tensor) refOp {
	return func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return one(f(in[0], p.ints("dims"), p.b("keepdim")))
	}
}

func dimPairOp(f func(*torch.Tensor, int64, bool) (*torch.Tensor, *torch.Tensor)) refOp {
	return func(_ refEnv, in []*torch.Tensor, p refParams) []*torch.Tensor {
		return two(f(in[0], p.i("dim"), p.b("keepdim")))
	}
}

// optionalInputs returns, for each of keys, the next input after in[0]
// when the flag p[key] is set, else nil: an op's optional tensors.
func optionalInputs(in []*torch.Tensor, p refParams, keys ...string) []*torch.Tensor {
	out := make([]*torch.Tensor, len(keys))
	next := 1
	for j, k := range keys {
		if p.b(k) {
			out[j] = in[next]
			next++
		}
	}
	return out
}

// refSuite is what differs between the reference suites; runFile and
// runCase do the rest.
type refSuite struct {
	regen string           // the command that writes the suite's files
	ops   map[string]refOp // the Go call of each op name of the generator
	// exactOnCPU runs exact cases on the CPU, as cpu_only ones always run.
	exactOnCPU bool
	// strictScope requires every output to belong to the case's scope and
	// the scope to hold no error; without it an output outside any scope
	// is adopted by the case's scope.
	strictScope bool
	// shapeOnly lists the ops whose values are arbitrary (uninitialised
	// memory): only their dtype and shape are compared.
	shapeOnly map[string]bool
	// compare checks one output or gradient (exact: bitwise) and returns
	// its relative error.
	compare func(t testing.TB, label string, got, want *torch.Tensor, exact bool, tol float64) float64
}

// refFile is a loaded reference file and its cases.
type refFile struct {
	*reftest.File
	cases []refCase
}

func (rs *refSuite) load(t *testing.T, name string) *refFile {
	t.Helper()
	f := reftest.Load(t, filepath.Join("testdata", name), rs.regen)
	var cases []refCase
	f.DecodeMeta(t, "cases", &cases)
	require.NotEmptyf(t, cases, "%s: no cases", f.Path)
	return &refFile{File: f, cases: cases}
}

func (f *refFile) tensor(t *testing.T, c refCase, kind string, i int) *torch.Tensor {
	t.Helper()
	return f.Tensor(t, fmt.Sprintf("%s.%s.%d", c.Name, kind, i))
}

// countOps loads the named files and counts the cases of each op; a case
// whose op has no Go call fails, and so does an op without cases.
func (rs *refSuite) countOps(t *testing.T, names ...string) map[string]int {
	seen := map[string]int{}
	for _, name := range names {
		f := rs.load(t, name)
		for _, c := range f.cases {
			seen[c.Op]++
			assert.Containsf(t, rs.ops, c.Op, "%s: case %s uses op %q that has no Go runner", name, c.Name, c.Op)
		}
	}
	for op := range rs.ops {
		assert.Positivef(t, seen[op], "%v: op %q has no reference case (%s)", names, op, rs.regen)
	}
	return seen
}

// runFile replays every case of the file name on reftest.Device, each in
// a subtest, and checks that the cases freed all they made.
func (rs *refSuite) runFile(t *testing.T, name string) {
	f := rs.load(t, name)
	dev := reftest.Device(t)
	stats := &reftest.MaxErrors{}
	live := reftest.SettledLiveTensors()
	for _, c := range f.cases {
		t.Run(c.Name, func(t *testing.T) { rs.runCase(t, f, c, dev, stats) })
	}
	// Every case's scope freed what it made: ops, gradients, _foreach results.
	assert.Equal(t, live, reftest.SettledLiveTensors(), "%s: LiveTensors after all cases", name)
	t.Logf("%s: %d cases on %v (torch %s; file from torch %s)", name, len(f.cases), dev, torch.Version(), f.Meta["torch_version"])
	stats.Log(t, "")
}

// runCase replays one case on dev and compares its outputs and gradients.
func (rs *refSuite) runCase(t *testing.T, f *refFile, c refCase, dev torch.Device, stats *reftest.MaxErrors) {
	t.Helper()
	op, ok := rs.ops[c.Op]
	require.Truef(t, ok, "case %s: op %q has no Go runner", c.Name, c.Op)
	if c.CPUOnly || (c.Exact && rs.exactOnCPU) {
		dev = torch.CPU // seeded draws: CUDA's generator draws other numbers
	}
	// Everything the case makes (inputs, outputs, the loss, gradient
	// handles) lives in s and is freed when the case ends.
	s := testScope(t)

	// Inputs: fresh leaves on dev (Detach on the CPU so that requires_grad
	// does not stick to the loaded tensor, which the file owns).
	wantGrad := map[int]bool{}
	for _, i := range c.Grad {
		wantGrad[i] = true
	}
	in := make([]*torch.Tensor, c.NIn)
	for i := range in {
		src := f.tensor(t, c, "in", i)
		if dev.IsCUDA() {
			in[i] = s.Own(src.To(dev))
		} else {
			in[i] = s.Own(src.Detach())
		}
		require.NoErrorf(t, in[i].Err(), "case %s: input %d", c.Name, i)
		if wantGrad[i] {
			require.NoError(t, in[i].SetRequiresGrad(true))
		}
	}

	var outs []*torch.Tensor
	func() {
		defer func() {
			if r := recover(); r != nil {
				require.FailNowf(t, "panic", "case %s (%s): %v", c.Name, c.Op, r)
			}
		}()
		outs = op(refEnv{t: t, s: s, dev: dev}, in, c.Params)
	}()
	require.NoErrorf(t, torch.FirstErr(outs...), "case %s (%s)", c.Name, c.Op)
	if rs.strictScope {
		require.NoErrorf(t, s.Err(), "case %s (%s)", c.Name, c.Op)
	}
	require.Lenf(t, outs, c.NOut, "case %s: outputs", c.Name)

	var loss *torch.Tensor
	for j, o := range outs {
		if rs.strictScope {
			require.Samef(t, s, o.Scope(), "case %s: output %d does not belong to the case's scope", c.Name, j)
		} else if o.Scope() == nil {
			s.Own(o)
		}
		assert.Equalf(t, dev, o.Device(), "case %s: output %d device", c.Name, j)
		want := f.tensor(t, c, "out", j)
		label := fmt.Sprintf("%s out %d", c.Name, j)
		if rs.shapeOnly[c.Op] {
			require.Equalf(t, want.DType(), o.DType(), "%s: dtype", label)
			require.Equalf(t, want.Shape(), o.Shape(), "%s: shape", label)
			continue
		}
		e := rs.compare(t, label, o, want, c.Exact, tolerance(c, want.DType(), dev))
		if want.DType() == torch.Float32 || want.DType() == torch.Float64 {
			stats.Note(statKey(c, want.DType(), dev, "value"), c.Name, e)
		}

		w, ok := f.Tensors[fmt.Sprintf("%s.w.%d", c.Name, j)]
		if !ok {
			continue
		}
		term := o.Mul(s.Own(w.To(dev))).Sum()
		if loss == nil {
			loss = term
		} else {
			loss = loss.Add(term)
		}
	}
	if len(c.Grad) == 0 {
		return
	}
	require.NotNilf(t, loss, "case %s: gradients expected but no output has a loss weight", c.Name)
	require.NoErrorf(t, loss.Err(), "case %s: loss", c.Name)
	require.NoErrorf(t, loss.Backward(), "case %s: backward", c.Name)
	for _, i := range c.Grad {
		g := in[i].Grad()
		require.NotNilf(t, g, "case %s: input %d has no gradient after backward", c.Name, i)
		require.NoError(t, g.Err())
		want := f.tensor(t, c, "grad", i)
		e := rs.compare(t, fmt.Sprintf("%s grad %d", c.Name, i), g, want, c.Exact, tolerance(c, want.DType(), dev))
		stats.Note(statKey(c, want.DType(), dev, "grad"), c.Name, e)
	}
}

// statKey groups the relative errors in the log: by dtype, device, value
// or gradient, and float64 truth.
func statKey(c refCase, dt torch.DType, dev torch.Device, kind string) string {
	if c.Truth {
		kind += "(f64 truth)"
	}
	return fmt.Sprintf("%v/%v/%s", dt, dev, kind)
}

// opsAtenFuncs returns the functions and methods declared in ops_aten.go.
func opsAtenFuncs(t *testing.T) []*ast.FuncDecl {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "ops_aten.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	var out []*ast.FuncDecl
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			out = append(out, fd)
		}
	}
	return out
}
