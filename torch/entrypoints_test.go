package torch_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Every entry point: the tests below call every exported function and
// method of package torch that takes a tensor with a nil, a closed and a
// failed tensor in each tensor position. A nil or closed operand must give
// an error (returned, or sticky on the result) that names the operation and
// the argument, as TestErrorsNameTheArgument's do; a failed operand must
// pass its own error on unchanged. The list of entry points comes from the
// package's source (go/parser), so an exported function or method added
// later without a driver here, or an exclusion with a reason, fails
// TestEntrypointsComplete.

// apiDecl is an exported function or method found in the package's source.
type apiDecl struct {
	recv   string // receiver type name ("Tensor"), "" for a function
	name   string
	params []string // the Go names of the parameters (receiver excluded)
	tensor bool     // some parameter (or the receiver) is or holds a tensor
}

func (d apiDecl) key() string {
	if d.recv == "" {
		return d.name
	}
	return d.recv + "." + d.name
}

// apiDecls parses the non-test files of the package.
func apiDecls(t *testing.T) map[string]apiDecl {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var parsed []*ast.File
	tensorStructs := map[string]bool{} // exported structs with a tensor field
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		parsed = append(parsed, f)
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			if st, ok := ts.Type.(*ast.StructType); ok {
				for _, f := range st.Fields.List {
					exported := len(f.Names) == 0 || f.Names[0].IsExported()
					if exported && strings.Contains(types.ExprString(f.Type), "Tensor") {
						tensorStructs[ts.Name.Name] = true
					}
				}
			}
			return true
		})
	}
	mentionsTensor := func(e ast.Expr) bool {
		s := types.ExprString(e)
		if strings.Contains(s, "Tensor") {
			return true
		}
		return tensorStructs[strings.TrimPrefix(s, "*")]
	}
	out := map[string]apiDecl{}
	for _, f := range parsed {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() {
				continue
			}
			d := apiDecl{name: fd.Name.Name}
			if fd.Recv != nil {
				rt := fd.Recv.List[0].Type
				if st, ok := rt.(*ast.StarExpr); ok {
					rt = st.X
				}
				id, ok := rt.(*ast.Ident)
				if !ok || !id.IsExported() {
					continue
				}
				d.recv = id.Name
				d.tensor = id.Name == "Tensor"
			}
			for _, p := range fd.Type.Params.List {
				if mentionsTensor(p.Type) {
					d.tensor = true
				}
				for _, n := range p.Names {
					d.params = append(d.params, n.Name)
				}
				if len(p.Names) == 0 {
					d.params = append(d.params, "_")
				}
			}
			out[d.key()] = d
		}
	}
	return out
}

// ---- what the tests call ----

var (
	tensorType = reflect.TypeOf((*torch.Tensor)(nil))
	errorType  = reflect.TypeOf((*error)(nil)).Elem()
)

// entryFuncs are the package-level functions with a tensor parameter, by
// name (generic ones instantiated).
var entryFuncs = map[string]any{
	"Cat": torch.Cat, "Stack": torch.Stack, "Checkpoint": torch.Checkpoint,
	"Conv1d": torch.Conv1d, "Conv2d": torch.Conv2d,
	"CrossEntropy": torch.CrossEntropy, "CrossEntropyWith": torch.CrossEntropyWith,
	"Dropout": torch.Dropout, "Embedding": torch.Embedding, "EmbeddingPadded": torch.EmbeddingPadded,
	"ForeachNorm": torch.ForeachNorm, "ForeachSqrt": torch.ForeachSqrt,
	"ForeachAdd_": torch.ForeachAdd_, "ForeachAddcdiv_": torch.ForeachAddcdiv_, "ForeachAddcmul_": torch.ForeachAddcmul_,
	"ForeachLerp_": torch.ForeachLerp_, "ForeachMul_": torch.ForeachMul_, "ForeachZero_": torch.ForeachZero_,
	"LayerNorm": torch.LayerNorm, "Linear": torch.Linear,
	"LoraEmbedding": torch.LoraEmbedding, "LoraLinear": torch.LoraLinear,
	"MSELoss": torch.MSELoss, "NLLLoss": torch.NLLLoss,
	"ScaledDotProductAttention": torch.ScaledDotProductAttention,
	"Where":                     torch.Where, "WhereScalar": torch.WhereScalar,
	"Call": torch.Call, "ClipGradNorm": torch.ClipGradNorm, "ClipGradValue": torch.ClipGradValue,
	"ZeroGrads": torch.ZeroGrads, "SetRNGState": torch.SetRNGState,
	"SaveSafetensors": torch.SaveSafetensors, "SaveSafetensorsSharded": torch.SaveSafetensorsSharded,
	"NewFusedOptimizer": torch.NewFusedOptimizer,
	"ToSlice":           torch.ToSlice[float32],
}

// entryExcluded are the entry points with a tensor parameter that the
// reflection test does not drive, and why.
var entryExcluded = map[string]string{
	// They cannot fail by design: nil entries are skipped, and so are
	// closed ones (documented).
	"CloseAll":    "skips nil and closed tensors by design; returns nothing",
	"CloseMap":    "skips nil and closed tensors by design; returns nothing",
	"Scope.Keep":  "leaves tensors the scope does not own (nil, closed, failed) alone by design; returns nothing",
	"Tensor.Must": "panics on a nil or failed tensor by design (the examples' form of a check)",
	// No C: a pure check over the list (TestErrorsClosedTensor covers it).
	"FirstErr": "reaches no C; names a nil entry by position (\"tensor 1\"), TestErrorsClosedTensor",
	// The tensor is a callback's result: TestEntrypointsCallbacks.
	"WithScope": "the tensor is f's result: TestEntrypointsCallbacks",
	"Failed":    "takes an error, not a tensor (the type mentions Tensor only in its result)",
}

// accessors are the methods that report a closed or failed tensor with a
// sentinel value instead of an error (documented on each); the test checks
// the sentinel. bad is "nil", "closed" or "failed"; err the failed value's
// error.
var accessors = map[string]func(t *testing.T, bad string, err error, out []reflect.Value){
	"Tensor.Err": func(t *testing.T, bad string, err error, out []reflect.Value) {
		want := error(nil)
		if bad == "failed" {
			want = err
		}
		assert.Equal(t, want, out[0].Interface())
	},
	"Tensor.Close": func(t *testing.T, bad string, err error, out []reflect.Value) {
		want := error(nil)
		if bad == "failed" {
			want = err
		}
		assert.Equal(t, want, out[0].Interface())
	},
	"Tensor.Closed": func(t *testing.T, _ string, _ error, out []reflect.Value) { assert.True(t, out[0].Bool()) },
	"Tensor.Scope": func(t *testing.T, _ string, _ error, out []reflect.Value) {
		assert.Nil(t, out[0].Interface())
	},
	"Tensor.Shape": func(t *testing.T, _ string, _ error, out []reflect.Value) { assert.True(t, out[0].IsNil()) },
	"Tensor.Dim":   func(t *testing.T, _ string, _ error, out []reflect.Value) { assert.Equal(t, int64(-1), out[0].Int()) },
	"Tensor.SizeOf": func(t *testing.T, _ string, _ error, out []reflect.Value) {
		assert.Equal(t, int64(-1), out[0].Int())
	},
	"Tensor.Numel": func(t *testing.T, _ string, _ error, out []reflect.Value) { assert.Equal(t, int64(0), out[0].Int()) },
	"Tensor.DType": func(t *testing.T, _ string, _ error, out []reflect.Value) {
		assert.Equal(t, torch.Invalid, out[0].Interface())
	},
	"Tensor.Device": func(t *testing.T, _ string, _ error, out []reflect.Value) {
		assert.Equal(t, torch.CPU, out[0].Interface())
	},
	"Tensor.RequiresGrad": func(t *testing.T, _ string, _ error, out []reflect.Value) { assert.False(t, out[0].Bool()) },
	"Tensor.String": func(t *testing.T, bad string, err error, out []reflect.Value) {
		want := map[string]string{"nil": "Tensor(nil)", "closed": "Tensor(closed)"}[bad]
		if bad == "failed" {
			want = "Tensor(failed: " + err.Error() + ")"
		}
		assert.Equal(t, want, out[0].String())
	},
}

// argNames gives the name an error uses for a parameter where it is not
// the Go parameter's (the receiver of a Tensor method is "self" unless
// listed as "^"): the ATen schema's names (self, other, input, weight),
// which TestErrorsNameTheArgument's messages use.
var argNames = map[string]map[string]string{
	"Cat":                       {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"Stack":                     {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ClipGradNorm":              {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ClipGradValue":             {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ZeroGrads":                 {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ProcessGroup.AllReduce":    {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ProcessGroup.Broadcast":    {"ts[0]": "tensors[0]", "ts[1]": "tensors[1]"},
	"ProcessGroup.AllGather":    {"t": "tensor"},
	"Conv1d":                    {"x": "input", "w": "weight", "b": "bias"},
	"Conv2d":                    {"x": "input", "w": "weight", "b": "bias"},
	"Linear":                    {"x": "input", "w": "weight", "b": "bias"},
	"Tensor.Linear":             {"self": "input", "w": "weight", "b": "bias"},
	"LoraLinear":                {"x": "input", "w": "weight", "b": "bias", "a": "lora_a", "bm": "lora_b"},
	"LoraEmbedding":             {"x": "indices", "w": "weight", "a": "lora_a", "bm": "lora_b"},
	"LayerNorm":                 {"x": "input", "w": "weight", "b": "bias"},
	"Dropout":                   {"x": "input"},
	"CrossEntropy":              {"logits": "input"},
	"CrossEntropyWith":          {"logits": "self", "o.Weight": "weight"}, // aten::cross_entropy_loss's names
	"NLLLoss":                   {"logProbs": "self"},                     // aten::nll_loss_nd's names
	"ScaledDotProductAttention": {"q": "query", "k": "key", "v": "value", "mask": "attn_mask"},
	"Where":                     {"cond": "condition", "a": "self", "b": "other"},
	"WhereScalar":               {"cond": "condition", "a": "self"},
	"ToSlice":                   {"t": "tensor"},
	"SaveSafetensors":           {`tensors["b"]`: "tensor"},
	"SaveSafetensorsSharded":    {`tensors["b"]`: "tensor"},
	"Tensor.Addcmul_":           {"t1": "tensor1", "t2": "tensor2"},
	"Tensor.Addcdiv_":           {"t1": "tensor1", "t2": "tensor2"},
	"Tensor.PowTensor":          {"b": "exponent"},
	"Tensor.Lerp_":              {},
	"Tensor.BackwardWith":       {"self": "tensor", "grad": "gradient"},
	"Tensor.Backward":           {"self": "tensor"},
	"Tensor.ClampTensor":        {},
}

// The receiver of the initialisers is nn.init's "tensor".
var initOps = []string{"Fill_", "Zeros_", "Ones_", "Uniform_", "Normal_", "KaimingUniform_", "KaimingNormal_", "XavierUniform_", "XavierNormal_"}

// Binary ops name their operand b "other", as the ATen schemas do.
var otherOps = []string{"Add", "Sub", "Mul", "Div", "Pow", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Maximum", "Minimum",
	"MatMul", "Mm", "LogicalAnd", "LogicalOr", "AllClose", "AddScaled_", "Add_", "Sub_", "Mul_", "Div_"}

func init() {
	for _, op := range initOps {
		argNames["Tensor."+op] = map[string]string{"self": "tensor"}
	}
	for _, op := range otherOps {
		argNames["Tensor."+op] = map[string]string{"b": "other"}
	}
}

// opNames gives the op an error names where it is not the entry point's
// own name.
var opNames = map[string]string{
	"Tensor.Backward":         "Backward",
	"Tensor.BackwardWith":     "Backward",
	"Tensor.Zeros_":           "Fill_",
	"Tensor.Ones_":            "Fill_",
	"Call":                    "aten::add",
	"FusedOptimizer.Step":     "OptimizerStep",
	"FusedOptimizer.SetState": "OptimizerSetState",
}

// optionalArgs are the tensor parameters that may be nil (None in
// PyTorch): nil is no error there.
var optionalArgs = map[string]bool{
	"Linear.b": true, "Tensor.Linear.b": true, "LoraLinear.b": true,
	"LayerNorm.w": true, "LayerNorm.b": true,
	"Conv1d.b": true, "Conv2d.b": true,
	"ScaledDotProductAttention.mask": true,
	"NLLLoss.weight":                 true, "CrossEntropyWith.o.Weight": true,
	"Tensor.BackwardWith.grad": true,
	"Tensor.ClampTensor.min":   true, "Tensor.ClampTensor.max": true,
	"Tensor.Index.indices":          true, // nil stands for ":"
	"FusedOptimizer.SetState.state": true, // nil: no state
}

// entryEnv builds the arguments of one call.
type entryEnv struct {
	t    *testing.T
	s    *torch.Scope
	good func() *torch.Tensor
}

// slot is one tensor position of an entry point: a parameter, an entry
// of a list parameter, a field of an options struct.
type slot struct {
	param int    // index in the reflect arguments (receiver of a Tensor method: -1)
	name  string // "b", "ts[1]", "o.Weight", "state[1][exp_avg]"
	goArg string // the Go parameter's name (key of argNames / optionalArgs)
	set   func(args []reflect.Value, recv *reflect.Value, bad *torch.Tensor)
}

// defaultArg returns a valid value of type typ for parameter name of key.
func (env entryEnv) defaultArg(key, name string, typ reflect.Type) reflect.Value {
	switch key + "." + name {
	case "Tensor.MaskedFill.mask", "Tensor.MaskedFill_.mask", "Where.cond", "WhereScalar.cond":
		return reflect.ValueOf(env.good().GtScalar(0)) // bool
	}
	switch typ {
	case tensorType:
		return reflect.ValueOf(env.good())
	case reflect.TypeOf([]*torch.Tensor{}):
		return reflect.ValueOf([]*torch.Tensor{env.good(), env.good()})
	case reflect.TypeOf(map[string]*torch.Tensor{}):
		return reflect.ValueOf(map[string]*torch.Tensor{"a": env.good(), "b": env.good()})
	case reflect.TypeOf([][torch.NumStateSlots]*torch.Tensor{}):
		return reflect.ValueOf(make([][torch.NumStateSlots]*torch.Tensor, 2))
	case reflect.TypeOf(torch.DType(0)):
		return reflect.ValueOf(torch.Float32)
	case reflect.TypeOf(torch.Device{}):
		return reflect.ValueOf(torch.CPU)
	case reflect.TypeOf((*torch.Target)(nil)).Elem():
		return reflect.ValueOf(torch.Target(torch.Float64))
	case reflect.TypeOf(torch.Reduction(0)):
		return reflect.ValueOf(torch.ReductionMean)
	case reflect.TypeOf(torch.OptimKind(0)):
		return reflect.ValueOf(torch.OptimAdamW)
	case reflect.TypeOf(torch.CrossEntropyOptions{}):
		return reflect.ValueOf(torch.DefaultCrossEntropy)
	case reflect.TypeOf([]torch.OptimGroup{}):
		return reflect.ValueOf([]torch.OptimGroup{{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}})
	case reflect.TypeOf([]int{}):
		return reflect.ValueOf([]int{0, 0})
	case reflect.TypeOf([]any{}):
		return reflect.ValueOf([]any{})
	}
	switch key + "." + name {
	case "Checkpoint.fn":
		return reflect.ValueOf(func(in []*torch.Tensor) []*torch.Tensor { return in })
	case "Call.name":
		return reflect.ValueOf("aten::add")
	case "Call.overload":
		return reflect.ValueOf("Tensor")
	case "SaveSafetensors.path":
		return reflect.ValueOf(filepath.Join(env.t.TempDir(), "x.safetensors"))
	case "Op.Call1.op", "Op.CallN.op", "Op.Void.op", "Op.Inplace.op":
		return reflect.ValueOf(strings.TrimPrefix(key, "Op."))
	case "SaveSafetensorsSharded.dir":
		return reflect.ValueOf(env.t.TempDir())
	}
	switch typ.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return reflect.ValueOf(1).Convert(typ)
	case reflect.Float64:
		return reflect.ValueOf(0.5)
	case reflect.Bool:
		return reflect.ValueOf(false)
	case reflect.String:
		return reflect.ValueOf("x")
	case reflect.Slice, reflect.Map, reflect.Func, reflect.Interface, reflect.Struct, reflect.Array:
		return reflect.Zero(typ)
	}
	env.t.Fatalf("%s: no default for parameter %s of type %v", key, name, typ)
	return reflect.Value{}
}

// slots lists the tensor positions of fn's parameters (fn's reflect type
// without the receiver).
func slots(key string, goParams []string, ft reflect.Type, tensorRecv bool) []slot {
	var out []slot
	if tensorRecv {
		out = append(out, slot{param: -1, name: "self", goArg: "t", set: func(_ []reflect.Value, recv *reflect.Value, bad *torch.Tensor) {
			*recv = reflect.ValueOf(bad)
		}})
	}
	for i := 0; i < ft.NumIn(); i++ {
		i := i
		p := ft.In(i)
		gname := fmt.Sprint(i)
		if i < len(goParams) {
			gname = goParams[i]
		}
		switch {
		case p == tensorType:
			out = append(out, slot{param: i, name: gname, goArg: gname, set: func(args []reflect.Value, _ *reflect.Value, bad *torch.Tensor) {
				args[i] = reflect.ValueOf(bad)
			}})
		case p == reflect.TypeOf([]*torch.Tensor{}):
			for j := 0; j < 2; j++ {
				j := j
				out = append(out, slot{param: i, name: fmt.Sprintf("%s[%d]", gname, j), goArg: gname,
					set: func(args []reflect.Value, _ *reflect.Value, bad *torch.Tensor) {
						l := append([]*torch.Tensor(nil), args[i].Interface().([]*torch.Tensor)...)
						l[j] = bad
						args[i] = reflect.ValueOf(l)
					}})
			}
		case p == reflect.TypeOf(map[string]*torch.Tensor{}):
			out = append(out, slot{param: i, name: fmt.Sprintf("%s[%q]", gname, "b"), goArg: gname,
				set: func(args []reflect.Value, _ *reflect.Value, bad *torch.Tensor) {
					m := map[string]*torch.Tensor{}
					for k, v := range args[i].Interface().(map[string]*torch.Tensor) {
						m[k] = v
					}
					m["b"] = bad
					args[i] = reflect.ValueOf(m)
				}})
		case p == reflect.TypeOf([][torch.NumStateSlots]*torch.Tensor{}):
			out = append(out, slot{param: i, name: fmt.Sprintf("%s[1][%s]", gname, torch.StateSlotNames[torch.StateExpAvg]), goArg: gname,
				set: func(args []reflect.Value, _ *reflect.Value, bad *torch.Tensor) {
					st := make([][torch.NumStateSlots]*torch.Tensor, 2)
					st[1][torch.StateExpAvg] = bad
					args[i] = reflect.ValueOf(st)
				}})
		case p.Kind() == reflect.Struct:
			for f := 0; f < p.NumField(); f++ {
				f := f
				if p.Field(f).Type != tensorType {
					continue
				}
				fname := gname + "." + p.Field(f).Name
				out = append(out, slot{param: i, name: fname, goArg: fname, set: func(args []reflect.Value, _ *reflect.Value, bad *torch.Tensor) {
					v := reflect.New(p).Elem()
					v.Set(args[i])
					v.Field(f).Set(reflect.ValueOf(bad))
					args[i] = v
				}})
			}
		}
	}
	return out
}

// errorsOf returns the errors in a call's results, and whether the
// results can carry one at all.
func errorsOf(out []reflect.Value) (errs []error, canFail bool) {
	for _, v := range out {
		switch {
		case v.Type() == tensorType:
			canFail = true
			if x := v.Interface().(*torch.Tensor); x != nil && x.Err() != nil {
				errs = append(errs, x.Err())
			}
		case v.Type() == reflect.TypeOf([]*torch.Tensor{}):
			canFail = true
			for _, x := range v.Interface().([]*torch.Tensor) {
				if x != nil && x.Err() != nil {
					errs = append(errs, x.Err())
				}
			}
		case v.Type() == errorType:
			canFail = true
			if !v.IsNil() {
				errs = append(errs, v.Interface().(error))
			}
		}
	}
	return errs, canFail
}

// closeResults frees the tensors a call returned.
func closeResults(out []reflect.Value) {
	for _, v := range out {
		switch x := v.Interface().(type) {
		case *torch.Tensor:
			x.Close()
		case []*torch.Tensor:
			torch.CloseAll(x...)
		case [torch.NumStateSlots]*torch.Tensor:
			torch.CloseAll(x[:]...)
		case *torch.FusedOptimizer:
			if x != nil {
				x.Close()
			}
		}
	}
}

// entryReport collects what the reflection test saw, for the summary.
type entryReport struct {
	driven, slots, calls int
	observed             map[string]string // key.slot -> "Op: Arg"
}

func TestEntrypointsNilClosedFailed(t *testing.T) {
	decls := apiDecls(t)
	start := reftest.SettledLiveTensors()
	rep := &entryReport{observed: map[string]string{}}

	keys := make([]string, 0, len(decls))
	for k := range decls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		d := decls[key]
		if (!d.tensor && anySlots[key] == nil) || entryExcluded[key] != "" {
			continue
		}
		t.Run(key, func(t *testing.T) { driveEntry(t, d, rep) })
	}
	t.Logf("entry points driven: %d; tensor positions: %d; calls: %d", rep.driven, rep.slots, rep.calls)
	assert.Equal(t, start, reftest.SettledLiveTensors(), "the calls with bad operands leaked tensors")
	if os.Getenv("GOLORA_ENTRYPOINTS_DUMP") != "" {
		var lines []string
		for k, v := range rep.observed {
			lines = append(lines, k+" -> "+v)
		}
		sort.Strings(lines)
		t.Log("\n" + strings.Join(lines, "\n"))
	}
}

// receiverFor returns a receiver for a method of type recv, made with
// good operands, and a function that frees it.
func receiverFor(t *testing.T, env entryEnv, recv string) (reflect.Value, func()) {
	switch recv {
	case "Scope":
		s := torch.NewScope()
		return reflect.ValueOf(s), s.Close
	case "Op":
		return reflect.ValueOf(torch.NewOp("aten::add", "Tensor")), func() {}
	case "FusedOptimizer":
		ps := []*torch.Tensor{env.good(), env.good()}
		for _, p := range ps {
			require.NoError(t, p.SetRequiresGrad(true))
		}
		o, _, err := torch.NewFusedOptimizer(torch.OptimAdamW, ps)
		require.NoError(t, err)
		return reflect.ValueOf(o), o.Close
	case "ProcessGroup":
		g := testGroup(t)
		return reflect.ValueOf(g), func() {}
	}
	t.Fatalf("no receiver for %s", recv)
	return reflect.Value{}, nil
}

// testGroup returns a process group of one rank (Gloo, a FileStore), or,
// in a build without Gloo, a zero ProcessGroup (whose collectives must
// name a bad tensor all the same).
func testGroup(t *testing.T) *torch.ProcessGroup {
	if !torch.DistAvailable(torch.Gloo) {
		return &torch.ProcessGroup{}
	}
	g, err := torch.NewProcessGroup(torch.GroupConfig{Backend: torch.Gloo, Store: torch.FileStore,
		Addr: filepath.Join(t.TempDir(), "store"), World: 1, Timeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	return g
}

// entryArgs overrides the defaults of variadic ...any arguments.
var entryArgs = map[string]func(env entryEnv) []any{
	"Call":       func(env entryEnv) []any { return []any{env.good(), env.good()} },
	"Op.Call1":   func(env entryEnv) []any { return []any{env.good(), env.good()} },
	"Op.CallN":   func(env entryEnv) []any { return []any{env.good(), env.good()} },
	"Op.Void":    func(env entryEnv) []any { return []any{env.good(), env.good()} },
	"Op.Inplace": func(env entryEnv) []any { return []any{env.good()} },
}

// anySlots are the tensor positions inside ...any arguments: index in the
// variadic list, and the name the schema gives it.
var anySlots = map[string][]struct {
	idx  int
	name string
}{
	"Call":       {{0, "self"}, {1, "other"}},
	"Op.Call1":   {{0, "self"}, {1, "other"}},
	"Op.CallN":   {{0, "self"}, {1, "other"}},
	"Op.Void":    {{0, "self"}, {1, "other"}},
	"Op.Inplace": {{0, "other"}},
}

func driveEntry(t *testing.T, d apiDecl, rep *entryReport) {
	key := d.key()
	var fn reflect.Value
	var recvName string
	tensorRecv := d.recv == "Tensor"
	if d.recv == "" {
		f, ok := entryFuncs[key]
		require.Truef(t, ok, "%s takes a tensor but has no driver in entryFuncs nor a reason in entryExcluded", key)
		fn = reflect.ValueOf(f)
	} else {
		recvName = d.recv
	}
	rep.driven++
	for _, bad := range []string{"nil", "closed", "failed"} {
		// A fresh environment per variant, so that a call that fails to
		// fail cannot spoil the next one.
		s := torch.NewScope()
		env := entryEnv{t: t, s: s, good: func() *torch.Tensor { return torch.Ones([]int64{2, 2}, torch.In(s)) }}
		var recv reflect.Value
		freeRecv := func() {}
		var ft reflect.Type
		if fn.IsValid() {
			ft = fn.Type()
		}
		if recvName == "Tensor" {
			recv = reflect.ValueOf(env.good())
		} else if recvName != "" {
			recv, freeRecv = receiverFor(t, env, recvName)
		}
		if recvName != "" {
			m := recv.MethodByName(d.name)
			require.Truef(t, m.IsValid(), "%s: no such method via reflect", key)
			ft = m.Type()
		}
		var ss []slot
		if a, ok := accessors[key]; ok {
			ss = []slot{{param: -1, name: "self", goArg: "t", set: func(_ []reflect.Value, r *reflect.Value, b *torch.Tensor) {
				*r = reflect.ValueOf(b)
			}}}
			_ = a
		} else {
			ss = slots(key, d.params, ft, tensorRecv)
		}
		for _, as := range anySlots[key] {
			as := as
			vi := ft.NumIn() - 1
			ss = append(ss, slot{param: vi, name: as.name, goArg: "args", set: func(args []reflect.Value, _ *reflect.Value, b *torch.Tensor) {
				l := append([]any(nil), args[vi].Interface().([]any)...)
				l[as.idx] = b
				args[vi] = reflect.ValueOf(l)
			}})
		}
		require.NotEmptyf(t, ss, "%s: no tensor position found", key)
		if bad == "nil" {
			rep.slots += len(ss)
		}
		for _, sl := range ss {
			args := make([]reflect.Value, ft.NumIn())
			for i := range args {
				name := fmt.Sprint(i)
				if i < len(d.params) {
					name = d.params[i]
				}
				args[i] = env.defaultArg(key, name, ft.In(i))
			}
			if mk, ok := entryArgs[key]; ok {
				args[len(args)-1] = reflect.ValueOf(mk(env))
			}
			r := recv
			var badT *torch.Tensor
			var stickyErr error
			switch bad {
			case "closed":
				badT = torch.Ones([]int64{2, 2})
				require.NoError(t, badT.Close())
			case "failed":
				stickyErr = errors.New("an earlier failure")
				badT = torch.Failed(stickyErr)
			}
			sl.set(args, &r, badT)
			call := fn
			if recvName != "" {
				call = r.MethodByName(d.name)
			}
			var out []reflect.Value
			require.NotPanicsf(t, func() {
				if ft.IsVariadic() {
					out = call.CallSlice(args)
				} else {
					out = call.Call(args)
				}
			}, "%s with a %s %s panicked", key, bad, sl.name)
			rep.calls++
			if a, ok := accessors[key]; ok {
				a(t, bad, stickyErr, out)
				closeResults(out)
				continue
			}
			errs, canFail := errorsOf(out)
			closeResults(out)
			require.Truef(t, canFail, "%s: results cannot carry an error; list it in accessors or entryExcluded", key)
			optional := optionalArgs[key+"."+sl.goArg] || (d.recv == "" && optionalArgs[d.name+"."+sl.goArg])
			if bad == "nil" && optional {
				for _, err := range errs {
					if e, ok := torch.AsError(err); ok {
						assert.NotEqualf(t, sl.name, e.Arg, "%s: nil %s is None, not an error: %v", key, sl.name, err)
					}
				}
				continue
			}
			if !assert.NotEmptyf(t, errs, "%s: a %s %s gave no error", key, bad, sl.name) {
				continue
			}
			if d.recv == "ProcessGroup" && !torch.DistAvailable(torch.Gloo) {
				// A zero ProcessGroup (no Gloo in this build) refuses every call.
				for _, err := range errs {
					assert.Containsf(t, err.Error(), "not made by NewProcessGroup", "%s: %v", key, err)
				}
				continue
			}
			for _, err := range errs {
				if bad == "failed" {
					assert.Truef(t, errors.Is(err, stickyErr), "%s: a failed %s must pass its error on, got %v", key, sl.name, err)
					continue
				}
				checkNamed(t, key, d, sl, bad, err, rep)
			}
		}
		freeRecv()
		s.Close()
	}
}

// checkNamed asserts that err names the op and the argument sl.
func checkNamed(t *testing.T, key string, d apiDecl, sl slot, bad string, err error, rep *entryReport) {
	t.Helper()
	msg := map[string]string{"nil": "nil tensor", "closed": "use of closed tensor"}[bad]
	if key == "Scope.Done" && bad == "nil" {
		msg = "nil result" // memory_test.go's message
	}
	wantArg := sl.name
	if n, ok := argNames[key][sl.name]; ok {
		wantArg = n
	}
	wantOp := d.name
	if n, ok := opNames[key]; ok {
		wantOp = n
	}
	e, isErr := torch.AsError(err)
	if bad == "nil" {
		got := err.Error()
		if isErr {
			got = e.Op + ": " + e.Arg
		}
		rep.observed[key+" "+sl.name] = got
	}
	assert.NotContainsf(t, err.Error(), "(position ", "%s: %s %s: a C++ argument check, not golora's: %v", key, bad, sl.name, err)
	if !isErr {
		// A wrapped error (SaveSafetensors): the message names them.
		assert.Containsf(t, err.Error(), wantOp, "%s: %s %s: %v", key, bad, sl.name, err)
		assert.Containsf(t, err.Error(), wantArg, "%s: %s %s: %v", key, bad, sl.name, err)
		assert.Containsf(t, err.Error(), msg, "%s: %s %s: %v", key, bad, sl.name, err)
		return
	}
	if strings.HasPrefix(key, "SaveSafetensors") {
		assert.Containsf(t, err.Error(), `tensor "b"`, "%s: %s %s: the map's key: %v", key, bad, sl.name, err)
	}
	assert.Equalf(t, wantOp, e.Op, "%s: %s %s: op of %v", key, bad, sl.name, err)
	assert.Equalf(t, wantArg, e.Arg, "%s: %s %s: argument of %v", key, bad, sl.name, err)
	assert.Equalf(t, msg, e.Msg, "%s: %s %s: message of %v", key, bad, sl.name, err)
	assert.NotEmptyf(t, e.Where, "%s: %s %s: Where of %v", key, bad, sl.name, err)
}

var _ = math.NaN

// TestEntrypointsComplete: every exported function and method of the
// package is driven by TestEntrypointsNilClosedFailed, or takes no tensor,
// or is excluded with a reason; the tables name only what exists; and the
// methods reflect finds are the ones in the source.
func TestEntrypointsComplete(t *testing.T) {
	decls := apiDecls(t)
	var driven, noTensor, excluded, accessor []string
	for key, d := range decls {
		switch {
		case entryExcluded[key] != "":
			excluded = append(excluded, key)
		case accessors[key] != nil:
			accessor = append(accessor, key)
		case d.tensor || anySlots[key] != nil:
			driven = append(driven, key)
			if d.recv == "" {
				assert.Containsf(t, entryFuncs, key, "%s takes a tensor: add a driver to entryFuncs or a reason to entryExcluded", key)
			}
		default:
			noTensor = append(noTensor, key)
		}
	}
	for key := range entryExcluded {
		assert.Containsf(t, decls, key, "entryExcluded lists %s, which does not exist", key)
	}
	for key := range entryFuncs {
		assert.Truef(t, decls[key].tensor || anySlots[key] != nil, "entryFuncs lists %s, which does not exist or takes no tensor", key)
	}
	for key := range accessors {
		assert.Containsf(t, decls, key, "accessors lists %s, which does not exist", key)
	}
	for key := range argNames {
		assert.Containsf(t, decls, key, "argNames lists %s, which does not exist", key)
	}
	// The source's methods are reflect's: nothing is missed by either.
	for name, typ := range map[string]reflect.Type{
		"Tensor": tensorType, "Scope": reflect.TypeOf(&torch.Scope{}), "Op": reflect.TypeOf(&torch.Op{}),
		"FusedOptimizer": reflect.TypeOf(&torch.FusedOptimizer{}), "ProcessGroup": reflect.TypeOf(&torch.ProcessGroup{}),
	} {
		var fromSource, fromReflect []string
		for _, d := range decls {
			if d.recv == name {
				fromSource = append(fromSource, d.name)
			}
		}
		for i := 0; i < typ.NumMethod(); i++ {
			fromReflect = append(fromReflect, typ.Method(i).Name)
		}
		assert.ElementsMatchf(t, fromSource, fromReflect, "methods of %s", name)
	}
	sort.Strings(noTensor)
	t.Logf("exported entry points: %d; driven with bad tensors: %d (+%d accessors checked for their sentinel); excluded: %d; without a tensor parameter: %d",
		len(decls), len(driven), len(accessor), len(excluded), len(noTensor))
	t.Logf("without a tensor parameter: %v", noTensor)
	assert.Positive(t, len(driven))
}

// TestEntrypointsCallbacks: tensors that reach the package as a callback's
// result, and the closed or nil objects other than tensors.
func TestEntrypointsCallbacks(t *testing.T) {
	closed := torch.Ones([]int64{2})
	require.NoError(t, closed.Close())
	sticky := errors.New("an earlier failure")

	_, err := torch.WithScope(func(*torch.Scope) *torch.Tensor { return nil })
	expectError(t, "WithScope nil result", func() error { return err }, "Done", "out", "nil result")
	_, err = torch.WithScope(func(*torch.Scope) *torch.Tensor { return closed })
	expectError(t, "WithScope closed result", func() error { return err }, "Done", "out", "use of closed tensor")
	_, err = torch.WithScope(func(*torch.Scope) *torch.Tensor { return torch.Failed(sticky) })
	assert.Same(t, sticky, err)

	x := testScope(t).Own(torch.Ones([]int64{2}))
	require.NoError(t, x.SetRequiresGrad(true))
	for name, fn := range map[string]func([]*torch.Tensor) []*torch.Tensor{
		"nil":    func([]*torch.Tensor) []*torch.Tensor { return []*torch.Tensor{nil} },
		"closed": func([]*torch.Tensor) []*torch.Tensor { return []*torch.Tensor{closed} },
		"none":   func([]*torch.Tensor) []*torch.Tensor { return nil },
	} {
		out := torch.Checkpoint(fn, x)
		require.NotEmpty(t, out, name)
		expectError(t, "Checkpoint fn returns "+name, func() error { return errOf(out[0]) }, "Checkpoint")
	}
	out := torch.Checkpoint(nil, x)
	expectError(t, "Checkpoint nil fn", func() error { return errOf(out[0]) }, "Checkpoint", "fn", "nil function")

	// A closed optimizer and a closed or nil process group.
	p := testScope(t).Own(torch.Ones([]int64{2}))
	require.NoError(t, p.SetRequiresGrad(true))
	o, _, err := torch.NewFusedOptimizer(torch.OptimSGD, []*torch.Tensor{p})
	require.NoError(t, err)
	o.Close()
	o.Close() // idempotent
	expectError(t, "Step on a closed optimizer", func() error {
		_, err := o.Step([]*torch.Tensor{p}, []int{0}, []torch.OptimGroup{{LR: 1}})
		return err
	}, "OptimizerStep", "closed optimizer")
	expectError(t, "State of a closed optimizer", func() error { _, err := o.State(0); return err }, "closed optimizer")
	expectError(t, "SetState of a closed optimizer", func() error {
		_, err := o.SetState([]*torch.Tensor{p}, make([][torch.NumStateSlots]*torch.Tensor, 1))
		return err
	}, "closed optimizer")
	assert.Zero(t, o.StateBytes())

	var nilGroup *torch.ProcessGroup
	expectError(t, "AllGather on a nil group", func() error { _, err := nilGroup.AllGather(x); return err }, "AllGather", "nil process group")
	expectError(t, "Barrier on a nil group", nilGroup.Barrier, "Barrier", "nil process group")
	zero := &torch.ProcessGroup{}
	expectError(t, "AllReduce on a zero group", func() error { return zero.AllReduce([]*torch.Tensor{x}, false) },
		"AllReduce", "not made by NewProcessGroup")
	if torch.DistAvailable(torch.Gloo) {
		g := testGroup(t)
		require.NoError(t, g.Close())
		expectError(t, "AllReduce on a closed group", func() error { return g.AllReduce([]*torch.Tensor{x}, false) },
			"AllReduce", "closed")
		expectError(t, "AllGather on a closed group", func() error { _, err := g.AllGather(x); return err }, "AllGather", "closed")
	}
}

// TestEntrypointsShapes: mismatched shapes in the ops where shapes must
// agree (TestErrorsShapes covers MatMul, Mm, Linear, Add, View, Reshape,
// MSELoss).
func TestEntrypointsShapes(t *testing.T) {
	s := testScope(t)
	ones := func(shape ...int64) *torch.Tensor { return torch.Ones(shape, torch.In(s)) }
	idx := s.Own(torch.FromSlice([]int64{0, 1}))
	cases := []struct {
		name string
		got  *torch.Tensor
		subs []string
	}{
		{"Conv2d channels", torch.Conv2d(ones(1, 3, 4, 4), ones(2, 2, 3, 3), nil, torch.Conv2dOptions{}), []string{"Conv2d", "channels"}},
		{"Conv2d 3-D weight", torch.Conv2d(ones(1, 3, 4, 4), ones(2, 3, 3), nil, torch.Conv2dOptions{}), []string{"Conv2d", "weight", "must be 4-D", "got 3-D"}},
		{"Conv2d bias size", torch.Conv2d(ones(1, 3, 4, 4), ones(2, 3, 3, 3), ones(5), torch.Conv2dOptions{}), []string{"Conv2d", "bias"}},
		{"Conv2d kernel larger than input", torch.Conv2d(ones(1, 3, 2, 2), ones(2, 3, 3, 3), nil, torch.Conv2dOptions{}), []string{"Conv2d", "Kernel size can't be greater than actual input size"}},
		{"Conv1d channels", torch.Conv1d(ones(1, 3, 8), ones(2, 4, 3), nil, 1, 0, 1, 1), []string{"Conv1d", "channels"}},
		{"Embedding 1-D weight", torch.Embedding(idx, ones(4)), []string{"Embedding", "weight", "2-D"}},
		{"Cat sizes", torch.Cat([]*torch.Tensor{ones(2, 3), ones(2, 4)}, 0), []string{"Cat", "Sizes of tensors must match"}},
		{"Cat dim", torch.Cat([]*torch.Tensor{ones(2, 3), ones(2, 3)}, 2), []string{"Cat", "Dimension out of range"}},
		{"Stack unequal", torch.Stack([]*torch.Tensor{ones(2, 3), ones(3, 2)}, 0), []string{"Stack", "stack expects each tensor to be equal size"}},
		{"View -1 twice", ones(2, 3).View(-1, -1), []string{"View", "only one dimension can be inferred"}},
		{"View numel", ones(2, 3).View(4), []string{"View", "invalid for input of size 6"}},
		{"SDPA head dims", torch.ScaledDotProductAttention(ones(1, 2, 4, 8), ones(1, 2, 4, 6), ones(1, 2, 4, 8), nil, 0, false), []string{"ScaledDotProductAttention"}},
		{"SDPA mask shape", torch.ScaledDotProductAttention(ones(1, 2, 4, 8), ones(1, 2, 4, 8), ones(1, 2, 4, 8), ones(3, 5).GtScalar(0), 0, false), []string{"ScaledDotProductAttention"}},
		{"LayerNorm shape", torch.LayerNorm(ones(2, 3), []int64{4}, nil, nil, 1e-5), []string{"LayerNorm", "normalized_shape"}},
		{"LoraLinear rank", torch.LoraLinear(ones(2, 3), ones(4, 3), nil, ones(2, 3), ones(4, 5), 1), []string{"LoraLinear"}},
		{"CrossEntropy batch", torch.CrossEntropy(ones(3, 5), idx, -100, torch.ReductionMean), []string{"CrossEntropy", "batch_size"}},
		{"Where shapes", torch.Where(ones(2, 3).GtScalar(0), ones(4), ones(2, 3)), []string{"Where", "must match"}},
	}
	for _, c := range cases {
		expectError(t, c.name, func() error { return errOf(c.got) }, c.subs...)
	}
}

// TestEntrypointsDTypes: integer and bool tensors where a float one is
// needed, and float indices where an integer one is.
func TestEntrypointsDTypes(t *testing.T) {
	s := testScope(t)
	f := torch.Ones([]int64{2, 2}, torch.In(s))
	i64 := torch.Ones([]int64{2, 2}, torch.WithDType(torch.Int64), torch.In(s))
	b := f.GtScalar(0)
	cases := []struct {
		name string
		got  *torch.Tensor
		subs []string
	}{
		// libtorch 1.13: "expected scalar type Long but found Float"; 2.x:
		// "expected m1 and m2 to have the same dtype, but got: long int != float".
		{"MatMul int64 x float", i64.MatMul(f), []string{"MatMul", "expected", "ong"}},
		{"Linear int64 input", i64.Linear(f, nil), []string{"Linear"}},
		{"Softmax of int64", i64.Softmax(0), []string{"Softmax", "Long"}},
		{"Mean of bool", b.Mean(), []string{"Mean", "floating point"}},
		{"Conv2d int64", torch.Conv2d(torch.Ones([]int64{1, 1, 3, 3}, torch.WithDType(torch.Int64), torch.In(s)),
			torch.Ones([]int64{1, 1, 2, 2}, torch.In(s)), nil, torch.Conv2dOptions{}), []string{"Conv2d"}},
		{"LayerNorm int64", torch.LayerNorm(i64, []int64{2}, nil, nil, 1e-5), []string{"LayerNorm"}},
		{"SDPA bool query", torch.ScaledDotProductAttention(b, f, f, nil, 0, false), []string{"ScaledDotProductAttention"}},
		{"Embedding float indices", torch.Embedding(f, f), []string{"Embedding", "indices must be int64 or int32"}},
		{"Embedding bool indices", torch.Embedding(b, f), []string{"Embedding", "indices must be int64 or int32"}},
		{"CrossEntropy float class targets", torch.CrossEntropy(f, s.Own(torch.FromSlice([]float32{0, 1})), -100, torch.ReductionMean), []string{"CrossEntropy"}},
		{"Gather float index", f.Gather(0, f), []string{"Gather", "index"}},
		{"To unsupported dtype", f.To(torch.DType(99)), []string{"To", "dtype", "unsupported dtype"}},
		{"Zeros unsupported dtype", torch.Zeros([]int64{2}, torch.WithDType(torch.DType(99))), []string{"Zeros", "dtype"}},
	}
	for _, c := range cases {
		expectError(t, c.name, func() error { return errOf(c.got) }, c.subs...)
	}
	expectError(t, "SetRequiresGrad on int64", func() error { return i64.SetRequiresGrad(true) }, "SetRequiresGrad", "floating point")
	expectError(t, "XavierUniform_ on int64", func() error { return i64.Clone().XavierUniform_(1) }, "XavierUniform_")
	expectError(t, "NewFusedOptimizer int64 param", func() error {
		_, _, err := torch.NewFusedOptimizer(torch.OptimAdamW, []*torch.Tensor{i64})
		return err
	}, "NewFusedOptimizer")
	expectError(t, "ToSlice wrong type", func() error { _, err := torch.ToSlice[int64](f); return err }, "ToSlice", "float32", "int64")
}

// TestEntrypointsDevice: this package knows the CPU and CUDA; other
// device types, and CUDA without a GPU, are refused naming the device.
// (libtorch's meta device is not reachable through golora's Device, so
// mixing devices in one op is only testable on a CUDA machine:
// TestErrorsCUDA's "Add across devices".)
func TestEntrypointsDevice(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2}, torch.In(s))
	expectError(t, "To unknown device type", func() error { return errOf(x.To(torch.Device{Type: 7})) }, "To", "device", "unknown device type 7")
	expectError(t, "Zeros on an unknown device type", func() error {
		return errOf(torch.Zeros([]int64{2}, torch.WithDevice(torch.Device{Type: 7})))
	}, "Zeros", "unknown device type 7")
	expectError(t, "RNGState of an unknown device type", func() error { return errOf(torch.RNGState(torch.Device{Type: 7})) }, "RNGState")
	expectError(t, "Autocast on an unknown device type", func() error {
		return torch.Autocast(torch.Device{Type: 7}, torch.BFloat16, func() error { return nil })
	}, "Autocast", "unknown device type")
	expectError(t, "Autocast float32", func() error {
		return torch.Autocast(torch.CPU, torch.Float32, func() error { return nil })
	}, "Autocast", "dtype")
	if torch.CUDAIsAvailable() {
		n := torch.CUDADeviceCount()
		expectError(t, "To a missing GPU", func() error { return errOf(x.To(torch.CUDA(n))) }, "To", "out of range")
		return
	}
	for _, dev := range []torch.Device{torch.CUDA(0), torch.CUDA(-1)} {
		expectError(t, "To "+dev.String(), func() error { return errOf(x.To(dev)) }, "To", "device", "CUDA is not available")
		expectError(t, "SetRNGState "+dev.String(), func() error {
			return torch.SetRNGState(dev, torch.RNGState(torch.CPU))
		}, "SetRNGState", "device", "CUDA is not available")
		expectError(t, "Autocast "+dev.String(), func() error {
			return torch.Autocast(dev, torch.Float16, func() error { return nil })
		}, "Autocast", "device", "CUDA is not available")
		expectError(t, "LoadTo "+dev.String(), func() error {
			path := filepath.Join(t.TempDir(), "x.safetensors")
			require.NoError(t, torch.SaveSafetensors(path, map[string]*torch.Tensor{"x": x}, nil))
			m, _, err := torch.LoadSafetensors(path, torch.LoadTo(dev))
			torch.CloseMap(m)
			return err
		}, "CUDA is not available")
	}
}

// TestEntrypointsNonFinite: NaN and infinite scalar arguments. Where they
// can only be a mistake (a probability, an epsilon, an initialiser's gain
// or bounds, a LoRA scaling) they are refused naming the argument; where
// PyTorch computes with them (arithmetic, fills, clamps) they give
// PyTorch's result.
func TestEntrypointsNonFinite(t *testing.T) {
	s := testScope(t)
	x := torch.Ones([]int64{2, 2}, torch.In(s))
	w := torch.Ones([]int64{2, 2}, torch.In(s))
	nan, inf := math.NaN(), math.Inf(1)
	for _, v := range []float64{nan, inf, -inf} {
		v := v
		name := fmt.Sprint(v)
		cases := []struct {
			name string
			err  func() error
			op   string
			arg  string
		}{
			{"Dropout p", func() error { return errOf(torch.Dropout(x, v, true)) }, "Dropout", "p"},
			{"SDPA dropout", func() error {
				q := torch.Ones([]int64{1, 1, 2, 2}, torch.In(s))
				return errOf(torch.ScaledDotProductAttention(q, q, q, nil, v, false))
			}, "ScaledDotProductAttention", "dropout_p"},
			{"LayerNorm eps", func() error { return errOf(torch.LayerNorm(x, []int64{2}, nil, nil, v)) }, "LayerNorm", "eps"},
			{"LoraLinear scaling", func() error { return errOf(torch.LoraLinear(x, w, nil, w, w, v)) }, "LoraLinear", "scaling"},
			{"LoraEmbedding scaling", func() error {
				idx := s.Own(torch.FromSlice([]int64{0, 1}))
				return errOf(torch.LoraEmbedding(idx, w, w, w, v))
			}, "LoraEmbedding", "scaling"},
			{"Uniform_ lo", func() error { return x.Clone().Uniform_(v, 1) }, "Uniform_", "lo"},
			{"Uniform_ hi", func() error { return x.Clone().Uniform_(0, v) }, "Uniform_", "hi"},
			{"Normal_ mean", func() error { return x.Clone().Normal_(v, 1) }, "Normal_", "mean"},
			{"Normal_ std", func() error { return x.Clone().Normal_(0, v) }, "Normal_", "std"},
			{"KaimingUniform_ a", func() error { return x.Clone().KaimingUniform_(v, torch.FanIn, torch.LeakyReLU) }, "KaimingUniform_", "a"},
			{"KaimingNormal_ a", func() error { return x.Clone().KaimingNormal_(v, torch.FanIn, torch.LeakyReLU) }, "KaimingNormal_", "a"},
			{"XavierUniform_ gain", func() error { return x.Clone().XavierUniform_(v) }, "XavierUniform_", "gain"},
			{"XavierNormal_ gain", func() error { return x.Clone().XavierNormal_(v) }, "XavierNormal_", "gain"},
		}
		for _, c := range cases {
			expectError(t, c.name+" "+name, c.err, c.op, c.arg)
		}
		// Refused by libtorch's own checks, which name the argument.
		expectError(t, "CrossEntropy label_smoothing "+name, func() error {
			o := torch.DefaultCrossEntropy
			o.LabelSmoothing = v
			return errOf(torch.CrossEntropyWith(x, s.Own(torch.FromSlice([]int64{0, 1})), o))
		}, "CrossEntropyWith", "label_smoothing")
		expectError(t, "Arange end "+name, func() error { return errOf(torch.Arange(0, v, 1)) }, "Arange")
	}

	// Accepted as PyTorch does: IEEE arithmetic on the values.
	vals := func(x *torch.Tensor) []float32 { return torch.Must(torch.ToSlice[float32](ok(t, x))) }
	assert.True(t, math.IsNaN(float64(vals(x.MulScalar(nan))[0])), "x * NaN is NaN")
	assert.True(t, math.IsInf(float64(vals(x.DivScalar(0))[0]), 1), "1 / 0 is +Inf")
	assert.True(t, math.IsNaN(float64(vals(torch.Full([]int64{1}, nan, torch.In(s)))[0])), "Full(NaN)")
	y := x.Clone()
	require.NoError(t, y.Fill_(inf))
	assert.Equal(t, []float32{float32(inf), float32(inf), float32(inf), float32(inf)}, vals(y))
	assert.Equal(t, []float32{1, 1, 1, 1}, vals(x.Clamp(-inf, inf)), "infinite bounds clamp nothing")
	assert.True(t, math.IsNaN(float64(vals(x.Add_(x.Clone(), nan))[0])), "Add_ with alpha NaN is NaN")
}
