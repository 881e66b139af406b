package module_test

// A GPT-2 block written in the v2 style, checked against PyTorch
// (testdata/gen_gpt2block.py): output, every gradient, the Hugging Face
// checkpoint layout on load and save, the length of its forward pass, and
// leaks on the success, error and panic paths.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const (
	gpt2RefsPath = "testdata/gpt2block_refs.safetensors"
	gpt2Regen    = "/usr/bin/python3 module/testdata/gen_gpt2block.py"
)

// gpt2Attn is GPT-2's attention: a fused q,k,v projection and an output
// projection, declared as Layers so that LoRA can wrap them.
type gpt2Attn struct {
	module.Base
	CAttn, CProj module.Layer
	// Bias is the causal mask of the eager attention path, a
	// non-persistent buffer as in transformers today; Forward uses SDPA's
	// is_causal. Old checkpoints carry it (and masked_bias).
	Bias *torch.Tensor
}

type gpt2MLP struct {
	module.Base
	CFc, CProj module.Layer
}

// gpt2Block is a pre-LayerNorm GPT-2 block.
type gpt2Block struct {
	module.Base
	NHead    int64
	Ln1, Ln2 *module.LayerNorm
	Attn     *gpt2Attn
	MLP      *gpt2MLP
}

func newGPT2Block(t *testing.T, d, nHead, nCtx int64, dt torch.DType) *gpt2Block {
	t.Helper()
	o := torch.WithDType(dt)
	mask := torch.Must(torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		return torch.Ones([]int64{nCtx, nCtx}, torch.WithDType(torch.Bool), torch.In(s)).Tril(0).View(1, 1, nCtx, nCtx)
	}))
	b := &gpt2Block{
		NHead: nHead,
		Ln1:   torch.Must(module.NewLayerNorm([]int64{d}, o)),
		Ln2:   torch.Must(module.NewLayerNorm([]int64{d}, o)),
		Attn: &gpt2Attn{
			CAttn: torch.Must(module.NewLinear(d, 3*d, true, o)),
			CProj: torch.Must(module.NewLinear(d, d, true, o)),
			Bias:  mask,
		},
		MLP: &gpt2MLP{
			CFc:   torch.Must(module.NewLinear(d, 4*d, true, o)),
			CProj: torch.Must(module.NewLinear(4*d, d, true, o)),
		},
	}
	module.Child(&b.Attn.Base, "c_attn", &b.Attn.CAttn)
	module.Child(&b.Attn.Base, "c_proj", &b.Attn.CProj)
	b.Attn.Buffer("bias", &b.Attn.Bias, false)
	module.Child(&b.MLP.Base, "c_fc", &b.MLP.CFc)
	module.Child(&b.MLP.Base, "c_proj", &b.MLP.CProj)
	module.Child(&b.Base, "ln_1", &b.Ln1)
	module.Child(&b.Base, "attn", &b.Attn)
	module.Child(&b.Base, "ln_2", &b.Ln2)
	module.Child(&b.Base, "mlp", &b.MLP)
	return b
}

// Forward is x + attn(ln_1(x)), then + mlp(ln_2(·)), for x (B, T, C).
func (b *gpt2Block) Forward(x *torch.Tensor) *torch.Tensor {
	// block:begin
	B, T, C, H := x.SizeOf(0), x.SizeOf(1), x.SizeOf(2), b.NHead
	qkv := b.Attn.CAttn.Forward(b.Ln1.Forward(x))
	q := qkv.Narrow(2, 0, C).View(B, T, H, C/H).Transpose(1, 2)
	k := qkv.Narrow(2, C, C).View(B, T, H, C/H).Transpose(1, 2)
	v := qkv.Narrow(2, 2*C, C).View(B, T, H, C/H).Transpose(1, 2)
	y := torch.ScaledDotProductAttention(q, k, v, nil, 0, true).Transpose(1, 2).Reshape(B, T, C)
	x = x.Add(b.Attn.CProj.Forward(y))
	return x.Add(b.MLP.CProj.Forward(b.MLP.CFc.Forward(b.Ln2.Forward(x)).GeluTanh()))
	// block:end
}

// gpt2Load are the options that load a Hugging Face GPT-2 checkpoint into
// the block: Conv1D weights transposed, the causal mask (a non-persistent
// buffer here) and masked_bias skipped.
var gpt2Load = []module.StateOption{
	module.WithTransform(gpt2Layout),
	module.SkipNonPersistent(),
	module.IgnoreKeys("*.masked_bias"),
}

// markedLines returns the non-blank lines of file strictly between the
// lines that contain begin and end.
func markedLines(t *testing.T, file, begin, end string) []string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	in, seen := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.Contains(line, begin) && !strings.Contains(line, "\""):
			in, seen = true, true
		case strings.Contains(line, end) && !strings.Contains(line, "\""):
			in = false
		case in && line != "":
			out = append(out, line)
		}
	}
	require.NoError(t, sc.Err())
	require.True(t, seen, "%s: no %q marker", file, begin)
	return out
}

// The forward pass is at most twice as long as PyTorch's.
func TestGPT2BlockLineCount(t *testing.T) {
	goLines := markedLines(t, "gpt2block_test.go", "// block:begin", "// block:end")
	pyLines := markedLines(t, "testdata/gen_gpt2block.py", "# block:begin", "# block:end")
	t.Logf("GPT-2 block forward: Go %d lines, PyTorch %d lines", len(goLines), len(pyLines))
	require.NotEmpty(t, pyLines)
	require.LessOrEqual(t, len(goLines), 2*len(pyLines))
}

func TestGPT2BlockMatchesPyTorch(t *testing.T) {
	r := reftest.Load(t, gpt2RefsPath, gpt2Regen)
	var meta struct{ NEmbd, NHead, NCtx int64 }
	for k, p := range map[string]*int64{"n_embd": &meta.NEmbd, "n_head": &meta.NHead, "n_ctx": &meta.NCtx} {
		r.DecodeMeta(t, k, p)
	}
	var pyParams []string
	r.DecodeMeta(t, "params", &pyParams)

	for _, dt := range []torch.DType{torch.Float32, torch.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			b := newGPT2Block(t, meta.NEmbd, meta.NHead, meta.NCtx, dt)
			defer module.Close(b)
			require.Equal(t, pyParams, names(b), "parameter names follow the PyTorch block")
			state := fmt.Sprintf("testdata/gpt2block_state_%s.safetensors", dt)

			// The checkpoint's layout: without the options the Conv1D
			// weights are misshaped (attn.c_proj is square and would load
			// transposed without complaint) and the buffers unexpected.
			var se *module.StateDictError
			require.True(t, errors.As(module.Load(b, state), &se))
			require.Equal(t, []string{"attn.bias", "attn.masked_bias"}, se.Unexpected)
			require.Len(t, se.Misshaped, 3)

			// On the test device (GOLORA_TEST_DEVICE): the block moves
			// first, then loads from the CPU file across devices.
			dev := reftest.Device(t)
			require.NoError(t, module.To(b, dev))
			require.NoError(t, module.Load(b, state, gpt2Load...))
			tol := reftest.Tolerance(dt, dev)
			check := func(what string, got, want *torch.Tensor) float64 {
				e := reftest.RequireClose(t, what, got, want, tol)
				maxRel.Note(dt.String()+" "+dev.String(), t.Name(), e)
				return e
			}

			live := torch.LiveTensors()
			step := torch.NewScope()
			ref := func(name string) *torch.Tensor { return own(step, r.Tensor(t, dt.String()+"."+name)) }
			x := ref("x").To(dev).Clone()
			require.NoError(t, x.SetRequiresGrad(true))
			out := b.Forward(x)
			require.Equal(t, dev, out.Device())
			worst := check("forward", out, r.Tensor(t, dt.String()+".out"))
			require.NoError(t, out.Mul(ref("w").To(dev)).Sum().Backward())
			worst = max(worst, check("grad x", step.Own(x.Grad()), r.Tensor(t, dt.String()+".grad_x")))
			for _, p := range module.NamedParameters(b) {
				want := ref("grad." + p.Name)
				if strings.HasSuffix(p.Name, ".weight") && want.Dim() == 2 {
					want = want.T() // Conv1D's layout
				}
				worst = max(worst, check("grad "+p.Name, step.Own(p.Tensor.Grad()), want.Contiguous()))
			}
			require.NoError(t, step.Err())
			step.Close()
			require.Equal(t, live, torch.LiveTensors(), "the step's scope frees every intermediate")
			require.NoError(t, module.ZeroGrad(b))
			t.Logf("%v on %v: largest relative error over the output and all %d gradients: %.3g",
				dt, dev, len(pyParams)+1, worst)

			// Save writes the checkpoint's layout back, bit for bit, less
			// the buffers that are not part of the block's state.
			path := filepath.Join(t.TempDir(), "block.safetensors")
			require.NoError(t, module.Save(b, path, nil, module.WithTransform(gpt2Layout)))
			got, _, err := torch.LoadSafetensors(path)
			require.NoError(t, err)
			defer torch.CloseMap(got)
			want, _, err := torch.LoadSafetensors(state)
			require.NoError(t, err)
			defer torch.CloseMap(want)
			require.Equal(t, pyParams, sortedByOrder(sortedKeys(got), pyParams))
			for k, v := range got {
				reftest.RequireBitwise(t, k, v, want[k])
			}
		})
	}
}

// The block leaks nothing when it fails or panics, and its errors name the
// op and the line.
func TestGPT2BlockErrorsAndPanics(t *testing.T) {
	b := newGPT2Block(t, 16, 4, 8, torch.Float32)
	defer module.Close(b)
	start := torch.LiveTensors()

	// A wrong input width fails in ln_1's torch.LayerNorm; the error names
	// the block's line that called ln_1 (the caller outside golora's
	// library), not module/norm.go.
	s := torch.NewScope()
	out := b.Forward(s.Own(torch.Randn([]int64{2, 5, 8})))
	_, err := s.Done(out)
	require.Error(t, err)
	te, ok := torch.AsError(err)
	require.True(t, ok, "%T", err)
	require.Equal(t, "LayerNorm", te.Op)
	require.Equal(t, lineOf(t, "gpt2block_test.go", "qkv := b.Attn.CAttn.Forward(b.Ln1.Forward(x))"), te.Where)
	require.Equal(t, start, torch.LiveTensors(), "Done freed the failed pass's tensors")

	// A 2-D input fails at the q split, in the block's own line.
	s = torch.NewScope()
	_, err = s.Done(b.Forward(s.Own(torch.Randn([]int64{5, 16}))))
	te, ok = torch.AsError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "Narrow", te.Op)
	require.Equal(t, lineOf(t, "gpt2block_test.go", "q := qkv.Narrow("), te.Where)
	require.Equal(t, start, torch.LiveTensors())

	// A panic in the middle of a step: the scope still frees everything.
	require.PanicsWithValue(t, "boom", func() {
		_, _ = torch.WithScope(func(s *torch.Scope) *torch.Tensor {
			y := b.Forward(s.Own(torch.Randn([]int64{2, 5, 16})))
			require.NoError(t, y.Err())
			panic("boom")
		})
	})
	require.Equal(t, start, torch.LiveTensors(), "the panic path frees every tensor")

	// And the success path, for comparison.
	y, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		return b.Forward(s.Own(torch.Randn([]int64{2, 5, 16})))
	})
	require.NoError(t, err)
	require.Equal(t, []int64{2, 5, 16}, y.Shape())
	require.Equal(t, start+1, torch.LiveTensors(), "only the result is left")
	require.NoError(t, y.Close())
	require.Equal(t, start, torch.LiveTensors())
}

// lineOf returns "file:N" for the first line of file containing text.
func lineOf(t *testing.T, file, text string) string {
	t.Helper()
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	for i, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, text) && !strings.Contains(line, `"`+text) {
			return fmt.Sprintf("%s:%d", file, i+1)
		}
	}
	t.Fatalf("%s: no line contains %q", file, text)
	return ""
}
