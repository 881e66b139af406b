package train_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// train.New refuses every invalid Config field, naming it; nothing is
// accepted that would only fail at the first step.
func TestEntrypointsConfig(t *testing.T) {
	m, err := ccModel(1)
	require.NoError(t, err)
	defer m.Close()
	rows, err := train.Pack(ccExamples(1, 8), 8, 0)
	require.NoError(t, err)
	loader, err := train.NewLoader(rows, 2, 1)
	require.NoError(t, err)
	opt, err := optim.NewAdamW(module.Parameters(m, true), optim.LR(1e-2))
	require.NoError(t, err)
	defer opt.Close()
	valid := func() train.Config {
		return train.Config{Model: m, Logits: m.Forward, Optimizer: opt, Data: loader, Steps: 2, Device: torch.CPU}
	}
	_, err = train.New(valid())
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		edit func(*train.Config)
		want string
	}{
		{"nil model", func(c *train.Config) { c.Model = nil }, "Config.Model is nil"},
		{"nil logits", func(c *train.Config) { c.Logits = nil }, "Config.Logits is nil"},
		{"nil optimizer", func(c *train.Config) { c.Optimizer = nil }, "Config.Optimizer is nil"},
		{"nil data", func(c *train.Config) { c.Data = nil }, "Config.Data is nil"},
		{"zero steps", func(c *train.Config) { c.Steps = 0 }, "Config.Steps is 0"},
		{"negative accumulation", func(c *train.Config) { c.GradAccum = -1 }, "Config.GradAccum is -1"},
		{"negative clip", func(c *train.Config) { c.GradClip = -1 }, "Config.GradClip is -1"},
		{"NaN clip", func(c *train.Config) { c.GradClip = math.NaN() }, "Config.GradClip is NaN"},
		{"infinite clip", func(c *train.Config) { c.GradClip = math.Inf(1) }, "Config.GradClip is +Inf"},
		{"negative eval every", func(c *train.Config) { c.EvalEvery = -1 }, "EvalEvery -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.edit(&cfg)
			_, err := train.New(cfg)
			require.ErrorContains(t, err, c.want)
		})
	}
}
