package tokenizer

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// rng is an inclusive range of code points in a generated table.
type rng struct{ lo, hi rune }

// inTable reports whether r lies in one of the sorted ranges of t.
func inTable(t []rng, r rune) bool {
	i := sort.Search(len(t), func(i int) bool { return t[i].hi >= r })
	return i < len(t) && t[i].lo <= r
}

var (
	tablesOnce sync.Once
	nfdMap     map[rune][]rune
	nfkdMap    map[rune][]rune
	lowerMap   map[rune][]rune
	cccMap     map[rune]uint8
	compMap    map[[2]rune]rune
)

// parseRuneMap decodes the "KEY:V,V;KEY:V" strings of tables.go.
func parseRuneMap(s string) map[rune][]rune {
	m := make(map[rune][]rune)
	if s == "" {
		return m
	}
	for _, ent := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(ent, ":")
		kr, _ := strconv.ParseUint(k, 16, 32)
		var vals []rune
		for _, x := range strings.Split(v, ",") {
			xr, _ := strconv.ParseUint(x, 16, 32)
			vals = append(vals, rune(xr))
		}
		m[rune(kr)] = vals
	}
	return m
}

func loadTables() {
	tablesOnce.Do(func() {
		nfdMap = parseRuneMap(tblNFD)
		nfkdMap = parseRuneMap(tblNFKD)
		lowerMap = parseRuneMap(tblLower)
		cccMap = make(map[rune]uint8)
		for k, v := range parseRuneMap(tblCCC) {
			cccMap[k] = uint8(v[0])
		}
		compMap = make(map[[2]rune]rune)
		for k, v := range parseRuneMap(tblComp) {
			compMap[[2]rune{v[0], v[1]}] = k
		}
	})
}

const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

// decompose appends the full canonical (or, with compat, compatibility)
// decomposition of r to dst.
func decompose(dst []rune, r rune, compat bool) []rune {
	if r >= hangulSBase && r < hangulSBase+hangulSCount {
		s := r - hangulSBase
		dst = append(dst, hangulLBase+s/hangulNCount, hangulVBase+(s%hangulNCount)/hangulTCount)
		if t := s % hangulTCount; t != 0 {
			dst = append(dst, hangulTBase+t)
		}
		return dst
	}
	if compat {
		if d, ok := nfkdMap[r]; ok {
			return append(dst, d...)
		}
	}
	if d, ok := nfdMap[r]; ok {
		return append(dst, d...)
	}
	return append(dst, r)
}

// canonicalOrder sorts each run of non-starters by combining class (stable).
func canonicalOrder(rs []rune) {
	for i := 0; i < len(rs); {
		if cccMap[rs[i]] == 0 {
			i++
			continue
		}
		j := i
		for j < len(rs) && cccMap[rs[j]] != 0 {
			j++
		}
		run := rs[i:j]
		sort.SliceStable(run, func(a, b int) bool { return cccMap[run[a]] < cccMap[run[b]] })
		i = j
	}
}

// isASCII reports whether s holds only ASCII bytes (which every
// normalization form leaves unchanged).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// nfd returns the canonical (or compatibility) decomposition of s as runes.
func nfdRunes(s string, compat bool) []rune {
	loadTables()
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = decompose(out, r, compat)
	}
	canonicalOrder(out)
	return out
}

// normalizeForm applies NFD, NFKD, NFC or NFKC to s.
func normalizeForm(s string, compat, compose bool) string {
	if isASCII(s) {
		return s
	}
	rs := nfdRunes(s, compat)
	if compose {
		rs = composeRunes(rs)
	}
	return string(rs)
}

// composeRunes applies the canonical composition algorithm of UAX #15.
func composeRunes(rs []rune) []rune {
	if len(rs) == 0 {
		return rs
	}
	out := rs[:0:0]
	out = append(out, rs[0])
	starterPos := 0
	lastClass := int(cccMap[rs[0]])
	if lastClass != 0 {
		lastClass = 256
	}
	for _, ch := range rs[1:] {
		chClass := int(cccMap[ch])
		if lastClass < chClass || lastClass == 0 {
			if c, ok := composePair(out[starterPos], ch); ok {
				out[starterPos] = c
				continue
			}
		}
		if chClass == 0 {
			starterPos = len(out)
		}
		lastClass = chClass
		out = append(out, ch)
	}
	return out
}

func composePair(a, b rune) (rune, bool) {
	if a >= hangulLBase && a < hangulLBase+hangulLCount && b >= hangulVBase && b < hangulVBase+hangulVCount {
		return hangulSBase + ((a-hangulLBase)*hangulVCount+(b-hangulVBase))*hangulTCount, true
	}
	if a >= hangulSBase && a < hangulSBase+hangulSCount && (a-hangulSBase)%hangulTCount == 0 &&
		b > hangulTBase && b < hangulTBase+hangulTCount {
		return a + (b - hangulTBase), true
	}
	c, ok := compMap[[2]rune{a, b}]
	return c, ok
}

// lowerRune appends the lowercase of r (Rust's char::to_lowercase) to dst.
func lowerRune(dst []rune, r rune) []rune {
	if r < 0x80 {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(dst, r)
	}
	if l, ok := lowerMap[r]; ok {
		return append(dst, l...)
	}
	return append(dst, r)
}

// isRustWhitespace is Rust's char::is_whitespace (White_Space property,
// which is also Oniguruma's \s).
func isRustWhitespace(r rune) bool { return isS(r) }

// isWordChar approximates Rust regex's Unicode \w.
func isWordChar(r rune) bool {
	if r < 0x80 {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return isL(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// isPunct is the punctuation test of BertPreTokenizer and Punctuation.
func isPunct(r rune) bool { return inTable(tblPunct, r) }

// isBertControl is the control test of BertNormalizer's clean_text.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return inTable(tblControl, r)
}
