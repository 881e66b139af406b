package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/torch"
)

// TestBadInput: every bad input of the issue gets one line on stderr,
// exit status 1 and nothing written to --out.
func TestBadInput(t *testing.T) {
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A corrupt base: the shipped base's config and tokenizer with a
	// truncated model.safetensors.
	corrupt := filepath.Join(tmp, "corrupt")
	if err := os.Mkdir(corrupt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range baseFiles {
		b, err := os.ReadFile(filepath.Join(testBase, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "model.safetensors" {
			b = b[:len(b)/2]
		}
		if err := os.WriteFile(filepath.Join(corrupt, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := write("empty.txt", "\n\n")
	badJSON := write("bad.jsonl", "{\"text\": \"the cat.\"}\n{\"text\": oops}\n")
	noField := write("nofield.jsonl", "{\"input\": \"the cat.\"}\n")
	good := write("good.txt", "the cat sees a dog.\nthe dog sees a cat.\na bird sees the fox.\n")
	cudaDev := "cuda"
	if torch.CUDAIsAvailable() {
		cudaDev = fmt.Sprintf("cuda:%d", torch.CUDADeviceCount())
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing base", []string{"--base", filepath.Join(tmp, "nope")}, "no such file or directory"},
		{"base is a file", []string{"--base", good}, "not a directory"},
		{"corrupt base", []string{"--base", corrupt}, "model.safetensors"},
		{"missing data", []string{"--data", filepath.Join(tmp, "nope.txt")}, "nope.txt"},
		{"empty data", []string{"--data", empty}, "no example"},
		{"corrupt data", []string{"--data", badJSON}, "bad.jsonl:2"},
		{"data without text", []string{"--data", noField}, `"text"`},
		{"empty eval data", []string{"--data", good, "--eval-data", empty}, "no example"},
		{"targets match nothing", []string{"--targets", "attn_c"}, "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"},
		{"bad target regexp", []string{"--targets", "q_proj("}, "not a regular expression"},
		{"r larger than a layer", []string{"--r", "200"}, "--r 200 is larger than layer"},
		{"cuda without cuda", []string{"--device", cudaDev}, "--device " + cudaDev},
		{"float16 on the cpu", []string{"--device", "cpu", "--dtype", "float16"}, "float16 needs --device cuda"},
		{"seq beyond context", []string{"--seq", "1000"}, "--seq 1000 is beyond the model's context of 256"},
		{"resume without checkpoint", []string{"--resume"}, "--resume"},
		{"bad schedule", []string{"--schedule", "step"}, "--schedule"},
		{"steps and epochs", []string{"--steps", "3", "--epochs", "1"}, "--steps and --epochs"},
		{"lora flag with full", []string{"--full", "--r", "4"}, "--r is a LoRA setting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(tmp, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			args := tiny(out)
			// Later flags override the defaults of tiny (the flag package
			// keeps the last value).
			args = append(args, c.args...)
			if c.name == "lora flag with full" || c.name == "steps and epochs" {
				args = append([]string{"--out", out, "--samples", "0"}, c.args...)
			}
			r := runIn(t, args...)
			oneErrorLine(t, r, c.want)
			if names := listDir(t, out); names != nil {
				t.Errorf("--out %s was created (%v)", out, names)
			}
		})
	}
}

// TestOutHoldsAnotherRun: --out holding another run (or other files) is
// refused unless --overwrite; the same run may be run again; --resume
// refuses a checkpoint of another configuration.
func TestOutHoldsAnotherRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if r := runIn(t, tiny(out)...); r.code != 0 {
		t.Fatalf("first run: exit %d:\n%s", r.code, r.stderr)
	}
	before := listDir(t, out)
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.png", ckptFile, runFile} {
		if !slices.Contains(before, f) {
			t.Errorf("the run wrote %v, without %s", before, f)
		}
	}
	stat := func() map[string]int64 {
		m := map[string]int64{}
		for _, n := range listDir(t, out) {
			st, err := os.Stat(filepath.Join(out, n))
			if err != nil {
				t.Fatal(err)
			}
			m[n] = st.ModTime().UnixNano()
		}
		return m
	}
	snap := stat()

	r := runIn(t, tiny(out, "--lr", "1e-4")...)
	oneErrorLine(t, r, "already holds a different run")
	r = runIn(t, tiny(out, "--lr", "1e-4", "--resume")...)
	oneErrorLine(t, r, "is of another run")
	if now := stat(); fmt.Sprint(now) != fmt.Sprint(snap) {
		t.Errorf("refused runs changed --out:\n%v\n%v", snap, now)
	}

	// Other files.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	oneErrorLine(t, runIn(t, tiny(other)...), "already holds files that are not a train run")

	if r := runIn(t, tiny(out, "--lr", "1e-4", "--overwrite")...); r.code != 0 {
		t.Fatalf("--overwrite: exit %d:\n%s", r.code, r.stderr)
	}
	if r := runIn(t, tiny(out, "--lr", "1e-4")...); r.code != 0 {
		t.Fatalf("the same run again: exit %d:\n%s", r.code, r.stderr)
	}
}

// TestHelpAndFlagSyntax: --help explains every flag and exits 0; an
// unknown flag exits 2.
func TestHelpAndFlagSyntax(t *testing.T) {
	r := runIn(t, "--help")
	if r.code != 0 {
		t.Errorf("--help: exit %d", r.code)
	}
	for _, f := range []string{"base", "data", "eval-data", "targets", "r", "alpha", "dropout", "rslora", "dora",
		"lr", "schedule", "warmup", "steps", "epochs", "batch", "grad-accum", "seq", "grad-clip", "seed",
		"device", "dtype", "gradient-checkpointing", "out", "eval-every", "save-every", "resume", "merge",
		"full", "log-json", "overwrite"} {
		if !strings.Contains(r.stderr, "\n  -"+f+" ") && !strings.Contains(r.stderr, "\n  -"+f+"\n") {
			t.Errorf("--help does not explain -%s", f)
		}
	}
	if r := runIn(t, "--bogus"); r.code != 2 {
		t.Errorf("--bogus: exit %d, want 2", r.code)
	}
	if r := runIn(t, "extra"); r.code != 1 || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
		t.Errorf("a positional argument: exit %d, %q", r.code, r.stderr)
	}
}
