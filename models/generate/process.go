package generate

import (
	"fmt"
	"math"

	"github.com/golora/golora/torch"
)

// The logits processors below are transformers' own
// (transformers.generation.logits_process), written over golora's ops with
// the same arithmetic, so that their outputs match value for value and
// their masks exactly. Each takes scores (B, V), the float32 logits of the
// next token, and returns new scores in scores' scope; bad parameters give
// a failed tensor that names them. Generate applies them in transformers'
// order: RepetitionPenalty, then, when sampling, Temperature, TopK, TopP.

// PenalizeRepetition is RepetitionPenaltyLogitsProcessor(penalty): the
// score of every token that occurs in ids (B, L), the prompt and the
// output so far (left padding included, as in transformers), is divided
// by penalty when positive and multiplied by it when negative, once per
// token however often it occurs. penalty must be > 0; 1 changes nothing.
// Ids ≥ V are ignored, as transformers clamps them into an extra column
// that it drops.
func PenalizeRepetition(scores, ids *torch.Tensor, penalty float64) *torch.Tensor {
	if err := usable("PenalizeRepetition", "scores", scores); err != nil {
		return torch.Failed(err)
	}
	if err := usable("PenalizeRepetition", "ids", ids); err != nil {
		return torch.Failed(err)
	}
	if !(penalty > 0) || math.IsInf(penalty, 0) {
		return torch.Failed(fmt.Errorf("generate: repetition penalty %v: want a finite number > 0", penalty))
	}
	if scores.Dim() != 2 || ids.Dim() != 2 || scores.SizeOf(0) != ids.SizeOf(0) {
		return torch.Failed(fmt.Errorf("generate: PenalizeRepetition: want scores (B, V) and ids (B, L), got %v and %v", scores.Shape(), ids.Shape()))
	}
	if ids.DType() != torch.Int64 {
		return torch.Failed(fmt.Errorf("generate: PenalizeRepetition: ids must be int64, got %v", ids.DType()))
	}
	B, V := scores.SizeOf(0), scores.SizeOf(1)
	if ids.SizeOf(1) == 0 {
		return scores.Alias()
	}
	return scoped(scores, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		// scores = F.pad(scores, (0, 1)); input_ids = input_ids.clamp(max=V)
		extra := torch.Zeros([]int64{B, 1}, torch.WithDType(x.DType()), torch.WithDevice(x.Device()), torch.In(s))
		padded := torch.Cat([]*torch.Tensor{x, extra}, 1)
		idx := opClampMax.Call1("PenalizeRepetition", s.Borrow(ids), V) // an int Scalar keeps int64
		score := padded.Gather(1, idx)
		score = torch.Where(score.LtScalar(0), score.MulScalar(penalty), score.DivScalar(penalty))
		return padded.Scatter(1, idx, score).Narrow(1, 0, V)
	})
}

// ScaleTemperature is TemperatureLogitsWarper(t): scores / t. t must be a
// finite number > 0.
func ScaleTemperature(scores *torch.Tensor, t float64) *torch.Tensor {
	if err := scores.Err(); err != nil {
		return scores
	}
	if err := usable("ScaleTemperature", "scores", scores); err != nil {
		return torch.Failed(err)
	}
	if !(t > 0) || math.IsInf(t, 0) {
		return torch.Failed(fmt.Errorf("generate: temperature %v: want a finite number > 0", t))
	}
	return scores.DivScalar(t)
}

// FilterTopK is TopKLogitsWarper(k) with min_tokens_to_keep 1: every score
// below the k-th largest of its row becomes -inf (ties with it are kept).
// k must be ≥ 1; a k above V keeps everything.
func FilterTopK(scores *torch.Tensor, k int) *torch.Tensor {
	if err := scores.Err(); err != nil {
		return scores
	}
	if err := usable("FilterTopK", "scores", scores); err != nil {
		return torch.Failed(err)
	}
	if k < 1 {
		return torch.Failed(fmt.Errorf("generate: top-k %d: want an integer ≥ 1", k))
	}
	if scores.Dim() != 2 {
		return torch.Failed(fmt.Errorf("generate: FilterTopK: want scores (B, V), got %v", scores.Shape()))
	}
	kk := min(int64(k), scores.SizeOf(1))
	return scoped(scores, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		vals, idx := x.Topk(kk, -1, true)
		s.Own(idx)
		kth := vals.Narrow(-1, kk-1, 1)
		return x.MaskedFill(x.Lt(kth), math.Inf(-1))
	})
}

// FilterTopP is TopPLogitsWarper(p) with min_tokens_to_keep 1 (nucleus
// filtering): in each row, sorted ascending, the tokens whose cumulative
// probability is ≤ 1−p become -inf, the most probable token always stays.
// p must be in (0, 1]; 1 keeps everything.
func FilterTopP(scores *torch.Tensor, p float64) *torch.Tensor {
	if err := scores.Err(); err != nil {
		return scores
	}
	if err := usable("FilterTopP", "scores", scores); err != nil {
		return torch.Failed(err)
	}
	if !(p > 0 && p <= 1) {
		return torch.Failed(fmt.Errorf("generate: top-p %v: want 0 < p ≤ 1", p))
	}
	if scores.Dim() != 2 {
		return torch.Failed(fmt.Errorf("generate: FilterTopP: want scores (B, V), got %v", scores.Shape()))
	}
	V := scores.SizeOf(1)
	return scoped(scores, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		sorted, idx := x.Sort(-1, false)
		s.Own(idx)
		cum := sorted.Softmax(-1).Cumsum(-1)
		remove := cum.LeScalar(1 - p)
		// sorted_indices_to_remove[..., -1:] = 0
		col := torch.Arange(0, float64(V), 1, torch.WithDType(torch.Int64), torch.WithDevice(x.Device()), torch.In(s))
		remove = remove.LogicalAnd(col.LtScalar(float64(V-1)).View(1, V))
		return x.MaskedFill(remove.Scatter(1, idx, remove), math.Inf(-1))
	})
}

var opClampMax = torch.NewOp("aten::clamp_max", "")

// usable returns t's error, or one naming arg of fn when t is nil or
// closed.
func usable(fn, arg string, t *torch.Tensor) error {
	switch {
	case t == nil:
		return fmt.Errorf("generate: %s: %s is nil", fn, arg)
	case t.Err() != nil:
		return t.Err()
	case t.Closed():
		return fmt.Errorf("generate: %s: %s is closed", fn, arg)
	}
	return nil
}

// scoped runs f on a borrowed handle of x in a scope of its own and
// returns f's result in x's scope (or unowned when x has none), freeing
// the intermediates.
func scoped(x *torch.Tensor, f func(s *torch.Scope, x *torch.Tensor) *torch.Tensor) *torch.Tensor {
	parent := x.Scope()
	var s *torch.Scope
	if parent != nil {
		s = parent.Child()
	} else {
		s = torch.NewScope()
	}
	defer s.Close()
	out, err := s.Done(f(s, s.Borrow(x)))
	if err != nil {
		return torch.Failed(err)
	}
	return out
}
