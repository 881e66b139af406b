package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// options are the command line's settings.
type options struct {
	base, initDir, data, evalData string
	targets                       string
	r                             int64
	alpha, dropout                float64
	rslora, dora                  bool

	lr        float64
	schedule  string
	warmup    int
	steps     int
	epochs    float64
	batch     int
	gradAccum int
	seq       int
	gradClip  float64
	seed      uint64
	evalSplit float64
	pack      bool

	device, dtype string
	gradCkpt      bool
	distTimeout   time.Duration

	out                  string
	evalEvery, saveEvery int
	resume               bool
	merge, full          bool
	logJSON              string
	overwrite            bool

	sample       string
	samples      int
	maxNewTokens int

	// set: the flags given on the command line, by name.
	set map[string]bool
}

// Defaults of the run without arguments (the shipped demo).
const (
	defaultOut = "train-out"
)

const usageHead = `Usage: train [flags]

train fine-tunes a causal language model (a Hugging Face checkpoint) with LoRA
adapters, or fully with --full, and writes a PEFT-format adapter.

With no flags it runs the shipped demo: a small Llama-architecture base,
pre-trained on sentences of a generated language ("the cat sees a dog."),
learns through a LoRA adapter to write the same language with every word
spelled backwards ("eht tac sees a god."). It prints the trainable
parameters, the training and validation losses and a generated sample before
and after, and writes the adapter and a loss curve to ./train-out.

Data (--data, --eval-data): plain text, one example per line; or JSON Lines
(.jsonl/.json) with a "text" field, or "prompt" and "completion" fields (the
loss then covers only the completion). Examples are tokenized with the base's
tokenizer.json, each starts with the tokenizer's special tokens (BOS) and ends
with the model's EOS, and they are packed into rows of --seq tokens (or padded
one per row with --pack=false).

Exit status: 0 on success, 1 on an error (one line on stderr, nothing left
behind in --out), 2 on bad flag syntax, 130 when interrupted (Ctrl-C or
SIGTERM: a checkpoint is saved first; --resume continues it).

Data-parallel: torchrun --nproc-per-node=N --no-python ./train [flags] (or
RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set by hand in each process) runs
N processes, each on its shard of the data with --batch rows (the global
batch is --batch × N), averaging the gradients every step; only rank 0
writes. See cmd/train/README.md.

Flags:
`

// parseFlags parses args into options; help output goes to w.
func parseFlags(args []string, w io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprint(w, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.base, "base", "", "base model: a Hugging Face checkpoint `DIR` (config.json, model.safetensors or shards, tokenizer.json); llama, mistral, qwen2 or gpt2. Default: the shipped demo base (cmd/train/base)")
	fs.StringVar(&o.initDir, "init", "", "with --full: start from random weights for the config.json and tokenizer.json in `DIR` instead of a --base (how the shipped base was made)")
	fs.StringVar(&o.data, "data", "", "training data `FILE` (.txt: one example per line; .jsonl: text or prompt/completion). Default: the demo's task")
	fs.StringVar(&o.evalData, "eval-data", "", "held-out evaluation data `FILE`, same formats. Default: --eval-split of --data (the demo's own eval file without --data)")
	fs.Float64Var(&o.evalSplit, "eval-split", 0.1, "fraction of --data held out for evaluation when --eval-data is not given")
	fs.StringVar(&o.targets, "targets", "all-linear", "modules to adapt: all-linear (every linear layer but the output head), comma-separated names or name suffixes (q_proj,v_proj), or a regular expression over full module paths")
	fs.Int64Var(&o.r, "r", 8, "LoRA rank r")
	fs.Float64Var(&o.alpha, "alpha", 16, "LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with --rslora)")
	fs.Float64Var(&o.dropout, "dropout", 0.05, "dropout on the adapters' inputs during training")
	fs.BoolVar(&o.rslora, "rslora", false, "rank-stabilised LoRA: scale by alpha/sqrt(r)")
	fs.BoolVar(&o.dora, "dora", false, "DoRA: weight-decomposed LoRA, a trained magnitude per output")

	fs.Float64Var(&o.lr, "lr", 2e-3, "peak learning rate (AdamW)")
	fs.StringVar(&o.schedule, "schedule", "cosine", "learning-rate schedule after the warmup: constant, cosine or linear (decay to 0 at the last step)")
	fs.IntVar(&o.warmup, "warmup", 20, "linear warmup steps (default: 20, or a tenth of the run when shorter)")
	fs.IntVar(&o.steps, "steps", 0, "optimizer steps (default 250; exclusive with --epochs)")
	fs.Float64Var(&o.epochs, "epochs", 0, "train for this many passes over --data instead of --steps (may be fractional)")
	fs.IntVar(&o.batch, "batch", 16, "rows (sequences) per micro-batch")
	fs.IntVar(&o.gradAccum, "grad-accum", 1, "micro-batches per optimizer step (gradient accumulation)")
	fs.IntVar(&o.seq, "seq", 64, "sequence length of a row, in tokens (at most the model's context)")
	fs.Float64Var(&o.gradClip, "grad-clip", 1.0, "clip the gradients' total 2-norm to this (0: no clipping)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the adapters' init, dropout, the data order and the split")
	fs.BoolVar(&o.pack, "pack", true, "pack examples into full rows (false: one example per row, padded)")

	fs.StringVar(&o.device, "device", "auto", "device: auto (cuda:0 when there is a GPU, else cpu), cpu, cuda or cuda:i")
	fs.StringVar(&o.dtype, "dtype", "float32", "compute dtype: float32, bfloat16 or float16 (mixed precision: the frozen base is kept in it and the forward pass runs under autocast; adapters and optimizer state stay float32; float16 needs CUDA)")
	fs.BoolVar(&o.gradCkpt, "gradient-checkpointing", false, "recompute each block's activations in the backward pass (less memory, more time)")
	fs.DurationVar(&o.distTimeout, "dist-timeout", 5*time.Minute, "data-parallel runs (under torchrun, or WORLD_SIZE set): bound on the rendezvous and on every collective; a rank that dies makes the others fail after at most this")

	fs.StringVar(&o.out, "out", defaultOut, "output `DIR`: the adapter (adapter_config.json, adapter_model.safetensors), loss.png, checkpoint.safetensors, run.json; with --full the fine-tuned model")
	fs.IntVar(&o.evalEvery, "eval-every", 50, "evaluate every N steps (and at the end; 0: only at the start and the end)")
	fs.IntVar(&o.saveEvery, "save-every", 100, "save a checkpoint every N steps (and at the end; 0: only at the end and on Ctrl-C)")
	fs.BoolVar(&o.resume, "resume", false, "continue the run in --out from its checkpoint (same base, data and settings)")
	fs.BoolVar(&o.merge, "merge", false, "also write the base with the adapter merged in, as a Hugging Face checkpoint in --out/merged")
	fs.BoolVar(&o.full, "full", false, "full fine-tuning (every weight trains) instead of LoRA: the baseline; writes a Hugging Face checkpoint to --out")
	fs.StringVar(&o.logJSON, "log-json", "", "write one JSON line of metrics per step (and per evaluation) to `FILE`")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace a different run already in --out")

	fs.StringVar(&o.sample, "sample", "", "prompt of the samples generated before and after training (default: none, the model starts from BOS)")
	fs.IntVar(&o.samples, "samples", 3, "number of samples generated before and after training: the first greedy, the others sampled at temperature 0.7 (0: none)")
	fs.IntVar(&o.maxNewTokens, "max-new-tokens", 60, "length limit of a sample, in tokens")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, o.check()
}

// check validates the options that need no file.
func (o *options) check() error {
	switch {
	case o.r < 1:
		return fmt.Errorf("--r %d: the rank must be ≥ 1", o.r)
	case !(o.alpha > 0) || math.IsInf(o.alpha, 0):
		return fmt.Errorf("--alpha %v: want a positive number", o.alpha)
	case !(o.dropout >= 0 && o.dropout < 1):
		return fmt.Errorf("--dropout %v: want 0 ≤ p < 1", o.dropout)
	case !(o.lr > 0) || math.IsInf(o.lr, 0):
		return fmt.Errorf("--lr %v: want a positive number", o.lr)
	case o.warmup < 0:
		return fmt.Errorf("--warmup %d: want ≥ 0", o.warmup)
	case o.steps < 0:
		return fmt.Errorf("--steps %d: want ≥ 1", o.steps)
	case o.epochs < 0 || math.IsNaN(o.epochs) || math.IsInf(o.epochs, 0):
		return fmt.Errorf("--epochs %v: want > 0", o.epochs)
	case o.steps > 0 && o.epochs > 0:
		return errors.New("--steps and --epochs: give one of them")
	case o.batch < 1:
		return fmt.Errorf("--batch %d: want ≥ 1", o.batch)
	case o.gradAccum < 1:
		return fmt.Errorf("--grad-accum %d: want ≥ 1", o.gradAccum)
	case o.seq < 2:
		return fmt.Errorf("--seq %d: want ≥ 2", o.seq)
	case !(o.gradClip >= 0) || math.IsInf(o.gradClip, 0):
		return fmt.Errorf("--grad-clip %v: want ≥ 0", o.gradClip)
	case !(o.evalSplit > 0 && o.evalSplit < 1):
		return fmt.Errorf("--eval-split %v: want 0 < f < 1", o.evalSplit)
	case o.evalEvery < 0:
		return fmt.Errorf("--eval-every %d: want ≥ 0", o.evalEvery)
	case o.saveEvery < 0:
		return fmt.Errorf("--save-every %d: want ≥ 0", o.saveEvery)
	case o.distTimeout <= 0:
		return fmt.Errorf("--dist-timeout %v: want a positive duration", o.distTimeout)
	case o.samples < 0 || o.maxNewTokens < 1:
		return fmt.Errorf("--samples %d, --max-new-tokens %d: want ≥ 0 and ≥ 1", o.samples, o.maxNewTokens)
	case o.out == "":
		return errors.New("--out: empty")
	case o.initDir != "" && !o.full:
		return errors.New("--init needs --full (it starts a model from random weights)")
	case o.initDir != "" && o.base != "":
		return errors.New("--init and --base: give one of them")
	case o.full && o.merge:
		return errors.New("--merge is for LoRA runs (--full already writes the whole model)")
	}
	switch o.schedule {
	case "constant", "cosine", "linear":
	default:
		return fmt.Errorf("--schedule %q: want constant, cosine or linear", o.schedule)
	}
	switch o.dtype {
	case "float32", "bfloat16", "float16":
	default:
		return fmt.Errorf("--dtype %q: want float32, bfloat16 or float16", o.dtype)
	}
	if o.full {
		for _, f := range []string{"targets", "r", "alpha", "dropout", "rslora", "dora"} {
			if o.set[f] {
				return fmt.Errorf("--%s is a LoRA setting; --full trains every weight", f)
			}
		}
	}
	if _, err := parseDevice(o.device); err != nil {
		return err
	}
	return nil
}

// deviceSpec is a parsed --device: auto, or a CPU, or CUDA device index.
type deviceSpec struct {
	auto, cuda bool
	index      int
}

func parseDevice(s string) (deviceSpec, error) {
	switch {
	case s == "auto":
		return deviceSpec{auto: true}, nil
	case s == "cpu":
		return deviceSpec{}, nil
	case s == "cuda":
		return deviceSpec{cuda: true}, nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[5:])
		if err == nil && i >= 0 {
			return deviceSpec{cuda: true, index: i}, nil
		}
	}
	return deviceSpec{}, fmt.Errorf("--device %q: want auto, cpu, cuda or cuda:i", s)
}

// targetSpec turns --targets into a lora.Config's TargetModules or
// TargetRegexp: "all-linear"; a regular expression when the value holds a
// regexp metacharacter; else comma-separated names.
func targetSpec(s string) (names []string, re string, err error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, "", errors.New("--targets: empty")
	case s == "all-linear":
		return nil, s, nil
	case strings.ContainsAny(s, `\^$*+?()[]{}|`):
		if _, err := regexp.Compile(s); err != nil {
			return nil, "", fmt.Errorf("--targets %q: not a regular expression: %v", s, err)
		}
		return nil, s, nil
	}
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("--targets %q: no module name", s)
	}
	return names, "", nil
}
