package generate_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/torch"
)

var bg = context.Background()

func TestGreedyFollowsArgmax(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	out, err := generate.Generate(bg, lm, [][]int64{{1, 2, 3}}, generate.MaxNewTokens(5))
	require.NoError(t, err)
	require.Equal(t, [][]int64{{4, 5, 6, 7, 8}}, out.Tokens)
	require.Equal(t, []int{5}, out.Lengths)
	require.Equal(t, []bool{false}, out.Finished)
	// One prefill of the whole prompt, then one token per step with the
	// cache holding the past.
	require.Equal(t, 5, lm.numCalls())
	c := lm.lastCall()
	require.Equal(t, int64(3+3), c.past)
	require.Equal(t, [][]int64{{7}}, c.ids)
	require.Equal(t, [][]int64{{1, 1, 1, 1, 1, 1, 1}}, c.mask)
}

func TestBatchLeftPaddingEOSAndPad(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	var streamed [][2]int64
	out, err := generate.Generate(bg, lm, [][]int64{{1, 2, 3}, {7}}, generate.MaxNewTokens(10),
		generate.EOS(9), generate.PadID(0),
		generate.OnToken(func(row int, tok int64) error {
			streamed = append(streamed, [2]int64{int64(row), tok})
			return nil
		}))
	require.NoError(t, err)
	// Row 1 stops at its EOS after 2 tokens and is padded with 0 until
	// row 0 reaches EOS after 6.
	require.Equal(t, [][]int64{{4, 5, 6, 7, 8, 9}, {8, 9, 0, 0, 0, 0}}, out.Tokens)
	require.Equal(t, []int{6, 2}, out.Lengths)
	require.Equal(t, []bool{true, true}, out.Finished)
	require.Equal(t, [][2]int64{{0, 4}, {1, 8}, {0, 5}, {1, 9}, {0, 6}, {0, 7}, {0, 8}, {0, 9}}, streamed)
	first := lm.calls[0]
	require.Equal(t, [][]int64{{1, 2, 3}, {0, 0, 7}}, first.ids)
	require.Equal(t, [][]int64{{1, 1, 1}, {0, 0, 1}}, first.mask)
	last := lm.lastCall()
	require.Equal(t, [][]int64{{1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1, 1, 1}}, last.mask)
	require.Equal(t, [][]int64{{8}, {0}}, last.ids)

	// The same through LastLogits.
	out2, err := generate.Generate(bg, lastTableLM{lm}, [][]int64{{1, 2, 3}, {7}}, generate.MaxNewTokens(10),
		generate.EOS(9), generate.PadID(0))
	require.NoError(t, err)
	require.Equal(t, out.Tokens, out2.Tokens)
}

func TestPadDefaultsToFirstEOS(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	out, err := generate.Generate(bg, lm, [][]int64{{7}, {1, 2}}, generate.MaxNewTokens(4), generate.EOS(8, 9))
	require.NoError(t, err)
	require.Equal(t, [][]int64{{8, 8, 8, 8}, {3, 4, 5, 6}}, out.Tokens)
	require.Equal(t, [][]int64{{8, 7}, {1, 2}}, lm.calls[0].ids, "the shorter prompt is left-padded with EOS 8")
	require.Equal(t, []int{1, 4}, out.Lengths)
	require.Equal(t, []bool{true, false}, out.Finished)
}

func TestRepetitionPenaltyGreedy(t *testing.T) {
	// After token 0 the logits are [2, 1.5, -1, -2]: greedy repeats 0
	// forever. With penalty 2 the seen tokens' positive logits halve and
	// their negative ones double.
	lm := newTableLM([][]float32{
		{2, 1.5, -1, -2},
		{0.1, 0.3, 0.25, -0.6},
		{-3, -3, -1, -2},
		{0, 0, 0, 1},
	})
	defer lm.Close()
	plain, err := generate.Generate(bg, lm, [][]int64{{0}}, generate.MaxNewTokens(3))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0, 0}, plain.Tokens[0])
	pen, err := generate.Generate(bg, lm, [][]int64{{0}}, generate.MaxNewTokens(3), generate.RepetitionPenalty(2))
	require.NoError(t, err)
	// Step 1: [1, 1.5, -1, -2] → 1. Step 2 (seen 0, 1): [0.05, 0.15, 0.25,
	// -0.6] → 2. Step 3 (seen 0, 1, 2): [-6, -6, -2, -2] → 2 (the first maximum).
	require.Equal(t, []int64{1, 2, 2}, pen.Tokens[0])
}

func TestStopStrings(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	decode := func(ids []int64) (string, error) {
		var b strings.Builder
		for _, id := range ids {
			b.WriteByte(byte('a' + id))
		}
		return b.String(), nil
	}
	out, err := generate.Generate(bg, lm, [][]int64{{0}, {5}}, generate.MaxNewTokens(8), generate.PadID(0),
		generate.StopStrings(decode, "def", "zz"))
	require.NoError(t, err)
	// Row 0 produces b c d e f: "bcdef" contains "def" at its 5th token.
	// Row 1 produces g h i j a b c d: never "def" within 8.
	require.Equal(t, []int{5, 8}, out.Lengths)
	require.Equal(t, []bool{true, false}, out.Finished)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 0, 0, 0}, out.Tokens[0])

	// A stop string may begin in the prompt ("ab" then "c"), but one that
	// lies in the prompt alone ("ab") does not stop anything. Row 1's
	// prompt is left-padded with 0 ('a'), which is no text.
	out, err = generate.Generate(bg, lm, [][]int64{{0, 1}, {1}}, generate.MaxNewTokens(4), generate.PadID(0),
		generate.StopStrings(decode, "bc", "ab"))
	require.NoError(t, err)
	require.Equal(t, []int{1, 1}, out.Lengths)
	require.Equal(t, [][]int64{{2}, {2}}, out.Tokens)

	_, err = generate.Generate(bg, lm, [][]int64{{0}}, generate.StopStrings(func([]int64) (string, error) {
		return "", errors.New("bad bytes")
	}, "x"))
	require.ErrorContains(t, err, "bad bytes")
}

func TestSamplingSeedReproducible(t *testing.T) {
	V := 50
	rows := make([][]float32, V)
	for i := range rows {
		rows[i] = make([]float32, V) // uniform: every token equally likely
	}
	lm := newTableLM(rows)
	defer lm.Close()
	gen := func(seed uint64, opts ...generate.Option) []int64 {
		out, err := generate.Generate(bg, lm, [][]int64{{1}, {2, 3}}, append(opts, generate.MaxNewTokens(30), generate.Sample(seed))...)
		require.NoError(t, err)
		return append(out.Tokens[0], out.Tokens[1]...)
	}
	a, b, c := gen(7), gen(7), gen(8)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	// Other draws from libtorch's generator do not disturb it.
	require.NoError(t, torch.ManualSeed(123))
	torch.Rand([]int64{5}).Close()
	require.Equal(t, a, gen(7))
	// Top-k with distinct logits j/10: only the k largest ids are drawn.
	distinct := make([][]float32, V)
	for i := range distinct {
		distinct[i] = make([]float32, V)
		for j := range distinct[i] {
			distinct[i][j] = float32(j) / 10
		}
	}
	lm2 := newTableLM(distinct)
	defer lm2.Close()
	out, err := generate.Generate(bg, lm2, [][]int64{{0}}, generate.MaxNewTokens(200), generate.Sample(1), generate.TopK(3))
	require.NoError(t, err)
	seen := map[int64]bool{}
	for _, tok := range out.Tokens[0] {
		seen[tok] = true
	}
	require.Equal(t, map[int64]bool{47: true, 48: true, 49: true}, seen)
	out, err = generate.Generate(bg, lm2, [][]int64{{0}}, generate.MaxNewTokens(20), generate.Sample(1), generate.TopK(1))
	require.NoError(t, err)
	for _, tok := range out.Tokens[0] {
		require.Equal(t, int64(49), tok)
	}
}

// TestSamplingDistribution checks that sampling follows softmax(logits/T):
// frequencies over many draws against the exact probabilities.
func TestSamplingDistribution(t *testing.T) {
	logits := []float32{0, 1, 2, math.Float32frombits(0xff800000)} // last is -inf
	rows := [][]float32{logits, logits, logits, logits}
	lm := newTableLM(rows)
	defer lm.Close()
	const n = 4000
	prompts := make([][]int64, 8)
	for i := range prompts {
		prompts[i] = []int64{0}
	}
	counts := make([]float64, 4)
	out, err := generate.Generate(bg, lm, prompts, generate.MaxNewTokens(n/8), generate.Sample(3), generate.Temperature(2))
	require.NoError(t, err)
	for _, r := range out.Tokens {
		for _, tok := range r {
			counts[tok]++
		}
	}
	z := 1 + math.Exp(0.5) + math.Exp(1)
	want := []float64{1 / z, math.Exp(0.5) / z, math.Exp(1) / z, 0}
	for i := range want {
		sd := math.Sqrt(want[i] * (1 - want[i]) / n)
		require.InDelta(t, want[i], counts[i]/n, 5*sd+1e-12, "token %d", i)
	}
}

func TestCancellation(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	n := 0
	out, err := generate.Generate(ctx, lm, [][]int64{{0}}, generate.MaxNewTokens(100),
		generate.OnToken(func(int, int64) error {
			n++
			if n == 3 {
				cancel()
			}
			return nil
		}))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []int64{1, 2, 3}, out.Tokens[0])

	stop := errors.New("enough")
	out, err = generate.Generate(bg, lm, [][]int64{{0}}, generate.MaxNewTokens(100),
		generate.OnToken(func(int, int64) error { return stop }))
	require.ErrorIs(t, err, stop)
	require.Equal(t, []int64{1}, out.Tokens[0])
}

func TestNoLeaks(t *testing.T) {
	lm := newCycleLM(16)
	defer lm.Close()
	before := reftest.SettledLiveTensors()
	live := map[int]int{}
	step := 0
	for _, opts := range [][]generate.Option{
		{generate.MaxNewTokens(300)},
		{generate.MaxNewTokens(300), generate.Sample(1), generate.Temperature(0.7), generate.TopK(5), generate.TopP(0.9), generate.RepetitionPenalty(1.3)},
	} {
		step = 0
		_, err := generate.Generate(bg, lm, [][]int64{{1, 2}, {3}}, append(opts, generate.OnToken(func(row int, _ int64) error {
			if row == 0 {
				step++
				if step == 10 || step == 300 {
					live[step] = reftest.SettledLiveTensors()
				}
			}
			return nil
		}))...)
		require.NoError(t, err)
		require.Equal(t, live[10], live[300], "live tensors grow during a long generation")
		require.Equal(t, before, reftest.SettledLiveTensors())
	}
	// Error paths free everything too.
	_, err := generate.Generate(bg, lm, [][]int64{{99}}, generate.MaxNewTokens(3))
	require.Error(t, err)
	require.Equal(t, before, reftest.SettledLiveTensors())
}

func TestBadInput(t *testing.T) {
	lm := newCycleLM(10)
	defer lm.Close()
	p := [][]int64{{1}}
	for _, c := range []struct {
		name    string
		prompts [][]int64
		opts    []generate.Option
		want    string
	}{
		{"max_new_tokens", p, []generate.Option{generate.MaxNewTokens(-1)}, "MaxNewTokens(-1)"},
		{"top_p 0", p, []generate.Option{generate.Sample(0), generate.TopP(0)}, "TopP(0)"},
		{"top_p > 1", p, []generate.Option{generate.Sample(0), generate.TopP(1.5)}, "TopP(1.5)"},
		{"top_p NaN", p, []generate.Option{generate.Sample(0), generate.TopP(math.NaN())}, "TopP(NaN)"},
		{"top_k", p, []generate.Option{generate.Sample(0), generate.TopK(0)}, "TopK(0)"},
		{"temperature", p, []generate.Option{generate.Sample(0), generate.Temperature(0)}, "Temperature(0)"},
		{"temperature inf", p, []generate.Option{generate.Sample(0), generate.Temperature(math.Inf(1))}, "Temperature(+Inf)"},
		{"penalty", p, []generate.Option{generate.RepetitionPenalty(-1)}, "RepetitionPenalty(-1)"},
		{"warper without sampling", p, []generate.Option{generate.TopK(3)}, "add Sample"},
		{"pad", [][]int64{{1}, {2, 3}}, []generate.Option{generate.PadID(-2)}, "PadID(-2)"},
		{"stop string", p, []generate.Option{generate.StopStrings(func([]int64) (string, error) { return "", nil }, "")}, "empty stop string"},
		{"decode", p, []generate.Option{generate.StopStrings(nil, "x")}, "nil decode"},
		{"no prompts", nil, nil, "no prompts"},
		{"empty prompt", [][]int64{{1}, {}}, nil, "prompt 1 is empty"},
		{"negative id", [][]int64{{1, -3}}, nil, "negative token id -3"},
		{"out of vocabulary", [][]int64{{1, 10}}, nil, "generate: model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := generate.Generate(bg, lm, c.prompts, c.opts...)
			require.ErrorContains(t, err, c.want)
		})
	}
	_, err := generate.Generate(bg, nil, p)
	require.ErrorContains(t, err, "nil model")
	out, err := generate.Generate(bg, lm, p, generate.MaxNewTokens(0))
	require.NoError(t, err)
	require.Equal(t, [][]int64{{}}, out.Tokens)
}

// TestProcessors checks the processors on hand-derived cases.
func TestProcessors(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	inf := math.Inf(-1)
	get := func(x *torch.Tensor) []float64 {
		f := torch.Must(torch.ToSlice[float32](x.Contiguous()))
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	x := s.Own(torch.FromSlice([]float32{1, 3, 2, 3, -1, -2, 0.5, 4}, 2, 4))
	require.Equal(t, []float64{inf, 3, inf, 3, inf, inf, 0.5, 4}, get(generate.FilterTopK(x, 2)))
	require.Equal(t, []float64{1, 3, 2, 3, -1, -2, 0.5, 4}, get(generate.FilterTopK(x, 9)))
	require.Equal(t, []float64{0.5, 1.5, 1, 1.5, -0.5, -1, 0.25, 2}, get(generate.ScaleTemperature(x, 2)))

	// Probabilities 0.2, 0.3, 0.5: sorted ascending, cumulative 0.2, 0.5, 1.
	// p = 0.6 removes cumulative ≤ 0.4 (the 0.2); p = 0.4 removes ≤ 0.6 (0.2, 0.3).
	lp := s.Own(torch.FromSlice([]float32{float32(math.Log(0.3)), float32(math.Log(0.5)), float32(math.Log(0.2))}, 1, 3))
	require.Equal(t, []bool{false, false, true}, isInf(get(generate.FilterTopP(lp, 0.6))))
	require.Equal(t, []bool{true, false, true}, isInf(get(generate.FilterTopP(lp, 0.4))))
	require.Equal(t, []bool{true, false, true}, isInf(get(generate.FilterTopP(lp, 1e-9))), "the top token is always kept")
	require.Equal(t, []bool{false, false, false}, isInf(get(generate.FilterTopP(lp, 1))))

	ids := s.Own(torch.FromSlice([]int64{0, 0, 2, 1, 3, 3}, 2, 3))
	// Row 0 sees 0 and 2; row 1 sees 1 and 3.
	require.Equal(t, []float64{0.5, 3, 1, 3, -1, -4, 0.5, 2}, get(generate.PenalizeRepetition(x, ids, 2)))
	require.NoError(t, s.Err())

	for _, bad := range []*torch.Tensor{
		generate.FilterTopK(x, 0), generate.FilterTopP(x, 0), generate.FilterTopP(x, 1.01),
		generate.ScaleTemperature(x, 0), generate.PenalizeRepetition(x, ids, 0),
		generate.PenalizeRepetition(x, s.Own(torch.FromSlice([]int64{1}, 1, 1)), 2),
		generate.FilterTopK(s.Own(torch.FromSlice([]float32{1}, 1)), 1),
	} {
		require.Error(t, bad.Err())
	}
}

func isInf(x []float64) []bool {
	out := make([]bool, len(x))
	for i, v := range x {
		out[i] = math.IsInf(v, -1)
	}
	return out
}
