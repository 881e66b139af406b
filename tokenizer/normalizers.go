package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// normalizer transforms a piece of text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type typed struct {
	Type string `json:"type"`
}

// pattern is tokenizers' {"String": "..."} / {"Regex": "..."} pattern.
type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch t.Type {
	case "Sequence":
		var v struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("normalizer Sequence: %w", err)
		}
		var seq seqNormalizer
		for _, r := range v.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "BertNormalizer":
		v := struct {
			CleanText          *bool `json:"clean_text"`
			HandleChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          *bool `json:"lowercase"`
		}{}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("normalizer BertNormalizer: %w", err)
		}
		b := bertNormalizer{cleanText: true, chinese: true, lowercase: true}
		if v.CleanText != nil {
			b.cleanText = *v.CleanText
		}
		if v.HandleChineseChars != nil {
			b.chinese = *v.HandleChineseChars
		}
		if v.Lowercase != nil {
			b.lowercase = *v.Lowercase
		}
		// A null strip_accents follows lowercase, as in tokenizers.
		b.stripAccents = b.lowercase
		if v.StripAccents != nil {
			b.stripAccents = *v.StripAccents
		}
		return b, nil
	case "Prepend":
		var v struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("normalizer Prepend: %w", err)
		}
		return prependNormalizer(v.Prepend), nil
	case "Replace":
		r, err := parseReplace(raw)
		if err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		return r, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		var v struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("normalizer Strip: %w", err)
		}
		return stripNormalizer{left: v.Left, right: v.Right}, nil
	case "NFD":
		return formNormalizer{}, nil
	case "NFKD":
		return formNormalizer{compat: true}, nil
	case "NFC":
		return formNormalizer{compose: true}, nil
	case "NFKC":
		return formNormalizer{compat: true, compose: true}, nil
	case "ByteLevel":
		return byteLevelNormalizer{}, nil
	default:
		return nil, unsupported("normalizer", t.Type)
	}
}

func unsupported(kind, typ string) error {
	if typ == "" {
		return fmt.Errorf("tokenizer: %s without a \"type\" is not supported", kind)
	}
	return fmt.Errorf("tokenizer: %s type %q is not supported by this package", kind, typ)
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

type seqNormalizer []normalizer

func (s seqNormalizer) normalize(x string) string {
	for _, n := range s {
		x = n.normalize(x)
	}
	return x
}

type bertNormalizer struct {
	cleanText, chinese, stripAccents, lowercase bool
}

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func (b bertNormalizer) normalize(s string) string {
	loadTables()
	rs := make([]rune, 0, len(s))
	for _, r := range s {
		if b.cleanText {
			if r == 0 || r == 0xFFFD || isBertControl(r) {
				continue
			}
			if isRustWhitespace(r) {
				r = ' '
			}
		}
		if b.chinese && isChineseChar(r) {
			rs = append(rs, ' ', r, ' ')
			continue
		}
		rs = append(rs, r)
	}
	if b.stripAccents {
		var d []rune
		ascii := true
		for _, r := range rs {
			if r >= 0x80 {
				ascii = false
				break
			}
		}
		if !ascii {
			d = make([]rune, 0, len(rs))
			for _, r := range rs {
				d = decompose(d, r, false)
			}
			canonicalOrder(d)
			out := d[:0]
			for _, r := range d {
				if !inTable(tblMn, r) {
					out = append(out, r)
				}
			}
			rs = out
		}
	}
	if b.lowercase {
		out := make([]rune, 0, len(rs))
		for _, r := range rs {
			out = lowerRune(out, r)
		}
		rs = out
	}
	return string(rs)
}

type prependNormalizer string

func (p prependNormalizer) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(s string) string {
	loadTables()
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = lowerRune(out, r)
	}
	return string(out)
}

type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isRustWhitespace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isRustWhitespace)
	}
	return s
}

type formNormalizer struct{ compat, compose bool }

func (f formNormalizer) normalize(s string) string { return normalizeForm(s, f.compat, f.compose) }

type byteLevelNormalizer struct{}

func (byteLevelNormalizer) normalize(s string) string { return byteLevelEncode(s) }

// replacer is the Replace normalizer and decoder.
type replacer struct {
	literal string // pattern when re is nil
	re      matcher
	content string
}

func parseReplace(raw json.RawMessage) (*replacer, error) {
	var v struct {
		Pattern pattern `json:"pattern"`
		Content string  `json:"content"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	r := &replacer{content: v.Content}
	switch {
	case v.Pattern.String != nil:
		r.literal = *v.Pattern.String
		if r.literal == "" {
			return nil, fmt.Errorf("empty pattern")
		}
	case v.Pattern.Regex != nil:
		m, err := compileRegex(*v.Pattern.Regex)
		if err != nil {
			return nil, err
		}
		r.re = m
	default:
		return nil, fmt.Errorf("pattern must be {\"String\": ...} or {\"Regex\": ...}")
	}
	return r, nil
}

func (r *replacer) normalize(s string) string {
	if r.re == nil {
		return strings.ReplaceAll(s, r.literal, r.content)
	}
	var b strings.Builder
	for _, sp := range findMatches(r.re, s) {
		if sp.match {
			b.WriteString(r.content)
		} else {
			b.WriteString(s[sp.start:sp.end])
		}
	}
	return b.String()
}

func (r *replacer) decodeChain(tokens []string) ([]string, error) {
	for i, t := range tokens {
		tokens[i] = r.normalize(t)
	}
	return tokens, nil
}

var _ = utf8.RuneError
