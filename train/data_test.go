package train

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// byteEncoder encodes each byte b as id b-'a'+10 ('a' is 10), with BOS 1
// as its special token.
type byteEncoder struct{}

func (byteEncoder) Encode(text string, addSpecial bool) ([]int64, error) {
	var ids []int64
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, b := range []byte(text) {
		if b < 'a' || b > 'z' {
			return nil, fmt.Errorf("byte %q outside a-z", b)
		}
		ids = append(ids, int64(b-'a')+10)
	}
	return ids, nil
}

const ign = IgnoreIndex

func TestReadExamples(t *testing.T) {
	o := DataOptions{EOS: 2, MaxID: 40}
	cases := []struct {
		name, data string
		want       []Example
	}{
		{"d.txt", "ab\n\n  \nc\r\n", []Example{
			{IDs: []int64{1, 10, 11, 2}, Labels: []int64{1, 10, 11, 2}},
			{IDs: []int64{1, 12, 2}, Labels: []int64{1, 12, 2}},
		}},
		{"d.jsonl", `{"text": "ba"}` + "\n\n" + `{"prompt": "ab", "completion": "c"}` + "\n", []Example{
			{IDs: []int64{1, 11, 10, 2}, Labels: []int64{1, 11, 10, 2}},
			// The prompt (with its BOS) is not learnt; the completion
			// and the EOS are.
			{IDs: []int64{1, 10, 11, 12, 2}, Labels: []int64{ign, ign, ign, 12, 2}},
		}},
	}
	for _, c := range cases {
		got, err := ReadExamples(c.name, strings.NewReader(c.data), byteEncoder{}, o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if got := (Example{Labels: []int64{ign, 3, ign, 4}}).Tokens(); got != 2 {
		t.Errorf("Tokens = %d, want 2", got)
	}

	bad := []struct{ name, data, want string }{
		{"e.txt", "\n \n", "e.txt holds no example"},
		{"e.jsonl", "", "e.jsonl holds no example"},
		{"b.jsonl", `{"text": "a"}` + "\n" + `{"text": }`, "b.jsonl:2: not a JSON object"},
		{"f.jsonl", `{"input": "a"}`, `f.jsonl:1: want a "text" field`},
		{"p.jsonl", `{"prompt": "a", "completion": ""}`, "p.jsonl:1: no token to learn"},
		{"u.txt", "ab\nA\n", "u.txt:2: tokenizing"},
	}
	for _, c := range bad {
		_, err := ReadExamples(c.name, strings.NewReader(c.data), byteEncoder{}, DataOptions{EOS: -1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	_, err := ReadExamples("v.txt", strings.NewReader("z\n"), byteEncoder{}, DataOptions{EOS: -1, MaxID: 20})
	if err == nil || !strings.Contains(err.Error(), "token id 35 outside") {
		t.Errorf("an id beyond MaxID: %v", err)
	}
}

func TestPackPad(t *testing.T) {
	ex := []Example{
		{IDs: []int64{1, 10, 11, 2}, Labels: []int64{1, 10, 11, 2}},
		{IDs: []int64{1, 12, 13, 14, 2}, Labels: []int64{ign, ign, 13, 14, 2}},
	}
	rows, err := Pack(ex, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{IDs: []int64{1, 10, 11}, Labels: []int64{1, 10, 11}},
		{IDs: []int64{2, 1, 12}, Labels: []int64{2, ign, ign}},
		{IDs: []int64{13, 14, 2}, Labels: []int64{13, 14, 2}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Pack(3) = %v, want %v", rows, want)
	}
	rows, err = Pack(ex, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = []Row{
		{IDs: []int64{1, 10, 11, 2}, Labels: []int64{1, 10, 11, 2}},
		{IDs: []int64{1, 12, 13, 14}, Labels: []int64{ign, ign, 13, 14}},
	}
	// The final partial row, one token ([2]), has nothing to predict from:
	// Pack keeps partial rows of two tokens or more only.
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Pack(4) = %v, want %v", rows, want)
	}

	rows, err = Pad(ex, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = []Row{
		{IDs: []int64{1, 10, 11, 2}, Labels: []int64{1, 10, 11, 2}},
		{IDs: []int64{1, 12, 13, 14}, Labels: []int64{ign, ign, 13, 14}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Pad(4) = %v, want %v", rows, want)
	}
	rows, err = Pad(ex, 6, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = []Row{
		{IDs: []int64{1, 10, 11, 2, 0, 0}, Labels: []int64{1, 10, 11, 2, ign, ign}},
		{IDs: []int64{1, 12, 13, 14, 2, 0}, Labels: []int64{ign, ign, 13, 14, 2, ign}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Pad(6) = %v, want %v", rows, want)
	}
	// Truncated to 2 tokens, the second example has nothing to learn.
	rows, err = Pad(ex, 2, 0)
	if err != nil || len(rows) != 1 {
		t.Errorf("Pad(2) = %v, %v; want the first example only", rows, err)
	}
	if _, err := Pad(ex[1:], 2, 0); err == nil {
		t.Error("Pad with nothing to learn: no error")
	}
	if _, err := Pack(ex, 1, 0); err == nil {
		t.Error("Pack(1): no error")
	}
}

func TestSplit(t *testing.T) {
	var ex []Example
	for i := range 20 {
		ex = append(ex, Example{IDs: []int64{int64(i)}})
	}
	tr, ev, err := Split(ex, 0.1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 18 || len(ev) != 2 {
		t.Fatalf("Split 20 by 0.1: %d and %d", len(tr), len(ev))
	}
	var all []int64
	for _, e := range append(append([]Example{}, tr...), ev...) {
		all = append(all, e.IDs[0])
	}
	slices.Sort(all)
	for i, v := range all {
		if v != int64(i) {
			t.Fatalf("Split lost or duplicated examples: %v", all)
		}
	}
	tr2, ev2, _ := Split(ex, 0.1, 3)
	if !reflect.DeepEqual(tr, tr2) || !reflect.DeepEqual(ev, ev2) {
		t.Error("Split is not a function of its seed")
	}
	if _, _, err := Split(ex[:1], 0.5, 0); err == nil {
		t.Error("Split of one example: no error")
	}
}

// TestLoader: every epoch visits each row once, in an order that depends
// on the seed and the epoch; a loader moved to a saved position goes on
// exactly as the original.
func TestLoader(t *testing.T) {
	var rows []Row
	for i := range 10 {
		rows = append(rows, Row{IDs: []int64{int64(i)}})
	}
	l, err := NewLoader(rows, 3, 9)
	if err != nil {
		t.Fatal(err)
	}
	if l.BatchesPerEpoch() != 4 {
		t.Errorf("BatchesPerEpoch = %d, want 4", l.BatchesPerEpoch())
	}
	epoch := func() []int64 {
		var ids []int64
		for range 4 {
			for _, r := range l.Next() {
				ids = append(ids, r.IDs[0])
			}
		}
		return ids
	}
	e0, e1 := epoch(), epoch()
	for _, e := range [][]int64{e0, e1} {
		s := slices.Clone(e)
		slices.Sort(s)
		if !reflect.DeepEqual(s, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("an epoch visited %v", e)
		}
	}
	if reflect.DeepEqual(e0, e1) {
		t.Error("two epochs in the same order")
	}
	// Saved in the middle of epoch 2, restored in a new loader.
	l.Next()
	pos := l.Position()
	if pos != (DataPosition{Epoch: 2, Index: 3}) {
		t.Errorf("position %+v, want epoch 2 index 3", pos)
	}
	m, _ := NewLoader(rows, 3, 9)
	if err := m.SetPosition(pos); err != nil {
		t.Fatal(err)
	}
	for range 7 {
		a, b := l.Next(), m.Next()
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("restored loader gives %v, the original %v", b, a)
		}
	}
	if err := m.SetPosition(DataPosition{Epoch: 0, Index: 11}); err == nil {
		t.Error("SetPosition beyond the data: no error")
	}
	if _, err := NewLoader(nil, 1, 0); err == nil {
		t.Error("NewLoader with no rows: no error")
	}
}
