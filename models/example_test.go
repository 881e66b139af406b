package models_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Load a checkpoint by its config.json's model_type, score a batch and
// generate from it. Here the checkpoint is a small random GPT-2 written on
// the spot; a Hugging Face download loads the same way.
func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	config := []byte(`{"model_type": "gpt2", "vocab_size": 50, "n_embd": 16, "n_layer": 2, "n_head": 2, "n_positions": 64,
		"bos_token_id": 0, "eos_token_id": 0}`)
	_ = os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644)
	hc, _ := hf.ParseConfig(dir, config)
	cfg, _ := gpt2.ConfigFromHF(hc)
	random, _ := gpt2.New(cfg)
	_ = module.Save(random, filepath.Join(dir, "model.safetensors"), nil)
	module.Close(random)

	m, err := models.Load(dir, hf.WithDType(torch.Float32), hf.WithDevice(torch.CPU))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(m.Type(), m.Kind(), m.NumLayers(), "layers")

	// Scoring: logits (B, T, V).
	s := torch.NewScope()
	defer s.Close()
	ids := s.Own(torch.FromSlice([]int64{1, 2, 3, 4, 5, 6}, 2, 3))
	logits := m.Score(module.Inputs{IDs: ids})
	fmt.Println(logits.Shape(), logits.Err())

	// Generation: a causal Model is a generate.LM.
	out, err := generate.Generate(context.Background(), m, [][]int64{{1, 2, 3}}, generate.MaxNewTokens(5))
	fmt.Println(len(out.Tokens[0]), "new tokens", err)

	// A model_type no family handles.
	_ = os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "t5"}`), 0o644)
	_, err = models.Load(dir)
	fmt.Println(err != nil)
	// Output:
	// gpt2 causal-lm 2 layers
	// [2 3 50] <nil>
	// 5 new tokens <nil>
	// true
}
