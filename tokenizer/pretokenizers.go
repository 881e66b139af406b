package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// piece is a part of the input that the model will tokenize. atStart is
// true when the piece begins at offset 0 of the original text (Metaspace's
// prepend_scheme "first" needs it).
type piece struct {
	s       string
	atStart bool
}

// preTokenizer splits pieces into smaller pieces (words).
type preTokenizer interface {
	preTokenize(in []piece) ([]piece, error)
}

// span is a part of a string that a pattern matched or did not match.
type span struct {
	start, end int
	match      bool
}

// matcher finds the non-overlapping matches of a pattern, left to right.
type matcher interface {
	findAll(s string) [][2]int
}

// findMatches is tokenizers' Pattern::find_matches for a regex-like matcher.
func findMatches(m matcher, s string) []span {
	if s == "" {
		return []span{{0, 0, false}}
	}
	var out []span
	prev := 0
	for _, mt := range m.findAll(s) {
		if prev != mt[0] {
			out = append(out, span{prev, mt[0], false})
		}
		out = append(out, span{mt[0], mt[1], true})
		prev = mt[1]
	}
	if prev != len(s) {
		out = append(out, span{prev, len(s), false})
	}
	return out
}

// findCharMatches is tokenizers' Pattern::find_matches for a char predicate:
// every matching character is a match of its own.
func findCharMatches(f func(rune) bool, s string) []span {
	if s == "" {
		return []span{{0, 0, false}}
	}
	var out []span
	last := 0
	for i, r := range s {
		if f(r) {
			w := utf8.RuneLen(r)
			if r == utf8.RuneError {
				_, w = utf8.DecodeRuneInString(s[i:])
			}
			if last < i {
				out = append(out, span{last, i, false})
			}
			out = append(out, span{i, i + w, true})
			last = i + w
		}
	}
	if len(s) > last {
		out = append(out, span{last, len(s), false})
	}
	return out
}

// behavior is tokenizers' SplitDelimiterBehavior.
type behavior int

const (
	bRemoved behavior = iota
	bIsolated
	bMergedWithPrevious
	bMergedWithNext
	bContiguous
)

func parseBehavior(s string) (behavior, error) {
	switch s {
	case "Removed":
		return bRemoved, nil
	case "Isolated":
		return bIsolated, nil
	case "MergedWithPrevious":
		return bMergedWithPrevious, nil
	case "MergedWithNext":
		return bMergedWithNext, nil
	case "Contiguous":
		return bContiguous, nil
	}
	return 0, fmt.Errorf("tokenizer: split behavior %q is not supported", s)
}

// splitSpans is NormalizedString::split: it groups spans by behavior and
// appends the non-empty resulting pieces of p to out.
func splitSpans(out []piece, p piece, spans []span, b behavior) []piece {
	type sp struct {
		start, end int
		remove     bool
	}
	var splits []sp
	switch b {
	case bIsolated:
		for _, s := range spans {
			splits = append(splits, sp{s.start, s.end, false})
		}
	case bRemoved:
		for _, s := range spans {
			splits = append(splits, sp{s.start, s.end, s.match})
		}
	case bContiguous:
		prev := false
		for _, s := range spans {
			if s.match == prev && len(splits) > 0 {
				splits[len(splits)-1].end = s.end
			} else {
				splits = append(splits, sp{s.start, s.end, false})
			}
			prev = s.match
		}
	case bMergedWithPrevious:
		prev := false
		for _, s := range spans {
			if s.match && !prev && len(splits) > 0 {
				splits[len(splits)-1].end = s.end
			} else {
				splits = append(splits, sp{s.start, s.end, false})
			}
			prev = s.match
		}
	case bMergedWithNext:
		prev := false
		var rev []sp
		for i := len(spans) - 1; i >= 0; i-- {
			s := spans[i]
			if s.match && !prev && len(rev) > 0 {
				rev[len(rev)-1].start = s.start
			} else {
				rev = append(rev, sp{s.start, s.end, false})
			}
			prev = s.match
		}
		for i := len(rev) - 1; i >= 0; i-- {
			splits = append(splits, rev[i])
		}
	}
	for _, s := range splits {
		if s.remove || s.end <= s.start {
			continue
		}
		out = append(out, piece{s: p.s[s.start:s.end], atStart: p.atStart && s.start == 0})
	}
	return out
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch t.Type {
	case "Sequence":
		var v struct {
			Pretokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Sequence: %w", err)
		}
		var seq seqPreTokenizer
		for _, r := range v.Pretokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "ByteLevel":
		v := struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pre_tokenizer ByteLevel: %w", err)
		}
		b := &byteLevelPre{addPrefixSpace: true, useRegex: true}
		if v.AddPrefixSpace != nil {
			b.addPrefixSpace = *v.AddPrefixSpace
		}
		if v.UseRegex != nil {
			b.useRegex = *v.UseRegex
		}
		return b, nil
	case "Split":
		var v struct {
			Pattern  pattern `json:"pattern"`
			Behavior string  `json:"behavior"`
			Invert   bool    `json:"invert"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		b, err := parseBehavior(v.Behavior)
		if err != nil {
			return nil, err
		}
		s := &splitPre{behavior: b, invert: v.Invert}
		switch {
		case v.Pattern.String != nil:
			s.m = literalMatcher(*v.Pattern.String)
		case v.Pattern.Regex != nil:
			if s.m, err = compileRegex(*v.Pattern.Regex); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("tokenizer: pre_tokenizer Split needs a String or Regex pattern")
		}
		return s, nil
	case "BertPreTokenizer":
		return bertPre{}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return charSplitPre{f: isRustWhitespace, b: bRemoved}, nil
	case "Punctuation":
		v := struct {
			Behavior *string `json:"behavior"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Punctuation: %w", err)
		}
		b := bIsolated
		if v.Behavior != nil {
			var err error
			if b, err = parseBehavior(*v.Behavior); err != nil {
				return nil, err
			}
		}
		return charSplitPre{f: isPunct, b: b}, nil
	case "Digits":
		var v struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Digits: %w", err)
		}
		b := bContiguous
		if v.Individual {
			b = bIsolated
		}
		return charSplitPre{f: isN, b: b}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Metaspace: %w", err)
		}
		return m, nil
	default:
		return nil, unsupported("pre_tokenizer", t.Type)
	}
}

type seqPreTokenizer []preTokenizer

func (s seqPreTokenizer) preTokenize(in []piece) ([]piece, error) {
	var err error
	for _, p := range s {
		if in, err = p.preTokenize(in); err != nil {
			return nil, err
		}
	}
	return in, nil
}

type charSplitPre struct {
	f func(rune) bool
	b behavior
}

func (c charSplitPre) preTokenize(in []piece) ([]piece, error) {
	out := make([]piece, 0, len(in)*2)
	for _, p := range in {
		out = splitChars(out, p, c.f, c.b)
	}
	return out, nil
}

// splitChars is splitSpans(findCharMatches(f, p.s), b) without the
// intermediate spans for the Removed and Isolated behaviors.
func splitChars(out []piece, p piece, f func(rune) bool, b behavior) []piece {
	if b != bRemoved && b != bIsolated {
		return splitSpans(out, p, findCharMatches(f, p.s), b)
	}
	last := 0
	for i, r := range p.s {
		if !f(r) {
			continue
		}
		w := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, w = utf8.DecodeRuneInString(p.s[i:])
		}
		if last < i {
			out = append(out, piece{s: p.s[last:i], atStart: p.atStart && last == 0})
		}
		if b == bIsolated {
			out = append(out, piece{s: p.s[i : i+w], atStart: p.atStart && i == 0})
		}
		last = i + w
	}
	if last < len(p.s) {
		out = append(out, piece{s: p.s[last:], atStart: p.atStart && last == 0})
	}
	return out
}

// splitIsolated is splitSpans(findMatches(m, p.s), bIsolated) without the
// intermediate spans.
func splitIsolated(out []piece, p piece, m matcher) []piece {
	last := 0
	for _, mt := range m.findAll(p.s) {
		if last < mt[0] {
			out = append(out, piece{s: p.s[last:mt[0]], atStart: p.atStart && last == 0})
		}
		if mt[0] < mt[1] {
			out = append(out, piece{s: p.s[mt[0]:mt[1]], atStart: p.atStart && mt[0] == 0})
		}
		last = mt[1]
	}
	if last < len(p.s) {
		out = append(out, piece{s: p.s[last:], atStart: p.atStart && last == 0})
	}
	return out
}

type bertPre struct{}

func (bertPre) preTokenize(in []piece) ([]piece, error) {
	in, _ = charSplitPre{f: isRustWhitespace, b: bRemoved}.preTokenize(in)
	return charSplitPre{f: isPunct, b: bIsolated}.preTokenize(in)
}

// whitespacePre is tokenizers' Whitespace: the matches of \w+|[^\w\s]+.
type whitespacePre struct{}

func (whitespacePre) findAll(s string) [][2]int {
	var out [][2]int
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if isRustWhitespace(r) {
			i += w
			continue
		}
		word := isWordChar(r)
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if word && !isWordChar(r2) || !word && (isWordChar(r2) || isRustWhitespace(r2)) {
				break
			}
			j += w2
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func (w whitespacePre) preTokenize(in []piece) ([]piece, error) {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		spans := findMatches(w, p.s)
		for i := range spans {
			spans[i].match = !spans[i].match
		}
		out = splitSpans(out, p, spans, bRemoved)
	}
	return out, nil
}

type splitPre struct {
	m        matcher
	behavior behavior
	invert   bool
}

func (s *splitPre) preTokenize(in []piece) ([]piece, error) {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		if !s.invert && s.behavior == bIsolated {
			out = splitIsolated(out, p, s.m)
			continue
		}
		spans := findMatches(s.m, p.s)
		if s.invert {
			for i := range spans {
				spans[i].match = !spans[i].match
			}
		}
		out = splitSpans(out, p, spans, s.behavior)
	}
	return out, nil
}

// literalMatcher matches a literal string.
type literalMatcher string

func (l literalMatcher) findAll(s string) [][2]int {
	if l == "" {
		return nil
	}
	var out [][2]int
	for i := 0; i <= len(s); {
		j := strings.Index(s[i:], string(l))
		if j < 0 {
			break
		}
		out = append(out, [2]int{i + j, i + j + len(l)})
		i += j + len(l)
	}
	return out
}

type goRegexp struct{ re *regexp.Regexp }

func (g goRegexp) findAll(s string) [][2]int {
	var out [][2]int
	for _, m := range g.re.FindAllStringIndex(s, -1) {
		out = append(out, [2]int{m[0], m[1]})
	}
	return out
}

// The byte-level regexes that tokenizers runs through Oniguruma. Go's
// regexp has no (?!\S) lookahead, so they are implemented by scanners.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// unsupportedRegex lists Oniguruma constructs whose meaning differs in Go's
// regexp (Unicode \s, \d, \w) or which Go lacks (lookaround, atomic groups).
var unsupportedRegex = regexp.MustCompile(`\\[sSdDwWbBhHzZAGRXK]|\(\?[=!<>]|[*+?}]\+`)

// compileRegex returns a matcher for a tokenizers Regex pattern.
func compileRegex(p string) (matcher, error) {
	switch p {
	case gpt2Pattern:
		return gpt2Scanner{}, nil
	case llama3Pattern:
		return llama3Scanner{maxDigits: 3}, nil
	case qwen2Pattern:
		return llama3Scanner{maxDigits: 1}, nil
	}
	if unsupportedRegex.MatchString(p) {
		return nil, fmt.Errorf("tokenizer: regex %q is not supported (Oniguruma semantics that Go's regexp lacks)", p)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: regex %q is not supported: %v", p, err)
	}
	return goRegexp{re}, nil
}

// Character classes of the byte-level regexes (Oniguruma, Unicode), from
// tables generated from tokenizers itself: its Oniguruma knows a newer
// Unicode than Go's unicode package.
func isL(r rune) bool {
	if r < 0x80 {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return inTable(tblOnigL, r)
}

func isN(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return inTable(tblOnigN, r)
}

func isS(r rune) bool {
	if r < 0x80 {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	return inTable(tblOnigS, r)
}

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

// runEnd returns the end of the run of characters satisfying f from i.
func runEnd(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !f(r) {
			break
		}
		i += w
	}
	return i
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// contraction returns the length of 's|'t|'re|'ve|'m|'ll|'d at s (which
// starts with the apostrophe), or 0.
func contraction(s string, fold bool) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	lower := func(i int) (rune, int) {
		r, w := runeAt(s, i)
		if fold {
			if r == 0x17F { // LATIN SMALL LETTER LONG S folds to s
				return 's', w
			}
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
		}
		return r, w
	}
	c1, w1 := lower(1)
	switch c1 {
	case 's', 't', 'm', 'd':
		return 1 + w1
	case 'r', 'v', 'l':
		c2, w2 := lower(1 + w1)
		if (c1 == 'r' || c1 == 'v') && c2 == 'e' || c1 == 'l' && c2 == 'l' {
			return 1 + w1 + w2
		}
	}
	return 0
}

// spaceTail implements \s+(?!\S)|\s+ at i (s[i] is whitespace).
func spaceTail(s string, i int) int {
	j := runEnd(s, i, isS)
	if j == len(s) {
		return j
	}
	_, w := utf8.DecodeLastRuneInString(s[:j])
	if j-w > i {
		return j - w
	}
	return j
}

// gpt2Scanner implements gpt2Pattern.
type gpt2Scanner struct{}

func (g gpt2Scanner) findAll(s string) [][2]int {
	out := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		j := g.matchAt(s, i)
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func (gpt2Scanner) matchAt(s string, i int) int {
	r, w := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s[i:], false); n > 0 {
			return i + n
		}
	}
	if r == ' ' {
		r2, _ := runeAt(s, i+1)
		switch {
		case r2 < 0:
		case isL(r2):
			return runEnd(s, i+1, isL)
		case isN(r2):
			return runEnd(s, i+1, isN)
		case isOther(r2):
			return runEnd(s, i+1, isOther)
		}
	}
	switch {
	case isL(r):
		return runEnd(s, i, isL)
	case isN(r):
		return runEnd(s, i, isN)
	case isOther(r):
		return runEnd(s, i, isOther)
	}
	_ = w
	return spaceTail(s, i)
}

// llama3Scanner implements llama3Pattern (maxDigits 3) and qwen2Pattern
// (maxDigits 1).
type llama3Scanner struct{ maxDigits int }

func (l llama3Scanner) findAll(s string) [][2]int {
	out := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		j := l.matchAt(s, i)
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

func (l llama3Scanner) matchAt(s string, i int) int {
	r, w := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s[i:], true); n > 0 {
			return i + n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if !isCRLF(r) && !isL(r) && !isN(r) {
		if r2, _ := runeAt(s, i+w); r2 >= 0 && isL(r2) {
			return runEnd(s, i+w, isL)
		}
	}
	if isL(r) {
		return runEnd(s, i, isL)
	}
	// \p{N}{1,n}
	if isN(r) {
		j := i
		for k := 0; k < l.maxDigits && j < len(s); k++ {
			r2, w2 := runeAt(s, j)
			if !isN(r2) {
				break
			}
			j += w2
		}
		return j
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); r2 >= 0 && isOther(r2) {
			return runEnd(s, runEnd(s, i+1, isOther), isCRLF)
		}
	}
	if isOther(r) {
		return runEnd(s, runEnd(s, i, isOther), isCRLF)
	}
	// \s*[\r\n]+
	j := runEnd(s, i, isS)
	if k := strings.LastIndexAny(s[i:j], "\r\n"); k >= 0 {
		return i + k + 1
	}
	return spaceTail(s, i)
}

// byteLevelPre is the ByteLevel pre-tokenizer.
type byteLevelPre struct {
	addPrefixSpace, useRegex bool
}

var gpt2 = gpt2Scanner{}

func (b *byteLevelPre) preTokenize(in []piece) ([]piece, error) {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		if b.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
			p.s = " " + p.s
		}
		if b.useRegex {
			out = splitIsolated(out, p, gpt2)
		} else if p.s != "" {
			out = append(out, p)
		}
	}
	for i := range out {
		out[i].s = byteLevelEncode(out[i].s)
	}
	return out, nil
}

// byteToChar is GPT-2's bytes_to_unicode table.
var byteToChar, charToByte = func() ([256]string, map[rune]byte) {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	in := make(map[int]bool)
	for _, b := range bs {
		in[b] = true
	}
	var table [256]string
	rev := make(map[rune]byte)
	for _, b := range bs {
		table[b] = string(rune(b))
		rev[rune(b)] = byte(b)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			table[b] = string(rune(256 + n))
			rev[rune(256+n)] = byte(b)
			n++
		}
	}
	return table, rev
}()

// byteLevelEncode maps every byte of s to its byte-level character.
func byteLevelEncode(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteString(byteToChar[s[i]])
	}
	return b.String()
}

// metaspace is the Metaspace pre-tokenizer and decoder.
type metaspace struct {
	replacement rune
	rep         string
	scheme      string // "always", "first" or "never"
	split       bool
}

func parseMetaspace(raw json.RawMessage) (*metaspace, error) {
	var v struct {
		Replacement    string  `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(v.Replacement) != 1 {
		return nil, fmt.Errorf("replacement %q must be one character", v.Replacement)
	}
	m := &metaspace{scheme: "always", split: true}
	m.replacement, _ = utf8.DecodeRuneInString(v.Replacement)
	m.rep = v.Replacement
	if v.PrependScheme != nil {
		m.scheme = *v.PrependScheme
	}
	switch m.scheme {
	case "always", "first", "never":
	default:
		return nil, fmt.Errorf("prepend_scheme %q is not supported", m.scheme)
	}
	if v.AddPrefixSpace != nil && !*v.AddPrefixSpace {
		if m.scheme != "never" {
			return nil, fmt.Errorf("add_prefix_space does not match declared prepend_scheme")
		}
	}
	if v.Split != nil {
		m.split = *v.Split
	}
	return m, nil
}

func (m *metaspace) preTokenize(in []piece) ([]piece, error) {
	out := make([]piece, 0, len(in)*4)
	for _, p := range in {
		s := strings.ReplaceAll(p.s, " ", m.rep)
		switch m.scheme {
		case "always":
			if !strings.HasPrefix(s, m.rep) {
				s = m.rep + s
			}
		case "first":
			if !strings.HasPrefix(s, m.rep) && p.atStart {
				s = m.rep + s
			}
		}
		q := piece{s: s, atStart: p.atStart}
		if m.split {
			out = splitSpans(out, q, findCharMatches(func(r rune) bool { return r == m.replacement }, s), bMergedWithNext)
		} else if s != "" {
			out = append(out, q)
		}
	}
	return out, nil
}

func (m *metaspace) decodeChain(tokens []string) ([]string, error) {
	for i, t := range tokens {
		var b strings.Builder
		for _, c := range t {
			if c == m.replacement {
				if i == 0 && m.scheme != "never" {
					continue
				}
				b.WriteByte(' ')
			} else {
				b.WriteRune(c)
			}
		}
		tokens[i] = b.String()
	}
	return tokens, nil
}
