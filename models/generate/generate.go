// Package generate produces text from a causal language model the way
// transformers' generate does: a KV cache, greedy decoding or sampling
// with temperature, top-k and top-p, a repetition penalty, stopping on
// EOS ids, stop strings or max_new_tokens, batched prompts with left
// padding and an attention mask, tokens streamed as they are produced, and
// context cancellation.
//
// The model is anything that implements LM; the models package adapts the
// Llama-family and GPT-2 models that models.Load returns.
//
//	out, err := generate.Generate(ctx, lm, [][]int64{prompt},
//		generate.MaxNewTokens(32), generate.EOS(2),
//		generate.OnToken(func(row int, tok int64) error { ... }))
//
// # Sampling and the seed
//
// Greedy decoding (the default) takes the argmax of the processed scores,
// as transformers' generate(do_sample=False). Sample(seed) samples
// instead: each step, each unfinished row draws one uniform number from a
// private PCG generator (math/rand/v2) seeded with seed and inverts the
// cumulative distribution of the softmax of its scores, computed in float64
// on the host. The generator is private, so generation neither reads nor
// changes libtorch's global generator, two generations with one seed give
// the same tokens whatever else the program draws, and a CPU and a CUDA
// run agree wherever their probabilities do. The price: the sampled tokens
// are not torch.multinomial's, so they differ from transformers' sampled
// output for the same seed (greedy output is identical).
//
// # Memory
//
// Each step runs in a scope of its own, so every intermediate is freed when
// the step ends; only the KV cache (two tensors per layer) lives across
// steps, and it is freed before Generate returns.
package generate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/torch"
)

// LM is a causal language model as Generate drives it.
type LM interface {
	// Logits returns the logits (B, T, V), of any floating dtype, for the
	// T new tokens ids (B, T) (int64, on Device), given mask (B, P+T),
	// int64 1 for real tokens and 0 for left padding over the P cached and
	// the T new positions, and cache, which holds the keys and values of
	// the P past positions and which Logits extends with the new ones.
	// Positions follow from the mask (cumsum(mask)−1), as transformers
	// computes them. The result and its intermediates join ids' scope.
	Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor
	// NumLayers is the number of layers the KV cache needs.
	NumLayers() int
	// Device is where the model's parameters are; Generate puts the ids
	// and mask there.
	Device() torch.Device
}

// LastLM is an LM that can compute the head at the last new position only,
// as transformers' generate does with logits_to_keep=1: Generate then calls
// LastLogits, which returns (B, 1, V) and spares the (B, T, V) logits of a
// long prompt. The models package's causal models implement it.
type LastLM interface {
	LM
	LastLogits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor
}

// Output is the result of Generate.
type Output struct {
	// Tokens holds each row's new tokens (the prompt excluded), all rows of
	// one length, the number of steps taken: a row that finished early (on
	// EOS or a stop string) is padded with the pad id after its last token,
	// as transformers pads finished sequences.
	Tokens [][]int64
	// Lengths is each row's own number of new tokens: through its EOS
	// token or the token that completed a stop string, or all of them.
	Lengths []int
	// Finished reports the rows that stopped on EOS or a stop string
	// rather than on max_new_tokens (or cancellation).
	Finished []bool
}

// Option configures Generate.
type Option func(*config)

type config struct {
	maxNew      int
	sample      bool
	seed        uint64
	temperature float64 // 0: none
	topK        int     // 0: none
	topP        float64 // 0: none
	penalty     float64 // 0: none
	eos         []int64
	pad         *int64
	stops       []string
	decode      func([]int64) (string, error)
	onToken     func(row int, tok int64) error
	errs        []error
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("generate: "+format, args...))
}

// MaxNewTokens sets the number of tokens to generate at most (default 20,
// transformers' default max_length). It must be ≥ 0; 0 generates nothing.
func MaxNewTokens(n int) Option {
	return func(c *config) {
		if n < 0 {
			c.fail("MaxNewTokens(%d): want ≥ 0", n)
			return
		}
		c.maxNew = n
	}
}

// Sample samples the next token from the processed distribution instead
// of taking the argmax (transformers' do_sample=True), with a private
// generator seeded with seed: see the package documentation.
func Sample(seed uint64) Option {
	return func(c *config) { c.sample, c.seed = true, seed }
}

// Temperature divides the scores by t before sampling
// (TemperatureLogitsWarper); t must be a finite number > 0. It needs
// Sample.
func Temperature(t float64) Option {
	return func(c *config) {
		if !(t > 0) || math.IsInf(t, 0) {
			c.fail("Temperature(%v): want a finite number > 0", t)
			return
		}
		c.temperature = t
	}
}

// TopK keeps the k most probable tokens when sampling (TopKLogitsWarper);
// k must be ≥ 1. It needs Sample.
func TopK(k int) Option {
	return func(c *config) {
		if k < 1 {
			c.fail("TopK(%d): want ≥ 1", k)
			return
		}
		c.topK = k
	}
}

// TopP keeps the smallest set of most probable tokens whose probabilities
// add up to more than p when sampling (TopPLogitsWarper); p must be in
// (0, 1]. It needs Sample.
func TopP(p float64) Option {
	return func(c *config) {
		if !(p > 0 && p <= 1) {
			c.fail("TopP(%v): want 0 < p ≤ 1", p)
			return
		}
		c.topP = p
	}
}

// RepetitionPenalty penalises every token already in the row, prompt
// included (RepetitionPenaltyLogitsProcessor); p must be > 0, and 1 means
// none. It applies to greedy decoding and sampling alike.
func RepetitionPenalty(p float64) Option {
	return func(c *config) {
		if !(p > 0) || math.IsInf(p, 0) {
			c.fail("RepetitionPenalty(%v): want a finite number > 0", p)
			return
		}
		c.penalty = p
	}
}

// EOS sets the end-of-sequence ids: a row that produces any of them is
// finished (the EOS token is part of its output). Several calls add up.
func EOS(ids ...int64) Option {
	return func(c *config) { c.eos = append(c.eos, ids...) }
}

// PadID sets the id that left-pads shorter prompts and fills finished rows
// (default: the first EOS id, as transformers falls back to it, else 0).
func PadID(id int64) Option {
	return func(c *config) { c.pad = &id }
}

// StopStrings finishes a row as soon as a token completes any of stops in
// the row's text, as transformers' stop_strings does: the stop string must
// end inside the new tokens' text, and may begin in the prompt's. The token
// that completes it is kept. decode turns ids into text (a tokenizer's
// Decode with skip_special_tokens, for example); it is given the row's new
// tokens after the last few tokens of its prompt (the padding left out).
// Empty stop strings are an error.
func StopStrings(decode func(ids []int64) (string, error), stops ...string) Option {
	return func(c *config) {
		if decode == nil {
			c.fail("StopStrings: nil decode function")
			return
		}
		for _, s := range stops {
			if s == "" {
				c.fail("StopStrings: empty stop string")
				return
			}
		}
		c.decode = decode
		c.stops = append(c.stops, stops...)
	}
}

// OnToken streams the tokens: f is called after each step for every row
// that was still running, in row order, with the row's new token (its EOS
// token included; the padding of finished rows is not streamed). An error
// from f stops generation and Generate returns it.
func OnToken(f func(row int, tok int64) error) Option {
	return func(c *config) { c.onToken = f }
}

// Generate continues each prompt of prompts (token ids; the rows may
// differ in length and are left-padded with the pad id, with an attention
// mask that hides the padding) with lm, step by step with a KV cache, and
// returns the new tokens. It stops when every row has finished or after
// MaxNewTokens steps, or when ctx is done (it then returns the tokens so
// far and ctx's error).
//
// Each step takes the last position's logits in float32, applies the
// repetition penalty, then, when sampling, temperature, top-k and top-p,
// in transformers' order, and picks the next token of each row by argmax
// or by sampling. Bad options, an empty prompt list or an empty prompt
// are errors, and so is a model error (an id out of its vocabulary, for
// example), which Generate returns with the tokens of the steps before.
func Generate(ctx context.Context, lm LM, prompts [][]int64, opts ...Option) (*Output, error) {
	c, err := configure(opts)
	if err != nil {
		return nil, err
	}
	if lm == nil {
		return nil, errors.New("generate: nil model")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if len(prompts) == 0 {
		return nil, errors.New("generate: no prompts")
	}
	P := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: prompt %d is empty (give at least one token, such as BOS)", i)
		}
		for _, id := range p {
			if id < 0 {
				return nil, fmt.Errorf("generate: prompt %d: negative token id %d", i, id)
			}
		}
		P = max(P, len(p))
	}
	pad := int64(0)
	switch {
	case c.pad != nil:
		pad = *c.pad
	case len(c.eos) > 0:
		pad = c.eos[0]
	}
	if pad < 0 {
		return nil, fmt.Errorf("generate: EOS(%d): a negative id cannot pad", pad)
	}
	g := &run{c: c, lm: lm, B: len(prompts), pad: pad}
	g.seqs = make([][]int64, g.B)
	g.mask = make([][]int64, g.B)
	for i, p := range prompts {
		g.seqs[i] = slices.Repeat([]int64{pad}, P-len(p))
		g.seqs[i] = append(g.seqs[i], p...)
		g.mask[i] = slices.Repeat([]int64{0}, P-len(p))
		g.mask[i] = append(g.mask[i], slices.Repeat([]int64{1}, len(p))...)
	}
	out := &Output{Tokens: make([][]int64, g.B), Lengths: make([]int, g.B), Finished: make([]bool, g.B)}
	for i := range out.Tokens {
		out.Tokens[i] = []int64{}
	}
	g.out = out
	if c.sample {
		g.rng = rand.New(rand.NewPCG(c.seed, 0x676f6c6f7261)) // "golora"
	}
	if c.maxNew == 0 {
		return out, nil
	}
	cache := hf.NewKVCache(lm.NumLayers())
	defer cache.Close()
	// Inference records no autograd graph (NoGrad pins the goroutine to
	// its OS thread for the duration, as grad mode is per thread).
	err = torch.NoGrad(func() error {
		for step := 0; step < c.maxNew; step++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			next, err := g.step(cache, step == 0)
			if err != nil {
				return err
			}
			done, err := g.record(next)
			if err != nil || done {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Validate reports what Generate would say of opts (a bad value, or a
// sampling option without Sample), without a model: a command line checks
// its flags with it before loading anything.
func Validate(opts ...Option) error {
	_, err := configure(opts)
	return err
}

func configure(opts []Option) (*config, error) {
	c := &config{maxNew: 20}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	if !c.sample && (c.temperature != 0 || c.topK != 0 || c.topP != 0) {
		return nil, errors.New("generate: Temperature, TopK and TopP apply to sampling: add Sample(seed)")
	}
	if c.pad != nil && *c.pad < 0 {
		return nil, fmt.Errorf("generate: PadID(%d): want ≥ 0", *c.pad)
	}
	return c, nil
}

// run is one generation's state on the host.
type run struct {
	c    *config
	lm   LM
	B    int
	pad  int64
	seqs [][]int64 // prompt (padded) and new tokens, per row
	mask [][]int64 // attention mask over seqs
	out  *Output
	rng  *rand.Rand
}

// matrix returns rows (all of one length) as an int64 tensor (B, n) on
// dev, owned by s.
func matrix(s *torch.Scope, rows [][]int64, from int, dev torch.Device) *torch.Tensor {
	n := len(rows[0]) - from
	flat := make([]int64, 0, len(rows)*n)
	for _, r := range rows {
		flat = append(flat, r[from:]...)
	}
	t := s.Own(torch.FromSlice(flat, int64(len(rows)), int64(n)))
	if dev != torch.CPU {
		t = t.To(dev)
	}
	return t
}

// step runs the model over the new positions and returns the next token
// of every row (before finished rows are padded).
func (g *run) step(cache *hf.KVCache, first bool) ([]int64, error) {
	s := torch.NewScope()
	defer s.Close()
	dev := g.lm.Device()
	from := len(g.seqs[0]) - 1
	if first {
		from = 0
	}
	ids := matrix(s, g.seqs, from, dev)
	mask := matrix(s, g.mask, 0, dev)
	var logits *torch.Tensor
	wantT := ids.SizeOf(1)
	if last, ok := g.lm.(LastLM); ok {
		logits, wantT = last.LastLogits(ids, mask, cache), 1
	} else {
		logits = g.lm.Logits(ids, mask, cache)
	}
	if err := logits.Err(); err != nil {
		return nil, fmt.Errorf("generate: model: %w", err)
	}
	if logits.Dim() != 3 || logits.SizeOf(0) != int64(g.B) || logits.SizeOf(1) != wantT {
		return nil, fmt.Errorf("generate: model returned logits %v for ids %v; want (B, %d, V)", logits.Shape(), ids.Shape(), wantT)
	}
	if logits.Scope() == nil {
		s.Own(logits)
	}
	T := logits.SizeOf(1)
	scores := logits.Narrow(1, T-1, 1).SqueezeDim(1).To(torch.Float32)
	if scores.Scope() == nil {
		s.Own(scores)
	}
	c := g.c
	if c.penalty != 0 && c.penalty != 1 {
		scores = PenalizeRepetition(scores, matrix(s, g.seqs, 0, dev), c.penalty)
	}
	if !c.sample {
		next, err := s.Done(scores.ArgmaxDim(-1, false).To(torch.CPU))
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		defer next.Close()
		return torch.ToSlice[int64](next)
	}
	if c.temperature != 0 && c.temperature != 1 {
		scores = ScaleTemperature(scores, c.temperature)
	}
	if c.topK != 0 {
		scores = FilterTopK(scores, c.topK)
	}
	if c.topP != 0 && c.topP < 1 {
		scores = FilterTopP(scores, c.topP)
	}
	probs, err := s.Done(scores.Softmax(-1).To(torch.Float64).To(torch.CPU))
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	defer probs.Close()
	p, err := torch.ToSlice[float64](probs)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	V := len(p) / g.B
	next := make([]int64, g.B)
	for i := range next {
		u := g.rng.Float64() // one draw per row and step, finished rows included
		if g.out.Finished[i] {
			next[i] = g.pad
			continue
		}
		tok, err := pick(p[i*V:(i+1)*V], u)
		if err != nil {
			return nil, fmt.Errorf("generate: row %d: %w", i, err)
		}
		next[i] = tok
	}
	return next, nil
}

// pick inverts the cumulative distribution of the probabilities p at u in
// [0, 1): it returns the first token whose cumulative probability exceeds
// u·Σp. Tokens of probability 0 are never picked.
func pick(p []float64, u float64) (int64, error) {
	var total float64
	last := -1
	for i, x := range p {
		if math.IsNaN(x) || x < 0 {
			return 0, fmt.Errorf("invalid probability %v for token %d", x, i)
		}
		if x > 0 {
			total += x
			last = i
		}
	}
	if last < 0 || math.IsInf(total, 0) {
		return 0, errors.New("no token has a positive finite probability")
	}
	thr := u * total
	var cum float64
	for i, x := range p {
		if x == 0 {
			continue
		}
		cum += x
		if cum > thr {
			return int64(i), nil
		}
	}
	return int64(last), nil
}

// stopped reports whether row i's text now contains a stop string that
// ends after its prompt's text: the text of the prompt's last tokens (as
// many as the longest stop string has bytes, which covers any overlap)
// followed by the new tokens is searched from the first position where
// such an occurrence can start. When the prompt's text is not a prefix of
// the whole (a decoder that strips a leading space, say), the new tokens'
// text alone is searched.
func (g *run) stopped(i int) (bool, error) {
	c, out := g.c, g.out
	newIDs := out.Tokens[i][:out.Lengths[i]]
	longest := 0
	for _, st := range c.stops {
		longest = max(longest, len(st))
	}
	seq := g.seqs[i][:len(g.seqs[i])-len(out.Tokens[i])] // the padded prompt
	first := slices.Index(g.mask[i], 1)
	tail := seq[max(first, len(seq)-longest):]
	promptText, err := c.decode(tail)
	if err != nil {
		return false, err
	}
	text, err := c.decode(append(slices.Clip(tail), newIDs...))
	if err != nil {
		return false, err
	}
	from := 0
	if strings.HasPrefix(text, promptText) {
		from = len(promptText)
	} else if text, err = c.decode(newIDs); err != nil {
		return false, err
	}
	for _, st := range c.stops {
		if strings.Contains(text[max(0, from-len(st)+1):], st) {
			return true, nil
		}
	}
	return false, nil
}

// record appends next to the rows, pads finished rows, streams the new
// tokens and checks the stopping criteria. It reports whether every row is
// finished.
func (g *run) record(next []int64) (bool, error) {
	out := g.out
	running := make([]bool, g.B)
	for i := range next {
		running[i] = !out.Finished[i]
		if !running[i] {
			next[i] = g.pad
		}
		g.seqs[i] = append(g.seqs[i], next[i])
		g.mask[i] = append(g.mask[i], 1)
		out.Tokens[i] = append(out.Tokens[i], next[i])
		if running[i] {
			out.Lengths[i]++
		}
	}
	for i, tok := range next {
		if !running[i] {
			continue
		}
		if slices.Contains(g.c.eos, tok) {
			out.Finished[i] = true
		}
	}
	if len(g.c.stops) > 0 {
		for i := range next {
			if !running[i] || out.Finished[i] {
				continue
			}
			hit, err := g.stopped(i)
			if err != nil {
				return false, fmt.Errorf("generate: stop strings: decoding row %d: %w", i, err)
			}
			out.Finished[i] = hit
		}
	}
	if g.c.onToken != nil {
		for i, tok := range next {
			if running[i] {
				if err := g.c.onToken(i, tok); err != nil {
					return false, err
				}
			}
		}
	}
	return !slices.Contains(out.Finished, false), nil
}
