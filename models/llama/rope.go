package llama

import (
	"fmt"
	"math"

	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

var (
	// aten::pow.Scalar: base ** exponent for a scalar base.
	opPowScalarBase = torch.NewOp("aten::pow", "Scalar")
	// aten::softmax.int with a dtype: softmax computed in float32 whatever
	// the scores' dtype, as transformers' eager attention asks.
	opSoftmaxDType = torch.NewOp("aten::softmax", "int")
)

// InvFreq computes the rotary inverse frequencies for head width dim
// (dim/2 float32 values), as transformers' modeling_rope_utils does for
// r.Type, op for op in float32:
//
//	inv_freq = 1.0 / (theta ** (arange(0, dim, 2).float() / dim))
//
// then "linear" divides them by factor, and "llama3" divides the low
// frequencies (wavelength above original_max_position_embeddings /
// low_freq_factor) by factor and interpolates the middle band. The result
// belongs to the caller.
func InvFreq(r Rope, dim int64) (*torch.Tensor, error) {
	if dim <= 0 || dim%2 != 0 {
		return nil, fmt.Errorf("llama: InvFreq: head width %d: must be even and positive", dim)
	}
	return torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		ar := torch.Arange(0, float64(dim), 2, torch.WithDType(torch.Int64), torch.In(s)).To(torch.Float32)
		// Python's 1.0 / t is t.reciprocal() * 1.0.
		invFreq := opPowScalarBase.Call1("InvFreq", r.Theta, ar.DivScalar(float64(dim))).Reciprocal()
		switch r.Type {
		case "default":
			return invFreq
		case "linear":
			return invFreq.DivScalar(r.Factor)
		case "llama3":
			old := float64(r.OriginalMaxPositionEmbeddings)
			lowWavelen := old / r.LowFreqFactor
			highWavelen := old / r.HighFreqFactor
			wavelen := invFreq.Reciprocal().MulScalar(2 * math.Pi)
			llama := torch.Where(wavelen.GtScalar(lowWavelen), invFreq.DivScalar(r.Factor), invFreq)
			smooth := wavelen.Reciprocal().MulScalar(old).SubScalar(r.LowFreqFactor).DivScalar(r.HighFreqFactor - r.LowFreqFactor)
			// (1 - smooth) * llama / factor + smooth * llama
			smoothed := smooth.Neg().AddScalar(1).Mul(llama).DivScalar(r.Factor).Add(smooth.Mul(llama))
			medium := wavelen.LtScalar(highWavelen).LogicalNot().LogicalAnd(wavelen.GtScalar(lowWavelen).LogicalNot())
			return torch.Where(medium, smoothed, llama)
		}
		return torch.Failed(fmt.Errorf("llama: rope type %q is not supported (supported: default, linear, llama3)", r.Type))
	})
}

// Rotary is transformers' LlamaRotaryEmbedding: it holds inv_freq as a
// non-persistent float32 buffer (model.rotary_emb.inv_freq, not in the
// state dict) and turns position ids into cos and sin tables.
type Rotary struct {
	module.Base
	InvFreq *torch.Tensor
}

func newRotary(r Rope, dim int64, dev torch.Device) (*Rotary, error) {
	inv, err := InvFreq(r, dim)
	if err != nil {
		return nil, err
	}
	if dev != torch.CPU {
		moved := inv.To(dev)
		inv.Close()
		if err := moved.Err(); err != nil {
			return nil, err
		}
		inv = moved
	}
	rt := &Rotary{InvFreq: inv}
	rt.Buffer("inv_freq", &rt.InvFreq, false)
	return rt, nil
}

// cosSin returns cos and sin [B, 1, T, dim] for int64 position ids [B, T]
// in dtype, computed in float32 as transformers does:
//
//	freqs = pos[..., None].float() * inv_freq.float(); emb = cat(freqs, freqs, -1)
//
// The results join s.
func (rt *Rotary) cosSin(s *torch.Scope, pos *torch.Tensor, dtype torch.DType) (cos, sin *torch.Tensor) {
	inv := s.Borrow(rt.InvFreq).To(torch.Float32)
	freqs := s.Own(pos.Unsqueeze(-1).To(torch.Float32)).Mul(inv)
	emb := torch.Cat([]*torch.Tensor{freqs, freqs}, -1).Unsqueeze(1) // one table for all heads
	cos, sin = emb.Cos(), emb.Sin()
	if dtype != torch.Float32 {
		cos, sin = cos.To(dtype), sin.To(dtype)
	}
	return cos, sin
}

// rotateHalf is cat(-x2, x1) for the halves x1, x2 of the last dim.
func rotateHalf(x *torch.Tensor) *torch.Tensor {
	h := x.SizeOf(-1) / 2
	return torch.Cat([]*torch.Tensor{x.Narrow(-1, h, h).Neg(), x.Narrow(-1, 0, h)}, -1)
}

// ApplyRotary rotates x [B, H, T, D] by cos and sin [B, T, D]:
// x·cos + rotate_half(x)·sin, transformers' apply_rotary_pos_emb.
func ApplyRotary(x, cos, sin *torch.Tensor) *torch.Tensor {
	return rotate(x, cos.Unsqueeze(1), sin.Unsqueeze(1))
}

// rotate is ApplyRotary with cos and sin already [B, 1, T, D].
func rotate(x, cos, sin *torch.Tensor) *torch.Tensor {
	return x.Mul(cos).Add(rotateHalf(x).Mul(sin))
}
