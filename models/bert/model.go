// Package bert is the BERT encoder (transformers' BertModel, e.g.
// sentence-transformers' all-MiniLM-L6-v2) built from golora's layers, with
// an optional sequence-classification head (BertForSequenceClassification)
// and sentence-transformers' mean pooling.
//
// Parameter names are transformers' state-dict names
// ("embeddings.word_embeddings.weight",
// "encoder.layer.0.attention.self.query.weight"; "bert.…" and "classifier.…"
// for a classification model), so Hugging Face checkpoints load without
// renaming (Load) and PEFT adapter keys map one to one. The projections are
// module.Layer fields registered with module.Child, so lora.Apply can wrap
// query, key, value and the dense layers.
//
// Forward passes return a *torch.Tensor, possibly failed (errors stick);
// every intermediate joins the scope of the input ids:
//
//	s := torch.NewScope()
//	defer s.Close()
//	hidden, err := s.Done(model.ForwardInputs(module.Inputs{IDs: ids, AttentionMask: mask}.Own(s)))
package bert

import (
	"fmt"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// Model is BertModel, or BertForSequenceClassification when
// Config.SequenceClassification is set. Embeddings, Encoder and Pooler are
// registered at the root ("embeddings.…") or under "bert" ("bert.embeddings.…")
// for a classification model, as in transformers.
type Model struct {
	module.Base
	Config     Config
	Embeddings *Embeddings // "embeddings"
	Encoder    *Encoder    // "encoder"
	Pooler     *Pooler     // "pooler", or nil without a pooling layer
	// Classifier ("classifier") maps the pooled output to NumLabels
	// logits; nil unless Config.SequenceClassification.
	Classifier module.Layer

	base *baseModel // the "bert" child of a classification model
}

// baseModel is the "bert" submodule of BertForSequenceClassification.
type baseModel struct {
	module.Base
	embeddings *Embeddings
	encoder    *Encoder
	pooler     *Pooler
}

// Embeddings is BertEmbeddings: word, position and token-type embeddings,
// summed, then LayerNorm.
type Embeddings struct {
	module.Base
	WordEmbeddings      module.Layer      // "word_embeddings" (vocab, hidden)
	PositionEmbeddings  *module.Embedding // "position_embeddings" (max_position_embeddings, hidden)
	TokenTypeEmbeddings *module.Embedding // "token_type_embeddings" (type_vocab_size, hidden)
	LayerNorm           *module.LayerNorm // "LayerNorm"
	// PositionIDs ("position_ids") is 0…max_position_embeddings−1, int64
	// (1, max), a non-persistent buffer as in transformers ≥ 4.31: older
	// checkpoints carry it, and it is skipped on load.
	PositionIDs *torch.Tensor
	cfg         *Config
}

// Encoder is BertEncoder: the stack of layers.
type Encoder struct {
	module.Base
	Layer *module.ModuleList[*EncoderLayer] // "layer"
}

// EncoderLayer is BertLayer: attention, then the feed-forward block, each
// followed by a residual and a post-LayerNorm.
type EncoderLayer struct {
	module.Base
	Attention    *Attention    // "attention"
	Intermediate *Intermediate // "intermediate"
	Output       *Output       // "output"
}

// Attention is BertAttention: self-attention and its output projection.
type Attention struct {
	module.Base
	Self   *SelfAttention // "self"
	Output *Output        // "output" (BertSelfOutput)
}

// SelfAttention is BertSelfAttention: bidirectional multi-head attention.
type SelfAttention struct {
	module.Base
	Query module.Layer // "query"
	Key   module.Layer // "key"
	Value module.Layer // "value"
	cfg   *Config
}

// Intermediate is BertIntermediate: dense, then hidden_act.
type Intermediate struct {
	module.Base
	Dense module.Layer // "dense"
	cfg   *Config
}

// Output is BertOutput and BertSelfOutput: LayerNorm(dropout(dense(x)) +
// residual).
type Output struct {
	module.Base
	Dense     module.Layer      // "dense"
	LayerNorm *module.LayerNorm // "LayerNorm"
	cfg       *Config
}

// Pooler is BertPooler: tanh(dense(hidden[:, 0])).
type Pooler struct {
	module.Base
	Dense module.Layer // "dense"
}

// New builds a model from cfg with transformers' initialisation: weights
// from N(0, initializer_range²), biases zero, the padding row of the word
// embeddings zero, LayerNorms one and zero. Options choose the dtype and
// device (float32 on the CPU by default). The model starts in training
// mode, as a new PyTorch module does; Eval turns dropout off.
func New(cfg Config, opts ...hf.Option) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bert: New: %w", err)
	}
	m, err := build(cfg, []torch.Option{torch.WithDType(o.DType), torch.WithDevice(o.Device)})
	if err != nil {
		return nil, fmt.Errorf("bert: New: %w", err)
	}
	return m, nil
}

func build(cfg Config, opts []torch.Option) (m *Model, err error) {
	m = &Model{Config: cfg}
	defer func() {
		if err != nil {
			module.Close(m)
			m = nil
		}
	}()
	c := &m.Config
	std := c.InitializerRange
	root := &m.Base
	m.Embeddings = &Embeddings{cfg: c}
	m.Encoder = &Encoder{Layer: module.NewModuleList[*EncoderLayer]()}
	if c.AddPoolingLayer {
		m.Pooler = &Pooler{}
	}
	if c.SequenceClassification {
		m.base = &baseModel{embeddings: m.Embeddings, encoder: m.Encoder, pooler: m.Pooler}
		module.Child(&m.Base, "bert", &m.base)
		root = &m.base.Base
		module.Child(root, "embeddings", &m.base.embeddings)
		module.Child(root, "encoder", &m.base.encoder)
		if m.Pooler != nil {
			module.Child(root, "pooler", &m.base.pooler)
		}
	} else {
		module.Child(root, "embeddings", &m.Embeddings)
		module.Child(root, "encoder", &m.Encoder)
		if m.Pooler != nil {
			module.Child(root, "pooler", &m.Pooler)
		}
	}

	e := m.Embeddings
	word, err := embedding(c.VocabSize, c.HiddenSize, std, c.PadTokenID, opts)
	if err != nil {
		return m, err
	}
	e.WordEmbeddings = word
	module.Child(&e.Base, "word_embeddings", &e.WordEmbeddings)
	if e.PositionEmbeddings, err = embedding(c.MaxPositionEmbeddings, c.HiddenSize, std, -1, opts); err != nil {
		return m, err
	}
	module.Child(&e.Base, "position_embeddings", &e.PositionEmbeddings)
	if e.TokenTypeEmbeddings, err = embedding(c.TypeVocabSize, c.HiddenSize, std, -1, opts); err != nil {
		return m, err
	}
	module.Child(&e.Base, "token_type_embeddings", &e.TokenTypeEmbeddings)
	if e.LayerNorm, err = layerNorm(c, opts); err != nil {
		return m, err
	}
	module.Child(&e.Base, "LayerNorm", &e.LayerNorm)
	dev := e.LayerNorm.Weight.Device()
	e.PositionIDs = torch.Arange(0, float64(c.MaxPositionEmbeddings), 1,
		torch.WithDType(torch.Int64), torch.WithDevice(dev))
	if err = e.PositionIDs.Err(); err != nil {
		return m, err
	}
	e.PositionIDs = unsqueezed(e.PositionIDs)
	e.Buffer("position_ids", &e.PositionIDs, false)

	module.Child(&m.Encoder.Base, "layer", &m.Encoder.Layer)
	H := c.HiddenSize
	for i := int64(0); i < c.NumHiddenLayers; i++ {
		l := &EncoderLayer{
			Attention:    &Attention{Self: &SelfAttention{cfg: c}, Output: &Output{cfg: c}},
			Intermediate: &Intermediate{cfg: c},
			Output:       &Output{cfg: c},
		}
		m.Encoder.Layer.Append(l)
		module.Child(&l.Base, "attention", &l.Attention)
		module.Child(&l.Base, "intermediate", &l.Intermediate)
		module.Child(&l.Base, "output", &l.Output)
		a := l.Attention
		module.Child(&a.Base, "self", &a.Self)
		module.Child(&a.Base, "output", &a.Output)
		for _, p := range []struct {
			owner   *module.Base
			name    string
			field   *module.Layer
			in, out int64
		}{
			{&a.Self.Base, "query", &a.Self.Query, H, H},
			{&a.Self.Base, "key", &a.Self.Key, H, H},
			{&a.Self.Base, "value", &a.Self.Value, H, H},
			{&a.Output.Base, "dense", &a.Output.Dense, H, H},
			{&l.Intermediate.Base, "dense", &l.Intermediate.Dense, H, c.IntermediateSize},
			{&l.Output.Base, "dense", &l.Output.Dense, c.IntermediateSize, H},
		} {
			lin, err := linear(p.in, p.out, std, opts)
			if err != nil {
				return m, err
			}
			*p.field = lin
			module.Child(p.owner, p.name, p.field)
		}
		for _, o := range []*Output{a.Output, l.Output} {
			if o.LayerNorm, err = layerNorm(c, opts); err != nil {
				return m, err
			}
			module.Child(&o.Base, "LayerNorm", &o.LayerNorm)
		}
	}
	if m.Pooler != nil {
		if m.Pooler.Dense, err = linear(H, H, std, opts); err != nil {
			return m, err
		}
		module.Child(&m.Pooler.Base, "dense", &m.Pooler.Dense)
	}
	if c.SequenceClassification {
		if m.Classifier, err = linear(H, c.NumLabels, std, opts); err != nil {
			return m, err
		}
		module.Child(&m.Base, "classifier", &m.Classifier)
	}
	return m, nil
}

func unsqueezed(t *torch.Tensor) *torch.Tensor {
	u := t.View(1, -1)
	t.Close()
	return u
}

func embedding(num, dim int64, std float64, pad int64, opts []torch.Option) (*module.Embedding, error) {
	w := torch.Empty([]int64{num, dim}, opts...)
	err := w.Normal_(0, std)
	if err == nil && pad >= 0 {
		row := w.Narrow(0, pad, 1)
		err = row.Zero_().Err()
		row.Close()
	}
	var e *module.Embedding
	if err == nil {
		e, err = module.EmbeddingFrom(w)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	return e, nil
}

func linear(in, out int64, std float64, opts []torch.Option) (*module.Linear, error) {
	w := torch.Empty([]int64{out, in}, opts...)
	b := torch.Zeros([]int64{out}, opts...)
	err := w.Normal_(0, std)
	if err == nil {
		err = b.Err()
	}
	var l *module.Linear
	if err == nil {
		l, err = module.LinearFrom(w, b)
	}
	if err != nil {
		torch.CloseAll(w, b)
		return nil, err
	}
	return l, nil
}

func layerNorm(c *Config, opts []torch.Option) (*module.LayerNorm, error) {
	n, err := module.NewLayerNorm([]int64{c.HiddenSize}, opts...)
	if err != nil {
		return nil, err
	}
	n.Eps = c.LayerNormEps
	return n, nil
}

// Forward returns the last hidden state (B, T, hidden) of int64 token ids
// (B, T) without padding, token types all 0. It makes Model a module.Layer.
func (m *Model) Forward(ids *torch.Tensor) *torch.Tensor {
	return m.ForwardInputs(module.Inputs{IDs: ids})
}

// ForwardInputs returns the last hidden state (B, T, hidden), BertModel's
// last_hidden_state, for the inputs:
//
//   - IDs: int64 token ids (B, T), or Embeds (B, T, hidden) instead;
//   - AttentionMask (optional): (B, T), 1 for tokens, 0 for padding, whose
//     keys then get no attention;
//   - TokenTypes (optional): (B, T) segment ids, 0 when absent;
//   - Positions (optional): (B, T) or (1, T), 0…T−1 when absent.
//
// It makes Model a module.MultiLayer. The result joins the ids' scope.
func (m *Model) ForwardInputs(in module.Inputs) *torch.Tensor {
	h := m.Embeddings.forward(in)
	if err := h.Err(); err != nil {
		return h
	}
	var bias *torch.Tensor
	if mask := in.AttentionMask; mask != nil {
		if err := mask.Err(); err != nil {
			return mask
		}
		B, T := h.SizeOf(0), h.SizeOf(1)
		if s := mask.Shape(); len(s) != 2 || s[0] != B || s[1] != T {
			return torch.Failed(fmt.Errorf("bert: attention_mask must be (batch %d, seq %d), got shape %v", B, T, s))
		}
		keep := mask.To(h.Device()).NeScalar(0).View(B, 1, 1, T)
		bias = keep.ZerosLike().To(h.DType()).MaskedFill(keep.LogicalNot(), hf.MinValue(h.DType()))
	}
	for _, l := range m.Encoder.Layer.All() {
		h = l.forward(h, bias)
	}
	return h
}

// Pool returns the pooler output (B, hidden), tanh(dense(hidden[:, 0])),
// BertModel's pooler_output; a failed tensor when the model has no pooler.
func (m *Model) Pool(hidden *torch.Tensor) *torch.Tensor {
	if m.Pooler == nil {
		return torch.Failed(fmt.Errorf("bert: the model has no pooler (add_pooling_layer false)"))
	}
	return m.Pooler.Forward(hidden)
}

// Classify returns BertForSequenceClassification's logits (B, num_labels)
// for the inputs (see ForwardInputs); a failed tensor when the model has no
// classifier.
func (m *Model) Classify(in module.Inputs) *torch.Tensor {
	if m.Classifier == nil {
		return torch.Failed(fmt.Errorf("bert: the model has no classifier (not a sequence-classification checkpoint)"))
	}
	pooled := m.Pool(m.ForwardInputs(in))
	return m.Classifier.Forward(torch.Dropout(pooled, m.Config.classifierDropout(), m.Training()))
}

// Label returns id2label's name for a class id, or "LABEL_<id>" as
// transformers names labels it was not given.
func (m *Model) Label(id int64) string {
	if l, ok := m.Config.ID2Label[id]; ok {
		return l
	}
	return fmt.Sprintf("LABEL_%d", id)
}

func (e *Embeddings) forward(in module.Inputs) *torch.Tensor {
	var h *torch.Tensor
	switch {
	case in.Embeds != nil:
		h = in.Embeds
	case in.IDs != nil:
		if in.IDs.Err() == nil && in.IDs.Dim() != 2 {
			return torch.Failed(fmt.Errorf("bert: input_ids must be (batch, seq), got shape %v", in.IDs.Shape()))
		}
		h = e.WordEmbeddings.Forward(in.IDs)
	default:
		return torch.Failed(fmt.Errorf("bert: neither input_ids nor inputs_embeds given"))
	}
	if err := h.Err(); err != nil {
		return h
	}
	if h.Dim() != 3 {
		return torch.Failed(fmt.Errorf("bert: inputs_embeds must be (batch, seq, hidden), got shape %v", h.Shape()))
	}
	B, T := h.SizeOf(0), h.SizeOf(1)
	if T > e.cfg.MaxPositionEmbeddings {
		return torch.Failed(fmt.Errorf("bert: sequence of %d tokens exceeds max_position_embeddings %d", T, e.cfg.MaxPositionEmbeddings))
	}
	types := in.TokenTypes
	if types == nil {
		types = torch.Zeros([]int64{B, T}, torch.WithDType(torch.Int64), torch.WithDevice(h.Device()), torch.In(h.Scope()))
	} else if types.Err() == nil {
		if s := types.Shape(); len(s) != 2 || s[0] != B || s[1] != T {
			return torch.Failed(fmt.Errorf("bert: token_type_ids must be (batch %d, seq %d), got shape %v", B, T, s))
		}
	}
	h = h.Add(e.TokenTypeEmbeddings.Forward(types))
	pos := in.Positions
	if pos == nil {
		s := h.Scope()
		if s != nil {
			pos = s.Borrow(e.PositionIDs).Narrow(1, 0, T)
		} else {
			pos = e.PositionIDs.Narrow(1, 0, T)
		}
	}
	h = e.LayerNorm.Forward(h.Add(e.PositionEmbeddings.Forward(pos)))
	return torch.Dropout(h, e.cfg.HiddenDropoutProb, e.Training())
}

func (l *EncoderLayer) forward(x, bias *torch.Tensor) *torch.Tensor {
	// In a scope of its own: the intermediates autograd does not keep are
	// freed when the layer returns (hf.Block).
	return hf.Block(x, func(x *torch.Tensor) *torch.Tensor {
		a := l.Attention.Output.forward(l.Attention.Self.forward(x, bias), x)
		return l.Output.forward(l.Intermediate.Forward(a), a)
	})
}

// Forward runs the layer without padding mask over x (B, T, hidden). It
// makes EncoderLayer a module.Layer.
func (l *EncoderLayer) Forward(x *torch.Tensor) *torch.Tensor { return l.forward(x, nil) }

func (a *SelfAttention) forward(x, bias *torch.Tensor) *torch.Tensor {
	B, T, C, H := x.SizeOf(0), x.SizeOf(1), x.SizeOf(2), a.cfg.NumAttentionHeads
	q := a.Query.Forward(x).View(B, T, H, C/H).Transpose(1, 2)
	k := a.Key.Forward(x).View(B, T, H, C/H).Transpose(1, 2)
	v := a.Value.Forward(x).View(B, T, H, C/H).Transpose(1, 2)
	p := 0.0
	if a.Training() {
		p = a.cfg.AttentionDropoutProb
	}
	return torch.ScaledDotProductAttention(q, k, v, bias, p, false).Transpose(1, 2).Reshape(B, T, C)
}

// Forward is self-attention over x (B, T, hidden) without padding mask.
func (a *SelfAttention) Forward(x *torch.Tensor) *torch.Tensor { return a.forward(x, nil) }

func (o *Output) forward(x, residual *torch.Tensor) *torch.Tensor {
	return o.LayerNorm.Forward(torch.Dropout(o.Dense.Forward(x), o.cfg.HiddenDropoutProb, o.Training()).Add(residual))
}

// Forward is hidden_act(dense(x)).
func (i *Intermediate) Forward(x *torch.Tensor) *torch.Tensor {
	return activate(i.Dense.Forward(x), i.cfg.HiddenAct)
}

// Forward is tanh(dense(hidden[:, 0])) for hidden (B, T, hidden).
func (p *Pooler) Forward(hidden *torch.Tensor) *torch.Tensor {
	return p.Dense.Forward(hidden.Narrow(1, 0, 1).SqueezeDim(1)).Tanh()
}

func activate(x *torch.Tensor, name string) *torch.Tensor {
	switch name {
	case "gelu":
		return x.Gelu()
	case "gelu_new", "gelu_pytorch_tanh":
		return x.GeluTanh()
	case "relu":
		return x.Relu()
	case "silu", "swish":
		return x.Silu()
	}
	return torch.Failed(fmt.Errorf("bert: hidden_act %q is not supported", name))
}

// MeanPool averages the token states of hidden (B, T, H) over the tokens
// that mask (B, T) marks with 1, as sentence-transformers' mean pooling:
// sum(hidden·mask) / max(sum(mask), 1e-9). A nil mask averages every token.
// The result (B, H) joins hidden's scope.
func MeanPool(hidden, mask *torch.Tensor) *torch.Tensor {
	if mask == nil {
		return hidden.MeanDims([]int64{1}, false)
	}
	if err := hidden.Err(); err != nil {
		return hidden
	}
	m := mask.To(hidden.Device()).To(hidden.DType()).Unsqueeze(-1)
	return hidden.Mul(m).SumDims([]int64{1}, false).Div(m.SumDims([]int64{1}, false).ClampMin(1e-9))
}

// Normalize scales each row of x (B, H) to unit L2 norm, as F.normalize
// (and sentence-transformers' Normalize): x / max(‖x‖, 1e-12).
func Normalize(x *torch.Tensor) *torch.Tensor {
	return x.Div(x.Norm(2, []int64{-1}, true).ClampMin(1e-12))
}

// Embed returns sentence embeddings (B, hidden) as all-MiniLM-L6-v2's
// sentence-transformers pipeline makes them: the last hidden state,
// mean-pooled over in.AttentionMask, L2-normalised.
func (m *Model) Embed(in module.Inputs) *torch.Tensor {
	return Normalize(MeanPool(m.ForwardInputs(in), in.AttentionMask))
}
