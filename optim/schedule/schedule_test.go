package schedule_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/optim/schedule"
)

func TestInvalidArguments(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name string
		make func() (schedule.Schedule, error)
		want []string // substrings of the error, in order
	}{
		{"Constant NaN", func() (schedule.Schedule, error) { return schedule.Constant(nan) }, []string{"schedule.Constant: lr = NaN is not finite"}},
		{"Constant -Inf", func() (schedule.Schedule, error) { return schedule.Constant(-inf) }, []string{"lr = -Inf is not finite"}},
		{"Constant negative", func() (schedule.Schedule, error) { return schedule.Constant(-1e-3) }, []string{"lr = -0.001 is negative"}},

		{"ConstantWarmup baseLR", func() (schedule.Schedule, error) { return schedule.ConstantWarmup(inf, 10) }, []string{"schedule.ConstantWarmup: baseLR = +Inf is not finite"}},
		{"ConstantWarmup warmup", func() (schedule.Schedule, error) { return schedule.ConstantWarmup(1e-3, -1) }, []string{"warmup = -1 is negative"}},

		{"WarmupCosine baseLR", func() (schedule.Schedule, error) { return schedule.WarmupCosine(-1, 10, 100, 0) }, []string{"schedule.WarmupCosine: baseLR = -1 is negative"}},
		{"WarmupCosine floor NaN", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 10, 100, nan) }, []string{"floor = NaN is not finite"}},
		{"WarmupCosine floor negative", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 10, 100, -1e-5) }, []string{"floor = -1e-05 is negative"}},
		{"WarmupCosine floor > baseLR", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 10, 100, 2e-3) }, []string{"floor = 0.002 is greater than baseLR = 0.001"}},
		{"WarmupCosine warmup negative", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, -5, 100, 0) }, []string{"warmup = -5 is negative"}},
		{"WarmupCosine total 0", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 0, 0, 0) }, []string{"total = 0 is less than 1"}},
		{"WarmupCosine total negative", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 0, -3, 0) }, []string{"total = -3 is negative"}},
		{"WarmupCosine warmup > total", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 400, 300, 0) }, []string{"warmup = 400 is greater than total = 300"}},
		{"WarmupCosine all at once", func() (schedule.Schedule, error) { return schedule.WarmupCosine(nan, -1, 0, -inf) }, []string{
			"schedule.WarmupCosine: baseLR = NaN is not finite", "; floor = -Inf is not finite", "; warmup = -1 is negative", "; total = 0 is less than 1"}},

		{"WarmupLinear floor > baseLR", func() (schedule.Schedule, error) { return schedule.WarmupLinear(0, 0, 10, 1e-9) }, []string{"schedule.WarmupLinear: floor = 1e-09 is greater than baseLR = 0"}},
		{"WarmupLinear warmup > total", func() (schedule.Schedule, error) { return schedule.WarmupLinear(1e-3, 11, 10, 0) }, []string{"schedule.WarmupLinear: warmup = 11 is greater than total = 10"}},

		{"StepDecay baseLR", func() (schedule.Schedule, error) { return schedule.StepDecay(nan, 10, 0.5) }, []string{"schedule.StepDecay: baseLR = NaN is not finite"}},
		{"StepDecay stepSize 0", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, 0, 0.5) }, []string{"stepSize = 0 is less than 1"}},
		{"StepDecay stepSize negative", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, -2, 0.5) }, []string{"stepSize = -2 is negative"}},
		{"StepDecay gamma 0", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, 10, 0) }, []string{"gamma = 0 is not in (0, 1]"}},
		{"StepDecay gamma > 1", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, 10, 1.5) }, []string{"gamma = 1.5 is not in (0, 1]"}},
		{"StepDecay gamma negative", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, 10, -0.5) }, []string{"gamma = -0.5 is not in (0, 1]"}},
		{"StepDecay gamma Inf", func() (schedule.Schedule, error) { return schedule.StepDecay(0.1, 10, inf) }, []string{"gamma = +Inf is not finite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.make()
			require.Error(t, err)
			require.Nil(t, s)
			msg := err.Error()
			for _, w := range tc.want {
				require.Contains(t, msg, w)
				msg = msg[len(w):]
			}
		})
	}
}

func TestMust(t *testing.T) {
	s := schedule.Must(schedule.Constant(0.5))
	require.Equal(t, 0.5, s.LR(3))
	require.PanicsWithError(t, "schedule.Constant: lr = -1 is negative", func() { schedule.Must(schedule.Constant(-1)) })
}

// TestEdges checks the values at the ends of each phase, past the end, and
// before the start.
func TestEdges(t *testing.T) {
	const base, floor = 1e-3, 1e-5

	t.Run("WarmupCosine", func(t *testing.T) {
		s := schedule.Must(schedule.WarmupCosine(base, 10, 100, floor))
		require.Equal(t, 0.0, s.LR(0))
		require.Equal(t, base*0.5, s.LR(5))
		require.Equal(t, base, s.LR(10)) // factor 1: floor + (base − floor)
		require.InDelta(t, (base+floor)/2, s.LR(55), 1e-18)
		require.Equal(t, floor, s.LR(100))
		for _, step := range []int{101, 150, 190, 10_000, math.MaxInt} {
			require.Equalf(t, floor, s.LR(step), "step %d: past total the floor holds", step)
		}
		require.Equal(t, s.LR(0), s.LR(-1))
		require.Equal(t, s.LR(0), s.LR(math.MinInt))

		// Floor 0 reaches 0 exactly; warmup == total rises to base at total.
		z := schedule.Must(schedule.WarmupCosine(base, 0, 100, 0))
		require.Equal(t, base, z.LR(0))
		require.Equal(t, 0.0, z.LR(100))
		require.Equal(t, 0.0, z.LR(250))
		w := schedule.Must(schedule.WarmupCosine(base, 100, 100, floor))
		require.Equal(t, base*0.99, w.LR(99))
		require.Equal(t, base, w.LR(100))
		require.Equal(t, floor, w.LR(101))
		require.Equal(t, floor, w.LR(102))

		// The cosine decreases monotonically from base to floor.
		prev := s.LR(10)
		for step := 11; step <= 100; step++ {
			lr := s.LR(step)
			require.LessOrEqualf(t, lr, prev, "step %d", step)
			prev = lr
		}
	})

	t.Run("WarmupLinear", func(t *testing.T) {
		s := schedule.Must(schedule.WarmupLinear(base, 10, 110, floor))
		require.Equal(t, 0.0, s.LR(0))
		require.Equal(t, base, s.LR(10))
		require.InDelta(t, (base+floor)/2, s.LR(60), 1e-18)
		require.Equal(t, floor, s.LR(110))
		require.Equal(t, floor, s.LR(111))
		require.Equal(t, floor, s.LR(math.MaxInt))
		require.Equal(t, 0.0, s.LR(-7))

		w := schedule.Must(schedule.WarmupLinear(base, 5, 5, 0))
		require.Equal(t, base*0.8, w.LR(4))
		require.Equal(t, 0.0, w.LR(5), "transformers: (total − t)/max(1, 0) = 0 at t = total")
	})

	t.Run("ConstantWarmup", func(t *testing.T) {
		s := schedule.Must(schedule.ConstantWarmup(base, 4))
		require.Equal(t, []float64{0, base * 0.25, base * 0.5, base * 0.75, base, base}, lrs(s, 6))
		require.Equal(t, base, s.LR(math.MaxInt))
		require.Equal(t, 0.0, s.LR(-1))
		require.Equal(t, []float64{base, base}, lrs(schedule.Must(schedule.ConstantWarmup(base, 0)), 2))
	})

	t.Run("StepDecay", func(t *testing.T) {
		s := schedule.Must(schedule.StepDecay(0.1, 3, 0.5))
		require.Equal(t, []float64{0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025}, lrs(s, 7))
		require.Equal(t, 0.1, s.LR(-5))
		require.Equal(t, 0.0, s.LR(math.MaxInt), "underflows to 0, never NaN")
		require.Equal(t, 0.1, schedule.Must(schedule.StepDecay(0.1, 1, 1)).LR(math.MaxInt))
	})

	t.Run("Constant", func(t *testing.T) {
		s := schedule.Must(schedule.Constant(0.25))
		require.Equal(t, 0.25, s.LR(0))
		require.Equal(t, 0.25, s.LR(math.MaxInt))
		require.Equal(t, 0.25, s.LR(-1))
	})

	t.Run("negative zero", func(t *testing.T) {
		negZero := math.Copysign(0, -1)
		s := schedule.Must(schedule.WarmupCosine(1e-3, 0, 10, negZero))
		require.False(t, math.Signbit(s.LR(10)), "a floor of -0 is taken as +0")
		require.Equal(t, "0", s.Params()["floor"])
		c := schedule.Must(schedule.Constant(negZero))
		require.False(t, math.Signbit(c.LR(0)))
	})
}

func lrs(s schedule.Schedule, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = s.LR(i)
	}
	return out
}

// TestParams checks each schedule's Params and String.
func TestParams(t *testing.T) {
	for _, tc := range []struct {
		s      schedule.Schedule
		params map[string]string
		str    string
	}{
		{schedule.Must(schedule.Constant(3e-4)),
			map[string]string{"kind": "constant", "lr": "0.0003"},
			"schedule.Constant(lr=0.0003)"},
		{schedule.Must(schedule.ConstantWarmup(1e-3, 100)),
			map[string]string{"kind": "constant_warmup", "base_lr": "0.001", "warmup": "100"},
			"schedule.ConstantWarmup(baseLR=0.001, warmup=100)"},
		{schedule.Must(schedule.WarmupCosine(0.1, 10, 1000, 1e-5)),
			map[string]string{"kind": "warmup_cosine", "base_lr": "0.1", "warmup": "10", "total": "1000", "floor": "1e-05"},
			"schedule.WarmupCosine(baseLR=0.1, warmup=10, total=1000, floor=1e-05)"},
		{schedule.Must(schedule.WarmupLinear(0.1, 0, 7, 0)),
			map[string]string{"kind": "warmup_linear", "base_lr": "0.1", "warmup": "0", "total": "7", "floor": "0"},
			"schedule.WarmupLinear(baseLR=0.1, warmup=0, total=7, floor=0)"},
		{schedule.Must(schedule.StepDecay(0.1, 30, 0.1)),
			map[string]string{"kind": "step_decay", "base_lr": "0.1", "step_size": "30", "gamma": "0.1"},
			"schedule.StepDecay(baseLR=0.1, stepSize=30, gamma=0.1)"},
	} {
		require.Equal(t, tc.params, tc.s.Params())
		require.Equal(t, tc.str, fmt.Sprint(tc.s))
		p := tc.s.Params()
		p["kind"] = "changed"
		require.Equal(t, tc.params, tc.s.Params(), "Params returns a fresh map")
	}

	// Float parameters round-trip exactly: 0.1+0.2 is not 0.3.
	x, y := 0.1, 0.2 // variables: Go's constant arithmetic would be exact
	a := schedule.Must(schedule.Constant(x + y))
	b := schedule.Must(schedule.Constant(0.3))
	require.NotEqual(t, a.Params(), b.Params())
}
