package schedule_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/optim/schedule"
)

const (
	refPath       = "testdata/schedules.safetensors"
	refRegenerate = "/usr/bin/python3 optim/schedule/testdata/gen_schedule.py"

	// refTol bounds the error against PyTorch at every step, measured
	// against the schedule's scale, its base learning rate:
	//
	//	|LR(t) − PyTorch's lr(t)| ≤ refTol · baseLR
	//
	// (the convention of internal/reftest.RelErr: differences judged at the
	// scale of the values, not element by element). An element-wise
	// relative error is no measure near the end of a cosine decay to 0:
	// there transformers computes 0.5·(1 + cos(π·p)) with cos(π·p) ≈ −1,
	// which cancels, so that a last-bit difference between Go's math.Cos
	// and the C library's cos that Python calls (about a quarter of the
	// steps) becomes a relative difference of 2e-12 at step 299 of a
	// 300-step run, and larger in longer runs. The test logs the
	// element-wise relative error too.
	refTol = 1e-12
)

// refCase is one case of the reference file's "cases" metadata (see
// testdata/gen_schedule.py).
type refCase struct {
	Name      string             `json:"name"`
	Kind      string             `json:"kind"`
	Args      map[string]float64 `json:"args"`
	Steps     int                `json:"steps"`
	Reference string             `json:"reference"`
}

// loadRefs reads the reference file: the cases and their learning rates.
func loadRefs(t *testing.T) ([]refCase, map[string][]float64) {
	t.Helper()
	entries, meta, err := safetensors.ReadFile(refPath)
	require.NoErrorf(t, err, "%s: regenerate with `%s` (from the repository root) or make refs", refPath, refRegenerate)
	var cases []refCase
	require.NoErrorf(t, json.Unmarshal([]byte(meta["cases"]), &cases), "%s: metadata \"cases\"", refPath)
	require.NotEmpty(t, cases, "%s: no cases", refPath)
	lrs := make(map[string][]float64, len(entries))
	for _, c := range cases {
		e, ok := entries[c.Name]
		require.Truef(t, ok, "%s: no tensor %q", refPath, c.Name)
		require.Equalf(t, "F64", e.DType, "%s: %s", refPath, c.Name)
		require.Equalf(t, []int64{int64(c.Steps)}, e.Shape, "%s: %s", refPath, c.Name)
		v := make([]float64, c.Steps)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(e.Data[8*i:]))
		}
		lrs[c.Name] = v
	}
	t.Logf("%s: %d cases, written with torch %s (transformers %s functions)", refPath, len(cases), meta["torch"], meta["transformers"])
	return cases, lrs
}

// build makes the schedule a reference case describes.
func build(t *testing.T, c refCase) schedule.Schedule {
	t.Helper()
	num := func(name string) float64 {
		v, ok := c.Args[name]
		require.Truef(t, ok, "%s: no argument %q", c.Name, name)
		return v
	}
	count := func(name string) int {
		v := num(name)
		require.Equalf(t, math.Trunc(v), v, "%s: %s = %v is not an integer", c.Name, name, v)
		return int(v)
	}
	var (
		s   schedule.Schedule
		err error
	)
	switch c.Kind {
	case "constant":
		s, err = schedule.Constant(num("lr"))
	case "constant_warmup":
		s, err = schedule.ConstantWarmup(num("base_lr"), count("warmup"))
	case "warmup_cosine":
		s, err = schedule.WarmupCosine(num("base_lr"), count("warmup"), count("total"), num("floor"))
	case "warmup_linear":
		s, err = schedule.WarmupLinear(num("base_lr"), count("warmup"), count("total"), num("floor"))
	case "step_decay":
		s, err = schedule.StepDecay(num("base_lr"), count("step_size"), num("gamma"))
	default:
		t.Fatalf("%s: unknown kind %q", c.Name, c.Kind)
	}
	require.NoErrorf(t, err, "%s", c.Name)
	return s
}

// relErr is |got − want| / scale: 0 when they are equal (0 == 0
// included), +Inf when scale is 0 and they differ, or for a NaN.
func relErr(got, want, scale float64) float64 {
	if got == want {
		return 0
	}
	if scale == 0 || math.IsNaN(got) || math.IsNaN(want) {
		return math.Inf(1)
	}
	return math.Abs(got-want) / math.Abs(scale)
}

// baseLR is the base learning rate of a reference case.
func baseLR(c refCase) float64 {
	if c.Kind == "constant" {
		return c.Args["lr"]
	}
	return c.Args["base_lr"]
}

// recorder is a Target that remembers the learning rates set on it.
type recorder struct{ lrs []float64 }

func (r *recorder) SetLR(lr float64) { r.lrs = append(r.lrs, lr) }

// TestReferences checks the learning rate of every step of every reference
// case, written by PyTorch's torch.optim.lr_scheduler (StepLR, ConstantLR,
// and LambdaLR with transformers' lambdas) driving a real optimizer,
// against Schedule.LR, and checks that a Scheduler sets the same
// learning rates, bit for bit, on its target.
func TestReferences(t *testing.T) {
	cases, refs := loadRefs(t)
	type stat struct {
		cases, steps, exact int
		maxErr, maxElem     float64
		worst, worstElem    string
	}
	stats := map[string]*stat{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			want := refs[c.Name]
			s := build(t, c)
			st := stats[c.Kind]
			if st == nil {
				st = &stat{}
				stats[c.Kind] = st
			}
			st.cases++
			scale := baseLR(c)
			caseMax, caseElem := 0.0, 0.0
			for step, w := range want {
				got := s.LR(step)
				e := relErr(got, w, scale)
				require.LessOrEqualf(t, e, refTol, "%s (%s), step %d: LR %v, PyTorch %v", s, c.Reference, step, got, w)
				elem := relErr(got, w, w)
				st.steps++
				if got == w {
					st.exact++
				}
				if e > st.maxErr {
					st.maxErr, st.worst = e, fmt.Sprintf("%s step %d", c.Name, step)
				}
				if elem > st.maxElem {
					st.maxElem, st.worstElem = elem, fmt.Sprintf("%s step %d", c.Name, step)
				}
				caseMax, caseElem = max(caseMax, e), max(caseElem, elem)
			}

			// The Scheduler: New sets LR(0), each Step the next.
			var r recorder
			sc, err := schedule.New(&r, s)
			require.NoError(t, err)
			for step := range want {
				require.Equal(t, step, sc.StepCount())
				require.Equal(t, step+1, len(r.lrs))
				require.Equalf(t, s.LR(step), r.lrs[step], "step %d", step)
				require.Equal(t, r.lrs[step], sc.LR())
				sc.Step()
			}
			t.Logf("%s: %d steps, max error %.3g·baseLR, max element-wise relative error %.3g",
				c.Reference, len(want), caseMax, caseElem)
		})
	}
	kinds := make([]string, 0, len(stats))
	for k := range stats {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	require.Equal(t, []string{"constant", "constant_warmup", "step_decay", "warmup_cosine", "warmup_linear"}, kinds,
		"%s: the kinds covered", refPath)
	for _, k := range kinds {
		st := stats[k]
		t.Logf("%-16s %2d cases %5d steps: %5d bit-identical, max error %.3g·baseLR (%s), "+
			"max element-wise relative error %.3g (%s)",
			k, st.cases, st.steps, st.exact, st.maxErr, st.worst, st.maxElem, st.worstElem)
	}
}
