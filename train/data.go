package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// IgnoreIndex is the label of a position that takes no part in the loss
// (PyTorch's and transformers' -100): prompt tokens, padding.
const IgnoreIndex = -100

// Encoder turns text into token ids, as tokenizer.Tokenizer does.
type Encoder interface {
	// Encode returns the ids of text; addSpecial adds the special tokens
	// the tokenizer's post-processor adds (a BOS).
	Encode(text string, addSpecial bool) ([]int64, error)
}

// Example is one tokenized training example: its ids and, position by
// position, the label the loss compares the prediction of that position
// with (the id itself, or IgnoreIndex for no loss). Labels are aligned
// with IDs, as transformers' labels are: the loss shifts them.
type Example struct {
	IDs    []int64
	Labels []int64
}

// Tokens is the number of labelled positions of e (those that count in
// the loss).
func (e Example) Tokens() int {
	n := 0
	for _, l := range e.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// DataOptions say how ReadExamples tokenizes.
type DataOptions struct {
	// EOS, when ≥ 0, is appended to every example (and learnt: the model
	// learns where an example ends). Negative: none.
	EOS int64
	// MaxID, when positive, is the largest id the model accepts; a
	// tokenizer that produces a larger one is an error.
	MaxID int64
}

// ReadExamplesFile reads and tokenizes a data file with ReadExamples.
func ReadExamplesFile(path string, enc Encoder, o DataOptions) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: data file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("train: data file %s is a directory", path)
	}
	return ReadExamples(path, f, enc, o)
}

// ReadExamples reads a data set and tokenizes it with enc. name is the
// data's name for errors (a file name); its extension chooses the format:
//
//   - .jsonl or .json: JSON Lines, one object per line, either with a
//     "text" field (the loss covers all of it) or with "prompt" and
//     "completion" fields (the loss covers only the completion's tokens);
//     blank lines are skipped;
//   - anything else: plain text, one example per non-blank line.
//
// Each example is encoded with the tokenizer's special tokens (a BOS);
// a completion is encoded on its own, without them, and appended to its
// prompt. o.EOS, if set, ends every example. Data with no example, a line
// that is not valid JSON or has neither field, or an example with no
// token to learn is an error naming the file and line.
func ReadExamples(name string, r io.Reader, enc Encoder, o DataOptions) ([]Example, error) {
	jsonl := false
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".json":
		jsonl = true
	}
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("train: %s:%d: "+format, append([]any{name, line}, args...)...)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var out []Example
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var prompt, text string
		hasPrompt := false
		if jsonl {
			var rec struct {
				Text       *string `json:"text"`
				Prompt     *string `json:"prompt"`
				Completion *string `json:"completion"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				return nil, errf(line, "not a JSON object: %v", err)
			}
			switch {
			case rec.Prompt != nil && rec.Completion != nil:
				prompt, text, hasPrompt = *rec.Prompt, *rec.Completion, true
			case rec.Text != nil:
				text = *rec.Text
			default:
				return nil, errf(line, `want a "text" field or "prompt" and "completion" fields`)
			}
		} else {
			text = string(raw)
		}
		var ex Example
		if hasPrompt {
			p, err := enc.Encode(prompt, true)
			if err != nil {
				return nil, errf(line, "tokenizing the prompt: %v", err)
			}
			c, err := enc.Encode(text, false)
			if err != nil {
				return nil, errf(line, "tokenizing the completion: %v", err)
			}
			ex.IDs = append(append(ex.IDs, p...), c...)
			ex.Labels = make([]int64, len(p), len(ex.IDs))
			for i := range ex.Labels {
				ex.Labels[i] = IgnoreIndex
			}
			ex.Labels = append(ex.Labels, c...)
		} else {
			ids, err := enc.Encode(text, true)
			if err != nil {
				return nil, errf(line, "tokenizing: %v", err)
			}
			ex.IDs = ids
			ex.Labels = append([]int64(nil), ids...)
		}
		if o.EOS >= 0 {
			ex.IDs = append(ex.IDs, o.EOS)
			ex.Labels = append(ex.Labels, o.EOS)
		}
		for _, id := range ex.IDs {
			if id < 0 || (o.MaxID > 0 && id > o.MaxID) {
				return nil, errf(line, "token id %d outside the model's vocabulary [0, %d]", id, o.MaxID)
			}
		}
		// The loss predicts position t from t-1: at least one labelled
		// position after the first.
		learn := false
		for _, l := range ex.Labels[1:] {
			if l != IgnoreIndex {
				learn = true
				break
			}
		}
		if !learn {
			return nil, errf(line, "no token to learn (an empty completion?)")
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("train: reading %s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("train: %s holds no example (empty data)", name)
	}
	return out, nil
}

// Split shuffles examples with seed and returns the last frac of them
// (at least one) as held-out eval examples and the rest for training. It
// fails when fewer than two examples are given or frac is not in (0, 1).
func Split(examples []Example, frac float64, seed uint64) (trainSet, evalSet []Example, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("train: Split: fraction %v, want 0 < f < 1", frac)
	}
	if len(examples) < 2 {
		return nil, nil, fmt.Errorf("train: Split: %d example(s), need at least 2 to hold some out", len(examples))
	}
	ex := append([]Example(nil), examples...)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	rng.Shuffle(len(ex), func(i, j int) { ex[i], ex[j] = ex[j], ex[i] })
	n := max(1, int(float64(len(ex))*frac))
	n = min(n, len(ex)-1)
	return ex[:len(ex)-n], ex[len(ex)-n:], nil
}

// Row is one row of a batch: seq ids and their labels.
type Row = Example

// Pack concatenates the examples (in order) into one stream and cuts it
// into rows of seq tokens, as transformers' run_clm groups texts; the
// last, partial row is padded with pad (labels IgnoreIndex). Examples then
// share rows, and attention runs across their boundary (as in run_clm);
// the EOS marks it.
func Pack(examples []Example, seq int, pad int64) ([]Row, error) {
	if seq < 2 {
		return nil, fmt.Errorf("train: Pack: sequence length %d, want ≥ 2", seq)
	}
	var rows []Row
	cur := Row{IDs: make([]int64, 0, seq), Labels: make([]int64, 0, seq)}
	for _, e := range examples {
		for i := range e.IDs {
			cur.IDs = append(cur.IDs, e.IDs[i])
			cur.Labels = append(cur.Labels, e.Labels[i])
			if len(cur.IDs) == seq {
				rows = append(rows, cur)
				cur = Row{IDs: make([]int64, 0, seq), Labels: make([]int64, 0, seq)}
			}
		}
	}
	if len(cur.IDs) > 1 {
		for len(cur.IDs) < seq {
			cur.IDs = append(cur.IDs, pad)
			cur.Labels = append(cur.Labels, IgnoreIndex)
		}
		rows = append(rows, cur)
	}
	if len(rows) == 0 {
		return nil, errors.New("train: Pack: no tokens")
	}
	return rows, nil
}

// Pad makes one row per example: truncated to seq tokens, or padded on the
// right with pad (labels IgnoreIndex). Right padding needs no attention
// mask in a causal model: no real token attends to a later pad. Examples
// left with nothing to learn after truncation are dropped; none left is an
// error.
func Pad(examples []Example, seq int, pad int64) ([]Row, error) {
	if seq < 2 {
		return nil, fmt.Errorf("train: Pad: sequence length %d, want ≥ 2", seq)
	}
	var rows []Row
	for _, e := range examples {
		n := min(len(e.IDs), seq)
		r := Row{IDs: make([]int64, seq), Labels: make([]int64, seq)}
		copy(r.IDs, e.IDs[:n])
		copy(r.Labels, e.Labels[:n])
		for i := n; i < seq; i++ {
			r.IDs[i], r.Labels[i] = pad, IgnoreIndex
		}
		if (Example{Labels: r.Labels[1:]}).Tokens() == 0 {
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("train: Pad: no example keeps a token to learn within %d tokens", seq)
	}
	return rows, nil
}

// Loader serves a data set's rows in batches, reshuffled every epoch by a
// seeded generator, and knows where it is, so that a resumed run reads
// the same batches as one that never stopped. A sharded loader
// (NewShardedLoader) serves one rank's share of each epoch in a
// data-parallel run.
type Loader struct {
	rows        []Row
	batch       int
	seed        uint64
	rank, world int
	pos         DataPosition
	perm        []int // this epoch's order of this rank's rows
}

// DataPosition is where a Loader is: the epoch and the index of the next
// row in that epoch's order (of this rank's share, for a sharded loader:
// the same on every rank of a data-parallel run). It goes in a
// checkpoint's Position.Data.
type DataPosition struct {
	Epoch int64 `json:"epoch"`
	Index int   `json:"index"`
}

// NewLoader returns a loader of rows in batches of batch rows. Each
// epoch visits every row once in an order drawn from seed and the epoch
// number; the last batch of an epoch may be smaller. A loader with no
// rows, or a batch < 1, is an error.
func NewLoader(rows []Row, batch int, seed uint64) (*Loader, error) {
	return NewShardedLoader(rows, batch, seed, 0, 1)
}

// NewShardedLoader returns the loader of rank (0 to world-1) of a
// data-parallel run of world processes, with the semantics of PyTorch's
// DistributedSampler (shuffle=True, drop_last=False): each epoch's order
// is NewLoader's (the same permutation of the rows, drawn from seed and
// the epoch), padded by repeating its start to a multiple of world rows,
// and rank takes every world-th row of it from its rank-th, so that every
// rank serves ceil(len(rows)/world) rows an epoch. Each rank's batches
// are batch rows (the per-rank batch; the global batch is batch×world):
// together, the ranks' batches at step i are the rows that
// NewLoader(rows, batch×world, seed) serves at step i, but for an
// epoch's end when len(rows) is not a multiple of world (the padding
// repeats rows) or of batch×world (the last batches are then split
// unevenly). world 1 is NewLoader.
func NewShardedLoader(rows []Row, batch int, seed uint64, rank, world int) (*Loader, error) {
	if len(rows) == 0 {
		return nil, errors.New("train: NewLoader: no rows")
	}
	if batch < 1 {
		return nil, fmt.Errorf("train: NewLoader: batch %d, want ≥ 1", batch)
	}
	if world < 1 || rank < 0 || rank >= world {
		return nil, fmt.Errorf("train: NewShardedLoader: rank %d out of range for world size %d", rank, world)
	}
	l := &Loader{rows: rows, batch: batch, seed: seed, rank: rank, world: world}
	l.shuffle()
	return l, nil
}

func (l *Loader) shuffle() {
	rng := rand.New(rand.NewPCG(l.seed, uint64(l.pos.Epoch)))
	l.perm = rng.Perm(len(l.rows))
	if l.world == 1 {
		return
	}
	n := l.EpochLen()
	shard := make([]int, 0, n)
	for i := l.rank; len(shard) < n; i += l.world {
		shard = append(shard, l.perm[i%len(l.perm)])
	}
	l.perm = shard
}

// Len is the number of rows.
func (l *Loader) Len() int { return len(l.rows) }

// EpochLen is the number of rows this loader serves an epoch: Len, or
// ceil(Len/world) for a rank of a sharded loader.
func (l *Loader) EpochLen() int { return (len(l.rows) + l.world - 1) / l.world }

// BatchesPerEpoch is the number of batches an epoch has.
func (l *Loader) BatchesPerEpoch() int { return (l.EpochLen() + l.batch - 1) / l.batch }

// Position returns where the loader is.
func (l *Loader) Position() DataPosition { return l.pos }

// SetPosition moves the loader to p (from a checkpoint).
func (l *Loader) SetPosition(p DataPosition) error {
	if p.Epoch < 0 || p.Index < 0 || p.Index > l.EpochLen() {
		return fmt.Errorf("train: data position %+v outside a data set of %d rows", p, l.EpochLen())
	}
	l.pos = p
	l.shuffle()
	return nil
}

// Next returns the next batch's rows, moving to a new epoch (and a new
// order) when the current one is done.
func (l *Loader) Next() []Row {
	if l.pos.Index >= len(l.perm) {
		l.pos.Epoch++
		l.pos.Index = 0
		l.shuffle()
	}
	end := min(l.pos.Index+l.batch, len(l.perm))
	out := make([]Row, 0, end-l.pos.Index)
	for _, i := range l.perm[l.pos.Index:end] {
		out = append(out, l.rows[i])
	}
	l.pos.Index = end
	return out
}
