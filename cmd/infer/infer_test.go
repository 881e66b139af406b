package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/tokenizer"
	"github.com/golora/golora/torch"
)

// A word-level tokenizer over 12 words, in tokenizer.json's format: "hello
// world" is [3, 4] and Decode joins words with spaces.
const wordTokenizer = `{
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "WhitespaceSplit"},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
  },
  "decoder": null,
  "model": {"type": "WordLevel", "unk_token": "<unk>",
    "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4, "the": 5, "a": 6, "cat": 7,
              "dog": 8, "sat": 9, "on": 10, "mat": 11}}
}`

const llamaConfig = `{"model_type": "llama", "vocab_size": 12, "hidden_size": 16, "intermediate_size": 24,
	"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
	"bos_token_id": 1, "eos_token_id": 2}`

const gpt2Config = `{"model_type": "gpt2", "vocab_size": 12, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 32,
	"bos_token_id": 1, "eos_token_id": 2}`

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// fixtures writes, once per test binary, a Llama checkpoint with the
// word tokenizer (llama/), a GPT-2 checkpoint (gpt2/), a LoRA adapter for
// the GPT-2 one (adapter_gpt2/), a BERT-less unsupported checkpoint
// (t5/) and an ids file (ids.safetensors), all built by golora itself:
// these tests check the command's plumbing and errors; the interop tests
// check its numbers against transformers.
func fixtures(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() { fixtureDir, fixtureErr = writeFixtures() })
	require.NoError(t, fixtureErr)
	return fixtureDir
}

func writeFixtures() (string, error) {
	root, err := os.MkdirTemp("", "infer-test-")
	if err != nil {
		return "", err
	}
	write := func(rel, data string) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(data), 0o644)
	}
	if err := torch.ManualSeed(5); err != nil {
		return "", err
	}
	// Llama.
	if err := write("llama/config.json", llamaConfig); err != nil {
		return "", err
	}
	if err := write("llama/tokenizer.json", wordTokenizer); err != nil {
		return "", err
	}
	hc, err := hf.ParseConfig("llama", []byte(llamaConfig))
	if err != nil {
		return "", err
	}
	lc, err := llama.ConfigFrom(hc)
	if err != nil {
		return "", err
	}
	lm, err := llama.New(*lc)
	if err != nil {
		return "", err
	}
	defer module.Close(lm)
	for _, p := range module.Parameters(lm, false) { // logits with a spread
		if err := p.Normal_(0, 0.5); err != nil {
			return "", err
		}
	}
	if err := module.Save(lm, filepath.Join(root, "llama/model.safetensors"), nil); err != nil {
		return "", err
	}
	// GPT-2 and an adapter for it.
	if err := write("gpt2/config.json", gpt2Config); err != nil {
		return "", err
	}
	hc, err = hf.ParseConfig("gpt2", []byte(gpt2Config))
	if err != nil {
		return "", err
	}
	gc, err := gpt2.ConfigFromHF(hc)
	if err != nil {
		return "", err
	}
	gm, err := gpt2.New(gc)
	if err != nil {
		return "", err
	}
	defer module.Close(gm)
	if err := module.Save(gm, filepath.Join(root, "gpt2/model.safetensors"), nil); err != nil {
		return "", err
	}
	if _, err := lora.AddAdapter(gm, "default", lora.Config{R: 2, TargetModules: []string{"c_attn"}}); err != nil {
		return "", err
	}
	if err := lora.SaveAdapter(gm, filepath.Join(root, "adapter_gpt2"), "default"); err != nil {
		return "", err
	}
	// Unsupported architecture.
	if err := write("t5/config.json", `{"model_type": "t5"}`); err != nil {
		return "", err
	}
	// Ids, one of them outside the vocabulary in bad_ids.
	ids := torch.FromSlice([]int64{1, 3, 4, 5, 0, 1, 7, 9}, 2, 4)
	mask := torch.FromSlice([]int64{1, 1, 1, 1, 0, 1, 1, 1}, 2, 4)
	bad := torch.FromSlice([]int64{1, 3, 12, 5}, 1, 4)
	defer torch.CloseAll(ids, mask, bad)
	if err := torch.SaveSafetensors(filepath.Join(root, "ids.safetensors"),
		map[string]*torch.Tensor{"input_ids": ids, "attention_mask": mask}, nil); err != nil {
		return "", err
	}
	if err := torch.SaveSafetensors(filepath.Join(root, "bad_ids.safetensors"),
		map[string]*torch.Tensor{"input_ids": bad}, nil); err != nil {
		return "", err
	}
	if err := torch.SaveSafetensors(filepath.Join(root, "float_ids.safetensors"),
		map[string]*torch.Tensor{"input_ids": mask.To(torch.Float32)}, nil); err != nil {
		return "", err
	}
	return root, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// infer runs the command in-process.
func infer(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestTokenize(t *testing.T) {
	dir := fixtures(t)
	base := filepath.Join(dir, "llama")
	code, out, errOut := infer("--base", base, "--tokenize", "hello world the cat")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "[1,3,4,5,7]\n", out) // <s> from the template, then the words
	code, out, _ = infer("--base", base, "--tokenize", "hello zebra", "--no-special")
	require.Equal(t, 0, code)
	require.Equal(t, "[3,0]\n", out) // an unknown word is <unk>
	code, out, _ = infer("--base", base, "--tokenize", "", "--no-special")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)
}

func TestScoreWritesTheModelsLogits(t *testing.T) {
	dir := fixtures(t)
	base := filepath.Join(dir, "llama")
	out := filepath.Join(t.TempDir(), "out.safetensors")
	code, _, errOut := infer("--base", base, "--ids", filepath.Join(dir, "ids.safetensors"), "--out", out)
	require.Equal(t, 0, code, errOut)
	got, md, err := torch.LoadSafetensors(out)
	require.NoError(t, err)
	defer torch.CloseMap(got)
	require.Equal(t, "llama", md["model_type"])
	require.Equal(t, []int64{2, 4, 12}, got["logits"].Shape())
	require.Equal(t, torch.Float32, got["logits"].DType())

	// The same as the model's own forward pass with positions 0…T−1.
	m, err := models.Load(base)
	require.NoError(t, err)
	defer m.Close()
	s := torch.NewScope()
	defer s.Close()
	ids := s.Own(torch.FromSlice([]int64{1, 3, 4, 5, 0, 1, 7, 9}, 2, 4))
	mask := s.Own(torch.FromSlice([]int64{1, 1, 1, 1, 0, 1, 1, 1}, 2, 4))
	pos := s.Own(torch.FromSlice([]int64{0, 1, 2, 3}, 1, 4))
	want := m.Score(module.Inputs{IDs: ids, AttentionMask: mask, Positions: pos})
	ok, err := got["logits"].AllClose(want, 1e-5, 1e-6)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestGenerateStreamsGreedy(t *testing.T) {
	dir := fixtures(t)
	base := filepath.Join(dir, "llama")
	code, out, errOut := infer("--base", base, "--prompt", "the cat sat", "--max-new-tokens", "6")
	require.Equal(t, 0, code, errOut)

	// The same continuation from the library: tokenizer, then greedy
	// generation stopping at config.json's EOS 2.
	m, err := models.Load(base)
	require.NoError(t, err)
	defer m.Close()
	tok, err := tokenizer.Load(base)
	require.NoError(t, err)
	ids, err := tok.Encode("the cat sat", true)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 5, 7, 9}, ids)
	res, err := generate.Generate(context.Background(), m, [][]int64{ids}, generate.MaxNewTokens(6), generate.EOS(2))
	require.NoError(t, err)
	text, err := tok.Decode(res.Tokens[0][:res.Lengths[0]], true)
	require.NoError(t, err)
	require.Equal(t, text+"\n", out)

	// Sampling with a seed is reproducible.
	args := []string{"--base", base, "--prompt", "the cat", "--max-new-tokens", "8", "--temperature", "1.5", "--top-k", "6", "--seed", "3"}
	_, a, _ := infer(args...)
	_, b, _ := infer(args...)
	require.Equal(t, a, b)
}

func TestBadInput(t *testing.T) {
	dir := fixtures(t)
	llamaDir := filepath.Join(dir, "llama")
	ids := filepath.Join(dir, "ids.safetensors")
	out := filepath.Join(t.TempDir(), "o.safetensors")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing directory", []string{"--base", filepath.Join(dir, "nope"), "--prompt", "hello"}, "no such file or directory"},
		{"not a checkpoint", []string{"--base", t.TempDir(), "--prompt", "hello"}, "not a Hugging Face checkpoint"},
		{"unsupported architecture", []string{"--base", filepath.Join(dir, "t5"), "--ids", ids, "--out", out}, `unsupported model_type "t5" (supported: bert, gpt2, llama, mistral, qwen2)`},
		{"adapter for another base", []string{"--base", llamaDir, "--adapter", filepath.Join(dir, "adapter_gpt2"), "--prompt", "hello"}, "does not fit --base llama"},
		{"missing adapter", []string{"--base", llamaDir, "--adapter", filepath.Join(dir, "nope"), "--prompt", "hello"}, "--adapter"},
		{"ids out of vocabulary", []string{"--base", llamaDir, "--ids", filepath.Join(dir, "bad_ids.safetensors"), "--out", out}, "input_ids[0, 2] = 12 is outside the vocabulary [0, 12)"},
		{"float ids", []string{"--base", llamaDir, "--ids", filepath.Join(dir, "float_ids.safetensors"), "--out", out}, "input_ids is float32: want int64"},
		{"missing ids file", []string{"--base", llamaDir, "--ids", filepath.Join(dir, "nope.safetensors"), "--out", out}, "--ids"},
		{"no mode", []string{"--base", llamaDir}, "exactly one mode"},
		{"two modes", []string{"--base", llamaDir, "--prompt", "a", "--tokenize", "b"}, "exactly one mode"},
		{"ids without out", []string{"--base", llamaDir, "--ids", ids}, "--ids and --out go together"},
		{"no base", []string{"--prompt", "a"}, "--base DIR is required"},
		{"unknown flag", []string{"--base", llamaDir, "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad dtype", []string{"--base", llamaDir, "--dtype", "int8", "--prompt", "a"}, `unsupported dtype "int8"`},
		{"bad device", []string{"--base", llamaDir, "--device", "tpu", "--prompt", "a"}, `--device "tpu"`},
		{"negative max-new-tokens", []string{"--base", llamaDir, "--prompt", "a", "--max-new-tokens", "-1"}, "--max-new-tokens -1"},
		{"top-p 0", []string{"--base", llamaDir, "--prompt", "a", "--top-p", "0"}, "--top-p 0: want 0 < p ≤ 1"},
		{"top-p above 1", []string{"--base", llamaDir, "--prompt", "a", "--top-p", "1.5"}, "--top-p 1.5"},
		{"top-k 0", []string{"--base", llamaDir, "--prompt", "a", "--top-k", "0"}, "--top-k 0"},
		{"temperature 0", []string{"--base", llamaDir, "--prompt", "a", "--temperature", "0"}, "--temperature 0"},
		{"merge without adapter", []string{"--base", llamaDir, "--prompt", "a", "--merge"}, "--merge needs --adapter"},
		{"gpt2 without tokenizer", []string{"--base", filepath.Join(dir, "gpt2"), "--prompt", "a"}, "tokenizer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := infer(c.args...)
			require.NotEqual(t, 0, code)
			require.True(t, strings.HasPrefix(errOut, "infer: "), errOut)
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			require.Contains(t, errOut, c.want)
		})
	}
}

// TestBinary builds the command and runs it: exit statuses and output
// streams as a shell sees them.
func TestBinary(t *testing.T) {
	dir := fixtures(t)
	bin := filepath.Join(t.TempDir(), "infer")
	build := exec.Command("go", "build", "-o", bin, ".")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	cmd := exec.Command(bin, "--base", filepath.Join(dir, "llama"), "--tokenize", "a dog")
	out, err := cmd.Output()
	require.NoError(t, err)
	var ids []int64
	require.NoError(t, json.Unmarshal(out, &ids))
	require.Equal(t, []int64{1, 6, 8}, ids)

	cmd = exec.Command(bin, "--base", filepath.Join(dir, "t5"), "--prompt", "x")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Equal(t, 1, strings.Count(stderr.String(), "\n"))
	require.Contains(t, stderr.String(), `infer: models: `)

	err = exec.Command(bin, "--bogus").Run()
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
}

func TestCancelledGeneration(t *testing.T) {
	dir := fixtures(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := runContext(ctx, []string{"--base", filepath.Join(dir, "llama"), "--prompt", "the cat"}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Equal(t, "infer: context canceled\n", errOut.String())
	require.Empty(t, out.String())
}
