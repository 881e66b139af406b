package schedule_test

import (
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/optim/schedule"
)

// fakeOptimizer stands for an optim.Optimizer: the schedule package only
// needs SetLR.
type fakeOptimizer struct {
	lr    float64
	steps int
	used  []float64 // the lr of each Step
}

func (o *fakeOptimizer) SetLR(lr float64) { o.lr = lr }
func (o *fakeOptimizer) LR() float64      { return o.lr }
func (o *fakeOptimizer) Step() error {
	o.used = append(o.used, o.lr)
	o.steps++
	return nil
}

func TestNew(t *testing.T) {
	s := schedule.Must(schedule.WarmupLinear(1e-3, 4, 10, 0))
	opt := &fakeOptimizer{lr: 123}
	sc, err := schedule.New(opt, s)
	require.NoError(t, err)
	require.Equal(t, 0.0, opt.lr, "New sets the lr of step 0 at once")
	require.Equal(t, 0.0, sc.LR())
	require.Equal(t, 0, sc.StepCount())
	require.Equal(t, s, sc.Schedule())
	for want := 1; want <= 12; want++ {
		sc.Step()
		require.Equal(t, want, sc.StepCount())
		require.Equal(t, s.LR(want), sc.LR())
		require.Equal(t, s.LR(want), opt.lr)
	}
}

// The PyTorch loop: the t-th optimizer step uses LR(t).
func TestTrainingLoopOrder(t *testing.T) {
	s := schedule.Must(schedule.StepDecay(0.1, 2, 0.5))
	opt := &fakeOptimizer{}
	sc, err := schedule.New(opt, s)
	require.NoError(t, err)
	for range 6 {
		require.NoError(t, opt.Step())
		sc.Step()
	}
	require.Equal(t, []float64{0.1, 0.1, 0.05, 0.05, 0.025, 0.025}, opt.used)
	require.Equal(t, opt.steps, sc.StepCount())
}

type nilKind struct{}

func (nilKind) LR(int) float64            { return 1 }
func (nilKind) Params() map[string]string { return map[string]string{"lr": "1"} }

type reservedKey struct{ key string }

func (r reservedKey) LR(int) float64 { return 1 }
func (r reservedKey) Params() map[string]string {
	return map[string]string{"kind": "custom", r.key: "1"}
}

func TestNewErrors(t *testing.T) {
	s := schedule.Must(schedule.Constant(1))
	_, err := schedule.New(nil, s)
	require.EqualError(t, err, "schedule.New: target is nil")
	var nilOpt *fakeOptimizer
	_, err = schedule.New(nilOpt, s)
	require.EqualError(t, err, "schedule.New: target is a nil *schedule_test.fakeOptimizer")
	_, err = schedule.New(&fakeOptimizer{}, nil)
	require.EqualError(t, err, "schedule.New: schedule is nil")
	_, err = schedule.New(&fakeOptimizer{}, nilKind{})
	require.EqualError(t, err, `schedule.New: the Params of schedule schedule_test.nilKind have no "kind"`)
	for _, k := range []string{"step", "format"} {
		_, err = schedule.New(&fakeOptimizer{}, reservedKey{k})
		require.EqualError(t, err, `schedule.New: the Params of schedule schedule_test.reservedKey use the reserved key "`+k+`"`)
	}
	_, err = schedule.New(&fakeOptimizer{}, reservedKey{""})
	require.EqualError(t, err, "schedule.New: the Params of schedule schedule_test.reservedKey have an empty key")
}

// custom is a caller's own schedule: the Scheduler drives it, and saves
// and restores its state, like the package's own.
type custom struct{ period int }

func (c custom) LR(step int) float64 { return float64(step%c.period) * 0.01 }
func (c custom) Params() map[string]string {
	return map[string]string{"kind": "sawtooth", "period": string(rune('0' + c.period))}
}

func TestCustomSchedule(t *testing.T) {
	opt := &fakeOptimizer{}
	sc, err := schedule.New(opt, custom{period: 3})
	require.NoError(t, err)
	for range 4 {
		sc.Step()
	}
	require.Equal(t, 0.01, opt.lr)
	st := sc.State()
	require.Equal(t, map[string]string{
		"schedule.format": "1", "schedule.step": "4", "schedule.kind": "sawtooth", "schedule.period": "3",
	}, st)

	sc2, err := schedule.New(&fakeOptimizer{}, custom{period: 4})
	require.NoError(t, err)
	require.EqualError(t, sc2.LoadState(st),
		`schedule: LoadState: the state was saved by another schedule than schedule_test.custom: period: saved "3", this schedule has "4"`)
}

// saveLoad writes state into a safetensors file's metadata, as a training
// checkpoint does, and reads it back.
func saveLoad(t *testing.T, state map[string]string) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	meta := maps.Clone(state)
	meta["optim.step"] = "17" // other state sharing the metadata
	tensors := map[string]safetensors.Entry{"w": {DType: "F64", Shape: []int64{1}, Data: make([]byte, 8)}}
	require.NoError(t, safetensors.WriteFile(path, tensors, meta))
	_, got, err := safetensors.ReadFile(path)
	require.NoError(t, err)
	return got
}

// TestResume: a run saved at step n, restored into a fresh Scheduler on a
// fresh optimizer and continued, sets the very same learning rates (bit for
// bit) as an uninterrupted run.
func TestResume(t *testing.T) {
	const steps = 300
	for _, s := range []schedule.Schedule{
		schedule.Must(schedule.Constant(3e-4)),
		schedule.Must(schedule.ConstantWarmup(3e-4, 50)),
		schedule.Must(schedule.WarmupCosine(3e-4, 30, 250, 1e-6)),
		schedule.Must(schedule.WarmupCosine(1e-3, 0, 300, 0)),
		schedule.Must(schedule.WarmupLinear(1e-3, 30, 250, 0)),
		schedule.Must(schedule.WarmupLinear(1e-3, 0, 200, 1e-4)),
		schedule.Must(schedule.StepDecay(0.1, 7, 0.9)),
	} {
		// The uninterrupted run.
		opt := &fakeOptimizer{}
		sc, err := schedule.New(opt, s)
		require.NoError(t, err)
		for range steps {
			require.NoError(t, opt.Step())
			sc.Step()
		}
		want := opt.used

		for _, n := range []int{0, 1, 29, 30, 31, 137, 249, 250, 251, 299} {
			// The first n steps, then save.
			opt1 := &fakeOptimizer{}
			sc1, err := schedule.New(opt1, s)
			require.NoError(t, err)
			for range n {
				require.NoError(t, opt1.Step())
				sc1.Step()
			}
			state := saveLoad(t, sc1.State())

			// A fresh optimizer and a fresh scheduler of a schedule made
			// anew from the same arguments, then the remaining steps.
			opt2 := &fakeOptimizer{lr: 42}
			fresh := rebuild(t, s)
			sc2, err := schedule.New(opt2, fresh)
			require.NoError(t, err)
			require.NoError(t, sc2.LoadState(state))
			require.Equal(t, n, sc2.StepCount())
			require.Equal(t, s.LR(n), opt2.lr, "LoadState sets the lr of the restored step")
			require.Equal(t, s.LR(n), sc2.LR())
			for range steps - n {
				require.NoError(t, opt2.Step())
				sc2.Step()
			}
			got := append(append([]float64(nil), opt1.used...), opt2.used...)
			require.Equalf(t, want, got, "%v saved at step %d", s, n)
			require.Equal(t, steps, sc2.StepCount())
		}
	}
}

// rebuild makes a schedule equal to s from its Params, as a resumed
// program does from its own configuration.
func rebuild(t *testing.T, s schedule.Schedule) schedule.Schedule {
	t.Helper()
	c := refCase{Name: "rebuild", Kind: s.Params()["kind"], Args: map[string]float64{}}
	for k, v := range s.Params() {
		if k == "kind" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		c.Args[k] = f
	}
	return build(t, c)
}

func TestState(t *testing.T) {
	sc, err := schedule.New(&fakeOptimizer{}, schedule.Must(schedule.WarmupCosine(3e-4, 100, 1000, 1e-5)))
	require.NoError(t, err)
	for range 5 {
		sc.Step()
	}
	st := sc.State()
	require.Equal(t, map[string]string{
		"schedule.format":  "1",
		"schedule.step":    "5",
		"schedule.kind":    "warmup_cosine",
		"schedule.base_lr": "0.0003",
		"schedule.warmup":  "100",
		"schedule.total":   "1000",
		"schedule.floor":   "1e-05",
	}, st)
	st["schedule.step"] = "6"
	require.Equal(t, "5", sc.State()["schedule.step"], "State returns a fresh map")
	for k := range st {
		require.True(t, strings.HasPrefix(k, schedule.StateKeyPrefix))
	}
}

func TestLoadStateErrors(t *testing.T) {
	cosine := schedule.Must(schedule.WarmupCosine(3e-4, 100, 1000, 0))
	saved, err := schedule.New(&fakeOptimizer{}, cosine)
	require.NoError(t, err)
	for range 7 {
		saved.Step()
	}
	good := saved.State()
	with := func(edit func(m map[string]string)) map[string]string {
		m := maps.Clone(good)
		edit(m)
		return m
	}

	for _, tc := range []struct {
		name  string
		into  schedule.Schedule
		state map[string]string
		err   string
	}{
		{"other parameters", schedule.Must(schedule.WarmupCosine(1e-3, 100, 2000, 1e-5)), good,
			`schedule: LoadState: the state was saved by another schedule than schedule.WarmupCosine(baseLR=0.001, warmup=100, total=2000, floor=1e-05): ` +
				`base_lr: saved "0.0003", this schedule has "0.001"; floor: saved "0", this schedule has "1e-05"; total: saved "1000", this schedule has "2000"`},
		{"other kind, same parameters", schedule.Must(schedule.WarmupLinear(3e-4, 100, 1000, 0)), good,
			`schedule: LoadState: the state was saved by another schedule than schedule.WarmupLinear(baseLR=0.0003, warmup=100, total=1000, floor=0): ` +
				`kind: saved "warmup_cosine", this schedule has "warmup_linear"`},
		{"other kind, other parameters", schedule.Must(schedule.StepDecay(3e-4, 10, 0.5)), good,
			`schedule: LoadState: the state was saved by another schedule than schedule.StepDecay(baseLR=0.0003, stepSize=10, gamma=0.5): ` +
				`floor: saved "0", not a parameter of this schedule; ` +
				`gamma: not in the saved state, this schedule has "0.5"; ` +
				`kind: saved "warmup_cosine", this schedule has "step_decay"; ` +
				`step_size: not in the saved state, this schedule has "10"; ` +
				`total: saved "1000", not a parameter of this schedule; ` +
				`warmup: saved "100", not a parameter of this schedule`},
		{"no state", cosine, map[string]string{"optim.step": "3"},
			`schedule: LoadState: no scheduler state (no key starts with "schedule.")`},
		{"nil state", cosine, nil,
			`schedule: LoadState: no scheduler state (no key starts with "schedule.")`},
		{"no format", cosine, with(func(m map[string]string) { delete(m, "schedule.format") }),
			`schedule: LoadState: schedule.format is missing`},
		{"other format", cosine, with(func(m map[string]string) { m["schedule.format"] = "2" }),
			`schedule: LoadState: schedule.format = "2": unsupported format (want "1")`},
		{"no step", cosine, with(func(m map[string]string) { delete(m, "schedule.step") }),
			`schedule: LoadState: schedule.step is missing`},
		{"bad step", cosine, with(func(m map[string]string) { m["schedule.step"] = "7.5" }),
			`schedule: LoadState: schedule.step = "7.5" is not a step count (an integer ≥ 0)`},
		{"negative step", cosine, with(func(m map[string]string) { m["schedule.step"] = "-1" }),
			`schedule: LoadState: schedule.step = "-1" is not a step count (an integer ≥ 0)`},
		{"missing parameter", cosine, with(func(m map[string]string) { delete(m, "schedule.floor") }),
			`schedule: LoadState: the state was saved by another schedule than schedule.WarmupCosine(baseLR=0.0003, warmup=100, total=1000, floor=0): ` +
				`floor: not in the saved state, this schedule has "0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := &fakeOptimizer{}
			sc, err := schedule.New(opt, tc.into)
			require.NoError(t, err)
			sc.Step()
			sc.Step()
			before := opt.lr
			require.EqualError(t, sc.LoadState(tc.state), tc.err)
			require.Equal(t, 2, sc.StepCount(), "a failed LoadState leaves the scheduler as it was")
			require.Equal(t, before, opt.lr)
			require.Equal(t, before, sc.LR())
		})
	}

	// Keys without the prefix are ignored; the state loads.
	sc, err := schedule.New(&fakeOptimizer{}, cosine)
	require.NoError(t, err)
	require.NoError(t, sc.LoadState(with(func(m map[string]string) { m["optim.lr"] = "1"; m["step"] = "99" })))
	require.Equal(t, 7, sc.StepCount())
	require.Equal(t, cosine.LR(7), sc.LR())
}
