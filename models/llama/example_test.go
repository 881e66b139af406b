package llama_test

import (
	"fmt"

	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/torch"
)

// A tiny Llama built in memory from a config, run on a prompt, then
// decoding greedily with a KV cache. llama.Load(dir) reads a Hugging
// Face checkpoint instead.
func ExampleNew() {
	torch.ManualSeed(0)
	m, err := llama.New(llama.Config{
		ModelType: "llama", VocabSize: 100, HiddenSize: 32, IntermediateSize: 64,
		NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, // grouped-query attention
		MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, HiddenAct: "silu",
		Rope:             llama.Rope{Type: "default", Theta: 10000},
		InitializerRange: 0.2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	s := torch.NewScope()
	defer s.Close()
	prompt := s.Own(torch.FromSlice([]int64{1, 17, 42, 9}, 1, 4))
	logits := m.Forward(prompt) // [batch, seq, vocab]
	fmt.Println("logits:", logits.Shape())

	cache := m.NewCache()
	defer cache.Close()
	ids := prompt
	var out []int64
	for range 5 {
		step := m.ForwardCache(ids, nil, nil, cache)
		next := step.Narrow(1, step.SizeOf(1)-1, 1).ArgmaxDim(-1, false) // [1, 1]
		tok, err := next.ItemInt()
		if err != nil {
			fmt.Println(err)
			return
		}
		out = append(out, tok)
		ids = next
	}
	fmt.Println("cached tokens:", cache.Len(), "generated:", len(out))
	// Output:
	// logits: [1 4 100]
	// cached tokens: 8 generated: 5
}
