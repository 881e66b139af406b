//go:build interop

package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The expected values come from the Python tokenizers library, written by
// testdata/interop_tokenizers.py (make interop-refs).

type interopCase struct {
	IDs          []int64   `json:"ids"`
	IDsPlain     []int64   `json:"ids_plain"`
	FullIDs      []int64   `json:"full_ids"`
	FullTypeIDs  []int64   `json:"full_type_ids"`
	FullMask     []int64   `json:"full_mask"`
	FullPlainIDs []int64   `json:"full_plain_ids"`
	Decode       string    `json:"decode"`
	DecodeSkip   string    `json:"decode_skip"`
	DecodePlain  string    `json:"decode_plain"`
	Stream       []*string `json:"stream"`
	StreamSkip   []*string `json:"stream_skip"`
}

type interopBatch struct {
	Start   int       `json:"start"`
	N       int       `json:"n"`
	IDs     [][]int64 `json:"ids"`
	TypeIDs [][]int64 `json:"type_ids"`
	Mask    [][]int64 `json:"mask"`
}

type interopTok struct {
	VocabSize int              `json:"vocab_size"`
	Cases     []interopCase    `json:"cases"`
	Batches   []interopBatch   `json:"batches"`
	TokenToID map[string]int64 `json:"token_to_id"`
}

type interopFile struct {
	Version    string                `json:"tokenizers_version"`
	Strings    []string              `json:"strings"`
	Tokenizers map[string]interopTok `json:"tokenizers"`
}

var (
	interopOnce sync.Once
	interopData *interopFile
	interopErr  error
)

const interopDir = "testdata/interop"

func loadInterop(t testing.TB) *interopFile {
	t.Helper()
	interopOnce.Do(func() {
		data, err := os.ReadFile(filepath.Join(interopDir, "expected.json"))
		if err != nil {
			interopErr = err
			return
		}
		var f interopFile
		if err := json.Unmarshal(data, &f); err != nil {
			interopErr = err
			return
		}
		interopData = &f
	})
	if interopErr != nil {
		t.Fatalf("interop reference outputs missing or unreadable (%v): run make interop-refs "+
			"(python tokenizer/testdata/interop_tokenizers.py)", interopErr)
	}
	return interopData
}

func interopNames(f *interopFile) []string {
	var names []string
	for n := range f.Tokenizers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func loadInteropTok(t testing.TB, name string) *Tokenizer {
	t.Helper()
	tk, err := Load(filepath.Join(interopDir, name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return tk
}

// mismatches collects failures and reports the first few.
type mismatches struct {
	t     *testing.T
	count int
}

func (m *mismatches) add(format string, args ...any) {
	m.count++
	if m.count <= 8 {
		m.t.Errorf(format, args...)
	}
}

func eqIDs(a, b []int64) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestInteropEncode(t *testing.T) {
	f := loadInterop(t)
	if len(f.Tokenizers) < 5 || len(f.Strings) < 1000 {
		t.Fatalf("reference file too small: %d tokenizers, %d strings", len(f.Tokenizers), len(f.Strings))
	}
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			exp := f.Tokenizers[name]
			tk := loadInteropTok(t, name)
			m := &mismatches{t: t}
			for i, s := range f.Strings {
				c := exp.Cases[i]
				got, err := tk.Encode(s, true)
				if err != nil || !eqIDs(got, c.IDs) {
					m.add("Encode(%q, true) = %v, %v; tokenizers: %v", s, got, err, c.IDs)
				}
				got, err = tk.Encode(s, false)
				if err != nil || !eqIDs(got, c.IDsPlain) {
					m.add("Encode(%q, false) = %v, %v; tokenizers: %v", s, got, err, c.IDsPlain)
				}
			}
			t.Logf("%s: %d strings x 2 (add_special true/false), %d mismatches (tokenizers %s)",
				name, len(f.Strings), m.count, f.Version)
		})
	}
}

func TestInteropEncodeFull(t *testing.T) {
	f := loadInterop(t)
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			exp := f.Tokenizers[name]
			tk := loadInteropTok(t, name)
			m := &mismatches{t: t}
			for i, s := range f.Strings {
				c := exp.Cases[i]
				e, err := tk.EncodeFull(s, true)
				if err != nil || !eqIDs(e.IDs, c.FullIDs) || !eqIDs(e.TypeIDs, c.FullTypeIDs) || !eqIDs(e.AttentionMask, c.FullMask) {
					m.add("EncodeFull(%q, true) = %+v, %v; tokenizers: ids %v types %v mask %v", s, e, err, c.FullIDs, c.FullTypeIDs, c.FullMask)
				}
				e, err = tk.EncodeFull(s, false)
				if err != nil || !eqIDs(e.IDs, c.FullPlainIDs) {
					m.add("EncodeFull(%q, false) = %v, %v; tokenizers: %v", s, e.IDs, err, c.FullPlainIDs)
				}
			}
			t.Logf("%s: %d strings, truncation %+v, padding %+v, %d mismatches", name, len(f.Strings), tk.Truncation(), tk.Padding(), m.count)
		})
	}
}

func TestInteropEncodeBatch(t *testing.T) {
	f := loadInterop(t)
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			exp := f.Tokenizers[name]
			tk := loadInteropTok(t, name)
			m := &mismatches{t: t}
			for _, b := range exp.Batches {
				got, err := tk.EncodeBatch(f.Strings[b.Start:b.Start+b.N], true)
				if err != nil {
					m.add("EncodeBatch at %d: %v", b.Start, err)
					continue
				}
				for i := range b.IDs {
					if !eqIDs(got.IDs[i], b.IDs[i]) || !eqIDs(got.TypeIDs[i], b.TypeIDs[i]) || !eqIDs(got.AttentionMask[i], b.Mask[i]) {
						m.add("EncodeBatch row %d (%q): ids %v mask %v; tokenizers: ids %v mask %v",
							b.Start+i, f.Strings[b.Start+i], got.IDs[i], got.AttentionMask[i], b.IDs[i], b.Mask[i])
					}
				}
			}
			t.Logf("%s: %d batches, %d mismatches", name, len(exp.Batches), m.count)
		})
	}
}

func TestInteropDecode(t *testing.T) {
	f := loadInterop(t)
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			exp := f.Tokenizers[name]
			tk := loadInteropTok(t, name)
			m := &mismatches{t: t}
			roundTrips := 0
			for i, s := range f.Strings {
				c := exp.Cases[i]
				if got, err := tk.Decode(c.IDs, false); err != nil || got != c.Decode {
					m.add("Decode(%v, false) = %q, %v; tokenizers: %q", c.IDs, got, err, c.Decode)
				}
				if got, err := tk.Decode(c.IDs, true); err != nil || got != c.DecodeSkip {
					m.add("Decode(%v, true) = %q, %v; tokenizers: %q", c.IDs, got, err, c.DecodeSkip)
				}
				if got, err := tk.Decode(c.IDsPlain, true); err != nil || got != c.DecodePlain {
					m.add("Decode(%v, true) = %q, %v; tokenizers: %q", c.IDsPlain, got, err, c.DecodePlain)
				}
				// Round trip through Go alone: Go's decode of Go's ids is
				// tokenizers' decode of its ids (which is the input text
				// whenever the tokenizer is lossless on it).
				ids, err := tk.Encode(s, false)
				if err != nil {
					m.add("Encode(%q): %v", s, err)
					continue
				}
				got, err := tk.Decode(ids, true)
				if err != nil || got != c.DecodePlain {
					m.add("round trip %q: Decode(Encode) = %q, %v; tokenizers: %q", s, got, err, c.DecodePlain)
				}
				if got == s {
					roundTrips++
				}
			}
			t.Logf("%s: %d strings x 3 decodes, %d mismatches; %d round-trip to the exact input",
				name, len(f.Strings), m.count, roundTrips)
		})
	}
}

func TestInteropDecodeStream(t *testing.T) {
	f := loadInterop(t)
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			exp := f.Tokenizers[name]
			tk := loadInteropTok(t, name)
			m := &mismatches{t: t}
			steps := 0
			check := func(ids []int64, want []*string, skip bool) {
				ds := tk.NewDecodeStream(skip)
				for k, id := range ids {
					got, err := ds.Step(id)
					w := ""
					if want[k] != nil {
						w = *want[k]
					}
					steps++
					if err != nil || got != w {
						m.add("stream(skip=%v) %v step %d: %q, %v; tokenizers: %q", skip, ids, k, got, err, w)
						return
					}
				}
			}
			for _, c := range exp.Cases {
				if c.Stream == nil {
					continue
				}
				check(c.IDsPlain, c.Stream, false)
				check(c.IDs, c.StreamSkip, true)
			}
			t.Logf("%s: %d stream steps, %d mismatches", name, steps, m.count)
		})
	}
}

func TestInteropVocab(t *testing.T) {
	f := loadInterop(t)
	for _, name := range interopNames(f) {
		exp := f.Tokenizers[name]
		tk := loadInteropTok(t, name)
		if got := tk.VocabSize(); got != exp.VocabSize {
			t.Errorf("%s: VocabSize() = %d; tokenizers: %d", name, got, exp.VocabSize)
		}
		for tok, id := range exp.TokenToID {
			if got, ok := tk.TokenToID(tok); !ok || got != id {
				t.Errorf("%s: TokenToID(%q) = %d, %v; tokenizers: %d", name, tok, got, ok, id)
			}
			if got, ok := tk.IDToToken(id); !ok || got != tok {
				t.Errorf("%s: IDToToken(%d) = %q, %v; want %q", name, id, got, ok, tok)
			}
		}
	}
}

// benchText is the long document of the reference strings, repeated.
func benchText(tb testing.TB) string {
	f := loadInterop(tb)
	long := ""
	for _, s := range f.Strings {
		if len(s) > len(long) {
			long = s
		}
	}
	return strings.Repeat(long+"\n", 8)
}

// BenchmarkEncode times Encode of the same text bench_twin.py times with
// tokenizers; see BENCH.md.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	f := loadInterop(b)
	for _, name := range interopNames(f) {
		tk := loadInteropTok(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := tk.Encode(text, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeBatch times EncodeBatch on the reference strings.
func BenchmarkEncodeBatch(b *testing.B) {
	f := loadInterop(b)
	for _, name := range interopNames(f) {
		tk := loadInteropTok(b, name)
		n := 0
		for _, s := range f.Strings {
			n += len(s)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				if _, err := tk.EncodeBatch(f.Strings, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestInteropTables checks that tables.go is what testdata/mktables.py makes
// from the installed tokenizers (regenerate with go generate otherwise).
func TestInteropTables(t *testing.T) {
	loadInterop(t)
	want, err := os.ReadFile(filepath.Join(interopDir, "tables.go.txt"))
	if err != nil {
		t.Fatalf("%v: run make interop-refs", err)
	}
	got, err := os.ReadFile("tables.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("tables.go differs from the tables of the installed tokenizers; run go generate ./tokenizer/")
	}
}

type interopPair struct {
	A            string  `json:"a"`
	B            string  `json:"b"`
	IDs          []int64 `json:"ids"`
	TypeIDs      []int64 `json:"type_ids"`
	IDsPlain     []int64 `json:"ids_plain"`
	TypeIDsPlain []int64 `json:"type_ids_plain"`
	FullIDs      []int64 `json:"full_ids"`
	FullTypeIDs  []int64 `json:"full_type_ids"`
	FullMask     []int64 `json:"full_mask"`
}

func TestInteropEncodePair(t *testing.T) {
	f := loadInterop(t)
	data, err := os.ReadFile(filepath.Join(interopDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pf struct {
		Tokenizers map[string]struct {
			Pairs []interopPair `json:"pairs"`
		} `json:"tokenizers"`
	}
	if err := json.Unmarshal(data, &pf); err != nil {
		t.Fatal(err)
	}
	for _, name := range interopNames(f) {
		t.Run(name, func(t *testing.T) {
			tk := loadInteropTok(t, name)
			bare := tk.WithTruncation(nil).WithPadding(nil)
			pairs := pf.Tokenizers[name].Pairs
			if len(pairs) < 300 {
				t.Fatalf("only %d pairs", len(pairs))
			}
			m := &mismatches{t: t}
			for _, p := range pairs {
				e, err := bare.EncodePair(p.A, p.B, true)
				if err != nil || !eqIDs(e.IDs, p.IDs) || !eqIDs(e.TypeIDs, p.TypeIDs) {
					m.add("EncodePair(%q, %q, true) = %v %v, %v; tokenizers: %v %v", p.A, p.B, e.IDs, e.TypeIDs, err, p.IDs, p.TypeIDs)
				}
				e, err = bare.EncodePair(p.A, p.B, false)
				if err != nil || !eqIDs(e.IDs, p.IDsPlain) || !eqIDs(e.TypeIDs, p.TypeIDsPlain) {
					m.add("EncodePair(%q, %q, false) = %v %v, %v; tokenizers: %v %v", p.A, p.B, e.IDs, e.TypeIDs, err, p.IDsPlain, p.TypeIDsPlain)
				}
				e, err = tk.EncodePair(p.A, p.B, true)
				if err != nil || !eqIDs(e.IDs, p.FullIDs) || !eqIDs(e.TypeIDs, p.FullTypeIDs) || !eqIDs(e.AttentionMask, p.FullMask) {
					m.add("EncodePair(%q, %q) with the file's settings = %+v, %v; tokenizers: %v %v %v", p.A, p.B, e, err, p.FullIDs, p.FullTypeIDs, p.FullMask)
				}
			}
			t.Logf("%s: %d pairs x 3 encodings, %d mismatches", name, len(pairs), m.count)
		})
	}
}
