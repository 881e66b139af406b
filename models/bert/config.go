package bert

import (
	"fmt"
	"strings"
)

// Config is the part of transformers' BertConfig that the model reads,
// named after config.json's keys.
type Config struct {
	VocabSize             int64   // vocab_size
	HiddenSize            int64   // hidden_size
	NumHiddenLayers       int64   // num_hidden_layers
	NumAttentionHeads     int64   // num_attention_heads; must divide HiddenSize
	IntermediateSize      int64   // intermediate_size
	MaxPositionEmbeddings int64   // max_position_embeddings
	TypeVocabSize         int64   // type_vocab_size: token types (segments)
	HiddenAct             string  // hidden_act: gelu (erf, default), gelu_new, gelu_pytorch_tanh, relu, silu
	LayerNormEps          float64 // layer_norm_eps (1e-12)
	HiddenDropoutProb     float64 // hidden_dropout_prob, in training mode
	AttentionDropoutProb  float64 // attention_probs_dropout_prob, in training mode
	// ClassifierDropout (classifier_dropout) is the dropout before the
	// classifier; negative means HiddenDropoutProb, as null does.
	ClassifierDropout float64
	InitializerRange  float64 // initializer_range (0.02): the std of New's weights
	PadTokenID        int64   // pad_token_id: the word embedding's padding row

	// AddPoolingLayer adds the pooler (dense + tanh on the first token).
	AddPoolingLayer bool
	// SequenceClassification makes the model BertForSequenceClassification:
	// its base is named "bert" (keys "bert.encoder.…") and a "classifier"
	// Linear maps the pooled output to NumLabels logits.
	SequenceClassification bool
	NumLabels              int64            // num_labels (len(id2label) when given)
	ID2Label               map[int64]string // id2label
}

// DefaultConfig returns BertConfig's defaults: BERT-base, uncased.
func DefaultConfig() Config {
	return Config{
		VocabSize: 30522, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
		IntermediateSize: 3072, MaxPositionEmbeddings: 512, TypeVocabSize: 2,
		HiddenAct: "gelu", LayerNormEps: 1e-12, HiddenDropoutProb: 0.1, AttentionDropoutProb: 0.1,
		ClassifierDropout: -1, InitializerRange: 0.02, AddPoolingLayer: true, NumLabels: 2,
	}
}

var activations = []string{"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"}

// Validate reports the first field out of range, naming it by its
// config.json key.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    int64
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings}, {"type_vocab_size", c.TypeVocabSize},
	} {
		if p.v <= 0 {
			return fmt.Errorf("bert: config: %s must be positive, got %d", p.name, p.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("bert: config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	ok := false
	for _, a := range activations {
		ok = ok || a == c.HiddenAct
	}
	if !ok {
		return fmt.Errorf("bert: config: hidden_act %q is not supported (supported: %s)", c.HiddenAct, strings.Join(activations, ", "))
	}
	if !(c.LayerNormEps > 0) {
		return fmt.Errorf("bert: config: layer_norm_eps must be positive, got %v", c.LayerNormEps)
	}
	if !(c.InitializerRange >= 0) {
		return fmt.Errorf("bert: config: initializer_range must not be negative, got %v", c.InitializerRange)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"hidden_dropout_prob", c.HiddenDropoutProb}, {"attention_probs_dropout_prob", c.AttentionDropoutProb}} {
		if !(p.v >= 0 && p.v < 1) {
			return fmt.Errorf("bert: config: %s must be in [0, 1), got %v", p.name, p.v)
		}
	}
	if !(c.ClassifierDropout < 1) {
		return fmt.Errorf("bert: config: classifier_dropout must be in [0, 1), got %v", c.ClassifierDropout)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fmt.Errorf("bert: config: pad_token_id %d is outside the vocabulary [0, %d)", c.PadTokenID, c.VocabSize)
	}
	if c.SequenceClassification {
		if c.NumLabels <= 0 {
			return fmt.Errorf("bert: config: num_labels must be positive for sequence classification, got %d", c.NumLabels)
		}
		if !c.AddPoolingLayer {
			return fmt.Errorf("bert: config: sequence classification needs the pooler")
		}
		for id := range c.ID2Label {
			if id < 0 || id >= c.NumLabels {
				return fmt.Errorf("bert: config: id2label has id %d outside [0, num_labels %d)", id, c.NumLabels)
			}
		}
	}
	return nil
}

func (c Config) classifierDropout() float64 {
	if c.ClassifierDropout < 0 {
		return c.HiddenDropoutProb
	}
	return c.ClassifierDropout
}
