//go:build interop

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/module"
	"github.com/golora/golora/tokenizer"
	"github.com/golora/golora/torch"
)

// TestInteropPEFT: the adapter a short run writes loads in Python with
// transformers' AutoModelForCausalLM and PEFT's PeftModel.from_pretrained
// (base_model_name_or_path naming the base, every key used), and the
// adapted model's logits there equal golora's (base + lora.LoadAdapter)
// within 1e-5 of max|logit|; the base's logits and transformers'
// AutoTokenizer ids agree too.
func TestInteropPEFT(t *testing.T) {
	py := os.Getenv("GOLORA_INTEROP_PYTHON")
	if py == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop")
	}
	out := filepath.Join(t.TempDir(), "run")
	if r := runIn(t, tiny(out, "--steps", "10", "--lr", "5e-3", "--targets", "q_proj,v_proj,down_proj")...); r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	text := "eht tac sees a god."
	ref := filepath.Join(t.TempDir(), "ref.json")
	absBase, _ := filepath.Abs(testBase)
	cmd := exec.Command(py, filepath.Join("testdata", "peft_check.py"), absBase, out, ref, text)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peft_check.py: %v\n%s", err, b)
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		IDs        []int64   `json:"ids"`
		Base       []float32 `json:"base_logits"`
		LoRA       []float32 `json:"lora_logits"`
		BaseName   string    `json:"base_model_name_or_path"`
		Missing    []string  `json:"missing"`
		Unexpected []string  `json:"unexpected"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.BaseName != absBase {
		t.Errorf("PEFT read base_model_name_or_path %q, want %q", r.BaseName, absBase)
	}
	if len(r.Missing)+len(r.Unexpected) > 0 {
		t.Errorf("PEFT: missing keys %v, unexpected keys %v", r.Missing, r.Unexpected)
	}
	tk, err := tokenizer.Load(testBase)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tk.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmtIDs(ids) != fmtIDs(r.IDs) {
		t.Fatalf("golora's ids %v, transformers' %v", ids, r.IDs)
	}
	goBase := scoreIDs(t, ids, "")
	goLoRA := scoreIDs(t, ids, out)
	if d := maxRel(goBase, r.Base); d > 1e-5 {
		t.Errorf("base logits differ from transformers' by %.3g of max|logit|", d)
	}
	if d := maxRel(goLoRA, r.LoRA); d > 1e-5 {
		t.Errorf("adapted logits differ from PEFT's by %.3g of max|logit|", d)
	}
	if d := maxRel(r.LoRA, r.Base); d < 1e-3 {
		t.Errorf("in PEFT the adapter changes the logits by only %.3g", d)
	}
}

func fmtIDs(ids []int64) string { b, _ := json.Marshal(ids); return string(b) }

// scoreIDs returns the shipped base's logits of ids, with the adapter in
// adapter when not empty.
func scoreIDs(t *testing.T, ids []int64, adapter string) []float32 {
	t.Helper()
	m, err := models.Load(testBase)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if adapter != "" {
		if err := lora.LoadAdapter(m.Unwrap(), adapter, lora.DefaultAdapter); err != nil {
			t.Fatal(err)
		}
	}
	module.Eval(m)
	var out []float32
	err = torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		lg := m.Score(module.Inputs{IDs: s.Own(torch.FromSlice(ids, 1, int64(len(ids))))})
		if err := s.Err(); err != nil {
			return err
		}
		var err error
		out, err = torch.ToSlice[float32](lg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInteropDefaultRun runs the default (go run ./cmd/train with no
// flags but --out): the validation loss on the new task ends below half
// the base's; the adapter loads in PEFT from its own config
// (AutoPeftModelForCausalLM: base_model_name_or_path as written), and
// transformers' greedy generation, with the adapter and without, equals
// the greedy samples the program printed after and before training.
func TestInteropDefaultRun(t *testing.T) {
	py := os.Getenv("GOLORA_INTEROP_PYTHON")
	if py == "" {
		t.Fatal("GOLORA_INTEROP_PYTHON is not set: run make interop")
	}
	out := filepath.Join(t.TempDir(), "run")
	r := runIn(t, "--out", out)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	t.Log("\n" + r.stdout)
	var before, after float64
	var greedy []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if _, err := fmt.Sscanf(line, "validation loss before training (base): %f", &before); err == nil {
			continue
		}
		if strings.HasPrefix(line, "validation loss after") {
			i := strings.Index(line, ": ")
			fmt.Sscanf(line[i+2:], "%f", &after)
		}
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "greedy "); ok {
			q, err := strconv.Unquote(strings.TrimSpace(s))
			if err != nil {
				t.Fatal(err)
			}
			greedy = append(greedy, q)
		}
	}
	if !(before > 0 && after > 0 && after < before/2) {
		t.Errorf("validation loss %v before, %v after: want it halved at least", before, after)
	}
	if len(greedy) != 2 {
		t.Fatalf("greedy samples printed: %q, want one before and one after", greedy)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "peft_generate.py"), out, "60")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("peft_generate.py: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("peft_generate.py printed %q", b)
	}
	var peftLoRA, peftBase string
	_ = json.Unmarshal([]byte(lines[0]), &peftLoRA)
	_ = json.Unmarshal([]byte(lines[1]), &peftBase)
	if peftLoRA != greedy[1] {
		t.Errorf("PEFT's greedy text with the adapter %q, golora's %q", peftLoRA, greedy[1])
	}
	if peftBase != greedy[0] {
		t.Errorf("transformers' greedy text of the base %q, golora's %q", peftBase, greedy[0])
	}
}
