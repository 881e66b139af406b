package lora_test

// The Go twin of testdata/peft_net.py: the same module paths (a
// transformer's), the same forward. The PEFT interop tests
// (peft_interop_test.go) and the file-format tests (peft_test.go) use it.

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

const (
	pnVocab, pnDim, pnCls = 32, 16, 5
)

type pnAttn struct {
	module.Base
	Q, K, V, O module.Layer
}

type pnDecLayer struct {
	module.Base
	SelfAttn *pnAttn
}

type pnInner struct {
	module.Base
	Embed  module.Layer
	Layers *module.ModuleList[*pnDecLayer]
}

type pnC1Attn struct {
	module.Base
	CAttn module.Layer
}

type pnHBlock struct {
	module.Base
	Attn *pnC1Attn
}

type pnTransformer struct {
	module.Base
	H *module.ModuleList[*pnHBlock]
}

// peftNet is peft_net.Net.
type peftNet struct {
	module.Base
	Model       *pnInner
	Transformer *pnTransformer
	Conv        module.Layer
	Classifier  module.Layer
}

// newPeftNet builds the net with seeded weights (Go's own draws; the
// interop tests load PyTorch's with module.Load or save these for it).
func newPeftNet(t testing.TB, seed uint64) *peftNet {
	t.Helper()
	require.NoError(t, torch.ManualSeed(seed))
	lin := func(bias bool) module.Layer {
		l, err := module.NewLinear(pnDim, pnDim, bias)
		require.NoError(t, err)
		return l
	}
	n := &peftNet{Model: &pnInner{}, Transformer: &pnTransformer{}}
	emb, err := module.NewEmbedding(pnVocab, pnDim)
	require.NoError(t, err)
	n.Model.Embed = emb
	var layers []*pnDecLayer
	for i := 0; i < 2; i++ {
		a := &pnAttn{Q: lin(true), K: lin(true), V: lin(false), O: lin(true)}
		module.Child(&a.Base, "q_proj", &a.Q)
		module.Child(&a.Base, "k_proj", &a.K)
		module.Child(&a.Base, "v_proj", &a.V)
		module.Child(&a.Base, "o_proj", &a.O)
		d := &pnDecLayer{SelfAttn: a}
		module.Child(&d.Base, "self_attn", &d.SelfAttn)
		layers = append(layers, d)
	}
	n.Model.Layers = module.NewModuleList(layers...)
	module.Child(&n.Model.Base, "embed_tokens", &n.Model.Embed)
	module.Child(&n.Model.Base, "layers", &n.Model.Layers)

	c1, err := module.NewConv1D(pnDim, 3*pnDim)
	require.NoError(t, err)
	require.NoError(t, c1.Weight.Normal_(0, 0.3))
	require.NoError(t, c1.Bias.Normal_(0, 0.1))
	ca := &pnC1Attn{CAttn: c1}
	module.Child(&ca.Base, "c_attn", &ca.CAttn)
	hb := &pnHBlock{Attn: ca}
	module.Child(&hb.Base, "attn", &hb.Attn)
	n.Transformer.H = module.NewModuleList(hb)
	module.Child(&n.Transformer.Base, "h", &n.Transformer.H)

	conv, err := module.NewConv2d(3, 4, [2]int64{3, 3}, true, torch.Conv2dOptions{Padding: [2]int64{1, 1}})
	require.NoError(t, err)
	n.Conv = conv
	cls, err := module.NewLinear(pnDim, pnCls, true)
	require.NoError(t, err)
	n.Classifier = cls
	module.Child(&n.Base, "model", &n.Model)
	module.Child(&n.Base, "transformer", &n.Transformer)
	module.Child(&n.Base, "conv", &n.Conv)
	module.Child(&n.Base, "classifier", &n.Classifier)
	t.Cleanup(func() { module.Close(n) })
	module.Eval(n)
	return n
}

// forward returns [B, T·5 + 4·H·W]: the logits and the conv's output.
func (n *peftNet) forward(ids, img *torch.Tensor) *torch.Tensor {
	h := n.Model.Embed.Forward(ids)
	for _, l := range n.Model.Layers.All() {
		a := l.SelfAttn
		h = h.Add(a.O.Forward(a.Q.Forward(h).Mul(a.K.Forward(h).Sigmoid()).Add(a.V.Forward(h))))
	}
	c := n.Transformer.H.At(0).Attn.CAttn.Forward(h)
	h = h.Add(c.Narrow(2, 0, pnDim).Mul(c.Narrow(2, pnDim, pnDim).Tanh())).Add(c.Narrow(2, 2*pnDim, pnDim))
	logits := n.Classifier.Forward(h).Flatten(1, -1)
	y := n.Conv.Forward(img).Flatten(1, -1)
	return torch.Cat([]*torch.Tensor{logits, y}, 1)
}

// run computes forward in a scope and returns the values.
func (n *peftNet) run(t testing.TB, ids, img *torch.Tensor) []float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	y, err := s.Done(n.forward(s.Borrow(ids), s.Borrow(img)))
	require.NoError(t, err)
	defer y.Close()
	return reftest.Float64s(t, y)
}
