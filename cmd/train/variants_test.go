package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/golora/golora/lora"
)

// TestVariants runs the flags that change how a run trains, on tiny
// settings: each completes, writes an adapter that loads back onto the
// base, and lowers the validation loss; gradient checkpointing gives the
// same losses as the plain run (the recomputed forward pass is the same
// computation, dropout masks included).
func TestVariants(t *testing.T) {
	dir := t.TempDir()
	pc := filepath.Join(dir, "pc.jsonl")
	var lines []byte
	for _, p := range [][2]string{{"the cat sees a dog. ", "eht tac sees a god."}, {"a red fox likes the king. ", "a der xof sekil eht gnik."},
		{"the boy hears a bird. ", "eht yob sraeh a drib."}, {"the old queen finds a mouse. ", "eht dlo neeuq sdnif a esuom."}} {
		b, _ := json.Marshal(map[string]string{"prompt": p[0], "completion": p[1]})
		lines = append(append(lines, b...), '\n')
	}
	if err := os.WriteFile(pc, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--steps", "8", "--eval-every", "4", "--lr", "5e-3", "--dropout", "0.1"}
	cases := []struct {
		name string
		args []string
	}{
		{"plain", nil},
		{"checkpointing", []string{"--gradient-checkpointing"}},
		{"bfloat16", []string{"--dtype", "bfloat16"}},
		{"dora rslora regexp accum", []string{"--dora", "--rslora", "--targets", `.*\.(q_proj|v_proj)`, "--grad-accum", "2", "--schedule", "linear"}},
		{"prompt completion padded", []string{"--data", pc, "--eval-data", pc, "--pack=false", "--batch", "2", "--seq", "40", "--schedule", "constant"}},
	}
	hist := map[string]history{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name)
			r := runIn(t, append(tiny(out, common...), c.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.stderr)
			}
			h := readHistory(t, out)
			hist[c.name] = h
			if first, last := h.Evals[0], h.Evals[len(h.Evals)-1]; !(last.Loss < first.Loss) {
				t.Errorf("validation loss %v → %v", first.Loss, last.Loss)
			}
			b, err := os.ReadFile(filepath.Join(out, lora.ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				DoRA   bool `json:"use_dora"`
				RSLoRA bool `json:"use_rslora"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if want := c.name == "dora rslora regexp accum"; cfg.DoRA != want || cfg.RSLoRA != want {
				t.Errorf("adapter_config.json: use_dora %v, use_rslora %v", cfg.DoRA, cfg.RSLoRA)
			}
			logitsOf(t, testBase, out) // loads back
		})
	}
	plain, ck := hist["plain"], hist["checkpointing"]
	if len(plain.Steps) != 8 || len(ck.Steps) != 8 {
		t.Fatalf("steps: plain %d, checkpointing %d", len(plain.Steps), len(ck.Steps))
	}
	for i := range plain.Steps {
		a, b := plain.Steps[i].Loss, ck.Steps[i].Loss
		if math.Abs(a-b) > 1e-6*math.Abs(a) {
			t.Errorf("step %d: loss %v with gradient checkpointing, %v without", i+1, b, a)
		}
	}
}
