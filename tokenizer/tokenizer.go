package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/golora/golora/internal/jsonfile"
)

// Tokenizer is a tokenizer loaded from a Hugging Face tokenizer.json. It is
// safe for concurrent use.
type Tokenizer struct {
	normalizer normalizer
	pre        preTokenizer
	model      model
	post       postProcessor
	decoder    decoder
	added      *addedVocab
	truncation *Truncation
	padding    *Padding
}

// Truncation is tokenizer.json's "truncation" setting.
type Truncation struct {
	// MaxLength is the largest number of ids an encoding keeps, special
	// tokens included.
	MaxLength int `json:"max_length"`
	// Direction is "Right" (drop the end) or "Left" (drop the start).
	Direction string `json:"direction"`
	// Strategy is "LongestFirst", "OnlyFirst" or "OnlySecond" (which,
	// as in tokenizers, fails on a single sequence that is too long).
	Strategy string `json:"strategy"`
	// Stride only matters for overflowing tokens, which this package does
	// not return.
	Stride int `json:"stride"`
}

// Padding is tokenizer.json's "padding" setting.
type Padding struct {
	// Fixed pads every encoding to this length; 0 means BatchLongest (pad
	// to the longest encoding of the batch).
	Fixed int
	// Direction is "Right" or "Left".
	Direction string
	// PadToMultipleOf rounds the padded length up to a multiple of it (0:
	// no rounding).
	PadToMultipleOf int
	// PadID, PadTypeID and PadToken fill the padded positions.
	PadID     int64
	PadTypeID int64
	PadToken  string
}

// Encoding is the result of encoding one text with the truncation and
// padding settings applied, as tokenizers' Encoding.
type Encoding struct {
	// IDs are the token ids, padding included.
	IDs []int64
	// TypeIDs are the segment ids (0 for a single sequence, unless the
	// template says otherwise; PadTypeID for padding).
	TypeIDs []int64
	// AttentionMask is 1 for real tokens and 0 for padding.
	AttentionMask []int64
}

// Batch holds the encodings of several texts, padded as the tokenizer's
// padding setting says (all rows have the same length when padding is set).
type Batch struct {
	// IDs[i] are the ids of text i.
	IDs [][]int64
	// TypeIDs[i] are the type ids of text i.
	TypeIDs [][]int64
	// AttentionMask[i] is 1 for the real tokens of text i, 0 for padding.
	AttentionMask [][]int64
}

// maxPadLength bounds the padding lengths a file may ask for.
const maxPadLength = 1 << 24

// maxFileSize bounds the tokenizer.json files Load reads: a larger one is
// an error naming the file and the limit, not an allocation of its size.
const maxFileSize = jsonfile.MaxTokenizerSize

// Load reads a tokenizer.json file, or the tokenizer.json in a directory.
func Load(path string) (*Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
		if fi, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("tokenizer: %s is not a regular file", path)
	}
	data, err := jsonfile.Read(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse builds a Tokenizer from the contents of a tokenizer.json file. A
// component this package does not implement is an error naming its type.
func Parse(data []byte) (*Tokenizer, error) {
	var f struct {
		Version       *string           `json:"version"`
		Truncation    json.RawMessage   `json:"truncation"`
		Padding       json.RawMessage   `json:"padding"`
		AddedTokens   []json.RawMessage `json:"added_tokens"`
		Normalizer    json.RawMessage   `json:"normalizer"`
		PreTokenizer  json.RawMessage   `json:"pre_tokenizer"`
		Model         json.RawMessage   `json:"model"`
		PostProcessor json.RawMessage   `json:"post_processor"`
		Decoder       json.RawMessage   `json:"decoder"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: bad tokenizer.json: %w", err)
	}
	if f.Version != nil && *f.Version != "1.0" {
		return nil, fmt.Errorf("tokenizer: unknown tokenizer version %q", *f.Version)
	}
	t := &Tokenizer{}
	var err error
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if t.truncation, err = parseTruncation(f.Truncation); err != nil {
		return nil, err
	}
	if t.padding, err = parsePadding(f.Padding); err != nil {
		return nil, err
	}
	tokens := make([]addedToken, 0, len(f.AddedTokens))
	for i, raw := range f.AddedTokens {
		var a addedToken
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("tokenizer: added token %d: %w", i, err)
		}
		tokens = append(tokens, a)
	}
	t.added = newAddedVocab(tokens, t.model, t.normalizer)
	return t, nil
}

func parseTruncation(raw json.RawMessage) (*Truncation, error) {
	if isNull(raw) {
		return nil, nil
	}
	tr := &Truncation{Direction: "Right", Strategy: "LongestFirst"}
	if err := json.Unmarshal(raw, tr); err != nil {
		return nil, fmt.Errorf("tokenizer: truncation: %w", err)
	}
	if tr.MaxLength < 0 {
		return nil, fmt.Errorf("tokenizer: truncation max_length %d < 0", tr.MaxLength)
	}
	if tr.Direction != "Right" && tr.Direction != "Left" {
		return nil, fmt.Errorf("tokenizer: truncation direction %q is not supported", tr.Direction)
	}
	switch tr.Strategy {
	case "LongestFirst", "OnlyFirst", "OnlySecond":
	default:
		return nil, fmt.Errorf("tokenizer: truncation strategy %q is not supported", tr.Strategy)
	}
	return tr, nil
}

func parsePadding(raw json.RawMessage) (*Padding, error) {
	if isNull(raw) {
		return nil, nil
	}
	var v struct {
		Strategy        json.RawMessage `json:"strategy"`
		Direction       *string         `json:"direction"`
		PadToMultipleOf *int            `json:"pad_to_multiple_of"`
		PadID           int64           `json:"pad_id"`
		PadTypeID       int64           `json:"pad_type_id"`
		PadToken        string          `json:"pad_token"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("tokenizer: padding: %w", err)
	}
	p := &Padding{Direction: "Right", PadID: v.PadID, PadTypeID: v.PadTypeID, PadToken: v.PadToken}
	if v.Direction != nil {
		p.Direction = *v.Direction
	}
	if p.Direction != "Right" && p.Direction != "Left" {
		return nil, fmt.Errorf("tokenizer: padding direction %q is not supported", p.Direction)
	}
	if v.PadToMultipleOf != nil {
		if *v.PadToMultipleOf < 0 {
			return nil, fmt.Errorf("tokenizer: padding pad_to_multiple_of %d < 0", *v.PadToMultipleOf)
		}
		p.PadToMultipleOf = *v.PadToMultipleOf
	}
	var name string
	if err := json.Unmarshal(v.Strategy, &name); err == nil {
		if p.PadToMultipleOf > maxPadLength {
			return nil, fmt.Errorf("tokenizer: padding pad_to_multiple_of %d is too large", p.PadToMultipleOf)
		}
		if name != "BatchLongest" {
			return nil, fmt.Errorf("tokenizer: padding strategy %q is not supported", name)
		}
		return p, nil
	}
	var fixed struct {
		Fixed *int `json:"Fixed"`
	}
	if err := json.Unmarshal(v.Strategy, &fixed); err != nil || fixed.Fixed == nil || *fixed.Fixed < 0 {
		return nil, fmt.Errorf("tokenizer: padding strategy %s is not supported", string(v.Strategy))
	}
	p.Fixed = *fixed.Fixed
	if p.Fixed > maxPadLength || p.PadToMultipleOf > maxPadLength {
		return nil, fmt.Errorf("tokenizer: padding length %d is too large", max(p.Fixed, p.PadToMultipleOf))
	}
	return p, nil
}

// VocabSize is the number of tokens: the model's vocabulary plus the added
// tokens that are not in it (tokenizers' get_vocab_size(true), and
// len(tokenizer) in transformers). Use MaxID+1 to size an embedding table.
func (t *Tokenizer) VocabSize() int {
	n := t.model.size()
	for c := range t.added.byContent {
		if _, ok := t.model.tokenToID(c); !ok {
			n++
		}
	}
	return n
}

// MaxID is the largest token id of the model's vocabulary and the added
// tokens (-1 for an empty vocabulary).
func (t *Tokenizer) MaxID() int64 {
	m := int64(-1)
	for id := range t.added.byID {
		m = max(m, id)
	}
	switch v := t.model.(type) {
	case *bpe:
		for id := range v.tokens {
			m = max(m, id)
		}
	case *wordPiece:
		for id := range v.tokens {
			m = max(m, id)
		}
	case *wordLevel:
		for id := range v.tokens {
			m = max(m, id)
		}
	}
	return m
}

// TokenToID returns the id of a token (an added token or a model token).
func (t *Tokenizer) TokenToID(tok string) (int64, bool) {
	if id, ok := t.added.byContent[tok]; ok {
		return id, true
	}
	return t.model.tokenToID(tok)
}

// IDToToken returns the token string of an id, as tokenizers' id_to_token.
func (t *Tokenizer) IDToToken(id int64) (string, bool) {
	if s, ok := t.added.idToToken(id); ok {
		return s, true
	}
	return t.model.idToToken(id)
}

// IsSpecial reports whether id is an added token marked special (the ones
// Decode drops with skipSpecial).
func (t *Tokenizer) IsSpecial(id int64) bool {
	s, ok := t.added.idToToken(id)
	return ok && t.added.special[s]
}

// SpecialTokens returns the special added tokens, content to id.
func (t *Tokenizer) SpecialTokens() map[string]int64 {
	out := make(map[string]int64)
	for c := range t.added.special {
		out[c] = t.added.byContent[c]
	}
	return out
}

// Truncation returns a copy of the truncation setting, or nil.
func (t *Tokenizer) Truncation() *Truncation {
	if t.truncation == nil {
		return nil
	}
	c := *t.truncation
	return &c
}

// Padding returns a copy of the padding setting, or nil.
func (t *Tokenizer) Padding() *Padding {
	if t.padding == nil {
		return nil
	}
	c := *t.padding
	return &c
}

// WithTruncation returns a tokenizer sharing t's vocabulary with another
// truncation setting (nil: none).
func (t *Tokenizer) WithTruncation(tr *Truncation) *Tokenizer {
	c := *t
	if tr != nil {
		x := *tr
		c.truncation = &x
	} else {
		c.truncation = nil
	}
	return &c
}

// WithPadding returns a tokenizer sharing t's vocabulary with another
// padding setting (nil: none), e.g. left padding for batched generation.
func (t *Tokenizer) WithPadding(p *Padding) *Tokenizer {
	c := *t
	if p != nil {
		x := *p
		c.padding = &x
	} else {
		c.padding = nil
	}
	return &c
}

func (t *Tokenizer) specialByNames(names ...string) (int64, bool) {
	for _, n := range names {
		if id, ok := t.added.byContent[n]; ok && t.added.special[n] {
			return id, true
		}
	}
	return 0, false
}

// BOS returns the id the post-processor puts before the text (e.g. <s>,
// <|begin_of_text|>, [CLS]), else the id of a special token with a usual
// BOS name. tokenizer_config.json and generation_config.json, when present,
// are the authority; this is a fallback.
func (t *Tokenizer) BOS() (int64, bool) {
	if t.post != nil {
		if before, _ := t.post.bosEOS(); len(before) > 0 {
			return before[0], true
		}
	}
	return t.specialByNames("<s>", "<|begin_of_text|>", "<bos>", "[CLS]")
}

// EOS returns the id the post-processor puts after the text (e.g. </s>,
// [SEP]), else the id of a special token with a usual EOS name
// (</s>, <|end_of_text|>, <|endoftext|>, <eos>, [SEP]). As for BOS,
// generation_config.json's eos_token_id is the authority.
func (t *Tokenizer) EOS() (int64, bool) {
	if t.post != nil {
		if _, after := t.post.bosEOS(); len(after) > 0 {
			return after[len(after)-1], true
		}
	}
	return t.specialByNames("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]")
}

// PAD returns the padding id of the padding setting, else the id of a
// special token named <pad>, [PAD] or <|pad|>.
func (t *Tokenizer) PAD() (int64, bool) {
	if t.padding != nil {
		return t.padding.PadID, true
	}
	return t.specialByNames("<pad>", "[PAD]", "<|pad|>")
}

// Encode returns the ids of text (which must be valid UTF-8), with the post-processor's special tokens
// (BOS/EOS, [CLS]/[SEP]) when addSpecial is true. It applies neither the
// file's truncation nor its padding: the ids are those of transformers'
// tokenizer(text)["input_ids"], and of tokenizers' encode after
// no_truncation() and no_padding(). EncodeFull and EncodeBatch apply them.
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int64, error) {
	ids, err := t.encodeText(text)
	if err != nil {
		return nil, err
	}
	if t.post != nil {
		ids = postProcess(t.post, []seqEnc{{ids: ids, types: make([]int64, len(ids))}}, addSpecial).ids
	}
	return ids, nil
}

// encodeText runs added-token extraction, normalization, pre-tokenization
// and the model.
func (t *Tokenizer) encodeText(text string) ([]int64, error) {
	if !utf8.ValidString(text) {
		return nil, errors.New("tokenizer: text is not valid UTF-8")
	}
	segs := t.added.split(nil, text, true, &t.added.raw)
	ids := make([]int64, 0, len(text)/3+1)
	var sub []segment
	var err error
	for _, sg := range segs {
		if sg.id >= 0 {
			ids = append(ids, sg.id)
			continue
		}
		n := sg.s
		if t.normalizer != nil {
			n = t.normalizer.normalize(n)
		}
		sub = t.added.split(sub[:0], n, sg.atStart, &t.added.norm)
		for _, x := range sub {
			if x.id >= 0 {
				ids = append(ids, x.id)
				continue
			}
			pieces := []piece{{s: x.s, atStart: x.atStart}}
			if t.pre != nil {
				if pieces, err = t.pre.preTokenize(pieces); err != nil {
					return nil, err
				}
			}
			for _, p := range pieces {
				if ids, err = t.model.tokenize(p.s, ids); err != nil {
					return nil, err
				}
			}
		}
	}
	return ids, nil
}

// EncodeFull encodes text as tokenizers' Tokenizer.encode does with the
// file's settings: truncation (leaving room for the special tokens), the
// post-processor, then padding (a Fixed length pads a single text; with
// BatchLongest a single text is only rounded to PadToMultipleOf).
func (t *Tokenizer) EncodeFull(text string, addSpecial bool) (Encoding, error) {
	return t.encodeFull([]string{text}, addSpecial)
}

// EncodePair encodes a pair of texts (e.g. question and passage for a
// BERT classifier) as tokenizers' Tokenizer.encode(a, b) does: the pair
// template of the post-processor (BERT: [CLS] a [SEP] b [SEP], with type
// ids 0 then 1), the file's truncation for pairs, and its padding.
func (t *Tokenizer) EncodePair(a, b string, addSpecial bool) (Encoding, error) {
	if tp, ok := t.post.(*template); ok && tp.pair == nil {
		return Encoding{}, errors.New("tokenizer: the post-processor has no pair template")
	}
	return t.encodeFull([]string{a, b}, addSpecial)
}

func (t *Tokenizer) encodeFull(texts []string, addSpecial bool) (Encoding, error) {
	e, err := t.encodeTruncated(texts, addSpecial)
	if err != nil {
		return Encoding{}, err
	}
	if t.padding != nil {
		t.pad(&e, t.padLength(len(e.IDs)))
	}
	return e, nil
}

func (t *Tokenizer) encodeTruncated(texts []string, addSpecial bool) (Encoding, error) {
	encs := make([]seqEnc, len(texts))
	for i, s := range texts {
		ids, err := t.encodeText(s)
		if err != nil {
			return Encoding{}, err
		}
		encs[i] = seqEnc{ids: ids, types: repeat(int64(i), len(ids))}
	}
	if tr := t.truncation; tr != nil {
		if err := t.truncate(encs, tr, addSpecial); err != nil {
			return Encoding{}, err
		}
	}
	out := postProcess(t.post, encs, addSpecial)
	return Encoding{IDs: out.ids, TypeIDs: out.types, AttentionMask: repeat(1, len(out.ids))}, nil
}

// truncate is tokenizers' truncate_encodings, with the room for the special
// tokens taken off first as post_process does.
func (t *Tokenizer) truncate(encs []seqEnc, tr *Truncation, addSpecial bool) error {
	maxLen := tr.MaxLength
	if addSpecial && t.post != nil {
		if n := t.post.addedTokens(len(encs) > 1); n > 0 {
			// tokenizers subtracts in usize: a negative result wraps
			// around, which means no truncation.
			if maxLen -= n; maxLen < 0 {
				return nil
			}
		}
	}
	cut := func(e *seqEnc, n int) {
		if n >= len(e.ids) {
			return
		}
		if tr.Direction == "Left" {
			e.ids, e.types = e.ids[len(e.ids)-n:], e.types[len(e.types)-n:]
		} else {
			e.ids, e.types = e.ids[:n], e.types[:n]
		}
	}
	if maxLen == 0 {
		for i := range encs {
			cut(&encs[i], 0)
		}
		return nil
	}
	total := 0
	for _, e := range encs {
		total += len(e.ids)
	}
	if total <= maxLen {
		return nil
	}
	toRemove := total - maxLen
	switch tr.Strategy {
	case "LongestFirst":
		if len(encs) == 1 {
			cut(&encs[0], maxLen)
			return nil
		}
		n1, n2 := len(encs[0].ids), len(encs[1].ids)
		swap := n1 > n2
		if swap {
			n1, n2 = n2, n1
		}
		if n1 > maxLen {
			n2 = n1
		} else {
			n2 = max(n1, maxLen-n1)
		}
		if n1+n2 > maxLen {
			n1 = maxLen / 2
			n2 = n1 + maxLen%2
		}
		if swap {
			n1, n2 = n2, n1
		}
		cut(&encs[0], n1)
		cut(&encs[1], n2)
	default: // OnlyFirst, OnlySecond
		target := 0
		if tr.Strategy == "OnlySecond" {
			if len(encs) < 2 {
				return errors.New("tokenizer: truncation strategy OnlySecond needs a pair of sequences")
			}
			target = 1
		}
		n := len(encs[target].ids)
		if n <= toRemove {
			return fmt.Errorf("tokenizer: truncation: sequence too short (%d ids) to remove %d ids with %s", n, toRemove, tr.Strategy)
		}
		cut(&encs[target], n-toRemove)
	}
	return nil
}

func (t *Tokenizer) padLength(longest int) int {
	p := t.padding
	n := longest
	if p.Fixed > 0 {
		n = p.Fixed
	}
	if m := p.PadToMultipleOf; m > 0 && n%m > 0 {
		n += m - n%m
	}
	return n
}

func (t *Tokenizer) pad(e *Encoding, n int) {
	p := t.padding
	k := n - len(e.IDs)
	if k <= 0 {
		return
	}
	fill := func(x []int64, v int64) []int64 {
		out := make([]int64, n)
		if p.Direction == "Left" {
			for i := 0; i < k; i++ {
				out[i] = v
			}
			copy(out[k:], x)
		} else {
			copy(out, x)
			for i := len(x); i < n; i++ {
				out[i] = v
			}
		}
		return out
	}
	e.IDs = fill(e.IDs, p.PadID)
	e.TypeIDs = fill(e.TypeIDs, p.PadTypeID)
	e.AttentionMask = fill(e.AttentionMask, 0)
}

// EncodeBatch encodes texts as tokenizers' encode_batch does: each text as
// EncodeFull, then the batch padded to its longest row when the padding
// strategy is BatchLongest. Without a padding setting the rows keep their
// own lengths. Texts are encoded in parallel.
func (t *Tokenizer) EncodeBatch(texts []string, addSpecial bool) (*Batch, error) {
	encs := make([]Encoding, len(texts))
	errs := make([]error, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				encs[i], errs[i] = t.encodeFull(texts[i:i+1], addSpecial)
			}
		}()
	}
	for i := range texts {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if t.padding != nil && len(encs) > 0 {
		longest := 0
		for _, e := range encs {
			longest = max(longest, len(e.IDs))
		}
		n := t.padLength(longest)
		for i := range encs {
			t.pad(&encs[i], n)
		}
	}
	b := &Batch{}
	for _, e := range encs {
		b.IDs = append(b.IDs, e.IDs)
		b.TypeIDs = append(b.TypeIDs, e.TypeIDs)
		b.AttentionMask = append(b.AttentionMask, e.AttentionMask)
	}
	return b, nil
}

// Decode turns ids back into text as tokenizers' decode does: special added
// tokens are dropped when skipSpecial is true, and the decoder joins the
// rest. An id outside the vocabulary is an error (tokenizers silently
// drops it).
func (t *Tokenizer) Decode(ids []int64, skipSpecial bool) (string, error) {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.IDToToken(id)
		if !ok {
			return "", fmt.Errorf("tokenizer: id %d is not in the vocabulary", id)
		}
		if skipSpecial && t.added.special[tok] {
			continue
		}
		tokens = append(tokens, tok)
	}
	if t.decoder == nil {
		return strings.Join(tokens, " "), nil
	}
	out, err := t.decoder.decodeChain(tokens)
	if err != nil {
		return "", err
	}
	return strings.Join(out, ""), nil
}

// DecodeStream decodes ids one at a time for streaming generation, as
// tokenizers' DecodeStream: each Step returns the new text, or "" while the
// ids so far end inside a character (byte-fallback or byte-level pieces of
// a multi-byte character) or add nothing.
type DecodeStream struct {
	t           *Tokenizer
	skip        bool
	ids         []int64
	prefix      string
	prefixIndex int
}

// NewDecodeStream starts a stream; skipSpecial is Decode's skipSpecial.
func (t *Tokenizer) NewDecodeStream(skipSpecial bool) *DecodeStream {
	return &DecodeStream{t: t, skip: skipSpecial}
}

// Step adds one id and returns the text it completes ("" if none yet).
func (d *DecodeStream) Step(id int64) (string, error) {
	if d.prefix == "" && len(d.ids) > 0 {
		p, err := d.t.Decode(d.ids, d.skip)
		if err != nil {
			return "", err
		}
		if !strings.HasSuffix(p, "\uFFFD") {
			d.prefix = p
			d.prefixIndex = len(d.ids)
		}
	}
	if _, ok := d.t.IDToToken(id); !ok {
		return "", fmt.Errorf("tokenizer: id %d is not in the vocabulary", id)
	}
	d.ids = append(d.ids, id)
	s, err := d.t.Decode(d.ids, d.skip)
	if err != nil {
		return "", err
	}
	if len(s) > len(d.prefix) && !strings.HasSuffix(s, "\uFFFD") {
		if !strings.HasPrefix(s, d.prefix) {
			return "", fmt.Errorf("tokenizer: decode stream: %q does not start with the previous text %q", s, d.prefix)
		}
		newText := s[len(d.prefix):]
		newPrefixIndex := len(d.ids) - d.prefixIndex
		d.ids = append([]int64(nil), d.ids[d.prefixIndex:]...)
		if d.prefix, err = d.t.Decode(d.ids, d.skip); err != nil {
			return "", err
		}
		d.prefixIndex = newPrefixIndex
		return newText, nil
	}
	return "", nil
}
