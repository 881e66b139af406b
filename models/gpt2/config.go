package gpt2

import (
	"fmt"
	"strings"
)

// Config is the part of transformers' GPT2Config that the model reads. The
// names follow config.json's keys (n_embd, n_layer, …).
type Config struct {
	VocabSize          int64   // vocab_size
	NPositions         int64   // n_positions: the largest sequence, wpe's rows
	NEmbd              int64   // n_embd: the hidden width
	NLayer             int64   // n_layer: the number of blocks
	NHead              int64   // n_head: attention heads; must divide NEmbd
	NInner             int64   // n_inner: the MLP's width; 0 means 4·NEmbd
	ActivationFunction string  // activation_function: gelu_new (default), gelu_pytorch_tanh, gelu, relu, silu
	LayerNormEpsilon   float64 // layer_norm_epsilon (1e-5)
	InitializerRange   float64 // initializer_range (0.02): the std of New's weights
	ResidPdrop         float64 // resid_pdrop: dropout after each projection, in training mode
	EmbdPdrop          float64 // embd_pdrop: dropout on the embeddings, in training mode
	AttnPdrop          float64 // attn_pdrop: dropout on the attention weights, in training mode

	ScaleAttnWeights           bool // scale_attn_weights (true): divide the scores by √head_dim
	ScaleAttnByInverseLayerIdx bool // scale_attn_by_inverse_layer_idx: and by layer index + 1
	// TieWordEmbeddings (tie_word_embeddings, true by default) makes
	// lm_head.weight the same tensor as transformer.wte.weight.
	TieWordEmbeddings bool

	BOSTokenID, EOSTokenID int64 // bos_token_id, eos_token_id (-1: none)
}

// DefaultConfig returns GPT2Config's defaults: GPT-2 small (124M).
func DefaultConfig() Config {
	return Config{
		VocabSize: 50257, NPositions: 1024, NEmbd: 768, NLayer: 12, NHead: 12,
		ActivationFunction: "gelu_new", LayerNormEpsilon: 1e-5, InitializerRange: 0.02,
		ResidPdrop: 0.1, EmbdPdrop: 0.1, AttnPdrop: 0.1,
		ScaleAttnWeights: true, TieWordEmbeddings: true,
		BOSTokenID: 50256, EOSTokenID: 50256,
	}
}

// activations are the values of activation_function the model supports.
var activations = []string{"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"}

// Validate reports the first field out of range, naming it by its
// config.json key.
func (c Config) Validate() error {
	pos := []struct {
		name string
		v    int64
	}{{"vocab_size", c.VocabSize}, {"n_positions", c.NPositions}, {"n_embd", c.NEmbd}, {"n_layer", c.NLayer}, {"n_head", c.NHead}}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("gpt2: config: %s must be positive, got %d", p.name, p.v)
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return fmt.Errorf("gpt2: config: n_embd %d is not divisible by n_head %d", c.NEmbd, c.NHead)
	}
	if c.NInner < 0 {
		return fmt.Errorf("gpt2: config: n_inner must be positive or null, got %d", c.NInner)
	}
	if !validActivation(c.ActivationFunction) {
		return fmt.Errorf("gpt2: config: activation_function %q is not supported (supported: %s)",
			c.ActivationFunction, strings.Join(activations, ", "))
	}
	if !(c.LayerNormEpsilon > 0) {
		return fmt.Errorf("gpt2: config: layer_norm_epsilon must be positive, got %v", c.LayerNormEpsilon)
	}
	if !(c.InitializerRange >= 0) {
		return fmt.Errorf("gpt2: config: initializer_range must not be negative, got %v", c.InitializerRange)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"resid_pdrop", c.ResidPdrop}, {"embd_pdrop", c.EmbdPdrop}, {"attn_pdrop", c.AttnPdrop}} {
		if !(p.v >= 0 && p.v < 1) {
			return fmt.Errorf("gpt2: config: %s must be in [0, 1), got %v", p.name, p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    int64
	}{{"bos_token_id", c.BOSTokenID}, {"eos_token_id", c.EOSTokenID}} {
		if p.v < -1 || p.v >= c.VocabSize {
			return fmt.Errorf("gpt2: config: %s %d is outside the vocabulary [0, %d)", p.name, p.v, c.VocabSize)
		}
	}
	return nil
}

func validActivation(a string) bool {
	for _, s := range activations {
		if a == s {
			return true
		}
	}
	return false
}

// inner returns the MLP's width.
func (c Config) inner() int64 {
	if c.NInner > 0 {
		return c.NInner
	}
	return 4 * c.NEmbd
}
