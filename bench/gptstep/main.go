// Command gptstep times one training step of a causal language model (a
// Hugging Face checkpoint) with LoRA or full fine-tuning, as cmd/train runs
// it, beside its twin bench/gpt_step_peft.py (transformers + PEFT):
//
//	go run ./bench/gptstep -base DIR -mode lora|full -batch B -seq T -steps N -r R
//
// prints one line holding the time per step (us/step), the throughput
// (tok/s) and the peak resident set (peak_rss_mib=). Each step: random
// token ids (B, T), the logits, the next-token cross-entropy, backward,
// AdamW (lr 1e-4), zero_grad. LoRA adapts every linear layer but the head
// (PEFT's "all-linear"), α = 2r, no dropout; -mode full trains every
// weight.
//
//	go run ./bench/gptstep -make DIR -hidden 256 -layers 4
//
// writes a random Llama checkpoint of that size to DIR (vocabulary 32000,
// 4 heads of 64 per 256 of hidden, MLP 8/3·hidden) for both programs to
// load.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

type config struct {
	base, mode, make      string
	batch, seq, steps, r  int
	warmup, threads       int
	hidden, layers, vocab int
	seed                  uint64
}

func main() {
	var c config
	fs := flag.NewFlagSet("gptstep", flag.ContinueOnError)
	fs.StringVar(&c.base, "base", "", "checkpoint directory (config.json, model.safetensors)")
	fs.StringVar(&c.mode, "mode", "lora", "lora or full")
	fs.IntVar(&c.batch, "batch", 8, "rows per step")
	fs.IntVar(&c.seq, "seq", 128, "tokens per row")
	fs.IntVar(&c.steps, "steps", 10, "timed steps")
	fs.IntVar(&c.warmup, "warmup", 2, "untimed steps first")
	fs.IntVar(&c.r, "r", 8, "LoRA rank")
	fs.IntVar(&c.threads, "threads", 0, "libtorch intra-op threads (0: its default)")
	fs.Uint64Var(&c.seed, "seed", 0, "seed")
	fs.StringVar(&c.make, "make", "", "write a random Llama checkpoint to `DIR` and exit")
	fs.IntVar(&c.hidden, "hidden", 256, "with -make: hidden size")
	fs.IntVar(&c.layers, "layers", 4, "with -make: layers")
	fs.IntVar(&c.vocab, "vocab", 32000, "with -make: vocabulary")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var err error
	if c.make != "" {
		err = makeBase(c)
	} else {
		err = bench(c, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gptstep:", err)
		os.Exit(1)
	}
}

func makeBase(c config) error {
	if c.hidden < 64 || c.hidden%64 != 0 || c.layers < 1 {
		return fmt.Errorf("-hidden %d -layers %d: want a multiple of 64 and ≥ 1", c.hidden, c.layers)
	}
	if err := torch.ManualSeed(c.seed); err != nil {
		return err
	}
	h := int64(c.hidden)
	m, err := llama.New(llama.Config{ModelType: "llama", VocabSize: int64(c.vocab), HiddenSize: h,
		IntermediateSize: (8*h/3 + 63) / 64 * 64, NumHiddenLayers: int64(c.layers), NumAttentionHeads: h / 64,
		NumKeyValueHeads: h / 64, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-6, HiddenAct: "silu",
		Rope: llama.Rope{Type: "default", Theta: 10000}, InitializerRange: 0.02, BOSTokenID: 1, PadTokenID: -1, EOSTokenIDs: []int64{2}})
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Save(c.make)
}

func bench(c config, w io.Writer) error {
	if c.base == "" {
		return errors.New("-base DIR is required (make one with -make DIR)")
	}
	if c.mode != "lora" && c.mode != "full" {
		return fmt.Errorf("-mode %q: want lora or full", c.mode)
	}
	if c.batch < 1 || c.seq < 2 || c.steps < 1 || c.r < 1 || c.warmup < 0 {
		return errors.New("-batch, -steps, -r must be ≥ 1, -seq ≥ 2, -warmup ≥ 0")
	}
	if c.threads > 0 {
		if err := torch.SetNumThreads(c.threads); err != nil {
			return err
		}
	}
	runtime.LockOSThread() // grad mode is per thread
	rssStart := peakRSS()
	m, err := llama.Load(c.base)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := torch.ManualSeed(c.seed); err != nil {
		return err
	}
	if c.mode == "lora" {
		if err := module.Freeze(m); err != nil {
			return err
		}
		if _, err := lora.Apply(m, lora.Config{R: int64(c.r), Alpha: float64(2 * c.r), TargetRegexp: lora.AllLinear}); err != nil {
			return err
		}
	}
	module.Train(m)
	total, trainable := module.Count(m)
	opt, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(m)}, optim.LR(1e-4))
	if err != nil {
		return err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(c.seed, 1))
	B, T, V := int64(c.batch), int64(c.seq), m.Cfg.VocabSize
	ids := make([]int64, B*T)
	var loss float64
	step := func() error {
		for i := range ids {
			ids[i] = rng.Int64N(V)
		}
		s := torch.NewScope()
		defer s.Close()
		x := s.Own(torch.FromSlice(ids, B, T))
		logits := m.Forward(x)
		l := torch.CrossEntropy(logits.Narrow(1, 0, T-1).Reshape((T-1)*B, V), x.Narrow(1, 1, T-1).Reshape((T-1)*B), -100, torch.ReductionMean)
		if err := l.Backward(); err != nil {
			return err
		}
		v, err := l.Item()
		if err != nil {
			return err
		}
		loss = v
		if err := opt.Step(); err != nil {
			return err
		}
		return opt.ZeroGrad()
	}
	for range c.warmup {
		if err := step(); err != nil {
			return err
		}
	}
	start := time.Now()
	for range c.steps {
		if err := step(); err != nil {
			return err
		}
	}
	el := time.Since(start)
	us := float64(el.Microseconds()) / float64(c.steps)
	sb := int64(0)
	if s, ok := opt.(interface{ StateBytes() int64 }); ok {
		sb = s.StateBytes()
	}
	fmt.Fprintf(w, "gptstep go mode=%s hidden=%d layers=%d batch=%d seq=%d r=%d params=%d trainable=%d opt_state_mib=%.1f threads=%d loss=%.4f rss_start_mib=%.1f peak_rss_mib=%.1f tok/s=%.0f %.0f us/step\n",
		c.mode, m.Cfg.HiddenSize, m.Cfg.NumHiddenLayers, c.batch, c.seq, c.r, total, trainable, float64(sb)/(1<<20), torch.NumThreads(),
		loss, rssStart, peakRSS(), float64(B*T)/(us/1e6), us)
	return nil
}

// peakRSS is the peak resident set in MiB.
func peakRSS() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
