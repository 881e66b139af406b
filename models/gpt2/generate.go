package gpt2

import (
	"fmt"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Greedy continues the prompts ids (B, T), int64, by maxNew tokens each,
// picking the most likely token at every step with a KV cache, as
// transformers' generate(do_sample=False) does. mask (B, T) marks padding
// with 0 (left padding for prompts of different lengths), or is nil. A row
// that produces eos (-1: never stop) is finished: its later tokens are pad,
// and generation stops early once every row is finished. It returns each
// row's new tokens (n ≤ maxNew of them, the same n for every row), without
// the prompt.
func (m *Model) Greedy(ids, mask *torch.Tensor, maxNew int, eos, pad int64) ([][]int64, error) {
	if maxNew < 0 {
		return nil, fmt.Errorf("gpt2: Greedy: maxNew must not be negative, got %d", maxNew)
	}
	if err := ids.Err(); err != nil {
		return nil, fmt.Errorf("gpt2: Greedy: input_ids: %w", err)
	}
	if ids.Dim() != 2 || ids.DType() != torch.Int64 {
		return nil, fmt.Errorf("gpt2: Greedy: input_ids must be int64 (batch, seq), got %v", ids)
	}
	B, T := ids.SizeOf(0), ids.SizeOf(1)
	if T == 0 {
		return nil, fmt.Errorf("gpt2: Greedy: empty prompt")
	}
	if int64(maxNew)+T > m.Config.NPositions {
		return nil, fmt.Errorf("gpt2: Greedy: %d prompt + %d new tokens exceed n_positions %d", T, maxNew, m.Config.NPositions)
	}
	maskVals := make([]int64, 0, B*(T+int64(maxNew)))
	if mask == nil {
		for i := int64(0); i < B*T; i++ {
			maskVals = append(maskVals, 1)
		}
	} else {
		if s := mask.Shape(); mask.Err() != nil || len(s) != 2 || s[0] != B || s[1] != T {
			return nil, fmt.Errorf("gpt2: Greedy: attention_mask must be (batch %d, seq %d), got %v", B, T, mask)
		}
		m64 := mask.To(torch.Int64)
		vals, err := torch.ToSlice[int64](m64)
		m64.Close()
		if err != nil {
			return nil, fmt.Errorf("gpt2: Greedy: attention_mask: %w", err)
		}
		maskVals = append(maskVals, vals...)
	}
	dev := m.Device()
	cache := m.NewCache()
	defer cache.Close()
	out := make([][]int64, B)
	done := make([]bool, B)
	err := torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		x := s.Borrow(ids).To(dev)
		L := T
		for step := 0; step < maxNew; step++ {
			st := torch.NewScope()
			am := st.Own(torch.FromSlice(rowsMask(maskVals, B, L), B, L)).To(dev)
			logits := m.ForwardCached(module.Inputs{IDs: st.Own(x.Alias()), AttentionMask: am}, cache)
			next, err := torch.ToSlice[int64](logits.Narrow(1, logits.SizeOf(1)-1, 1).ArgmaxDim(-1, false).To(torch.CPU))
			if err == nil {
				err = st.Err()
			}
			st.Close()
			if err != nil {
				return err
			}
			all := true
			for b := range out {
				if done[b] {
					next[b] = pad
				} else if next[b] == eos {
					done[b] = true
				}
				out[b] = append(out[b], next[b])
				all = all && done[b]
			}
			if all {
				break
			}
			maskVals = appendColumn(maskVals, B, L)
			L++
			x = s.Own(torch.FromSlice(next, B, 1)).To(dev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gpt2: Greedy: %w", err)
	}
	return out, nil
}

// rowsMask returns the mask values, row-major (B, L).
func rowsMask(vals []int64, B, L int64) []int64 { return vals[:B*L] }

// appendColumn appends a column of ones to the row-major (B, L) values.
func appendColumn(vals []int64, B, L int64) []int64 {
	out := make([]int64, 0, B*(L+1))
	for b := int64(0); b < B; b++ {
		out = append(out, vals[b*L:(b+1)*L]...)
		out = append(out, 1)
	}
	return out
}
