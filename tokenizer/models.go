package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// model turns one pre-tokenized word into ids.
type model interface {
	tokenize(word string, dst []int64) ([]int64, error)
	tokenToID(tok string) (int64, bool)
	idToToken(id int64) (string, bool)
	size() int
}

// vocab is a token→id map with its reverse.
type vocab struct {
	ids    map[string]int64
	tokens map[int64]string
}

func newVocab(m map[string]int64) (vocab, error) {
	v := vocab{ids: m, tokens: make(map[int64]string, len(m))}
	for t, id := range m {
		if id < 0 || id > 1<<32-1 {
			return v, fmt.Errorf("tokenizer: vocab id %d of %q out of range", id, t)
		}
		if old, ok := v.tokens[id]; !ok || t < old {
			v.tokens[id] = t
		}
	}
	return v, nil
}

func (v vocab) tokenToID(t string) (int64, bool) { id, ok := v.ids[t]; return id, ok }
func (v vocab) idToToken(id int64) (string, bool) {
	t, ok := v.tokens[id]
	return t, ok
}
func (v vocab) size() int { return len(v.ids) }

func parseModel(raw json.RawMessage) (model, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("tokenizer: missing model")
	}
	var t struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
		Prefix json.RawMessage `json:"continuing_subword_prefix"`
		Vocab  json.RawMessage `json:"vocab"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("tokenizer: model: %w", err)
	}
	typ := t.Type
	if typ == "" { // old files: guess the way tokenizers' untagged enum does
		switch {
		case t.Merges != nil:
			typ = "BPE"
		case t.Prefix != nil:
			typ = "WordPiece"
		case strings.HasPrefix(strings.TrimSpace(string(t.Vocab)), "["):
			typ = "Unigram"
		default:
			typ = "WordLevel"
		}
	}
	switch typ {
	case "BPE":
		return parseBPE(raw)
	case "WordPiece":
		return parseWordPiece(raw)
	case "WordLevel":
		return parseWordLevel(raw)
	default:
		return nil, unsupported("model", typ)
	}
}

// ---- BPE ----

type bpe struct {
	vocab
	merges       map[uint64]mergeVal
	unk          *string
	prefix       string
	suffix       string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int64 // id of "<0xXX>", or -1

	mu    sync.RWMutex
	cache map[string][]int64
}

type mergeVal struct {
	rank  uint32
	newID int64
}

const (
	bpeCacheCapacity = 10000
	bpeCacheMaxLen   = 256
)

func pairKey(a, b int64) uint64 { return uint64(a)<<32 | uint64(uint32(b)) }

func parseBPE(raw json.RawMessage) (*bpe, error) {
	var v struct {
		Dropout      *float64          `json:"dropout"`
		Unk          *string           `json:"unk_token"`
		Prefix       *string           `json:"continuing_subword_prefix"`
		Suffix       *string           `json:"end_of_word_suffix"`
		FuseUnk      *bool             `json:"fuse_unk"`
		ByteFallback *bool             `json:"byte_fallback"`
		IgnoreMerges *bool             `json:"ignore_merges"`
		Vocab        map[string]int64  `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("tokenizer: BPE model: %w", err)
	}
	if v.Vocab == nil || v.Merges == nil {
		return nil, fmt.Errorf("tokenizer: BPE model: missing vocab/merges")
	}
	if v.Dropout != nil && *v.Dropout != 0 {
		return nil, fmt.Errorf("tokenizer: BPE dropout %v is not supported (it makes encoding random)", *v.Dropout)
	}
	voc, err := newVocab(v.Vocab)
	if err != nil {
		return nil, err
	}
	m := &bpe{vocab: voc, unk: v.Unk, cache: make(map[string][]int64)}
	if v.Prefix != nil {
		m.prefix = *v.Prefix
	}
	if v.Suffix != nil {
		m.suffix = *v.Suffix
	}
	m.fuseUnk = v.FuseUnk != nil && *v.FuseUnk
	m.byteFallback = v.ByteFallback != nil && *v.ByteFallback
	m.ignoreMerges = v.IgnoreMerges != nil && *v.IgnoreMerges
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := voc.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	m.merges = make(map[uint64]mergeVal, len(v.Merges))
	for i, r := range v.Merges {
		var a, b string
		var pair []string
		if err := json.Unmarshal(r, &pair); err == nil {
			if len(pair) != 2 {
				return nil, fmt.Errorf("tokenizer: BPE merge %d: want a pair, got %d strings", i, len(pair))
			}
			a, b = pair[0], pair[1]
		} else {
			var line string
			if err := json.Unmarshal(r, &line); err != nil {
				return nil, fmt.Errorf("tokenizer: BPE merge %d: neither [a, b] nor \"a b\"", i)
			}
			parts := strings.Split(line, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("tokenizer: BPE merge %d %q: not two tokens", i, line)
			}
			a, b = parts[0], parts[1]
		}
		aID, ok := voc.ids[a]
		if !ok {
			return nil, fmt.Errorf("tokenizer: BPE merge token %q out of vocabulary", a)
		}
		bID, ok := voc.ids[b]
		if !ok {
			return nil, fmt.Errorf("tokenizer: BPE merge token %q out of vocabulary", b)
		}
		if !strings.HasPrefix(b, m.prefix) {
			return nil, fmt.Errorf("tokenizer: BPE merge token %q lacks the prefix %q", b, m.prefix)
		}
		merged := a + b[len(m.prefix):]
		newID, ok := voc.ids[merged]
		if !ok {
			return nil, fmt.Errorf("tokenizer: BPE merge token %q out of vocabulary", merged)
		}
		m.merges[pairKey(aID, bID)] = mergeVal{rank: uint32(i), newID: newID}
	}
	return m, nil
}

func (m *bpe) tokenize(w string, dst []int64) ([]int64, error) {
	if w == "" {
		return dst, nil
	}
	if m.ignoreMerges {
		if id, ok := m.ids[w]; ok {
			return append(dst, id), nil
		}
	}
	cacheable := len(w) < bpeCacheMaxLen
	if cacheable {
		m.mu.RLock()
		ids, ok := m.cache[w]
		m.mu.RUnlock()
		if ok {
			return append(dst, ids...), nil
		}
	}
	ids, err := m.mergeWord(w)
	if err != nil {
		return nil, err
	}
	if cacheable {
		m.mu.Lock()
		if len(m.cache) < bpeCacheCapacity {
			m.cache[w] = ids
		}
		m.mu.Unlock()
	}
	return append(dst, ids...), nil
}

type symbol struct {
	id         int64
	prev, next int32
	gone       bool
}

type mergeItem struct {
	rank  uint32
	pos   int32
	newID int64
}

// mergeHeap is a binary min-heap on (rank, pos).
type mergeHeap []mergeItem

func (h mergeHeap) less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].pos < h[j].pos
}

func (h *mergeHeap) push(x mergeItem) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l, r, s := 2*i+1, 2*i+2, i
		if l < n && a.less(l, s) {
			s = l
		}
		if r < n && a.less(r, s) {
			s = r
		}
		if s == i {
			break
		}
		a[i], a[s] = a[s], a[i]
		i = s
	}
	*h = a
	return top
}

// mergeWord is BPE::merge_word followed by Word::merge_all.
func (m *bpe) mergeWord(w string) ([]int64, error) {
	syms := make([]symbol, 0, len(w))
	add := func(id int64) {
		syms = append(syms, symbol{id: id, prev: int32(len(syms)) - 1, next: int32(len(syms)) + 1})
	}
	unkPending := false
	var unkID int64
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+size]
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if i+size == len(w) && m.suffix != "" {
			s += m.suffix
		}
		i += size
		if id, ok := m.ids[s]; ok {
			if unkPending {
				add(unkID)
				unkPending = false
			}
			add(id)
			continue
		}
		if m.byteFallback {
			all := true
			for j := 0; j < len(s); j++ {
				if m.byteIDs[s[j]] < 0 {
					all = false
					break
				}
			}
			if all {
				for j := 0; j < len(s); j++ {
					add(m.byteIDs[s[j]])
				}
				continue
			}
		}
		if m.unk != nil {
			id, ok := m.ids[*m.unk]
			if !ok {
				return nil, fmt.Errorf("tokenizer: BPE unk token %q is not in the vocabulary", *m.unk)
			}
			if unkPending && !m.fuseUnk {
				add(unkID)
			}
			unkPending, unkID = true, id
		}
	}
	if unkPending {
		add(unkID)
	}
	if len(syms) == 0 {
		return nil, nil
	}
	syms[len(syms)-1].next = -1
	var h mergeHeap
	for i := 0; i+1 < len(syms); i++ {
		if mv, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h.push(mergeItem{mv.rank, int32(i), mv.newID})
		}
	}
	for len(h) > 0 {
		top := h.pop()
		cur := &syms[top.pos]
		if cur.gone || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if mv, ok := m.merges[pairKey(cur.id, right.id)]; !ok || mv.newID != top.newID {
			continue
		}
		cur.id = top.newID
		cur.next = right.next
		syms[nextPos].gone = true
		if right.next >= 0 && int(right.next) < len(syms) {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mv, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				h.push(mergeItem{mv.rank, cur.prev, mv.newID})
			}
		}
		if cur.next >= 0 {
			if mv, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				h.push(mergeItem{mv.rank, top.pos, mv.newID})
			}
		}
	}
	out := make([]int64, 0, len(syms))
	for i := range syms {
		if !syms[i].gone {
			out = append(out, syms[i].id)
		}
	}
	return out, nil
}

// ---- WordPiece ----

type wordPiece struct {
	vocab
	unk      string
	prefix   string
	maxChars int
}

func parseWordPiece(raw json.RawMessage) (*wordPiece, error) {
	v := struct {
		Unk      *string          `json:"unk_token"`
		Prefix   *string          `json:"continuing_subword_prefix"`
		MaxChars *int             `json:"max_input_chars_per_word"`
		Vocab    map[string]int64 `json:"vocab"`
	}{}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("tokenizer: WordPiece model: %w", err)
	}
	if v.Vocab == nil {
		return nil, fmt.Errorf("tokenizer: WordPiece model: missing vocab")
	}
	voc, err := newVocab(v.Vocab)
	if err != nil {
		return nil, err
	}
	m := &wordPiece{vocab: voc, unk: "[UNK]", prefix: "##", maxChars: 100}
	if v.Unk != nil {
		m.unk = *v.Unk
	}
	if v.Prefix != nil {
		m.prefix = *v.Prefix
	}
	if v.MaxChars != nil {
		m.maxChars = *v.MaxChars
	}
	return m, nil
}

func (m *wordPiece) unkID() ([]int64, error) {
	id, ok := m.ids[m.unk]
	if !ok {
		return nil, fmt.Errorf("tokenizer: WordPiece unk token %q is not in the vocabulary", m.unk)
	}
	return []int64{id}, nil
}

func (m *wordPiece) tokenize(w string, dst []int64) ([]int64, error) {
	if utf8.RuneCountInString(w) > m.maxChars {
		u, err := m.unkID()
		return append(dst, u...), err
	}
	n := len(dst)
	var buf []byte
	for start := 0; start < len(w); {
		end := len(w)
		found := false
		for start < end {
			var id int64
			var ok bool
			if start > 0 {
				buf = append(append(buf[:0], m.prefix...), w[start:end]...)
				id, ok = m.ids[string(buf)]
			} else {
				id, ok = m.ids[w[start:end]]
			}
			if ok {
				dst = append(dst, id)
				found = true
				break
			}
			_, sz := utf8.DecodeLastRuneInString(w[start:end])
			end -= sz
		}
		if !found {
			u, err := m.unkID()
			return append(dst[:n], u...), err
		}
		start = end
	}
	return dst, nil
}

// ---- WordLevel ----

type wordLevel struct {
	vocab
	unk string
}

func parseWordLevel(raw json.RawMessage) (*wordLevel, error) {
	var v struct {
		Unk   string           `json:"unk_token"`
		Vocab map[string]int64 `json:"vocab"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("tokenizer: WordLevel model: %w", err)
	}
	voc, err := newVocab(v.Vocab)
	if err != nil {
		return nil, err
	}
	return &wordLevel{vocab: voc, unk: v.Unk}, nil
}

func (m *wordLevel) tokenize(w string, dst []int64) ([]int64, error) {
	if id, ok := m.ids[w]; ok {
		return append(dst, id), nil
	}
	if id, ok := m.ids[m.unk]; ok {
		return append(dst, id), nil
	}
	return nil, fmt.Errorf("tokenizer: WordLevel unk token %q is not in the vocabulary", m.unk)
}
