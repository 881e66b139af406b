package gpt2_test

import (
	"fmt"

	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// A tiny GPT-2 built in memory from a config: logits for a batch of ids,
// then a greedy continuation with the KV cache. gpt2.Load reads a Hugging
// Face checkpoint directory instead.
func Example() {
	cfg := gpt2.DefaultConfig()
	cfg.VocabSize, cfg.NPositions, cfg.NEmbd, cfg.NLayer, cfg.NHead = 100, 32, 16, 2, 2
	cfg.BOSTokenID, cfg.EOSTokenID = 0, 1
	if err := torch.ManualSeed(0); err != nil {
		fmt.Println(err)
		return
	}
	model, err := gpt2.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer module.Close(model)
	model.Eval() // dropout off

	s := torch.NewScope()
	defer s.Close()
	ids := s.Own(torch.FromSlice([]int64{5, 17, 42, 8, 0, 0, 23, 7}, 2, 4))
	mask := s.Own(torch.FromSlice([]int64{1, 1, 1, 1, 0, 0, 1, 1}, 2, 4)) // left padding
	logits := model.ForwardInputs(module.Inputs{IDs: ids, AttentionMask: mask})
	if err := s.Err(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("logits:", logits.Shape())

	next, err := model.Greedy(ids, mask, 3, -1, 0) // -1: no end-of-sequence token
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("new tokens per prompt:", len(next[0]), len(next[1]))
	// Output:
	// logits: [2 4 100]
	// new tokens per prompt: 3 3
}
