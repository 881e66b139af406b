// Command decode times inference of a causal language model in golora:
// the prefill (one forward pass over the prompt that fills the KV cache)
// and greedy decoding (one token at a time with the cache), beside its
// transformers twin bench/decode_twin.py, which takes the same flags and
// prints the same line.
//
//	go run ./bench/decode -model DIR [-prompt N -new N -batch B -threads T -repeats K]
//	go run ./bench/decode -arch llama|gpt2 -size tiny|gpt2-small [...]
//	/tmp/venv/bin/python3 bench/decode_twin.py -model DIR [same flags]
//
// -model loads a Hugging Face checkpoint with models.Load; -arch and -size
// build a random model in memory instead (the configurations of
// bench/decode_twin.py's -save, which writes them as checkpoints: the
// comparison in bench/decode/run.sh loads one checkpoint on both sides).
//
// Each repeat: an empty KV cache; the prefill, timed: the prompt [B, N]
// (token ids (7t + 3b + 1) mod vocab, the same on both sides) in one pass
// with logits of the last position only (models.Model.LastLogits,
// transformers' logits_to_keep=1, as generate does); the argmax of those
// logits is the first new token. Then -new decoding steps, timed together:
// each feeds the last token [B, 1], extends the cache and takes the argmax
// of the logits of that position, without reading it back to the host (the
// tokens are read once at the end, for the checksum). Everything runs under
// torch.NoGrad, with each step's intermediates in a scope of its own, on
// one OS thread (runtime.LockOSThread) with -threads libtorch intra-op
// threads.
//
// The line: prefill_tok_s (B·N / the fastest prefill), decode_ms_per_token
// (the fastest repeat's decoding time / -new: milliseconds per step, each
// step giving B tokens), the medians over the repeats, the process CPU time
// per decoding step of the repeat that used least (cpu_ms_per_token), and
// tokens=, a checksum of the generated ids (sum of id·(position+1)) that
// matches the twin's when both run the same checkpoint and agree on every
// argmax. One untimed warm-up repeat runs first. -cpuprofile writes a pprof
// profile of the timed repeats.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/golora/golora/models"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

type config struct {
	model, arch, size string
	prompt, newTok    int64
	batch             int64
	threads, repeats  int
	seed              uint64
	cpuprofile        string
}

func main() {
	runtime.LockOSThread()
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "decode:", err)
		}
		os.Exit(2)
	}
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "decode:", err)
		os.Exit(1)
	}
}

var errReported = errors.New("bad command line")

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: decode (-model DIR | -arch llama|gpt2 -size tiny|gpt2-small) [-prompt N -new N -batch B -threads T -repeats K]")
		fmt.Fprintln(stderr, "Times the prefill and greedy decoding with a KV cache; see bench/README.md.")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.model, "model", "", "a Hugging Face checkpoint directory")
	fs.StringVar(&c.arch, "arch", "", "llama or gpt2: a random model built in memory (instead of -model)")
	fs.StringVar(&c.size, "size", "tiny", "with -arch: tiny (the test generators' sizes) or gpt2-small (12 layers, 768 wide, 12 heads, vocab 50257)")
	fs.Int64Var(&c.prompt, "prompt", 32, "prompt length (prefill tokens per row)")
	fs.Int64Var(&c.newTok, "new", 64, "decoding steps (new tokens per row) after the prefill")
	fs.Int64Var(&c.batch, "batch", 1, "rows")
	fs.IntVar(&c.threads, "threads", 1, "libtorch intra-op threads (0: libtorch's default)")
	fs.IntVar(&c.repeats, "repeats", 3, "timed repeats (plus one warm-up)")
	fs.Uint64Var(&c.seed, "seed", 0, "torch.ManualSeed (for -arch's random weights)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the timed repeats to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errReported
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if (c.model == "") == (c.arch == "") {
		return nil, errors.New("give exactly one of -model DIR and -arch llama|gpt2")
	}
	if c.arch != "" && c.arch != "llama" && c.arch != "gpt2" {
		return nil, fmt.Errorf("-arch must be llama or gpt2, got %q", c.arch)
	}
	if c.size != "tiny" && c.size != "gpt2-small" {
		return nil, fmt.Errorf("-size must be tiny or gpt2-small, got %q", c.size)
	}
	for _, p := range []struct {
		name string
		v    int64
	}{{"prompt", c.prompt}, {"new", c.newTok}, {"batch", c.batch}, {"repeats", int64(c.repeats)}} {
		if p.v <= 0 {
			return nil, fmt.Errorf("-%s must be positive, got %d", p.name, p.v)
		}
	}
	if c.threads < 0 {
		return nil, fmt.Errorf("-threads must be >= 0, got %d", c.threads)
	}
	return c, nil
}

// lm is the part of a causal LM the benchmark drives.
type lm struct {
	name   string
	layers int
	vocab  int64
	last   func(ids *torch.Tensor, cache *hf.KVCache) *torch.Tensor // logits [B, 1, V]
	close  func()
}

// ConfigJSON returns the config.json of an -arch/-size model, the same
// that bench/decode_twin.py's -save writes (its configs()).
func ConfigJSON(arch, size string) string {
	switch arch + "/" + size {
	case "llama/tiny": // models/llama/testdata/ckpt_llama
		return `{"model_type": "llama", "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
			"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
			"max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
			"initializer_range": 0.1, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}`
	case "llama/gpt2-small": // a Llama of GPT-2 small's size (MLP 2048 ≈ GPT-2's 4·768 MLP in parameters)
		return `{"model_type": "llama", "vocab_size": 50257, "hidden_size": 768, "intermediate_size": 2048,
			"num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 12,
			"max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
			"initializer_range": 0.02, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}`
	case "gpt2/tiny": // models/gpt2/testdata/gpt2_tiny, with room for longer sequences
		return `{"model_type": "gpt2", "vocab_size": 97, "n_embd": 32, "n_layer": 3, "n_head": 4,
			"n_positions": 1024, "initializer_range": 0.1, "bos_token_id": 1, "eos_token_id": 2}`
	case "gpt2/gpt2-small":
		return `{"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
			"n_positions": 1024, "initializer_range": 0.02}`
	}
	return ""
}

// build makes a random -arch/-size model in memory.
func build(arch, size string) (*lm, error) {
	hc, err := hf.ParseConfig("", []byte(ConfigJSON(arch, size)))
	if err != nil {
		return nil, err
	}
	if arch == "llama" {
		cfg, err := llama.ConfigFrom(hc)
		if err != nil {
			return nil, err
		}
		m, err := llama.New(*cfg)
		if err != nil {
			return nil, err
		}
		return &lm{
			name: "llama", layers: m.NumLayers(), vocab: cfg.VocabSize, close: m.Close,
			last: func(ids *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
				return m.Run(llama.Inputs{IDs: ids, Cache: cache, LogitsToKeep: 1})
			},
		}, nil
	}
	cfg, err := gpt2.ConfigFromHF(hc)
	if err != nil {
		return nil, err
	}
	m, err := gpt2.New(cfg)
	if err != nil {
		return nil, err
	}
	return &lm{
		name: "gpt2", layers: m.NumLayers(), vocab: cfg.VocabSize, close: func() { module.Close(m) },
		// as models.Load's GPT-2 LastLogits
		last: func(ids *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
			h := m.Hidden(module.Inputs{IDs: ids}, cache)
			return m.LMHead.Forward(h.Narrow(1, h.SizeOf(1)-1, 1))
		},
	}, nil
}

func load(dir string) (*lm, error) {
	m, err := models.Load(dir)
	if err != nil {
		return nil, err
	}
	if m.Kind() != models.CausalLM {
		m.Close()
		return nil, fmt.Errorf("%s is a %s, not a causal LM", dir, m.Kind())
	}
	return &lm{
		name: m.Type(), layers: m.NumLayers(), vocab: m.VocabSize(), close: m.Close,
		last: func(ids *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
			return m.LastLogits(ids, nil, cache)
		},
	}, nil
}

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// result is one repeat's timings.
type result struct {
	prefill, decode, decodeCPU time.Duration
	checksum                   int64
}

// once runs one repeat: prefill, then c.newTok greedy steps.
func once(c *config, m *lm, prompt []int64) (r result, err error) {
	cache := hf.NewKVCache(m.layers)
	defer cache.Close()
	err = torch.NoGrad(func() error {
		t0 := time.Now()
		s := torch.NewScope()
		logits := m.last(s.Own(torch.FromSlice(prompt, c.batch, c.prompt)), cache)
		next, err := s.Done(logits.ArgmaxDim(-1, false)) // [B, 1]
		if err != nil {
			return err
		}
		r.prefill = time.Since(t0)
		toks := make([]*torch.Tensor, 0, c.newTok+1)
		defer func() { torch.CloseAll(toks...) }()
		toks = append(toks, next)
		c0, t1 := cpuTime(), time.Now()
		for i := int64(0); i < c.newTok; i++ {
			s := torch.NewScope()
			logits := m.last(s.Borrow(next), cache)
			if next, err = s.Done(logits.ArgmaxDim(-1, false)); err != nil {
				return err
			}
			toks = append(toks, next)
		}
		r.decode, r.decodeCPU = time.Since(t1), cpuTime()-c0
		all := torch.Cat(toks, 1) // [B, new+1]
		defer all.Close()
		ids, err := torch.ToSlice[int64](all)
		if err != nil {
			return err
		}
		n := c.newTok + 1
		for i, id := range ids {
			r.checksum += id * (int64(i)%n + 1)
		}
		return nil
	})
	return r, err
}

func run(c *config, out io.Writer) error {
	if c.threads > 0 {
		if err := torch.SetNumThreads(c.threads); err != nil {
			return err
		}
	}
	if err := torch.ManualSeed(c.seed); err != nil {
		return err
	}
	var m *lm
	var err error
	if c.model != "" {
		m, err = load(c.model)
	} else {
		m, err = build(c.arch, c.size)
	}
	if err != nil {
		return err
	}
	defer m.close()
	prompt := make([]int64, c.batch*c.prompt)
	for b := int64(0); b < c.batch; b++ {
		for t := int64(0); t < c.prompt; t++ {
			prompt[b*c.prompt+t] = (7*t + 3*b + 1) % m.vocab
		}
	}
	if _, err := once(c, m, prompt); err != nil { // warm-up
		return err
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var rs []result
	for i := 0; i < c.repeats; i++ {
		r, err := once(c, m, prompt)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	pick := func(f func(result) time.Duration) (lo, med time.Duration) {
		v := make([]time.Duration, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[0], v[len(v)/2]
	}
	pMin, pMed := pick(func(r result) time.Duration { return r.prefill })
	dMin, dMed := pick(func(r result) time.Duration { return r.decode })
	cMin, _ := pick(func(r result) time.Duration { return r.decodeCPU })
	toks := float64(c.batch * c.prompt)
	perTok := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(c.newTok) }
	fmt.Fprintf(out, "go %s B=%d prompt=%d new=%d threads=%d repeats=%d libtorch=%s tokens=%d prefill_ms=%.3f median_prefill_tok_s=%.1f median_decode_ms_per_token=%.4f cpu_ms_per_token=%.4f prefill_tok_s=%.1f decode_ms_per_token=%.4f\n",
		m.name, c.batch, c.prompt, c.newTok, torch.NumThreads(), c.repeats, torch.Version(), rs[0].checksum,
		pMin.Seconds()*1e3, toks/pMed.Seconds(), perTok(dMed), perTok(cMin), toks/pMin.Seconds(), perTok(dMin))
	return nil
}
