package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/tokenizer"
	"github.com/golora/golora/torch"
)

// options are the parsed flags.
type options struct {
	base, adapter   string
	merge           bool
	device, dtype   string
	idsIn, out      string
	prompt          string
	maxNew          int
	temperature     float64
	topK            int
	topP            float64
	seed            uint64
	penalty         float64
	stop            string
	tokenize        string
	noSpecial       bool
	set             map[string]bool // flags given on the command line
	stdout          io.Writer
	ctx             context.Context
	generateOptions []generate.Option
}

// usageError is a flag problem: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program: it returns the exit status and writes one line
// on stderr for any error.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is run with a context that cancels a generation.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runErr(ctx, args, stdout)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	msg := err.Error()
	if strings.Contains(msg, "not implemented for 'Half'") {
		msg += " (this libtorch has no float16 kernel for it on the CPU: use --dtype bfloat16 or float32, or a CUDA device)"
	}
	fmt.Fprintln(stderr, "infer: "+oneLine(msg))
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// maxLine is the length, in characters, past which an error line is cut
// (lora's messages can list every module of a model).
const maxLine = 600

// oneLine joins a multi-line message (errors.Join's) with "; " and cuts
// it at maxLine characters.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	s = strings.Join(lines, "; ")
	if r := []rune(s); len(r) > maxLine {
		s = string(r[:maxLine]) + " …"
	}
	return s
}

func parseFlags(args []string) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.base, "base", "", "Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json)")
	fs.StringVar(&o.adapter, "adapter", "", "PEFT LoRA adapter directory")
	fs.BoolVar(&o.merge, "merge", false, "merge the adapter into the base weights first")
	fs.StringVar(&o.device, "device", "cpu", "cpu, cuda, cuda:i or auto")
	fs.StringVar(&o.dtype, "dtype", "float32", "float32, bfloat16 or float16")
	fs.StringVar(&o.idsIn, "ids", "", "scoring: safetensors file with input_ids (and attention_mask)")
	fs.StringVar(&o.out, "out", "", "scoring: output safetensors file")
	fs.StringVar(&o.prompt, "prompt", "", "generation: the prompt text")
	fs.IntVar(&o.maxNew, "max-new-tokens", 20, "generation: tokens to generate at most")
	fs.Float64Var(&o.temperature, "temperature", 1, "generation: sampling temperature (> 0)")
	fs.IntVar(&o.topK, "top-k", 0, "generation: sample from the k most likely tokens (≥ 1)")
	fs.Float64Var(&o.topP, "top-p", 1, "generation: nucleus sampling mass, in (0, 1]")
	fs.Uint64Var(&o.seed, "seed", 0, "generation: the sampling seed")
	fs.Float64Var(&o.penalty, "repetition-penalty", 1, "generation: repetition penalty (> 0, 1 is none)")
	fs.StringVar(&o.stop, "stop", "", "generation: stop once the continuation contains this text")
	fs.StringVar(&o.tokenize, "tokenize", "", "tokenize: print the ids of this text as JSON")
	fs.BoolVar(&o.noSpecial, "no-special", false, "tokenize: leave out the special tokens")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q (flags take --name value)", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.base == "" {
		return nil, usageError{"--base DIR is required"}
	}
	modes := 0
	for _, m := range []string{"ids", "prompt", "tokenize"} {
		if o.set[m] {
			modes++
		}
	}
	if modes != 1 {
		return nil, usageError{"give exactly one mode: --ids IN --out OUT, --prompt TEXT or --tokenize TEXT"}
	}
	if o.set["ids"] != o.set["out"] {
		return nil, usageError{"--ids and --out go together"}
	}
	if o.merge && o.adapter == "" {
		return nil, usageError{"--merge needs --adapter DIR"}
	}
	return o, nil
}

// parseDevice reads --device.
func parseDevice(s string) (torch.Device, error) {
	switch s = strings.ToLower(strings.TrimSpace(s)); {
	case s == "cpu":
		return torch.CPU, nil
	case s == "auto":
		if torch.CUDAIsAvailable() {
			return torch.CUDA(0), nil
		}
		return torch.CPU, nil
	case s == "cuda":
		return torch.CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || i < 0 {
			break
		}
		return torch.CUDA(i), nil
	}
	return torch.CPU, fmt.Errorf("--device %q: want cpu, cuda, cuda:i or auto", s)
}

func runErr(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	o.stdout, o.ctx = stdout, ctx
	if st, err := os.Stat(o.base); err != nil {
		return fmt.Errorf("--base: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("--base %s: not a directory", o.base)
	}
	if o.set["tokenize"] {
		return tokenizeMode(o)
	}
	if o.set["prompt"] {
		// Check the generation flags before loading anything.
		if err := o.generation(); err != nil {
			return err
		}
	}
	dev, err := parseDevice(o.device)
	if err != nil {
		return err
	}
	dt, err := hf.ParseDType(o.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	m, err := models.Load(o.base, hf.WithDType(dt), hf.WithDevice(dev))
	if err != nil {
		return err
	}
	defer m.Close()
	if o.adapter != "" {
		if err := loadAdapter(m, o.adapter, o.merge); err != nil {
			return err
		}
	}
	if o.set["ids"] {
		return scoreMode(o, m)
	}
	return generateMode(o, m)
}

// loadAdapter puts the PEFT adapter in dir on m, merged when merge is set.
func loadAdapter(m models.Model, dir string, merge bool) error {
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("--adapter: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("--adapter %s: not a directory", dir)
	}
	if err := lora.LoadAdapter(m.Unwrap(), dir, "default"); err != nil {
		return fmt.Errorf("--adapter %s does not fit --base %s (%s): %w", dir, m.Type(), baseName(dir), err)
	}
	if merge {
		if _, err := lora.MergeAndUnload(m.Unwrap()); err != nil {
			return fmt.Errorf("--merge: %w", err)
		}
	}
	module.Eval(m.Unwrap())
	return nil
}

// baseName returns the adapter's base_model_name_or_path, for messages.
func baseName(dir string) string {
	data, err := jsonfile.Read(filepath.Join(dir, "adapter_config.json"), jsonfile.MaxConfigSize)
	if errors.Is(err, jsonfile.ErrTooLarge) {
		return "adapter_config.json over the size limit"
	}
	if err != nil {
		return "no adapter_config.json"
	}
	var c struct {
		Base string `json:"base_model_name_or_path"`
	}
	if json.Unmarshal(data, &c) != nil || c.Base == "" {
		return "made for an unnamed base"
	}
	return "made for " + c.Base
}

func tokenizeMode(o *options) error {
	tok, err := tokenizer.Load(o.base)
	if err != nil {
		return err
	}
	ids, err := tok.Encode(o.tokenize, !o.noSpecial)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []int64{}
	}
	data, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.stdout, "%s\n", data)
	return err
}
