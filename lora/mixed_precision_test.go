package lora_test

// Mixed-precision LoRA training on the CPU against PyTorch: frozen base
// weights in bfloat16, lora_a and lora_b (and their SGD update) in
// float32, the forward under torch.Autocast(torch.CPU, torch.BFloat16, …)
// as under torch.autocast("cpu", dtype=torch.bfloat16). The reference is
// written by testdata/gen_mixed.py (run it from the repository root with
// /usr/bin/python3), which documents the recipe; this test replays it op
// for op:
//
//	seed; l1 = Linear(32→64, r=4, α=8), l2 = Linear(64→16, r=4, α=8)
//	weight, bias → bfloat16 (SetData); lora_b ← B0 (non-zero)
//	5 × { autocast{ y = l2(relu(l1(x))); loss = mse(y, target) }
//	      loss.backward(); p ← p − lr·∇p for p in A1, B1, A2, B2 }
//
// and checks the seeded initialisation, the dtypes (base bfloat16 with no
// gradient, A and B and their gradients float32, autocast results
// bfloat16, the loss float32, float32 again outside the region), and per
// step the hidden activation h, the output y, the loss, the four
// gradients and the four parameters after the update. The recipe is CPU
// autocast: it runs on the CPU whatever GOLORA_TEST_DEVICE says.
//
// # Tolerance
//
// Go and PyTorch run the same graph of libtorch ops on bitwise-equal
// inputs (the seeded init is checked bit for bit, x, target and B0 come
// from the file). Every op is deterministic given its kernel, so when
// the library and the generator's PyTorch are the same libtorch (same
// major.minor version: make test, scripts/test_with_pytorch.sh) and run
// single-threaded (the generator's refs.setup() and this test both pin
// one intra-op thread), the results must agree exactly: the test then
// requires every result bit for bit, over the whole trajectory. The
// fused torch.LoraLinear runs linear, matmul, matmul, mul, add through
// the dispatcher in the spec's association, (x·Aᵀ)·Bᵀ, so it casts and
// rounds exactly like the spec's F.linear(x, W, b) + (x @ A.T @ B.T)·s.
//
// When the kernels differ (the reference written by another libtorch:
// 1.13's CPU GEMM for bfloat16 errs by up to 2.2·u·|A||B| for some small
// layouts, intermediate sums rounded, where 2.x stays within u·|A||B|),
// each step is judged on its own: its parameters are first set to the
// reference's, then the results must lie within a bound derived as
// follows. bfloat16 has an 8-bit significand, unit roundoff u = 2⁻⁸, and
// one ulp of a value z is at most 2u·|z|. A kernel that accumulates in
// float32 (error ≤ K·2⁻²⁴·Σ|a||b| for K ≤ 64 terms: 2⁻¹⁸ = u/1024) and
// rounds once is within half an ulp (plus that) of the exact result, so
// two such kernels differ by at most one ulp per rounding, 2u of the
// values' scale. (1.13's kernels above fall outside this assumption;
// the check across versions below measures what they do.)
// Differences then propagate through the later ops; to first order each
// bfloat16 rounding stage on a path adds at most 2u (relative errors add
// through a product, the larger one passes through a sum), so a result
// reached through R rounding stages differs by at most
//
//	max|Δ| ≤ 2·R·u·max|ref|           (reftest.RelErr ≤ 2Ru)
//
// with R counted on the graph (casts of A, B, x to bfloat16 are exact
// functions of equal inputs and count 0; ·s = ·2 is exact; linear with
// bias counts 2 in case the bias is added after the product):
//
//	p = x̄Āᵀ: 1   q = pB̄ᵀ: 2   z0 = x̄W̄ᵀ+b: 2   z = z0+s·q: 3   h = relu(z): 3
//	layer 2 on h: p 4, q 5, z0 5, y 6
//	backward: g = bf(2(y−t)/N) 7; ∂B̄₂ = s·gᵀp 12; ∂p 8; ∂Ā₂ = ∂pᵀh 12;
//	∂h = gW̄ + ∂pĀ 10; ∂B̄₁ 12; ∂p₁ 11; ∂Ā₁ 12 (the casts back to float32
//	are exact)
//
// so h: 6u, y: 12u, gradients: 24u. The loss mean((y−t)²) is float32:
// |ΔL| ≤ 2·mean|y−t|·max|Δy| + 2N·2⁻²⁴·L (the float32 sum of N terms in
// another order). A parameter after the float32 update p − lr·g from
// the same p: |Δp| ≤ lr·max|Δg| + 2·2⁻²⁴·max|p|.
//
// This is a normwise, first-order model, not a worst-case bound: the
// rigorous componentwise one, |Δ| ≤ 2Ru·M with M the same graph run on
// |W|, |x|, |A|, |B| and |g|, holds but is 10² (y) to 10⁴ (gradients)
// times looser here (random weights make every sum cancel: for y, M is
// ~120 where |y| ≤ 1), so it would accept almost anything. A relu mask that flips between the
// runs (a pre-activation within an ulp of 0) is outside the model and
// fails the test by name. Checked across versions (references of 1.13
// against the 2.15 library and the reverse, steps re-synchronised): the
// forward and the loss agree bit for bit (the two versions differ in the
// backward's GEMMs only), the largest gradient difference is 4.3u, 0.18
// of its 24u, and the parameters use at most 0.18 of their bound.

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// bf16U is the unit roundoff of bfloat16 (8-bit significand): 2⁻⁸.
const bf16U = 1.0 / 256

// f32U is the unit roundoff of float32: 2⁻²⁴.
const f32U = 1.0 / (1 << 24)

// Rounding stages on the longest path to each compared result (see the
// derivation above): the tolerance is 2·R·u.
const (
	stagesH    = 3
	stagesY    = 6
	stagesGrad = 12
)

// mixedConfig is the "config" metadata of mixed_bf16.safetensors.
type mixedConfig struct {
	Seed          uint64  `json:"seed"`
	In            int64   `json:"in"`
	Hidden        int64   `json:"hidden"`
	Out           int64   `json:"out"`
	R             int64   `json:"r"`
	Alpha         float64 `json:"alpha"`
	Scaling       float64 `json:"scaling"`
	Batch         int64   `json:"batch"`
	LR            float64 `json:"lr"`
	Steps         int     `json:"steps"`
	AutocastDType string  `json:"autocast_dtype"`
}

// mixedErr records, per result kind, the largest relative error in units
// of u ("u/<kind>") and the largest fraction of the tolerance it used
// ("tol/<kind>"), for the log.
var mixedErr reftest.MaxErrors

// sameMinor reports whether two version strings ("1.13.0a0", "1.13.0",
// "2.15.0+cu132") have the same major.minor.
func sameMinor(a, b string) bool {
	mm := func(v string) string {
		p := strings.SplitN(v, ".", 3)
		if len(p) < 2 {
			return v
		}
		return p[0] + "." + p[1]
	}
	return mm(a) == mm(b)
}

// values returns the elements of a bfloat16, float32 or float64 tensor as
// float64s (bfloat16 and float32 convert exactly).
func values(t testing.TB, x *torch.Tensor) []float64 {
	t.Helper()
	if x.DType() == torch.BFloat16 {
		s := torch.NewScope()
		defer s.Close()
		x = s.Own(x.To(torch.Float32))
		require.NoError(t, s.Err())
		return reftest.Float64s(t, x)
	}
	return reftest.Float64s(t, x)
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// mixedRun holds the test's state.
type mixedRun struct {
	f     *reftest.File
	cfg   mixedConfig
	exact bool // same libtorch as the generator: require bit-for-bit equality
}

// compare checks got against the reference tensor name: same dtype and
// shape, RelErr ≤ tol, and bit for bit in exact mode. It records the
// error in units of u under kind and returns the reference's values.
func (m *mixedRun) compare(t testing.TB, kind, name string, got *torch.Tensor, tol float64) []float64 {
	t.Helper()
	want := m.f.Tensor(t, name)
	require.NotNil(t, got, name)
	require.Equal(t, want.DType(), got.DType(), "%s: dtype", name)
	require.Equal(t, want.Shape(), got.Shape(), "%s: shape", name)
	g, w := values(t, got), values(t, want)
	e := reftest.RequireSlicesClose(t, name, g, w, tol)
	mixedErr.Note("u/"+kind, name, e/bf16U)
	mixedErr.Note("tol/"+kind, name, e/tol)
	if m.exact {
		for i := range w {
			if math.Float64bits(g[i]) != math.Float64bits(w[i]) {
				require.FailNowf(t, "not bitwise equal",
					"%s: element %d of %d: got %v, want %v (same libtorch %s as the generator: the results must be identical)",
					name, i, len(w), g[i], w[i], torch.Version())
			}
		}
	}
	return w
}

// toBF16 converts a frozen tensor to bfloat16 in place (SetData keeps
// its identity, so the layer and module.Parameters see the change).
func toBF16(t testing.TB, p *torch.Tensor) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	require.NoError(t, p.SetData(s.Own(p.To(torch.BFloat16))))
	require.NoError(t, s.Err())
}

// autocastOn reports whether autocast is on for the CPU on the calling
// goroutine's thread.
func autocastOn() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	on, _ := torch.AutocastEnabled(torch.CPU)
	return on
}

func TestMixedPrecisionBF16(t *testing.T) {
	const regen = "/usr/bin/python3 lora/testdata/gen_mixed.py"
	m := &mixedRun{f: reftest.Load(t, filepath.Join("testdata", "mixed_bf16.safetensors"), regen)}
	m.f.DecodeMeta(t, "config", &m.cfg)
	cfg := m.cfg
	require.Equal(t, "bfloat16", cfg.AutocastDType)
	require.Positive(t, cfg.Steps)
	m.exact = sameMinor(m.f.Meta["torch_version"], torch.Version())
	mode := "bit for bit (same libtorch as the generator)"
	if !m.exact {
		mode = "within the derived tolerance, steps re-synchronised (reference from another libtorch)"
	}
	t.Logf("libtorch %s, reference from torch %s: comparing %s", torch.Version(), m.f.Meta["torch_version"], mode)

	// One intra-op thread, like the generator (refs.setup): the kernels
	// then take the same path on both sides.
	threads := torch.NumThreads()
	require.NoError(t, torch.SetNumThreads(1))
	t.Cleanup(func() { _ = torch.SetNumThreads(threads) })

	// The model, seeded like the generator: l1's weight, bias, lora_a,
	// then l2's.
	require.NoError(t, torch.ManualSeed(cfg.Seed))
	l1, err := lora.NewLinear(cfg.In, cfg.Hidden, true, cfg.R, lora.WithAlpha(cfg.Alpha))
	require.NoError(t, err)
	t.Cleanup(func() { module.Close(l1) })
	l2, err := lora.NewLinear(cfg.Hidden, cfg.Out, true, cfg.R, lora.WithAlpha(cfg.Alpha))
	require.NoError(t, err)
	t.Cleanup(func() { module.Close(l2) })
	require.Equal(t, cfg.Scaling, l1.Scaling())

	type layer struct {
		name string
		l    *lora.Linear
	}
	layers := []layer{{"l1", l1}, {"l2", l2}}
	type param struct {
		name string // "l1.lora_a", ...
		p    *torch.Tensor
	}
	var params []param
	for _, ly := range layers {
		l := ly.l
		// The frozen base goes to bfloat16; the seeded draws were made in
		// float32 and rounded once, as in PyTorch.
		toBF16(t, l.Weight)
		toBF16(t, l.Bias)
		for _, w := range []struct {
			name string
			p    *torch.Tensor
		}{{"weight", l.Weight}, {"bias", l.Bias}, {"lora_a", l.LoraA}} {
			reftest.RequireBitwise(t, ly.name+"."+w.name+" (seeded, as float32)",
				own(t, w.p.To(torch.Float32)), own(t, m.f.Tensor(t, "init."+ly.name+"."+w.name).To(torch.Float32)))
		}
		require.Equal(t, torch.BFloat16, l.Weight.DType())
		require.Equal(t, torch.BFloat16, l.Bias.DType())
		require.False(t, l.Weight.RequiresGrad(), "frozen weight")
		require.False(t, l.Bias.RequiresGrad(), "frozen bias")
		require.Equal(t, torch.Float32, l.LoraA.DType())
		require.Equal(t, torch.Float32, l.LoraB.DType())
		require.NoError(t, l.LoraB.Copy_(m.f.Tensor(t, "init."+ly.name+".lora_b")).Err())
		require.True(t, l.LoraA.RequiresGrad())
		require.True(t, l.LoraB.RequiresGrad())
		params = append(params, param{ly.name + ".lora_a", l.LoraA}, param{ly.name + ".lora_b", l.LoraB})
	}
	_, trainable := module.Count(l1)
	require.Equal(t, cfg.R*(cfg.In+cfg.Hidden), trainable)

	x, target := m.f.Tensor(t, "x"), m.f.Tensor(t, "target")
	require.Equal(t, torch.Float32, x.DType())

	// Outside an autocast region nothing is cast: float32 ops stay
	// float32, and the mixed layer fails (as in PyTorch: linear of a
	// float32 input and a bfloat16 weight) instead of computing anything.
	require.False(t, autocastOn())
	s0 := newScope(t)
	require.Equal(t, torch.Float32, s0.Own(x.Linear(l1.LoraA, nil)).DType())
	t.Logf("Forward outside autocast: %v", requireFailed(t, l1.Forward(x)))

	refLoss := values(t, m.f.Tensor(t, "loss"))
	require.Len(t, refLoss, cfg.Steps)
	n := float64(cfg.Batch * cfg.Out)
	for k := 0; k < cfg.Steps; k++ {
		ok := t.Run(fmt.Sprintf("step%d", k), func(t *testing.T) {
			s := newScope(t)
			// The parameters this step starts from: the reference's. In
			// exact mode they must already be (the whole trajectory is
			// compared); otherwise they are set, so that the step is judged
			// on its own rounding differences.
			for _, p := range params {
				ref := "init." + p.name
				if k > 0 {
					ref = fmt.Sprintf("step%d.%s", k-1, p.name)
				}
				if m.exact {
					reftest.RequireBitwise(t, p.name+" at the start of the step", p.p, m.f.Tensor(t, ref))
				} else {
					require.NoError(t, p.p.Copy_(m.f.Tensor(t, ref)).Err())
				}
			}

			var h, y, loss *torch.Tensor
			require.NoError(t, torch.Autocast(torch.CPU, torch.BFloat16, func() error {
				require.True(t, autocastOn())
				h = l1.Forward(s.Own(x.Alias())).Relu()
				y = l2.Forward(h)
				loss = torch.MSELoss(y, target, torch.ReductionMean)
				return loss.Err()
			}))
			require.False(t, autocastOn())
			require.Equal(t, torch.BFloat16, h.DType(), "linear under autocast")
			require.Equal(t, torch.BFloat16, y.DType(), "linear under autocast")
			require.Equal(t, torch.Float32, loss.DType(), "mse_loss is on autocast's float32 list")
			require.NoError(t, loss.Backward())

			pre := fmt.Sprintf("step%d.", k)
			wantH := m.compare(t, "h", pre+"h", h, 2*stagesH*bf16U)
			if !m.exact {
				gotH := values(t, h)
				for i := range wantH {
					if (gotH[i] > 0) != (wantH[i] > 0) {
						require.FailNowf(t, "relu mask differs", "%sh: element %d is %v here and %v in PyTorch: the gradients are not comparable (see the tolerance model)", pre, i, gotH[i], wantH[i])
					}
				}
			}
			wantY := m.compare(t, "y", pre+"y", y, 2*stagesY*bf16U)

			// Loss: |ΔL| ≤ 2·mean|y−t|·max|Δy| + 2N·2⁻²⁴·L.
			gotL, err := loss.Item()
			require.NoError(t, err)
			tv := values(t, target)
			var meanAbs float64
			for i := range wantY {
				meanAbs += math.Abs(wantY[i]-tv[i]) / n
			}
			wantL := refLoss[k]
			lossTol := 2*meanAbs*2*stagesY*bf16U*maxAbs(wantY) + 2*n*f32U*wantL
			t.Logf("step %d: loss %.7f (PyTorch %.7f)", k, gotL, wantL)
			require.LessOrEqual(t, math.Abs(gotL-wantL), lossTol, "loss")
			mixedErr.Note("u/loss", pre+"loss", math.Abs(gotL-wantL)/wantL/bf16U)
			mixedErr.Note("tol/loss", pre+"loss", math.Abs(gotL-wantL)/lossTol)
			if m.exact {
				require.Equal(t, wantL, gotL, "loss (same libtorch: identical)")
			}

			// Frozen base: bfloat16, no gradient. A and B: float32
			// gradients, compared; then the SGD step in float32.
			for _, ly := range layers {
				require.Equal(t, torch.BFloat16, ly.l.Weight.DType())
				require.Equal(t, torch.BFloat16, ly.l.Bias.DType())
				requireNoGrad(t, ly.l.Weight, ly.name+".weight")
				requireNoGrad(t, ly.l.Bias, ly.name+".bias")
			}
			for _, p := range params {
				g := gradOf(t, s, p.p, p.name)
				require.Equal(t, torch.Float32, g.DType(), "%s grad", p.name)
				wantG := m.compare(t, "grad", pre+"grad."+p.name, g, 2*stagesGrad*bf16U)
				require.NoError(t, torch.NoGrad(func() error { return p.p.AddScaled_(g, -cfg.LR) }))
				require.NoError(t, p.p.ClearGrad())
				require.Equal(t, torch.Float32, p.p.DType())
				// |Δp| ≤ lr·max|Δg| + 2·2⁻²⁴·max|p|, relative to max|p|.
				want := values(t, m.f.Tensor(t, pre+p.name))
				pm := maxAbs(want)
				m.compare(t, "param", pre+p.name, p.p, (cfg.LR*2*stagesGrad*bf16U*maxAbs(wantG)+2*f32U*pm)/pm)
			}
			require.NoError(t, s.Err())
		})
		if !ok && m.exact {
			break // the later steps start from a diverged state
		}
	}
	for _, l := range mixedErr.Lines("u/") {
		t.Log(strings.Replace(l, "max relative error u/", "max |Δ|/max|ref| in units of u=2⁻⁸: ", 1))
	}
	for _, l := range mixedErr.Lines("tol/") {
		t.Log(strings.Replace(l, "max relative error tol/", "max fraction of the tolerance used: ", 1))
	}
}
