//go:build interop

package generate_test

// Interop tests against transformers (testdata/interop_generate.py, run by
// make interop-refs): the logits processors against transformers' own
// classes, and greedy generation token for token against
// generate(do_sample=False) on tiny Llama and GPT-2 checkpoints.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/torch"
)

const regen = "run make interop-refs (models/generate/testdata/interop_generate.py)"

func need(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s missing: %s; run make interop", path, regen)
	}
}

func TestInteropProcessors(t *testing.T) {
	path := filepath.Join("testdata", "processors.safetensors")
	need(t, path)
	refs, _, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(refs)
	s := torch.NewScope()
	defer s.Close()
	logits, ids := s.Borrow(refs["logits"]), s.Borrow(refs["input_ids"])
	param := func(name string) float64 {
		f, err := strconv.ParseFloat(name[strings.LastIndexByte(name, '_')+1:], 64)
		require.NoError(t, err)
		return f
	}
	cases := 0
	for name, want := range refs {
		var got *torch.Tensor
		switch {
		case strings.HasPrefix(name, "temperature_"):
			got = generate.ScaleTemperature(logits, param(name))
		case strings.HasPrefix(name, "top_k_"):
			got = generate.FilterTopK(logits, int(param(name)))
		case strings.HasPrefix(name, "top_p_"):
			got = generate.FilterTopP(logits, param(name))
		case strings.HasPrefix(name, "repetition_"):
			got = generate.PenalizeRepetition(logits, ids, param(name))
		case name == "chain":
			// generate(do_sample=True)'s order.
			got = generate.PenalizeRepetition(logits, ids, 1.2)
			got = generate.ScaleTemperature(got, 0.8)
			got = generate.FilterTopK(got, 10)
			got = generate.FilterTopP(got, 0.85)
		default:
			continue
		}
		cases++
		t.Run(name, func(t *testing.T) {
			require.NoError(t, got.Err())
			g := torch.Must(torch.ToSlice[float32](got.Contiguous()))
			w := torch.Must(torch.ToSlice[float32](want))
			require.Len(t, g, len(w))
			kept, maxDiff := 0, 0.0
			for i := range w {
				wi, gi := float64(w[i]), float64(g[i])
				require.Equal(t, math.IsInf(wi, -1), math.IsInf(gi, -1), "mask differs at %d: want %v, got %v", i, wi, gi)
				if math.IsInf(wi, -1) {
					continue
				}
				kept++
				maxDiff = max(maxDiff, math.Abs(wi-gi))
			}
			require.LessOrEqual(t, maxDiff, 1e-6)
			t.Logf("%d of %d kept, max |diff| %.2g", kept, len(w), maxDiff)
		})
	}
	require.Equal(t, 12, cases)
	require.NoError(t, s.Err())
}

type greedyRef struct {
	Prompts      [][]int64 `json:"prompts"`
	Pad          int64     `json:"pad"`
	MaxNew       int       `json:"max_new_tokens"`
	Single       []int64   `json:"single"`
	Batch        [][]int64 `json:"batch"`
	EOS          int64     `json:"eos"`
	BatchEOS     [][]int64 `json:"batch_eos"`
	Penalty      float64   `json:"repetition_penalty"`
	BatchPenalty [][]int64 `json:"batch_repetition"`
	Margin       float64   `json:"margin"`
}

// interopModels are the checkpoints interop_generate.py writes.
var interopModels = []string{"llama_tiny", "gpt2_tiny"}

func TestInteropGreedy(t *testing.T) {
	path := filepath.Join("testdata", "greedy.json")
	need(t, path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var refs map[string]greedyRef
	require.NoError(t, json.Unmarshal(data, &refs))
	for _, name := range interopModels {
		t.Run(name, func(t *testing.T) {
			ref, ok := refs[name]
			require.True(t, ok, "no %s in %s; %s", name, path, regen)
			m, err := models.Load(filepath.Join("testdata", name))
			require.NoError(t, err)
			defer m.Close()
			before := reftest.SettledLiveTensors()
			t.Logf("smallest top-1/top-2 gap in transformers' greedy steps: %.3g", ref.Margin)
			base := []generate.Option{generate.MaxNewTokens(ref.MaxNew), generate.PadID(ref.Pad)}

			out, err := generate.Generate(bg, m, ref.Prompts[:1], base...)
			require.NoError(t, err)
			require.Equal(t, [][]int64{ref.Single}, out.Tokens, "one prompt")

			out, err = generate.Generate(bg, m, ref.Prompts, base...)
			require.NoError(t, err)
			require.Equal(t, ref.Batch, out.Tokens, "left-padded batch")

			out, err = generate.Generate(bg, m, ref.Prompts, append(base, generate.EOS(ref.EOS))...)
			require.NoError(t, err)
			require.Equal(t, ref.BatchEOS, out.Tokens, "EOS %d", ref.EOS)
			require.True(t, out.Finished[1])

			out, err = generate.Generate(bg, m, ref.Prompts, append(base, generate.RepetitionPenalty(ref.Penalty))...)
			require.NoError(t, err)
			require.Equal(t, ref.BatchPenalty, out.Tokens, "repetition penalty %v", ref.Penalty)
			require.Equal(t, before, reftest.SettledLiveTensors())
		})
	}
}
