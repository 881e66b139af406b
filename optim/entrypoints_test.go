package optim_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// Every entry point of package optim refuses NaN and infinite
// hyperparameters with an error that names the function and the argument,
// and refuses nil and closed parameters naming the entry.

func entryParam(t *testing.T) *torch.Tensor {
	t.Helper()
	p := torch.Ones([]int64{2})
	t.Cleanup(func() { p.Close() })
	require.NoError(t, p.SetRequiresGrad(true))
	return p
}

func TestEntrypointsNonFinite(t *testing.T) {
	ctors := map[string]func([]*torch.Tensor, ...optim.Option) (optim.Optimizer, error){
		"NewSGD": optim.NewSGD, "NewAdam": optim.NewAdam, "NewAdamW": optim.NewAdamW,
	}
	adamOnly := map[string]bool{"Betas b1": true, "Betas b2": true, "Eps": true}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		opts := []struct {
			name, arg string
			opt       optim.Option
		}{
			{"LR", "learning rate", optim.LR(v)},
			{"WeightDecay", "weight decay", optim.WeightDecay(v)},
			{"Momentum", "momentum", optim.Momentum(v)},
			{"Dampening", "dampening", optim.Dampening(v)},
			{"Betas b1", "beta1", optim.Betas(v, 0.999)},
			{"Betas b2", "beta2", optim.Betas(0.9, v)},
			{"Eps", "eps", optim.Eps(v)},
		}
		for ctor, mk := range ctors {
			for _, o := range opts {
				sgdOnly := o.name == "Momentum" || o.name == "Dampening"
				if (ctor == "NewSGD" && adamOnly[o.name]) || (ctor != "NewSGD" && sgdOnly) {
					continue // another algorithm's option: TestOptionsOfAnotherAlgorithm's subject
				}
				name := fmt.Sprintf("%s %s=%v", ctor, o.name, v)
				opt, err := mk([]*torch.Tensor{entryParam(t)}, o.opt)
				if !assert.Errorf(t, err, name) {
					opt.Close()
					continue
				}
				assert.Nil(t, opt, name)
				assert.Containsf(t, err.Error(), ctor[len("New"):], name)
				assert.Containsf(t, err.Error(), o.arg, name)
				assert.Containsf(t, err.Error(), fmt.Sprint(v), name)
			}
		}
		// The clipping functions and SetGroupLR check their arguments.
		p := entryParam(t)
		_, err := optim.ClipGradNorm([]*torch.Tensor{p}, v, 2)
		assert.ErrorContains(t, err, "ClipGradNorm: invalid max norm")
		if !math.IsInf(v, 1) { // normType +Inf is the max norm, as in PyTorch
			_, err = optim.ClipGradNorm([]*torch.Tensor{p}, 1, v)
			assert.ErrorContains(t, err, "ClipGradNorm: invalid norm type")
		}
		err = optim.ClipGradValue([]*torch.Tensor{p}, v)
		if math.IsInf(v, 1) {
			assert.NoError(t, err, "clip +Inf clamps nothing, as in PyTorch")
		} else {
			assert.ErrorContains(t, err, "ClipGradValue: invalid clip value")
		}
		o, err := optim.NewAdamW([]*torch.Tensor{p})
		require.NoError(t, err)
		assert.ErrorContains(t, o.SetGroupLR(0, v), "SetGroupLR")
		assert.ErrorContains(t, o.SetGroupLR(0, v), "invalid learning rate")
		assert.Equal(t, 1e-3, o.LR(), "a refused SetGroupLR changes nothing")
		// SetLR keeps the value (it returns no error) and Step refuses it.
		o.SetLR(v)
		g := torch.Ones([]int64{2})
		require.NoError(t, p.Mul(g).Sum().Backward())
		g.Close()
		err = o.Step()
		assert.ErrorContains(t, err, "learning rate")
		require.NoError(t, o.Close())
	}
}

func TestEntrypointsBadParams(t *testing.T) {
	closed := torch.Ones([]int64{2})
	require.NoError(t, closed.Close())
	for _, c := range []struct {
		name string
		bad  *torch.Tensor
		msg  string
	}{{"nil", nil, "nil"}, {"closed", closed, "closed"}} {
		params := []*torch.Tensor{entryParam(t), c.bad}
		for name, f := range map[string]func() error{
			"NewSGD":        func() error { _, err := optim.NewSGD(params); return err },
			"NewAdam":       func() error { _, err := optim.NewAdam(params); return err },
			"NewAdamW":      func() error { _, err := optim.NewAdamW(params); return err },
			"ClipGradNorm":  func() error { _, err := optim.ClipGradNorm(params, 1, 2); return err },
			"ClipGradValue": func() error { return optim.ClipGradValue(params, 1) },
		} {
			err := f()
			if assert.Errorf(t, err, "%s with a %s parameter", name, c.name) {
				assert.Containsf(t, err.Error(), strings.TrimPrefix(name, "New"), "%s: %v", name, err)
				assert.Containsf(t, err.Error(), "1", "%s names the entry: %v", name, err)
				assert.Containsf(t, err.Error(), c.msg, "%s: %v", name, err)
			}
		}
	}
}
