package schedule_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/optim/schedule"
)

// Every constructor refuses NaN and infinite factors, and negative counts,
// with an error naming the constructor and the argument.
func TestEntrypointsNonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		cases := []struct {
			name, fn, arg string
			make          func() (schedule.Schedule, error)
		}{
			{"Constant lr", "Constant", "lr", func() (schedule.Schedule, error) { return schedule.Constant(v) }},
			{"ConstantWarmup baseLR", "ConstantWarmup", "baseLR", func() (schedule.Schedule, error) { return schedule.ConstantWarmup(v, 10) }},
			{"StepDecay baseLR", "StepDecay", "baseLR", func() (schedule.Schedule, error) { return schedule.StepDecay(v, 10, 0.5) }},
			{"StepDecay gamma", "StepDecay", "gamma", func() (schedule.Schedule, error) { return schedule.StepDecay(1e-3, 10, v) }},
			{"WarmupCosine baseLR", "WarmupCosine", "baseLR", func() (schedule.Schedule, error) { return schedule.WarmupCosine(v, 10, 100, 0) }},
			{"WarmupCosine floor", "WarmupCosine", "floor", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, 10, 100, v) }},
			{"WarmupLinear baseLR", "WarmupLinear", "baseLR", func() (schedule.Schedule, error) { return schedule.WarmupLinear(v, 10, 100, 0) }},
			{"WarmupLinear floor", "WarmupLinear", "floor", func() (schedule.Schedule, error) { return schedule.WarmupLinear(1e-3, 10, 100, v) }},
		}
		for _, c := range cases {
			name := fmt.Sprintf("%s=%v", c.name, v)
			s, err := c.make()
			if assert.Errorf(t, err, name) {
				assert.Nil(t, s, name)
				assert.Containsf(t, err.Error(), c.fn, name)
				assert.Containsf(t, err.Error(), c.arg, name)
			}
		}
	}
	for _, c := range []struct {
		name, fn, arg string
		make          func() (schedule.Schedule, error)
	}{
		{"ConstantWarmup warmup<0", "ConstantWarmup", "warmup", func() (schedule.Schedule, error) { return schedule.ConstantWarmup(1e-3, -1) }},
		{"StepDecay stepSize=0", "StepDecay", "stepSize", func() (schedule.Schedule, error) { return schedule.StepDecay(1e-3, 0, 0.5) }},
		{"StepDecay gamma=0", "StepDecay", "gamma", func() (schedule.Schedule, error) { return schedule.StepDecay(1e-3, 1, 0) }},
		{"WarmupCosine warmup<0", "WarmupCosine", "warmup", func() (schedule.Schedule, error) { return schedule.WarmupCosine(1e-3, -1, 100, 0) }},
		{"WarmupLinear total<0", "WarmupLinear", "total", func() (schedule.Schedule, error) { return schedule.WarmupLinear(1e-3, 0, -5, 0) }},
		{"Constant lr<0", "Constant", "lr", func() (schedule.Schedule, error) { return schedule.Constant(-1) }},
	} {
		s, err := c.make()
		if assert.Errorf(t, err, c.name) {
			assert.Nil(t, s, c.name)
			assert.Containsf(t, err.Error(), c.fn, c.name)
			assert.Containsf(t, err.Error(), c.arg, c.name)
		}
	}
	_, err := schedule.New(nil, schedule.Must(schedule.Constant(1)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "target")
}
