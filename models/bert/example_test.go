package bert_test

import (
	"fmt"

	"github.com/golora/golora/models/bert"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// A tiny BERT built in memory from a config: the last hidden state of a
// right-padded batch and its sentence embeddings (mean pooling, L2
// normalisation, as all-MiniLM-L6-v2). bert.Load reads a Hugging Face
// checkpoint directory instead.
func Example() {
	cfg := bert.DefaultConfig()
	cfg.VocabSize, cfg.HiddenSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads = 100, 32, 2, 4
	cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 64, 16
	model, err := bert.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer module.Close(model)
	model.Eval() // dropout off

	s := torch.NewScope()
	defer s.Close()
	in := module.Inputs{
		IDs:           torch.FromSlice([]int64{2, 17, 42, 3, 2, 23, 3, 0}, 2, 4),
		AttentionMask: torch.FromSlice([]int64{1, 1, 1, 1, 1, 1, 1, 0}, 2, 4), // right padding
	}.Own(s)
	hidden := model.ForwardInputs(in)
	emb := model.Embed(in)
	norms := emb.Norm(2, []int64{-1}, false)
	if err := s.Err(); err != nil {
		fmt.Println(err)
		return
	}
	n, _ := torch.ToSlice[float32](norms)
	fmt.Println("last_hidden_state:", hidden.Shape())
	fmt.Printf("embeddings: %v, norms %.4f %.4f\n", emb.Shape(), n[0], n[1])
	// Output:
	// last_hidden_state: [2 4 32]
	// embeddings: [2 32], norms 1.0000 1.0000
}
