package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const tinyPath = "testdata/tiny/tokenizer.json"

func loadTiny(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// The tiny tokenizer is Llama-2 style: normalizer Prepend("▁") then
// Replace(" ", "▁"), no pre-tokenizer, BPE with byte_fallback and fuse_unk,
// template "<s> $A". Vocabulary: 0 <unk>, 1 <s>, 2 </s>, 3 <0x21>, 4 <0xC3>,
// 5 <0xA9>, 6 ▁, 7 a, 8 b, 9 c, 10 ab, 11 ▁ab, 12 bc, 13 ▁c. Merges by rank:
// 0 a+b, 1 ▁+ab, 2 b+c, 3 ▁+c.
func TestTinyEncodeByHand(t *testing.T) {
	tk := loadTiny(t)
	cases := []struct {
		text  string
		plain []int64
	}{
		// "▁ab▁c!": symbols ▁ a b ▁ c <0x21>; merge a+b (rank 0), then
		// ▁+ab (rank 1), then ▁+c (rank 3): ▁ab ▁c <0x21>.
		{"ab c!", []int64{11, 13, 3}},
		// "▁abc": a+b first (rank 0) so b+c (rank 2) never applies:
		// ▁ab c.
		{"abc", []int64{11, 9}},
		// é is not in the vocabulary: its UTF-8 bytes C3 A9.
		{"é", []int64{6, 4, 5}},
		// x has no token and no byte token (0x78): <unk>.
		{"x", []int64{6, 0}},
		// fuse_unk: two unknown characters give one <unk>.
		{"xy", []int64{6, 0}},
		// <s> inside the text is the special token; each side is
		// normalized on its own, so each gets its own ▁.
		{"a<s>b", []int64{6, 7, 1, 6, 8}},
		// The empty string has no tokens (Prepend skips empty text).
		{"", nil},
	}
	for _, c := range cases {
		got, err := tk.Encode(c.text, false)
		if err != nil {
			t.Fatalf("Encode(%q): %v", c.text, err)
		}
		if !reflect.DeepEqual(got, c.plain) && !(len(got) == 0 && len(c.plain) == 0) {
			t.Errorf("Encode(%q, false) = %v, want %v", c.text, got, c.plain)
		}
		got, err = tk.Encode(c.text, true)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]int64{1}, c.plain...) // template "<s> $A"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q, true) = %v, want %v", c.text, got, want)
		}
	}
}

func TestTinyDecodeByHand(t *testing.T) {
	tk := loadTiny(t)
	cases := []struct {
		ids  []int64
		skip bool
		want string
	}{
		// Replace ▁→" ", ByteFallback <0x21>→"!", Fuse, Strip one leading
		// space (none here: the text starts with "<s>").
		{[]int64{1, 11, 13, 3}, false, "<s> ab c!"},
		// Without <s> the leading space of " ab" is stripped.
		{[]int64{1, 11, 13, 3}, true, "ab c!"},
		// Bytes C3 A9 are "é".
		{[]int64{6, 4, 5}, true, "é"},
		// A lone C3 is not UTF-8: one U+FFFD per byte.
		{[]int64{4}, true, "\uFFFD"},
		{nil, true, ""},
	}
	for _, c := range cases {
		got, err := tk.Decode(c.ids, c.skip)
		if err != nil || got != c.want {
			t.Errorf("Decode(%v, %v) = %q, %v; want %q", c.ids, c.skip, got, err, c.want)
		}
	}
}

func TestTinyAccessors(t *testing.T) {
	tk := loadTiny(t)
	if n := tk.VocabSize(); n != 14 {
		t.Errorf("VocabSize = %d, want 14", n)
	}
	if n := tk.MaxID(); n != 13 {
		t.Errorf("MaxID = %d, want 13", n)
	}
	if id, ok := tk.TokenToID("▁ab"); !ok || id != 11 {
		t.Errorf("TokenToID(▁ab) = %d, %v", id, ok)
	}
	if s, ok := tk.IDToToken(12); !ok || s != "bc" {
		t.Errorf("IDToToken(12) = %q, %v", s, ok)
	}
	if _, ok := tk.IDToToken(14); ok {
		t.Error("IDToToken(14) found a token")
	}
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Errorf("BOS = %d, %v; want 1 (from the template)", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Errorf("EOS = %d, %v; want 2 (</s>)", id, ok)
	}
	if _, ok := tk.PAD(); ok {
		t.Error("PAD found, but the tiny tokenizer has none")
	}
	if !tk.IsSpecial(1) || tk.IsSpecial(11) {
		t.Error("IsSpecial wrong")
	}
	want := map[string]int64{"<unk>": 0, "<s>": 1, "</s>": 2}
	if got := tk.SpecialTokens(); !reflect.DeepEqual(got, want) {
		t.Errorf("SpecialTokens = %v", got)
	}
}

func TestTinyBatchPadding(t *testing.T) {
	tk := loadTiny(t).WithPadding(&Padding{Direction: "Left", PadID: 2}).
		WithTruncation(&Truncation{MaxLength: 3, Direction: "Right", Strategy: "LongestFirst"})
	b, err := tk.EncodeBatch([]string{"ab c!", "abc", "ab c! ab c!"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Truncation keeps MaxLength-1 = 2 ids for the text (one is for <s>),
	// then the batch is left-padded with </s> to its longest row (3).
	wantIDs := [][]int64{{1, 11, 13}, {1, 11, 9}, {1, 11, 13}}
	if !reflect.DeepEqual(b.IDs, wantIDs) {
		t.Errorf("ids = %v, want %v", b.IDs, wantIDs)
	}
	b, err = tk.EncodeBatch([]string{"", "abc"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int64{{2, 2}, {11, 9}}; !reflect.DeepEqual(b.IDs, want) {
		t.Errorf("ids = %v, want %v", b.IDs, want)
	}
	if want := [][]int64{{0, 0}, {1, 1}}; !reflect.DeepEqual(b.AttentionMask, want) {
		t.Errorf("mask = %v, want %v", b.AttentionMask, want)
	}
}

func TestTinyDecodeStream(t *testing.T) {
	tk := loadTiny(t)
	ds := tk.NewDecodeStream(true)
	// ▁ab, ▁c, <0xC3>, <0xA9>: the C3 alone is an incomplete character,
	// so its step yields nothing and the next yields "é".
	var got []string
	for _, id := range []int64{11, 13, 4, 5, 3} {
		s, err := ds.Step(id)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := []string{"ab", " c", "", "é", "!"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stream = %q, want %q", got, want)
	}
	if _, err := ds.Step(99); err == nil {
		t.Error("Step(99) succeeded")
	}
}

func TestDecodeBadIDs(t *testing.T) {
	tk := loadTiny(t)
	for _, ids := range [][]int64{{14}, {-1}, {1 << 40}, {11, 99, 13}} {
		if s, err := tk.Decode(ids, false); err == nil {
			t.Errorf("Decode(%v) = %q, want an error", ids, s)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tiny, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) string {
		if !strings.Contains(string(tiny), old) {
			t.Fatalf("tiny tokenizer.json lacks %q", old)
		}
		return strings.Replace(string(tiny), old, new, 1)
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.json"), "no such file"},
		{"directory without tokenizer.json", dir, "no such file"},
		{"/dev/null", "/dev/null", "not a regular file"},
		{"empty file", write("empty.json", ""), "bad tokenizer.json"},
		{"garbage", write("garbage.json", "\x00\xff{{{not json"), "bad tokenizer.json"},
		{"huge garbage", write("huge.json", strings.Repeat("[", 1<<20)), "bad tokenizer.json"},
		{"wrong shape", write("shape.json", `{"model": 3}`), "model"},
		{"no model", write("nomodel.json", `{"version": "1.0"}`), "missing model"},
		{"version", write("version.json", replace(`"version": "1.0"`, `"version": "2.0"`)), "version"},
		{"unigram model", write("unigram.json", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`), `"Unigram"`},
		{"precompiled normalizer", write("prec.json", replace(`{"type": "Prepend", "prepend": "▁"}`, `{"type": "Precompiled", "precompiled_charsmap": ""}`)), `"Precompiled"`},
		{"unknown pre-tokenizer", write("pre.json", replace(`"pre_tokenizer": null`, `"pre_tokenizer": {"type": "UnicodeScripts"}`)), `"UnicodeScripts"`},
		{"unknown decoder", write("dec.json", replace(`{"type": "Fuse"}`, `{"type": "CTC"}`)), `"CTC"`},
		{"unknown processor", write("proc.json", replace(`"type": "TemplateProcessing"`, `"type": "Mystery"`)), `"Mystery"`},
		{"lookahead regex", write("re.json", replace(`"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)"}, "behavior": "Isolated", "invert": false}`)), "not supported"},
		{"merge out of vocabulary", write("merge.json", replace(`["a", "b"]`, `["a", "zz"]`)), `"zz" out of vocabulary`},
		{"bad legacy merge", write("legacy.json", replace(`["a", "b"]`, `"a b c"`)), "not two tokens"},
		{"dropout", write("dropout.json", replace(`"dropout": null`, `"dropout": 0.1`)), "dropout"},
		{"template without $A", write("tmpl.json", replace(`, {"Sequence": {"id": "A", "type_id": 0}}]`, `]`)), "$A"},
		{"template unknown special", write("tmpl2.json", replace(`"special_tokens": {"<s>"`, `"special_tokens": {"<x>"`)), "missing special token"},
		{"negative id", write("neg.json", replace(`"bc": 12`, `"bc": -12`)), "out of range"},
	}
	for _, c := range cases {
		tk, err := Load(c.path)
		if err == nil {
			t.Errorf("%s: Load succeeded (%v)", c.name, tk != nil)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// A directory holding a tokenizer.json loads it.
	sub := filepath.Join(dir, "model")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "tokenizer.json"), tiny, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(sub); err != nil {
		t.Errorf("Load(dir): %v", err)
	}
}

func TestLegacyMerges(t *testing.T) {
	data, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	legacy := strings.Replace(string(data), `[["a", "b"], ["▁", "ab"], ["b", "c"], ["▁", "c"]]`,
		`["a b", "▁ ab", "b c", "▁ c"]`, 1)
	if legacy == string(data) {
		t.Fatal("merges not found")
	}
	a, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ab c!", "abc", "cab bca", "a b c"} {
		x, _ := a.Encode(s, true)
		y, _ := b.Encode(s, true)
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%q: pairs %v, strings %v", s, x, y)
		}
	}
}

// The byte-level regex scanners, against splits derived by hand from the
// patterns' alternatives.
func TestByteLevelScanners(t *testing.T) {
	split := func(m matcher, s string) []string {
		var out []string
		for _, x := range m.findAll(s) {
			out = append(out, s[x[0]:x[1]])
		}
		return out
	}
	gpt2Cases := map[string][]string{
		// " ?\p{L}+" takes the space before a word; of a run of spaces
		// "\s+(?!\S)" leaves the last one for the next word.
		"Hello  world": {"Hello", " ", " world"},
		"it's 42!!":    {"it", "'s", " 42", "!!"},
		"a\n\nb":       {"a", "\n", "\n", "b"}, // "\n\n" then b: \s+(?!\S) keeps one \n
		"x   ":         {"x", "   "},           // trailing whitespace: one piece
		"I'LL":         {"I", "'", "LL"},       // GPT-2's contractions are case-sensitive
		"é😀":           {"é", "😀"},
	}
	for s, want := range gpt2Cases {
		if got := split(gpt2Scanner{}, s); !reflect.DeepEqual(got, want) {
			t.Errorf("gpt2 %q = %q, want %q", s, got, want)
		}
	}
	llamaCases := map[string][]string{
		"I'LL 12345":  {"I", "'LL", " ", "123", "45"}, // case-insensitive; digits by 3
		"a\n\n  b":    {"a", "\n\n", " ", " b"},       // \s*[\r\n]+ ends at the last newline
		"(x) -> y":    {"(x", ")", " ->", " y"},       // [^\r\n\p{L}\p{N}]?\p{L}+ takes "("
		"foo.\n\nbar": {"foo", ".\n\n", "bar"},        // punctuation takes trailing newlines
	}
	for s, want := range llamaCases {
		if got := split(llama3Scanner{maxDigits: 3}, s); !reflect.DeepEqual(got, want) {
			t.Errorf("llama3 %q = %q, want %q", s, got, want)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := map[string]string{
		"ok":               "ok",
		"\xE2\x82a":        "\uFFFDa", // truncated 3-byte sequence: one U+FFFD
		"\xF0\x9F\x98":     "\uFFFD",
		"\x80\x80":         "\uFFFD\uFFFD",       // stray continuation bytes: one each
		"\xED\xA0\x80":     "\uFFFD\uFFFD\uFFFD", // surrogate: ED then two strays
		"a\xC3\xA9\xFFb":   "aé\uFFFDb",
		"\xF4\x90\x80\x80": "\uFFFD\uFFFD\uFFFD\uFFFD",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizationForms(t *testing.T) {
	cases := []struct {
		in              string
		compat, compose bool
		want            string
	}{
		{"e\u0301", false, true, "é"},
		{"é", false, false, "e\u0301"},
		{"한", false, false, "\u1112\u1161\u11AB"},
		{"\u1112\u1161\u11AB", false, true, "한"},
		{"ﬁ", true, true, "fi"},
		{"ﬁ", false, true, "ﬁ"},
		{"a\u0323\u0307", false, true, "ạ\u0307"}, // dot below (220) composes first
		{"ascii", true, true, "ascii"},
	}
	for _, c := range cases {
		if got := normalizeForm(c.in, c.compat, c.compose); got != c.want {
			t.Errorf("normalize(%q, compat=%v, compose=%v) = %q, want %q", c.in, c.compat, c.compose, got, c.want)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := loadTiny(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				ids, err := tk.Encode("ab c! abc é x", true)
				if err != nil || len(ids) == 0 {
					t.Error(ids, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkEncodeTiny times the whole pipeline on the committed tiny
// tokenizer (BenchmarkEncode, in the interop tests, uses real-size ones).
func BenchmarkEncodeTiny(b *testing.B) {
	tk := loadTiny(b)
	text := strings.Repeat("ab c! abc é x ", 100)
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		if _, err := tk.Encode(text, true); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTinyPair(t *testing.T) {
	tk := loadTiny(t)
	// Pair template "<s> $A $B:1": "ab" is ▁ab (11), "c" is ▁c (13).
	e, err := tk.EncodePair("ab", "c", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 11, 13}; !reflect.DeepEqual(e.IDs, want) {
		t.Errorf("ids = %v, want %v", e.IDs, want)
	}
	if want := []int64{0, 0, 1}; !reflect.DeepEqual(e.TypeIDs, want) {
		t.Errorf("type ids = %v, want %v", e.TypeIDs, want)
	}
	// LongestFirst on a pair: 3 ids for the texts (4 minus the <s>).
	// "ab c!" has 3 ids and "abc" 2; with the shorter first, n1 = 2 and
	// n2 = max(2, 3-2) = 2, too many, so n1 = 3/2 = 1 and n2 = 1+3%2 = 2;
	// swapped back, "ab c!" keeps 2 ids (▁ab ▁c) and "abc" 1 (▁ab).
	tr := tk.WithTruncation(&Truncation{MaxLength: 4, Direction: "Right", Strategy: "LongestFirst"})
	if e, err = tr.EncodePair("ab c!", "abc", true); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 11, 13, 11}; !reflect.DeepEqual(e.IDs, want) {
		t.Errorf("truncated pair = %v, want %v", e.IDs, want)
	}
	// OnlySecond cannot truncate a single sequence (an error in tokenizers).
	only := tk.WithTruncation(&Truncation{MaxLength: 2, Direction: "Right", Strategy: "OnlySecond"})
	if _, err := only.EncodeFull("ab c!", true); err == nil {
		t.Error("OnlySecond truncated a single sequence")
	}
}
