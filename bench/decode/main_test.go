package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestParseFlagsRefuses(t *testing.T) {
	for _, args := range [][]string{
		{},                                    // neither -model nor -arch
		{"-model", "x", "-arch", "llama"},     // both
		{"-arch", "bert"},                     // unknown arch
		{"-arch", "gpt2", "-size", "large"},   // unknown size
		{"-arch", "gpt2", "-new", "0"},        // no decoding
		{"-arch", "gpt2", "-threads", "-1"},   // bad threads
		{"-arch", "gpt2", "stray"},            // an argument
		{"-arch", "gpt2", "-nosuchflag", "1"}, // unknown flag
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
}

// TestRunTiny runs both tiny architectures briefly and checks the line.
func TestRunTiny(t *testing.T) {
	for _, arch := range []string{"llama", "gpt2"} {
		c, err := parseFlags([]string{"-arch", arch, "-prompt", "5", "-new", "3", "-batch", "2", "-repeats", "2"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(c, &out); err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		line := out.String()
		for _, want := range []string{"go " + arch + " B=2 prompt=5 new=3 ", " prefill_tok_s=", " decode_ms_per_token="} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: line %q lacks %q", arch, line, want)
			}
		}
	}
}
