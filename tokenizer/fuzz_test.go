package tokenizer

import (
	"os"
	"testing"
	"unicode/utf8"
)

// Small tokenizers of the other kinds for the fuzz targets. Their added
// tokens take the id after the model's vocabulary, as tokenizers assigns
// it: an added token whose id is also a vocabulary token's shadows it in
// decoding, in tokenizers as in golora (fuzzing found that with an earlier
// version of fuzzByteLevel whose vocabulary skipped an id; the regression
// case testdata/fuzz/FuzzEncode/202b5f531c71bf7d keeps the input).
const (
	fuzzWordPiece = `{"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
 "strip_accents": null, "lowercase": true}, "pre_tokenizer": {"type": "BertPreTokenizer"},
 "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
 "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
 "added_tokens": [{"id": 1, "content": "[CLS]", "special": true, "normalized": false, "single_word": false, "lstrip": false, "rstrip": false}],
 "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
 "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##aff": 4, "##able": 5, "hello": 6, "!": 7, "a": 8, "##a": 9}}}`
	fuzzByteLevel = `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
 {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}, "decoder": {"type": "ByteLevel"},
 "added_tokens": [{"id": 5, "content": "<|x|>", "special": true, "normalized": false, "single_word": false, "lstrip": true, "rstrip": true}],
 "model": {"type": "BPE", "ignore_merges": true, "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}, "merges": ["a b", "Ġ ab"]}}`
)

func FuzzLoad(f *testing.F) {
	tiny, err := os.ReadFile(tinyPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tiny)
	f.Add([]byte(fuzzWordPiece))
	f.Add([]byte(fuzzByteLevel))
	f.Add([]byte(`{"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(data)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab c!", "Hello <s> wörld 中文 😀\n\t  x"} {
			ids, err := tk.Encode(s, true)
			if err != nil {
				continue
			}
			_, _ = tk.Decode(ids, false)
			_, _ = tk.EncodeFull(s, true)
		}
	})
}

func FuzzEncode(f *testing.F) {
	tiny, err := os.ReadFile(tinyPath)
	if err != nil {
		f.Fatal(err)
	}
	var toks []*Tokenizer
	for _, data := range []string{string(tiny), fuzzWordPiece, fuzzByteLevel} {
		tk, err := Parse([]byte(data))
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tk)
	}
	for _, s := range []string{"", "ab c!", "a<s>b", "Unaffable HELLO!", "é x\u0301 中文😀", "'s  \n\n ab<|x|> ab", "\xff\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, tk := range toks {
			ids, err := tk.Encode(s, true)
			if !utf8.ValidString(s) {
				if err == nil {
					t.Fatalf("Encode accepted invalid UTF-8 %q", s)
				}
				continue
			}
			if err != nil {
				if i == 1 { // WordPiece: [UNK] is in the vocabulary
					t.Fatalf("Encode(%q): %v", s, err)
				}
				continue
			}
			out, err := tk.Decode(ids, false)
			if err != nil {
				t.Fatalf("tokenizer %d: Decode(Encode(%q)) = %v", i, s, err)
			}
			if !utf8.ValidString(out) {
				t.Fatalf("tokenizer %d: Decode gave invalid UTF-8 %q", i, out)
			}
			// Byte-level BPE is lossless on valid UTF-8 whose bytes all
			// have tokens (a, b, and the space).
			if i == 2 {
				ok := true
				for j := 0; j < len(s); j++ {
					if s[j] != 'a' && s[j] != 'b' && s[j] != ' ' {
						ok = false
					}
				}
				if ok && out != s {
					t.Fatalf("byte-level round trip %q -> %v -> %q", s, ids, out)
				}
			}
			ds := tk.NewDecodeStream(false)
			for _, id := range ids {
				if _, err := ds.Step(id); err != nil {
					t.Fatalf("tokenizer %d: stream %q: %v", i, s, err)
				}
			}
		}
	})
}
