package hf

import (
	"fmt"
	"math"

	"github.com/golora/golora/torch"
)

// aten::sub.Scalar with an integer scalar keeps an integer tensor's dtype
// (torch's SubScalar takes a float64, which promotes to float).
var opSubScalar = torch.NewOp("aten::sub", "Scalar")

// MinValue returns the lowest finite value of a floating-point dtype,
// torch.finfo(dtype).min, which transformers' eager attention adds to the
// scores of masked positions.
func MinValue(d torch.DType) float64 {
	switch d {
	case torch.Float16:
		return -65504
	case torch.BFloat16:
		return -3.3895313892515355e38
	case torch.Float64:
		return -math.MaxFloat64
	}
	return -math.MaxFloat32
}

// PositionIDs returns the position ids that transformers' generate derives
// from a 2-D attention mask [B, L] (1 attends, 0 is padding):
// cumsum(mask) - 1, with 0 at the padding, so that a left-padded row's
// first real token is at position 0. The result is int64 [B, L] and joins
// the mask's scope.
func PositionIDs(attentionMask *torch.Tensor) *torch.Tensor {
	if attentionMask == nil {
		return torch.Failed(fmt.Errorf("hf: PositionIDs: nil attention mask"))
	}
	if attentionMask.Err() != nil {
		return attentionMask
	}
	if attentionMask.Dim() != 2 {
		return torch.Failed(fmt.Errorf("hf: PositionIDs: attention mask: want [batch, length], got %v", attentionMask.Shape()))
	}
	m := attentionMask.To(torch.Int64)
	return opSubScalar.Call1("PositionIDs", m.Cumsum(1), int64(1)).MaskedFill(m.EqScalar(0), 0)
}

// MaskSpec describes the attention of T queries over past+T keys.
type MaskSpec struct {
	Batch  int64 // B
	Query  int64 // T, the new tokens
	Past   int64 // tokens already in the cache before them
	Window int64 // sliding window (Mistral's sliding_window); 0 for none
	// AttentionMask is the 2-D padding mask [B, Past+Query] (1 attends,
	// 0 is padding) or nil for none.
	AttentionMask *torch.Tensor
	DType         torch.DType  // the scores' dtype
	Device        torch.Device // the scores' device
}

// CausalMask returns the additive mask [B or 1, 1, T, past+T] that
// transformers' eager attention adds to the scores: 0 where query i
// (at key index past+i) may attend key j, torch.finfo(dtype).min
// elsewhere. Query i attends key j when j <= past+i, the attention mask
// (if any) is nonzero at j, and, with a window W > 0, j > past+i-W
// (transformers' sliding_window_overlay). Rows with no key to attend (the
// padding of a left-padded row) are all min, as in transformers, which
// makes their attention uniform. The result and its intermediates join s;
// with a nil s, the attention mask's scope, and without either the result
// belongs to the caller (the intermediates are freed).
func CausalMask(s *torch.Scope, m MaskSpec) *torch.Tensor {
	if s == nil && m.AttentionMask != nil {
		s = m.AttentionMask.Scope()
	}
	if s == nil {
		t, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor { return causalMask(s, m) })
		if err != nil {
			return torch.Failed(err)
		}
		return t
	}
	return causalMask(s, m)
}

func causalMask(s *torch.Scope, m MaskSpec) *torch.Tensor {
	if m.Query <= 0 || m.Past < 0 || m.Batch <= 0 || m.Window < 0 {
		return torch.Failed(fmt.Errorf("hf: CausalMask: bad sizes: batch %d, query %d, past %d, window %d", m.Batch, m.Query, m.Past, m.Window))
	}
	if !m.DType.IsFloat() {
		return torch.Failed(fmt.Errorf("hf: CausalMask: dtype %v is not floating point", m.DType))
	}
	L := m.Past + m.Query
	opts := []torch.Option{torch.WithDType(torch.Int64), torch.WithDevice(m.Device), torch.In(s)}
	q := torch.Arange(float64(m.Past), float64(L), 1, opts...).View(m.Query, 1)
	k := torch.Arange(0, float64(L), 1, opts...).View(1, L)
	allowed := k.Le(q)
	if m.Window > 0 {
		allowed = allowed.LogicalAnd(k.Gt(opSubScalar.Call1("CausalMask", q, m.Window)))
	}
	allowed = allowed.View(1, 1, m.Query, L)
	if am := m.AttentionMask; am != nil {
		if am.Err() != nil {
			return am
		}
		if am.Dim() != 2 || am.SizeOf(0) != m.Batch || am.SizeOf(1) != L {
			return torch.Failed(fmt.Errorf("hf: CausalMask: attention mask: want [%d, %d] (batch, past+new tokens), got %v", m.Batch, L, am.Shape()))
		}
		pad := am.To(m.Device).NeScalar(0).View(m.Batch, 1, 1, L)
		allowed = allowed.LogicalAnd(pad)
	}
	zero := allowed.ZerosLike().To(m.DType)
	return zero.MaskedFill(allowed.LogicalNot(), MinValue(m.DType))
}
