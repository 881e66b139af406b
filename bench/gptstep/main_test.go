package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestGPTStep makes a tiny checkpoint and times a step of each mode: the
// line holds us/step, tok/s and peak_rss_mib=, and full fine-tuning
// trains every parameter where LoRA trains the adapters alone (r·(in+out)
// per adapted layer).
func TestGPTStep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "base")
	if err := makeBase(config{make: dir, hidden: 64, layers: 1, vocab: 100}); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^gptstep go mode=(\w+) .* params=(\d+) trainable=(\d+) .* peak_rss_mib=[\d.]+ tok/s=\d+ \d+ us/step\n$`)
	trainable := map[string]string{}
	for _, mode := range []string{"lora", "full"} {
		var out bytes.Buffer
		if err := bench(config{base: dir, mode: mode, batch: 2, seq: 8, steps: 1, r: 2}, &out); err != nil {
			t.Fatal(err)
		}
		m := line.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("%s: line %q", mode, out.String())
		}
		trainable[mode] = m[3]
		if mode == "full" && m[2] != m[3] {
			t.Errorf("full: params %s, trainable %s", m[2], m[3])
		}
	}
	// hidden 64, MLP 192 (8·64/3 rounded up to 64), one layer, r = 2:
	// q, k, v, o (64→64) and gate, up (64→192), down (192→64).
	want := 2 * (4*(64+64) + 2*(64+192) + (192 + 64))
	if trainable["lora"] != itoa(want) {
		t.Errorf("lora: trainable %s, want %d", trainable["lora"], want)
	}
	if err := bench(config{base: dir, mode: "half", batch: 1, seq: 2, steps: 1, r: 1}, &bytes.Buffer{}); err == nil {
		t.Error("-mode half: no error")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
