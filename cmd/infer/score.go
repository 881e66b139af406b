package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/golora/golora/models"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// scoreMode runs the model over the ids of --ids and writes --out.
func scoreMode(o *options, m models.Model) error {
	in, _, err := torch.LoadSafetensors(o.idsIn)
	if err != nil {
		return fmt.Errorf("--ids: %w", err)
	}
	defer torch.CloseMap(in)
	ids, ok := in["input_ids"]
	if !ok {
		names := make([]string, 0, len(in))
		for k := range in {
			names = append(names, k)
		}
		sort.Strings(names)
		return fmt.Errorf("--ids %s: no tensor input_ids (it has: %s)", o.idsIn, strings.Join(names, ", "))
	}
	B, T, idVals, err := intMatrix(o.idsIn, "input_ids", ids)
	if err != nil {
		return err
	}
	V := m.VocabSize()
	for i, id := range idVals {
		if id < 0 || id >= V {
			return fmt.Errorf("--ids %s: input_ids[%d, %d] = %d is outside the vocabulary [0, %d) of %s",
				o.idsIn, int64(i)/T, int64(i)%T, id, V, o.base)
		}
	}
	var maskVals []int64
	if mask, ok := in["attention_mask"]; ok {
		mb, mt, vals, err := intMatrix(o.idsIn, "attention_mask", mask)
		if err != nil {
			return err
		}
		if mb != B || mt != T {
			return fmt.Errorf("--ids %s: attention_mask is [%d, %d], input_ids [%d, %d]", o.idsIn, mb, mt, B, T)
		}
		if i := slices.IndexFunc(vals, func(v int64) bool { return v != 0 && v != 1 }); i >= 0 {
			return fmt.Errorf("--ids %s: attention_mask[%d, %d] = %d: want 0 or 1", o.idsIn, int64(i)/T, int64(i)%T, vals[i])
		}
		maskVals = vals
	}
	name := "logits"
	if m.Kind() == models.Encoder {
		name = "last_hidden_state"
	}
	dev := m.Device()
	return torch.NoGrad(func() error {
		s := torch.NewScope()
		defer s.Close()
		x := s.Own(torch.FromSlice(idVals, B, T)).To(dev)
		inputs := module.Inputs{IDs: x}
		if maskVals != nil {
			inputs.AttentionMask = s.Own(torch.FromSlice(maskVals, B, T)).To(dev)
		}
		if m.Kind() == models.CausalLM {
			// transformers' forward without position_ids: 0…T−1 in every
			// row, padding included.
			inputs.Positions = torch.Arange(0, float64(T), 1, torch.WithDType(torch.Int64),
				torch.WithDevice(dev), torch.In(s)).Unsqueeze(0)
		}
		y, err := s.Done(m.Score(inputs).To(torch.Float32).To(torch.CPU))
		if err != nil {
			return fmt.Errorf("scoring %s: %w", o.idsIn, err)
		}
		defer y.Close()
		md := map[string]string{"model_type": m.Type(), "base": o.base}
		if o.adapter != "" {
			md["adapter"] = o.adapter
		}
		if err := torch.SaveSafetensors(o.out, map[string]*torch.Tensor{name: y}, md); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		return nil
	})
}

// intMatrix checks that t is an integer (or bool) matrix with at least one
// element and returns its shape and values as int64.
func intMatrix(file, name string, t *torch.Tensor) (B, T int64, vals []int64, err error) {
	switch t.DType() {
	case torch.Int64, torch.Int32, torch.Uint8, torch.Bool:
	default:
		return 0, 0, nil, fmt.Errorf("--ids %s: %s is %v: want int64", file, name, t.DType())
	}
	if t.Dim() != 2 || t.Numel() == 0 {
		return 0, 0, nil, fmt.Errorf("--ids %s: %s has shape %v: want [batch, seq], both > 0", file, name, t.Shape())
	}
	c := t.To(torch.Int64)
	defer c.Close()
	vals, err = torch.ToSlice[int64](c)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("--ids %s: %s: %w", file, name, err)
	}
	return t.SizeOf(0), t.SizeOf(1), vals, nil
}
