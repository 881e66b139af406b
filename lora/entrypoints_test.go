package lora_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
)

// NaN and infinite options: α, dropout, pattern alphas and the weights of
// AddWeightedAdapter are refused naming the option; on error the model is
// left as it was. (TestErrorsAlpha covers zero, negative and NaN α of the
// layer constructors; TestApplyConfigErrors R and a negative Alpha.)
func TestEntrypointsNonFiniteOptions(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, a := range []float64{inf, -inf, nan} {
		requireErr(t, newLinearErr(4, 4, false, 2, lora.WithAlpha(a)), "NewLinear", "alpha must be positive and finite", fmt.Sprint(a))
		requireErr(t, newEmbeddingErr(4, 4, 2, lora.WithAlpha(a)), "NewEmbedding", "alpha must be positive and finite", fmt.Sprint(a))
	}

	m := newTinyModel(t, 7)
	names := paramNames(m)
	target := []string{"q_proj"}
	for _, tc := range []struct {
		cfg  lora.Config
		text string
	}{
		{lora.Config{R: 4, Alpha: nan, TargetModules: target}, "Alpha must be positive and finite"},
		{lora.Config{R: 4, Alpha: inf, TargetModules: target}, "Alpha must be positive and finite"},
		{lora.Config{R: 4, Alpha: -inf, TargetModules: target}, "Alpha must be positive"},
		{lora.Config{R: 4, Dropout: nan, TargetModules: target}, "Dropout must be in [0, 1), got NaN"},
		{lora.Config{R: 4, Dropout: inf, TargetModules: target}, "Dropout must be in [0, 1), got +Inf"},
		{lora.Config{R: 4, Dropout: 1, TargetModules: target}, "Dropout must be in [0, 1), got 1"},
		{lora.Config{R: 4, Dropout: -0.1, TargetModules: target}, "Dropout must be in [0, 1), got -0.1"},
		{lora.Config{R: 4, TargetModules: target, AlphaPattern: map[string]float64{"q_proj": nan}}, `AlphaPattern["q_proj"] must be positive`},
		{lora.Config{R: 4, TargetModules: target, AlphaPattern: map[string]float64{"q_proj": inf}}, `AlphaPattern["q_proj"] must be positive and finite`},
	} {
		for fn, apply := range map[string]func() error{
			"Apply":      func() error { _, err := lora.Apply(m, tc.cfg); return err },
			"AddAdapter": func() error { _, err := lora.AddAdapter(m, "other", tc.cfg); return err },
		} {
			var err error
			require.NotPanics(t, func() { err = apply() })
			if assert.Errorf(t, err, "%s %+v", fn, tc.cfg) {
				assert.Contains(t, err.Error(), "lora: "+fn)
				assert.Contains(t, err.Error(), tc.text)
			}
			requireUntouched(t, m, names)
		}
	}

	// AddWeightedAdapter's weights must be finite.
	_, err := lora.Apply(m, lora.Config{R: 2, TargetModules: target})
	require.NoError(t, err)
	for _, w := range []float64{nan, inf, -inf} {
		err := lora.AddWeightedAdapter(m, []string{lora.DefaultAdapter}, []float64{w}, "mix", lora.CombineLinear, 0)
		if assert.Errorf(t, err, "weight %v", w) {
			assert.Contains(t, err.Error(), "AddWeightedAdapter: weights[0] is "+fmt.Sprint(w))
		}
		assert.NotContains(t, lora.AdapterNames(m), "mix")
	}
}
