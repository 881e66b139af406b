package tokenizer

import (
	"encoding/json"
	"fmt"
)

// seqEnc is the ids and type ids of one sequence (or of a merged result).
type seqEnc struct {
	ids, types []int64
}

// postProcessor is tokenizers' PostProcessor: it adds the special tokens of
// one sequence or a pair. The results are concatenated afterwards.
type postProcessor interface {
	// processEncodings is PostProcessor::process_encodings for one
	// sequence (len(encs) == 1) or a pair (2).
	processEncodings(encs []seqEnc, addSpecial bool) []seqEnc
	// addedTokens is the number of ids processEncodings adds.
	addedTokens(pair bool) int
	// bosEOS returns the special ids placed before and after a single
	// sequence.
	bosEOS() (before, after []int64)
}

// postProcess runs p (or the default processing when p is nil) and merges
// the result.
func postProcess(p postProcessor, encs []seqEnc, addSpecial bool) seqEnc {
	if p != nil {
		encs = p.processEncodings(encs, addSpecial)
	}
	if len(encs) == 1 {
		return encs[0]
	}
	var out seqEnc
	for _, e := range encs {
		out.ids = append(out.ids, e.ids...)
		out.types = append(out.types, e.types...)
	}
	return out
}

func parsePostProcessor(raw json.RawMessage) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch t.Type {
	case "TemplateProcessing":
		return parseTemplate(raw)
	case "BertProcessing", "RobertaProcessing":
		var v struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("post_processor %s: %w", t.Type, err)
		}
		if len(v.Sep) != 2 || len(v.Cls) != 2 {
			return nil, fmt.Errorf("post_processor %s: sep and cls must be [token, id]", t.Type)
		}
		var sep, cls int64
		if err := json.Unmarshal(v.Sep[1], &sep); err != nil {
			return nil, fmt.Errorf("post_processor %s: sep: %w", t.Type, err)
		}
		if err := json.Unmarshal(v.Cls[1], &cls); err != nil {
			return nil, fmt.Errorf("post_processor %s: cls: %w", t.Type, err)
		}
		return &bertProcessing{cls: cls, sep: sep, roberta: t.Type == "RobertaProcessing"}, nil
	case "ByteLevel":
		return byteLevelProcessing{}, nil
	case "Sequence":
		var v struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("post_processor Sequence: %w", err)
		}
		var seq seqProcessor
		for _, r := range v.Processors {
			p, err := parsePostProcessor(r)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	default:
		return nil, unsupported("post_processor", t.Type)
	}
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// bertProcessing is BertProcessing ([CLS] A [SEP] B [SEP]) and
// RobertaProcessing (<s> A </s> </s> B </s>).
type bertProcessing struct {
	cls, sep int64
	roberta  bool
}

func (b *bertProcessing) processEncodings(encs []seqEnc, addSpecial bool) []seqEnc {
	if b.roberta { // "Roberta is weird, and every encoding is type_id=0."
		for i := range encs {
			encs[i].types = repeat(0, len(encs[i].ids))
		}
	}
	if !addSpecial {
		return encs
	}
	out := make([]seqEnc, len(encs))
	a := encs[0]
	out[0] = seqEnc{
		ids:   append(append([]int64{b.cls}, a.ids...), b.sep),
		types: append(append([]int64{0}, a.types...), 0),
	}
	if len(encs) > 1 {
		p := encs[1]
		if b.roberta {
			out[1] = seqEnc{ids: append(append([]int64{b.sep}, p.ids...), b.sep), types: repeat(0, len(p.ids)+2)}
		} else {
			out[1] = seqEnc{ids: append(append([]int64(nil), p.ids...), b.sep), types: append(append([]int64(nil), p.types...), 1)}
		}
	}
	return out
}

func (b *bertProcessing) addedTokens(pair bool) int {
	switch {
	case !pair:
		return 2
	case b.roberta:
		return 4
	}
	return 3
}

func (b *bertProcessing) bosEOS() (before, after []int64) {
	return []int64{b.cls}, []int64{b.sep}
}

type byteLevelProcessing struct{}

func (byteLevelProcessing) processEncodings(encs []seqEnc, _ bool) []seqEnc { return encs }
func (byteLevelProcessing) addedTokens(bool) int                            { return 0 }
func (byteLevelProcessing) bosEOS() (before, after []int64)                 { return nil, nil }

type templatePiece struct {
	special bool
	ids     []int64 // for special pieces
	seq     int     // 0 for $A, 1 for $B
	typeID  int64
}

// template is TemplateProcessing.
type template struct {
	single, pair []templatePiece
}

func parseTemplate(raw json.RawMessage) (*template, error) {
	type seqT struct {
		ID     string `json:"id"`
		TypeID int64  `json:"type_id"`
	}
	type pieceT struct {
		Sequence     *seqT `json:"Sequence"`
		SpecialToken *seqT `json:"SpecialToken"`
	}
	var v struct {
		Single        []pieceT `json:"single"`
		Pair          []pieceT `json:"pair"`
		SpecialTokens map[string]struct {
			ID  string  `json:"id"`
			IDs []int64 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("post_processor TemplateProcessing: %w", err)
	}
	conv := func(ps []pieceT, pair bool) ([]templatePiece, error) {
		var out []templatePiece
		seen := [2]int{}
		for _, p := range ps {
			switch {
			case p.Sequence != nil:
				seq := 0
				switch p.Sequence.ID {
				case "A":
				case "B":
					seq = 1
				default:
					return nil, fmt.Errorf("post_processor TemplateProcessing: unknown sequence %q", p.Sequence.ID)
				}
				if seq == 1 && !pair {
					return nil, fmt.Errorf("post_processor TemplateProcessing: single template uses $B")
				}
				seen[seq]++
				out = append(out, templatePiece{seq: seq, typeID: p.Sequence.TypeID})
			case p.SpecialToken != nil:
				st, ok := v.SpecialTokens[p.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("post_processor TemplateProcessing: missing special token %q", p.SpecialToken.ID)
				}
				out = append(out, templatePiece{special: true, ids: st.IDs, typeID: p.SpecialToken.TypeID})
			default:
				return nil, fmt.Errorf("post_processor TemplateProcessing: bad template piece")
			}
		}
		if seen[0] != 1 || pair && seen[1] != 1 {
			return nil, fmt.Errorf("post_processor TemplateProcessing: template needs $A (and $B for a pair) exactly once")
		}
		return out, nil
	}
	t := &template{}
	var err error
	if t.single, err = conv(v.Single, false); err != nil {
		return nil, err
	}
	if len(v.Pair) > 0 {
		if t.pair, err = conv(v.Pair, true); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *template) processEncodings(encs []seqEnc, addSpecial bool) []seqEnc {
	pieces := t.single
	if len(encs) > 1 {
		pieces = t.pair
	}
	n := 0
	for _, e := range encs {
		n += len(e.ids)
	}
	out := seqEnc{ids: make([]int64, 0, n+t.addedTokens(len(encs) > 1)), types: make([]int64, 0, n+t.addedTokens(len(encs) > 1))}
	for _, p := range pieces {
		if p.special {
			if addSpecial {
				out.ids = append(out.ids, p.ids...)
				out.types = append(out.types, repeat(p.typeID, len(p.ids))...)
			}
			continue
		}
		out.ids = append(out.ids, encs[p.seq].ids...)
		out.types = append(out.types, repeat(p.typeID, len(encs[p.seq].ids))...)
	}
	return []seqEnc{out}
}

func (t *template) addedTokens(pair bool) int {
	pieces := t.single
	if pair {
		pieces = t.pair
	}
	n := 0
	for _, p := range pieces {
		if p.special {
			n += len(p.ids)
		}
	}
	return n
}

func (t *template) bosEOS() (before, after []int64) {
	seen := false
	for _, p := range t.single {
		switch {
		case !p.special:
			seen = true
		case seen:
			after = append(after, p.ids...)
		default:
			before = append(before, p.ids...)
		}
	}
	return before, after
}

type seqProcessor []postProcessor

func (s seqProcessor) processEncodings(encs []seqEnc, addSpecial bool) []seqEnc {
	for _, p := range s {
		encs = p.processEncodings(encs, addSpecial)
	}
	return encs
}

func (s seqProcessor) addedTokens(pair bool) int {
	n := 0
	for _, p := range s {
		n += p.addedTokens(pair)
	}
	return n
}

func (s seqProcessor) bosEOS() (before, after []int64) {
	for _, p := range s {
		b, a := p.bosEOS()
		before = append(before, b...)
		after = append(after, a...)
	}
	return before, after
}
