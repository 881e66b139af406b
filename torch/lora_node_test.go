package torch_test

// LoraLinear in LoRA training (W0 and b frozen, A and B trained) runs as
// one autograd node; its output and gradients must be PyTorch's composed
// ops' bit for bit (testdata/gen_lora_node.py).

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

func TestLoraLinearNodeMatchesAutograd(t *testing.T) {
	r := reftest.Load(t, "testdata/lora_node_refs.safetensors", "/usr/bin/python3 torch/testdata/gen_lora_node.py")
	var cases []struct {
		Name        string
		Bias, XGrad bool
		S           float64
	}
	r.DecodeMeta(t, "cases", &cases)
	require.Len(t, cases, 6)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			s := reftest.Scope(t)
			get := func(k string, grad bool) *torch.Tensor {
				x := s.Own(r.Tensor(t, c.Name+"."+k).Clone())
				require.NoError(t, x.SetRequiresGrad(grad))
				return x
			}
			x, w, a, bm := get("x", c.XGrad), get("w", false), get("a", true), get("bm", true)
			var b *torch.Tensor
			if c.Bias {
				b = get("b", false)
			}
			out := torch.LoraLinear(x, w, b, a, bm, c.S)
			reftest.RequireBitwise(t, "out", out, r.Tensor(t, c.Name+".out"))
			require.NoError(t, out.Mul(get("g", false)).Sum().Backward())
			reftest.RequireBitwise(t, "grad_a", s.Own(a.Grad()), r.Tensor(t, c.Name+".grad_a"))
			reftest.RequireBitwise(t, "grad_bm", s.Own(bm.Grad()), r.Tensor(t, c.Name+".grad_bm"))
			if c.XGrad {
				reftest.RequireBitwise(t, "grad_x", s.Own(x.Grad()), r.Tensor(t, c.Name+".grad_x"))
			} else {
				require.Nil(t, x.Grad())
			}
			require.Nil(t, w.Grad())
		})
	}
}
