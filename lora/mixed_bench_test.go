package lora_test

// Serving many tenants from one base: a batch whose samples use different
// adapters (lora.WithAdapterNames, one forward) against running the
// samples adapter by adapter (SetAdapter, then the forward of that
// adapter's sub-batch), the way one would without mixed batches.
// TestMixedBatchMatchesPerAdapter checks that both compute the same.
//
//	go test -run=NONE -bench=MixedBatch ./lora/

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// tenantModel is L Linear layers of d×d (no activation) with k adapters.
func tenantModel(t testing.TB, d int64, layers, k int) (*module.Sequential, []string) {
	require.NoError(t, torch.ManualSeed(9))
	var ls []module.Layer
	var targets []string
	for i := 0; i < layers; i++ {
		l, err := module.NewLinear(d, d, true)
		require.NoError(t, err)
		ls = append(ls, l)
		targets = append(targets, fmt.Sprint(i))
	}
	m := module.NewSequential(ls...)
	var names []string
	for a := 0; a < k; a++ {
		name := fmt.Sprintf("tenant%d", a)
		_, err := lora.AddAdapter(m, name, lora.Config{R: 16, Alpha: 32, TargetModules: targets, Init: lora.InitRandom})
		require.NoError(t, err)
		names = append(names, name)
	}
	module.Eval(m)
	return m, names
}

// perAdapter runs each adapter's samples with only that adapter active and
// scatters the rows back: the baseline.
func perAdapter(s *torch.Scope, m *module.Sequential, x *torch.Tensor, names []string) *torch.Tensor {
	groups := map[string][]int64{}
	var order []string
	for i, n := range names {
		if _, ok := groups[n]; !ok {
			order = append(order, n)
		}
		groups[n] = append(groups[n], int64(i))
	}
	var outs, idxs []*torch.Tensor
	for _, n := range order {
		if err := lora.SetAdapter(m, n); err != nil {
			return torch.Failed(err)
		}
		idx := s.Own(torch.FromSlice(groups[n], int64(len(groups[n]))))
		outs = append(outs, m.Forward(x.IndexSelect(0, idx)))
		idxs = append(idxs, idx)
	}
	// Row j of cat(outs) is sample cat(idxs)[j]; argsort puts them back.
	perm := torch.Cat(idxs, 0).Argsort(0, false)
	return torch.Cat(outs, 0).IndexSelect(0, perm)
}

func tenantNames(batch, k int) []string {
	out := make([]string, batch)
	for i := range out {
		out[i] = fmt.Sprintf("tenant%d", (i*7+i/3)%k)
	}
	return out
}

func TestMixedBatchMatchesPerAdapter(t *testing.T) {
	m, _ := tenantModel(t, 32, 2, 3)
	x := own(t, torch.Randn([]int64{10, 32}))
	names := tenantNames(10, 3)
	s := newScope(t)
	var mixed *torch.Tensor
	require.NoError(t, lora.WithAdapterNames(m, names, func() error {
		mixed = s.Own(m.Forward(s.Borrow(x)))
		return mixed.Err()
	}))
	want := perAdapter(s, m, s.Borrow(x), names)
	require.NoError(t, s.Err())
	reftest.RequireClose(t, "mixed batch vs adapter by adapter", mixed, want, 1e-6)
}

func BenchmarkMixedBatch(b *testing.B) {
	for _, c := range []struct {
		d            int64
		layers, k, n int
	}{{256, 4, 4, 32}, {1024, 4, 8, 64}} {
		m, _ := tenantModel(b, c.d, c.layers, c.k)
		x := torch.Randn([]int64{int64(c.n), c.d})
		defer x.Close()
		names := tenantNames(c.n, c.k)
		tag := fmt.Sprintf("d%d_L%d_k%d_b%d", c.d, c.layers, c.k, c.n)
		b.Run("mixed/"+tag, func(b *testing.B) {
			require.NoError(b, lora.WithAdapterNames(m, names, func() error {
				for i := 0; i < b.N; i++ {
					s := torch.NewScope()
					y := m.Forward(s.Own(x.Alias()))
					err := y.Err()
					s.Close()
					if err != nil {
						return err
					}
				}
				return nil
			}))
		})
		b.Run("per_adapter/"+tag, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s := torch.NewScope()
				y := perAdapter(s, m, s.Own(x.Alias()), names)
				err := y.Err()
				s.Close()
				require.NoError(b, err)
			}
		})
		module.Close(m)
	}
}
