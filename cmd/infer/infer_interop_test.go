//go:build interop

package main

// Interop tests against transformers, tokenizers and PEFT, on the
// checkpoints and references that testdata/interop_infer.py writes (make
// interop-refs): scoring equals transformers' logits (and BERT's
// last_hidden_state), with a PEFT adapter too, merged or not; tokenize
// equals tokenizers' ids; greedy generation equals transformers'
// generate(do_sample=False), decoded, with and without stop_strings.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

const regen = "run make interop-refs (cmd/infer/testdata/interop_infer.py)"

func interopFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("testdata", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: %s; run make interop", p, regen)
	}
	return p
}

type inferRefs struct {
	Tokenize map[string][]struct {
		Text    string  `json:"text"`
		Special []int64 `json:"special"`
		Plain   []int64 `json:"plain"`
	} `json:"tokenize"`
	Generate map[string][]struct {
		Prompt    string  `json:"prompt"`
		MaxNew    int     `json:"max_new_tokens"`
		PromptIDs []int64 `json:"prompt_ids"`
		NewIDs    []int64 `json:"new_ids"`
		Text      string  `json:"text"`
		Stop      string  `json:"stop"`
		StopIDs   []int64 `json:"stop_ids"`
		StopText  string  `json:"stop_text"`
	} `json:"generate"`
}

func loadRefs(t *testing.T) inferRefs {
	data, err := os.ReadFile(interopFile(t, "refs.json"))
	require.NoError(t, err)
	var r inferRefs
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

func TestInteropScore(t *testing.T) {
	for _, c := range []struct {
		name, base, ref, key string
		extra                []string
	}{
		{"llama", "llama_tok", "score_llama_tok.safetensors", "logits", nil},
		{"gpt2", "gpt2_tok", "score_gpt2_tok.safetensors", "logits", nil},
		{"bert", "bert_tiny", "score_bert_tiny.safetensors", "last_hidden_state", nil},
		{"llama+adapter", "llama_tok", "score_llama_tok_adapter.safetensors", "logits", []string{"--adapter", "testdata/adapter_llama"}},
		{"llama+adapter merged", "llama_tok", "score_llama_tok_adapter.safetensors", "logits", []string{"--adapter", "testdata/adapter_llama", "--merge"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			refPath := interopFile(t, c.ref)
			base := interopFile(t, c.base)
			out := filepath.Join(t.TempDir(), "out.safetensors")
			args := append([]string{"--base", base, "--ids", refPath, "--out", out}, c.extra...)
			code, _, errOut := infer(args...)
			require.Equal(t, 0, code, errOut)
			got, _, err := torch.LoadSafetensors(out)
			require.NoError(t, err)
			defer torch.CloseMap(got)
			ref, _, err := torch.LoadSafetensors(refPath)
			require.NoError(t, err)
			defer torch.CloseMap(ref)
			require.Contains(t, got, c.key)
			require.Equal(t, ref[c.key].Shape(), got[c.key].Shape())
			g := torch.Must(torch.ToSlice[float32](got[c.key]))
			w := torch.Must(torch.ToSlice[float32](ref[c.key]))
			var maxRef, maxDiff float64
			for i := range w {
				maxRef = max(maxRef, math.Abs(float64(w[i])))
				maxDiff = max(maxDiff, math.Abs(float64(w[i]-g[i])))
			}
			t.Logf("%s: max|diff| %.3g, max|ref| %.3g (every position, padding included)", c.key, maxDiff, maxRef)
			require.LessOrEqual(t, maxDiff, 1e-4*maxRef)
		})
	}
}

func TestInteropTokenize(t *testing.T) {
	refs := loadRefs(t)
	require.NotEmpty(t, refs.Tokenize)
	for base, cases := range refs.Tokenize {
		dir := interopFile(t, base)
		for _, c := range cases {
			for _, special := range []bool{true, false} {
				args := []string{"--base", dir, "--tokenize", c.Text}
				want := c.Special
				if !special {
					args = append(args, "--no-special")
					want = c.Plain
				}
				code, out, errOut := infer(args...)
				require.Equal(t, 0, code, errOut)
				var got []int64
				require.NoError(t, json.Unmarshal([]byte(out), &got), out)
				require.Equal(t, want, got, "%s %q special=%v", base, c.Text, special)
			}
		}
	}
}

func TestInteropGenerate(t *testing.T) {
	refs := loadRefs(t)
	require.NotEmpty(t, refs.Generate)
	for name, cases := range refs.Generate {
		base, extra := name, []string(nil)
		if b, ok := strings.CutSuffix(name, "_adapter"); ok {
			base = b
			extra = []string{"--adapter", interopFile(t, "adapter_llama")}
		}
		dir := interopFile(t, base)
		for _, c := range cases {
			for _, merge := range []bool{false, true} {
				if merge && extra == nil {
					continue
				}
				args := append([]string{"--base", dir, "--prompt", c.Prompt, "--max-new-tokens", itoa(c.MaxNew)}, extra...)
				if merge {
					args = append(args, "--merge")
				}
				code, out, errOut := infer(args...)
				require.Equal(t, 0, code, errOut)
				require.Equal(t, c.Text+"\n", out, "%s %q (merge %v): transformers' new ids %v", name, c.Prompt, merge, c.NewIDs)
				// transformers' generate(stop_strings=[stop]).
				code, out, errOut = infer(append(args, "--stop", c.Stop)...)
				require.Equal(t, 0, code, errOut)
				require.Equal(t, c.StopText+"\n", out, "%s %q --stop %q: transformers' new ids %v", name, c.Prompt, c.Stop, c.StopIDs)
			}
		}
	}
}

func TestInteropAdapterForAnotherBase(t *testing.T) {
	code, _, errOut := infer("--base", interopFile(t, "llama_tok"), "--adapter", interopFile(t, "adapter_gpt2"),
		"--prompt", "hello")
	require.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "does not fit --base llama")
}

func itoa(n int) string { return strconv.Itoa(n) }
