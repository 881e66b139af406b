package tokenizer

import (
	"log/slog"
	"sort"
	"strings"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's "added_tokens".
type addedToken struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedVocab is tokenizers' AddedVocabulary.
type addedVocab struct {
	byContent map[string]int64
	byID      map[int64]*addedToken
	normCache map[int64]string // normalized form of normalized tokens
	special   map[string]bool
	raw       trie // tokens matched on the raw text (normalized: false)
	norm      trie // tokens matched on the normalized text
}

// trie finds leftmost-longest matches of a set of patterns.
type trie struct {
	byFirst [256][]trieEntry // by first byte; sorted by length, longest first
	n       int
}

type trieEntry struct {
	pat string
	id  int64
}

func (t *trie) add(pat string, id int64) {
	es := t.byFirst[pat[0]]
	for i := range es {
		if es[i].pat == pat {
			es[i].id = id
			return
		}
	}
	es = append(es, trieEntry{pat, id})
	t.n++
	sort.SliceStable(es, func(i, j int) bool { return len(es[i].pat) > len(es[j].pat) })
	t.byFirst[pat[0]] = es
}

func (t *trie) empty() bool { return t.n == 0 }

// next returns the leftmost-longest match at or after pos.
func (t *trie) next(s string, pos int) (start, end int, id int64, ok bool) {
	for i := pos; i < len(s); i++ {
		for _, e := range t.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], e.pat) {
				return i, i + len(e.pat), e.id, true
			}
		}
	}
	return 0, 0, 0, false
}

func newAddedVocab(tokens []addedToken, m model, norm normalizer) *addedVocab {
	a := &addedVocab{
		byContent: make(map[string]int64),
		byID:      make(map[int64]*addedToken),
		normCache: make(map[int64]string),
		special:   make(map[string]bool),
	}
	size := int64(m.size())
	nextID := size
	for i := range tokens {
		t := tokens[i]
		if t.Content == "" {
			continue
		}
		// Same content and same flags: ignored, as tokenizers does.
		if id, ok := a.byContent[t.Content]; ok {
			if old := a.byID[id]; old != nil && sameToken(old, &t) {
				continue
			}
		}
		var id int64
		if v, ok := a.byContent[t.Content]; ok {
			id = v
		} else if v, ok := m.tokenToID(t.Content); ok {
			id = v
		} else {
			id = nextID
			nextID++
		}
		if t.ID != id {
			// As tokenizers: the id is the vocabulary's, or the next after
			// it, whatever the file says; a disagreement is worth a warning
			// (such a token may shadow a vocabulary token in decoding).
			slog.Warn("tokenizer: added token was given another id than tokenizer.json's, as tokenizers does",
				"token", t.Content, "file_id", t.ID, "id", id)
		}
		t.ID = id
		normalized := !t.Special
		if t.Normalized != nil {
			normalized = *t.Normalized
		}
		b := normalized
		t.Normalized = &b
		if normalized && norm != nil {
			if n := norm.normalize(t.Content); n != t.Content {
				a.normCache[id] = n
			}
		}
		a.byContent[t.Content] = id
		if t.Special {
			a.special[t.Content] = true
		}
		tt := t
		a.byID[id] = &tt
	}
	// Rebuild the matching sets from the final state.
	ids := make([]int64, 0, len(a.byID))
	for id := range a.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		t := a.byID[id]
		if *t.Normalized {
			pat := t.Content
			if n, ok := a.normCache[id]; ok {
				pat = n
			}
			if pat != "" {
				a.norm.add(pat, id)
			}
		} else {
			a.raw.add(t.Content, id)
		}
	}
	return a
}

func sameToken(a, b *addedToken) bool {
	an, bn := !a.Special, !b.Special
	if a.Normalized != nil {
		an = *a.Normalized
	}
	if b.Normalized != nil {
		bn = *b.Normalized
	}
	return a.Content == b.Content && a.SingleWord == b.SingleWord && a.LStrip == b.LStrip &&
		a.RStrip == b.RStrip && an == bn && a.Special == b.Special
}

// idToToken is AddedVocabulary::simple_id_to_token.
func (a *addedVocab) idToToken(id int64) (string, bool) {
	t, ok := a.byID[id]
	if !ok {
		return "", false
	}
	if n, ok := a.normCache[id]; ok {
		return n, true
	}
	return t.Content, true
}

// segment is a piece of the input: either an added token (id >= 0) or text.
type segment struct {
	s       string
	id      int64
	atStart bool
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordChar(r)
}

// split is AddedVocabulary::find_matches + split_with_indices: it appends the
// non-empty parts of s, splitting out the tokens of t.
func (a *addedVocab) split(out []segment, s string, atStart bool, t *trie) []segment {
	if t.empty() || s == "" {
		if s != "" {
			out = append(out, segment{s: s, id: -1, atStart: atStart})
		}
		return out
	}
	startOffset := 0
	pos := 0
	for {
		start, stop, id, ok := t.next(s, pos)
		if !ok {
			break
		}
		pos = stop
		tok := a.byID[id]
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			ns := len(strings.TrimRightFunc(s[:start], isRustWhitespace))
			start = max(ns, startOffset)
		}
		if tok.RStrip {
			// The match iterator goes on from the match's end, not the
			// stripped end, as in tokenizers.
			stop += len(s[stop:]) - len(strings.TrimLeftFunc(s[stop:], isRustWhitespace))
		}
		if startOffset < start {
			out = append(out, segment{s: s[startOffset:start], id: -1, atStart: atStart && startOffset == 0})
		}
		out = append(out, segment{s: s[start:stop], id: id})
		startOffset = stop
	}
	if startOffset != len(s) {
		out = append(out, segment{s: s[startOffset:], id: -1, atStart: atStart && startOffset == 0})
	}
	return out
}
