package llama_test

import (
	"testing"

	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/torch"
)

// BenchmarkDecode is one greedy decoding step with the KV cache on the
// CPU (batch 1, 32 tokens of context), the dispatch-bound case, for a
// 2-layer model of width 64 like the interop checkpoints.
func BenchmarkDecode(b *testing.B) {
	cfg := tinyConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize = 64, 96, 128
	torch.ManualSeed(0)
	m, err := llama.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	err = torch.NoGrad(func() error {
		cache := m.NewCache()
		defer cache.Close()
		s := torch.NewScope()
		prompt := make([]int64, 32)
		for i := range prompt {
			prompt[i] = int64(3 + i)
		}
		if err := m.ForwardCache(s.Own(torch.FromSlice(prompt, 1, 32)), nil, nil, cache).Err(); err != nil {
			return err
		}
		s.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if cache.Len() > 100 {
				b.StopTimer()
				cache.Reset()
				s := torch.NewScope()
				m.ForwardCache(s.Own(torch.FromSlice(prompt, 1, 32)), nil, nil, cache)
				s.Close()
				b.StartTimer()
			}
			s := torch.NewScope()
			logits := m.ForwardCache(s.Own(torch.FromSlice([]int64{5}, 1, 1)), nil, nil, cache)
			if _, err := logits.ArgmaxDim(-1, false).ItemInt(); err != nil {
				return err
			}
			s.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
