package generate_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/torch"
)

// NaN and infinite sampling options are refused naming the option, by
// Validate (and so by Generate) and by the logits processors; nil and
// closed score tensors give an error naming them, without a panic.
func TestEntrypointsNonFinite(t *testing.T) {
	scores := torch.Zeros([]int64{1, 4})
	defer scores.Close()
	ids := torch.Must(torch.Zeros([]int64{1, 2}, torch.WithDType(torch.Int64)), nil)
	defer ids.Close()
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, c := range []struct {
			opt  generate.Option
			text string
		}{
			{generate.Temperature(v), fmt.Sprintf("Temperature(%v)", v)},
			{generate.TopP(v), fmt.Sprintf("TopP(%v)", v)},
			{generate.RepetitionPenalty(v), fmt.Sprintf("RepetitionPenalty(%v)", v)},
		} {
			err := generate.Validate(generate.Sample(1), c.opt)
			if assert.Errorf(t, err, c.text) {
				assert.Contains(t, err.Error(), c.text)
			}
		}
		for name, c := range map[string]struct {
			out  *torch.Tensor
			text string
		}{
			"ScaleTemperature":   {generate.ScaleTemperature(scores, v), "temperature"},
			"FilterTopP":         {generate.FilterTopP(scores, v), "top-p"},
			"PenalizeRepetition": {generate.PenalizeRepetition(scores, ids, v), "repetition penalty"},
		} {
			err := c.out.Err()
			c.out.Close()
			if assert.Errorf(t, err, "%s(%v)", name, v) {
				assert.Contains(t, err.Error(), c.text)
				assert.Contains(t, err.Error(), fmt.Sprint(v))
			}
		}
	}
	require.NoError(t, generate.Validate(generate.Sample(1), generate.Temperature(0.7), generate.TopP(1), generate.RepetitionPenalty(1)))

	closed := torch.Zeros([]int64{1, 4})
	require.NoError(t, closed.Close())
	for _, bad := range []*torch.Tensor{nil, closed} {
		for name, f := range map[string]func() *torch.Tensor{
			"ScaleTemperature":   func() *torch.Tensor { return generate.ScaleTemperature(bad, 1) },
			"FilterTopK":         func() *torch.Tensor { return generate.FilterTopK(bad, 2) },
			"FilterTopP":         func() *torch.Tensor { return generate.FilterTopP(bad, 0.5) },
			"PenalizeRepetition": func() *torch.Tensor { return generate.PenalizeRepetition(bad, ids, 1.2) },
		} {
			var out *torch.Tensor
			require.NotPanicsf(t, func() { out = f() }, "%s(%v)", name, bad)
			err := out.Err()
			out.Close()
			if assert.Errorf(t, err, "%s(%v)", name, bad) {
				t.Logf("%s(%v): %v", name, bad, err)
				state := map[bool]string{true: "nil", false: "closed"}[bad == nil]
				assert.Contains(t, err.Error(), "generate: "+name+": scores is "+state)
			}
		}
	}
}
