//go:build interop

package gpt2_test

// Against transformers' GPT2LMHeadModel: testdata/interop_gpt2.py builds
// tiny random checkpoints with save_pretrained and records transformers'
// logits (eager attention, float32) and greedy generate() tokens.

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const (
	interopRefs  = "testdata/interop_gpt2.safetensors"
	interopRegen = "make interop-refs (or $GOLORA_INTEROP_PYTHON models/gpt2/testdata/interop_gpt2.py)"
	// logitTol is the largest error accepted, relative to max|logit|:
	// libtorch 1.13 here against PyTorch 2.15's kernels there.
	logitTol = 1e-4
)

func TestInteropGPT2(t *testing.T) {
	r := reftest.Load(t, interopRefs, interopRegen)
	var models []string
	r.DecodeMeta(t, "models", &models)
	var newTokens int
	r.DecodeMeta(t, "new_tokens", &newTokens)
	require.NotEmpty(t, models)
	for _, name := range models {
		t.Run(name, func(t *testing.T) {
			ref := func(k string) *torch.Tensor { return r.Tensor(t, name+"."+k) }
			m, err := gpt2.Load(filepath.Join("testdata", name))
			require.NoError(t, err, "run "+interopRegen)
			defer module.Close(m)
			live := reftest.SettledLiveTensors()
			s := torch.NewScope()

			// The left-padded batch: positions from the mask, as generate.
			ids, mask := s.Borrow(ref("input_ids")), s.Borrow(ref("attention_mask"))
			full := m.ForwardInputs(module.Inputs{IDs: ids, AttentionMask: mask})
			e := reftest.RequireClose(t, "padded logits", full, ref("logits"), logitTol)
			t.Logf("left-padded batch %v: max |Δlogit| / max|logit| = %.3g", ids.Shape(), e)
			withPos := m.ForwardInputs(module.Inputs{IDs: ids, AttentionMask: mask, Positions: s.Borrow(ref("position_ids"))})
			reftest.RequireClose(t, "padded logits, explicit positions", withPos, ref("logits"), logitTol)

			// An unpadded batch without a mask: the module.Layer path.
			e = reftest.RequireClose(t, "plain logits", m.Forward(s.Borrow(ref("plain_ids"))), ref("plain_logits"), logitTol)
			t.Logf("unpadded batch: max |Δlogit| / max|logit| = %.3g", e)

			// Incremental decoding with the KV cache: a 4-token prefill,
			// then one token at a time, equals the full forward at every
			// token. (Padding positions differ by design: a padded query
			// attends no key, which transformers turns into uniform
			// attention over all the keys present, and those differ.)
			cache := hf.NewKVCache(int(m.Config.NLayer))
			defer cache.Close()
			T := ids.SizeOf(1)
			const prefill = 4
			parts := []*torch.Tensor{m.ForwardCached(module.Inputs{
				IDs: ids.Narrow(1, 0, prefill), AttentionMask: mask.Narrow(1, 0, prefill)}, cache)}
			for i := int64(prefill); i < T; i++ {
				parts = append(parts, m.ForwardCached(module.Inputs{
					IDs: ids.Narrow(1, i, 1), AttentionMask: mask.Narrow(1, 0, i+1)}, cache))
			}
			require.Equal(t, T, cache.Len())
			inc := torch.Cat(parts, 1)
			real := mask.NeScalar(0)
			e = reftest.RequireClose(t, "cached decode vs full forward", inc.Index(real), full.Index(real), 1e-5)
			t.Logf("cached decode against the full forward: %.3g", e)
			reftest.RequireClose(t, "cached decode vs transformers", inc.Index(real), ref("logits").Index(real), logitTol)
			require.NoError(t, s.Err())
			s.Close()
			cache.Close()

			// Greedy generation: the same tokens as transformers' generate.
			got, err := m.Greedy(ref("input_ids"), ref("attention_mask"), newTokens, -1, 0)
			require.NoError(t, err)
			want, err := torch.ToSlice[int64](ref("generated"))
			require.NoError(t, err)
			require.Len(t, got, len(want)/newTokens)
			for b, row := range got {
				require.Equal(t, want[b*newTokens:(b+1)*newTokens], row, "row %d", b)
			}
			t.Logf("greedy: %d×%d tokens equal transformers'", len(got), newTokens)
			require.Equal(t, live, reftest.SettledLiveTensors(), "the forward passes leave nothing behind")
		})
	}
}
