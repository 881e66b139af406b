package lora_test

// Helpers shared by the lora tests. The tests follow the torch package's
// conventions: a scope per test or step owns the intermediates, ops chain,
// and errors are checked once, at the end of a chain.

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// newScope returns a scope that is closed when the test ends.
func newScope(t testing.TB) *torch.Scope { return reftest.Scope(t) }

// own adopts x into a scope closed with the test and fails the test if x
// failed.
func own(t testing.TB, x *torch.Tensor) *torch.Tensor {
	t.Helper()
	require.NoError(t, x.Err())
	return newScope(t).Own(x)
}

// requireFailed fails the test unless x is a failed tensor whose error
// contains every substring given; it returns the error.
func requireFailed(t testing.TB, x *torch.Tensor, subs ...string) error {
	t.Helper()
	require.NotNil(t, x, "a failed op returns a failed tensor, not nil")
	err := x.Err()
	require.Error(t, err)
	for _, s := range subs {
		require.Contains(t, err.Error(), s)
	}
	return err
}

// requireErr runs f, fails on a panic, and checks that its error contains
// every substring given.
func requireErr(t testing.TB, f func() error, subs ...string) {
	t.Helper()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				require.Failf(t, "panic", "expected an error, got a panic: %v", p)
			}
		}()
		err = f()
	}()
	require.Error(t, err)
	for _, s := range subs {
		require.Contains(t, err.Error(), s)
	}
}

// notPanics runs f and fails the test if it panics.
func notPanics(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			require.Failf(t, "panic", "%s panicked: %v", what, p)
		}
	}()
	f()
}

// forward runs l on x in a scope of its own and returns the output's
// values.
func forward(t testing.TB, l module.Layer, x *torch.Tensor) []float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	y := s.Own(l.Forward(x))
	require.NoError(t, s.Err())
	return reftest.Float64s(t, y)
}

// gradOf returns p's gradient in scope s, failing when it has none.
func gradOf(t testing.TB, s *torch.Scope, p *torch.Tensor, what string) *torch.Tensor {
	t.Helper()
	g := p.Grad()
	require.NotNil(t, g, "%s has no gradient", what)
	return s.Own(g)
}

// clearGrads drops the gradients of ps (set_to_none).
func clearGrads(t testing.TB, ps []*torch.Tensor) {
	t.Helper()
	for _, p := range ps {
		require.NoError(t, p.ClearGrad())
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// strconvFormat formats a relative error for the logs.
func strconvFormat(v float64) string { return strconv.FormatFloat(v, 'e', 2, 64) }
