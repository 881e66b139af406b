package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
)

func TestParseFlagsRefusesBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-dim", "0"}, "-dim must be positive, got 0"},
		{[]string{"-layers", "-1"}, "-layers must be positive, got -1"},
		{[]string{"-batch", "0"}, "-batch must be positive"},
		{[]string{"-rank", "0"}, "-rank must be positive"},
		{[]string{"-steps", "0"}, "-steps must be positive"},
		{[]string{"-repeats", "0"}, "-repeats must be positive"},
		{[]string{"-threads", "-2"}, "-threads must be >= 0"},
		{[]string{"-device", "tpu"}, `-device must be cpu, cuda or cuda:i, got "tpu"`},
		{[]string{"-device", "cuda:x"}, "-device must be"},
		{[]string{"-dtype", "float16"}, `-dtype must be float32 or float64, got "float16"`},
		{[]string{"-zerograd", "some"}, "-zerograd must be optim or params"},
		{[]string{"-full", "-fused=false"}, "-fused=false needs the LoRA model"},
		{[]string{"-dim", "8", "extra"}, `unexpected argument "extra"`},
	} {
		_, err := parseFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", c.args, err, c.want)
		}
	}
	// Syntax errors are reported by the flag package, with the usage.
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-dim", "abc"}, &out); !errors.Is(err, errReported) {
		t.Errorf("-dim abc: got %v, want errReported", err)
	}
	if !strings.Contains(out.String(), "usage: lorastep") {
		t.Errorf("-dim abc printed %q, want the usage", out.String())
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-dim", "16", "-steps", "50"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.dim != 16 || c.layers != 4 || c.batch != 8 || c.rank != 8 || c.steps != 50 || c.warmup != 5 ||
		!c.fused || c.full || c.device != "cpu" || c.dtype != "float32" {
		t.Errorf("unexpected config %+v", *c)
	}
}

// A short run of each mode prints the mem and phase lines and one timing
// line ending in us/step, with a finite loss.
func TestRunPrintsOneLine(t *testing.T) {
	line := regexp.MustCompile(`^go d=12 L=2 B=3 r=2 steps=4x2 cpu float32 threads=\d+ (lora|full) [a-z,=]+ ` +
		`loss=[0-9.e+-]+ cpu=[0-9.]+ min=[0-9.]+ median=[0-9.]+ \| [0-9.]+ us/step$`)
	for _, extra := range [][]string{nil, {"-fused=false", "-peropt", "-zerograd", "params"}, {"-full", "-lockthread"}} {
		args := append([]string{"-dim", "12", "-layers", "2", "-batch", "3", "-rank", "2", "-steps", "4",
			"-repeats", "2", "-warmup", "1", "-mem", "-phases"}, extra...)
		c, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(c, &out); err != nil {
			t.Fatalf("%q: %v", extra, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "mem go ") || !strings.HasPrefix(lines[1], "phases go: ") ||
			!line.MatchString(lines[2]) || strings.Contains(lines[2], "NaN") {
			t.Errorf("%q printed:\n%s", extra, out.String())
		}
	}
}
