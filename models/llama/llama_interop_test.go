//go:build interop

package llama_test

// Go's Llama, Llama 3, Qwen2 and Mistral against transformers 5
// (testdata/interop_llama.py): logits, the left-padded batch, greedy
// generation with the KV cache step by step, and bfloat16.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/torch"
)

var interopModels = []string{"llama", "llama3", "linear", "qwen2", "qwen2_sliding", "mistral"}

// interopTol is the largest error accepted in float32, relative to the
// largest |logit| of the reference (Go runs libtorch 1.13, transformers
// torch 2.15: kernels differ in rounding).
const interopTol = 1e-4

func interopRefs(t *testing.T, name string) (string, map[string]*torch.Tensor) {
	t.Helper()
	ckpt := filepath.Join("testdata", "ckpt_"+name)
	refs := filepath.Join("testdata", "refs_"+name+".safetensors")
	for _, p := range []string{ckpt, refs} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run make interop-refs (or %s models/llama/testdata/interop_llama.py from the repository root)",
				p, os.Getenv("GOLORA_INTEROP_PYTHON"))
		}
	}
	r, _, err := torch.LoadSafetensors(refs)
	require.NoError(t, err)
	t.Cleanup(func() { torch.CloseMap(r) })
	return ckpt, r
}

func relErr(t *testing.T, got, want *torch.Tensor) float64 {
	t.Helper()
	require.NoError(t, got.Err())
	require.Equal(t, want.Shape(), got.Shape())
	g, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return s.Borrow(got).To(torch.Float32) })
	require.NoError(t, err)
	defer g.Close()
	return reftest.RelErr(reftest.Float64s(t, g), reftest.Float64s(t, want))
}

func TestInteropLogits(t *testing.T) {
	for _, name := range interopModels {
		t.Run(name, func(t *testing.T) {
			ckpt, r := interopRefs(t, name)
			m, err := llama.Load(ckpt)
			require.NoError(t, err)
			defer m.Close()
			live := reftest.SettledLiveTensors()
			s := torch.NewScope()
			logits := m.Forward(s.Own(r["ids"].Alias()))
			e := relErr(t, logits, r["logits"])
			require.LessOrEqual(t, e, interopTol)

			// Left padding: positions derived from the mask (generate's),
			// and given explicitly.
			padded := m.ForwardCache(s.Own(r["pad_ids"].Alias()), s.Own(r["pad_mask"].Alias()), nil, nil)
			ep := relErr(t, padded, r["pad_logits"])
			require.LessOrEqual(t, ep, interopTol)
			explicit := m.ForwardCache(s.Own(r["pad_ids"].Alias()), s.Own(r["pad_mask"].Alias()), s.Own(r["pad_pos"].Alias()), nil)
			require.LessOrEqual(t, relErr(t, explicit, r["pad_logits"]), interopTol)
			require.NoError(t, s.Err())
			s.Close()
			require.Equal(t, live, reftest.SettledLiveTensors(), "the scope frees everything")
			t.Logf("%s: max|logit| %.3g, relative error: logits %.2e, left-padded batch %.2e", name, maxAbs(t, r["logits"]), e, ep)
		})
	}
}

func maxAbs(t *testing.T, x *torch.Tensor) float64 {
	m, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return s.Borrow(x).Abs().Max() })
	require.NoError(t, err)
	defer m.Close()
	v, err := m.Item()
	require.NoError(t, err)
	return v
}

// Greedy generation with the KV cache, step by step: the prefill and each
// step's logits against transformers' generate, the tokens equal, and the
// cached steps equal to one full forward pass over the result.
func TestInteropGreedyCache(t *testing.T) {
	for _, name := range interopModels {
		t.Run(name, func(t *testing.T) {
			ckpt, r := interopRefs(t, name)
			m, err := llama.Load(ckpt)
			require.NoError(t, err)
			defer m.Close()
			live := reftest.SettledLiveTensors()

			ids := torch.Must(torch.ToSlice[int64](r["pad_ids"]))
			mask := torch.Must(torch.ToSlice[int64](r["pad_mask"]))
			B, P := r["pad_ids"].SizeOf(0), r["pad_ids"].SizeOf(1)
			steps := r["gen_logits"].SizeOf(0)
			wantSeq := torch.Must(torch.ToSlice[int64](r["gen_ids"]))

			cache := m.NewCache()
			defer cache.Close()
			seq := make([][]int64, B)
			for b := range seq {
				seq[b] = append([]int64(nil), ids[int64(b)*P:(int64(b)+1)*P]...)
			}
			cur := ids
			curLen := P
			var stepErr float64
			var stepLogits []*torch.Tensor // [B, V] each, kept for the full-pass check
			for i := int64(0); i < steps; i++ {
				s := torch.NewScope()
				x := s.Own(torch.FromSlice(cur, B, curLen))
				am := s.Own(torch.FromSlice(mask, B, int64(len(mask))/B))
				logits := m.Logits(x, am, cache)
				last := logits.Narrow(1, curLen-1, 1).SqueezeDim(1)
				stepErr = max(stepErr, relErr(t, last, s.Borrow(r["gen_logits"]).Narrow(0, i, 1).SqueezeDim(0)))
				next := torch.Must(torch.ToSlice[int64](last.ArgmaxDim(-1, false)))
				s.Keep(last)
				stepLogits = append(stepLogits, last)
				require.NoError(t, s.Err())
				s.Close()
				require.EqualValues(t, P+i, cache.Len())

				cur = next
				curLen = 1
				newMask := make([]int64, 0, len(mask)+int(B))
				for b := int64(0); b < B; b++ {
					row := mask[b*(int64(len(mask))/B) : (b+1)*(int64(len(mask))/B)]
					newMask = append(newMask, row...)
					newMask = append(newMask, 1)
					seq[b] = append(seq[b], next[b])
				}
				mask = newMask
			}
			require.LessOrEqual(t, stepErr, interopTol)
			var got []int64
			for _, row := range seq {
				got = append(got, row...)
			}
			require.Equal(t, wantSeq, got, "greedy tokens equal transformers'")

			// The whole sequence in one pass, no cache: the positions the
			// steps predicted from agree with the cached steps.
			s := torch.NewScope()
			full := s.Own(torch.FromSlice(got, B, P+steps))
			logits := m.ForwardCache(full, s.Own(torch.FromSlice(mask, B, P+steps)), nil, nil)
			var cacheErr float64
			for i, st := range stepLogits {
				want := logits.Narrow(1, P-1+int64(i), 1).SqueezeDim(1)
				cacheErr = max(cacheErr, relErr(t, st, want))
			}
			require.LessOrEqual(t, cacheErr, 1e-5)
			require.NoError(t, s.Err())
			s.Close()
			torch.CloseAll(stepLogits...)
			cache.Close()
			require.Equal(t, live, reftest.SettledLiveTensors(), "no leak")
			t.Logf("%s: %d greedy tokens × %d rows equal; step logits vs transformers %.2e; cached vs full pass %.2e",
				name, steps, B, stepErr, cacheErr)
		})
	}
}

// One token at a time through the cache, without padding, equals the full
// forward pass and transformers' logits.
func TestInteropIncremental(t *testing.T) {
	for _, name := range interopModels {
		t.Run(name, func(t *testing.T) {
			ckpt, r := interopRefs(t, name)
			m, err := llama.Load(ckpt)
			require.NoError(t, err)
			defer m.Close()
			cache := m.NewCache()
			defer cache.Close()
			s := torch.NewScope()
			defer s.Close()
			ids := s.Own(r["ids"].Alias())
			T := ids.SizeOf(1)
			var parts []*torch.Tensor
			// A prefill of 3 tokens, then one at a time.
			parts = append(parts, m.ForwardCache(ids.Narrow(1, 0, 3), nil, nil, cache))
			for i := int64(3); i < T; i++ {
				parts = append(parts, m.ForwardCache(ids.Narrow(1, i, 1), nil, nil, cache))
			}
			got := torch.Cat(parts, 1)
			e := relErr(t, got, r["logits"])
			require.LessOrEqual(t, e, interopTol)
			require.LessOrEqual(t, relErr(t, got, m.Forward(ids)), 1e-5)
			require.EqualValues(t, T, cache.Len())
			t.Logf("%s: incremental decode vs transformers %.2e", name, e)
		})
	}
}

// The bfloat16 model: every weight converted on load, logits computed in
// bfloat16 like transformers' dtype=torch.bfloat16. The two libtorch
// versions round bfloat16 matmuls differently, so the check is loose:
// within 5% of max|logit| of transformers' bfloat16 logits, and 10% of its
// float32 ones.
func TestInteropBFloat16(t *testing.T) {
	ckpt, r := interopRefs(t, "llama")
	m, err := llama.Load(ckpt, hf.WithDType(torch.BFloat16))
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, torch.BFloat16, m.DType())
	require.Equal(t, torch.Float32, m.Model.RotaryEmb.InvFreq.DType(), "inv_freq stays float32, as in transformers")
	s := torch.NewScope()
	defer s.Close()
	logits := m.Forward(s.Own(r["ids"].Alias()))
	require.Equal(t, torch.BFloat16, logits.DType())
	eb := relErr(t, logits, r["bf16_logits"])
	ef := relErr(t, logits, r["logits"])
	require.LessOrEqual(t, eb, 0.05)
	require.LessOrEqual(t, ef, 0.1)
	t.Logf("bfloat16: relative error vs transformers bfloat16 %.2e, vs float32 %.2e", eb, ef)
}

// The config styles: transformers 5's rope_parameters and the old
// top-level rope_theta/rope_scaling/torch_dtype read to the same Rope.
func TestInteropConfigStyles(t *testing.T) {
	ckpt, _ := interopRefs(t, "linear")
	c, err := hf.ReadConfig(ckpt)
	require.NoError(t, err)
	require.False(t, c.Has("rope_parameters"), "the old style")
	cfg, err := llama.ConfigFrom(c)
	require.NoError(t, err)
	require.Equal(t, llama.Rope{Type: "linear", Theta: 10000, Factor: 4}, cfg.Rope)
	require.True(t, cfg.QKVBias && cfg.OBias && cfg.MLPBias)
	d, ok, err := c.DType()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, torch.Float32, d)

	ckpt, _ = interopRefs(t, "llama3")
	c, err = hf.ReadConfig(ckpt)
	require.NoError(t, err)
	require.True(t, c.Has("rope_parameters"))
	cfg, err = llama.ConfigFrom(c)
	require.NoError(t, err)
	require.Equal(t, llama.Rope{Type: "llama3", Theta: 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4,
		OriginalMaxPositionEmbeddings: 1024}, cfg.Rope)
	require.True(t, cfg.TieWordEmbeddings)

	ckpt, _ = interopRefs(t, "mistral")
	c, err = hf.ReadConfig(ckpt)
	require.NoError(t, err)
	cfg, err = llama.ConfigFrom(c)
	require.NoError(t, err)
	require.EqualValues(t, 5, cfg.SlidingWindow)
	require.EqualValues(t, 32, cfg.HeadDim)
}

// The windows matter in these tests: without them the logits differ.
func TestInteropSlidingWindowMatters(t *testing.T) {
	for name, want := range map[string][]bool{"mistral": {true, true}, "qwen2_sliding": {false, true}} {
		ckpt, r := interopRefs(t, name)
		m, err := llama.Load(ckpt)
		require.NoError(t, err)
		var got []bool
		for _, b := range m.Model.Layers.All() {
			got = append(got, b.Sliding)
			b.Sliding = false
		}
		require.Equal(t, want, got, name)
		s := torch.NewScope()
		e := relErr(t, m.Forward(s.Own(r["ids"].Alias())), r["logits"])
		require.Greater(t, e, 1e-2, "%s: the sequence (12) is longer than the window", name)
		t.Logf("%s without its sliding window: relative error %.2e", name, e)
		s.Close()
		m.Close()
	}
}

// The rope scalings matter in these tests: with the default frequencies
// the logits differ by far more than the tolerance.
func TestInteropRopeScalingMatters(t *testing.T) {
	for _, name := range []string{"llama3", "linear"} {
		ckpt, r := interopRefs(t, name)
		m, err := llama.Load(ckpt)
		require.NoError(t, err)
		rope := m.Cfg.Rope
		require.NotEqual(t, "default", rope.Type)
		plain, err := llama.InvFreq(llama.Rope{Type: "default", Theta: rope.Theta}, m.Cfg.HeadDim)
		require.NoError(t, err)
		require.NoError(t, m.Model.RotaryEmb.InvFreq.Copy_(plain).Err())
		plain.Close()
		s := torch.NewScope()
		e := relErr(t, m.Forward(s.Own(r["ids"].Alias())), r["logits"])
		require.Greater(t, e, 100*interopTol, name)
		t.Logf("%s with default RoPE frequencies: relative error %.2e", name, e)
		s.Close()
		m.Close()
	}
}
