package generate_test

import (
	"context"
	"fmt"

	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/torch"
)

// counterLM is a toy LM over 8 tokens whose likeliest next token is the
// current one plus 1 (a real model comes from models.Load).
type counterLM struct{ table *torch.Tensor }

func (m counterLM) NumLayers() int       { return 1 }
func (m counterLM) Device() torch.Device { return torch.CPU }
func (m counterLM) Logits(ids, mask *torch.Tensor, cache *hf.KVCache) *torch.Tensor {
	B, T := ids.SizeOf(0), ids.SizeOf(1)
	kv := ids.To(torch.Float32).View(B, 1, T, 1)
	cache.Update(0, kv, kv) // a real model caches its keys and values
	return torch.Embedding(ids, ids.Scope().Borrow(m.table))
}

func Example() {
	const V = 8
	rows := make([]float32, V*V)
	for i := 0; i < V; i++ {
		rows[i*V+(i+1)%V] = 5
	}
	lm := counterLM{table: torch.FromSlice(rows, V, V)}
	defer lm.table.Close()

	out, err := generate.Generate(context.Background(), lm, [][]int64{{1, 2}, {5}},
		generate.MaxNewTokens(6), generate.EOS(7),
		generate.OnToken(func(row int, tok int64) error {
			fmt.Printf("row %d: %d\n", row, tok)
			return nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Tokens, out.Lengths)
	// Output:
	// row 0: 3
	// row 1: 6
	// row 0: 4
	// row 1: 7
	// row 0: 5
	// row 0: 6
	// row 0: 7
	// [[3 4 5 6 7] [6 7 7 7 7]] [5 2]
}
