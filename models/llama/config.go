package llama

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/golora/golora/models/hf"
)

// ModelTypes are the config.json model_type values this package loads.
var ModelTypes = []string{"llama", "mistral", "qwen2"}

// RopeTypes are the supported rope_scaling / rope_parameters types.
var RopeTypes = []string{"default", "linear", "llama3"}

// Rope holds the rotary embedding's parameters, as transformers ≥ 5 keeps
// them in rope_parameters.
type Rope struct {
	Type  string  // "default", "linear" or "llama3"
	Theta float64 // rope_theta, the base (10000 by default)

	// Factor scales the frequencies down ("linear": all of them;
	// "llama3": the low ones).
	Factor float64
	// LowFreqFactor, HighFreqFactor and OriginalMaxPositionEmbeddings are
	// "llama3"'s (original_max_position_embeddings defaults to
	// max_position_embeddings, as in transformers).
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositionEmbeddings int64
}

// Config is a Llama-family architecture: the fields of config.json that
// the model uses, with transformers' names in the comments.
type Config struct {
	ModelType             string  // model_type: "llama", "mistral" or "qwen2"
	VocabSize             int64   // vocab_size
	HiddenSize            int64   // hidden_size
	IntermediateSize      int64   // intermediate_size
	NumHiddenLayers       int64   // num_hidden_layers
	NumAttentionHeads     int64   // num_attention_heads
	NumKeyValueHeads      int64   // num_key_value_heads (grouped-query attention); 0 means NumAttentionHeads
	HeadDim               int64   // head_dim; 0 means HiddenSize/NumAttentionHeads
	MaxPositionEmbeddings int64   // max_position_embeddings
	RMSNormEps            float64 // rms_norm_eps
	HiddenAct             string  // hidden_act: "silu"
	TieWordEmbeddings     bool    // tie_word_embeddings: lm_head shares embed_tokens' weight
	Rope                  Rope    // rope_parameters, or rope_theta and rope_scaling

	// QKVBias gives q_proj, k_proj and v_proj a bias (Llama's
	// attention_bias; always for Qwen2), OBias o_proj (Llama's
	// attention_bias; never for Qwen2), MLPBias the MLP's projections
	// (Llama's mlp_bias).
	QKVBias, OBias, MLPBias bool

	// SlidingWindow limits attention to the last SlidingWindow keys in the
	// layers marked in Sliding (0: no window). Mistral's sliding_window
	// applies to every layer; Qwen2's to the layers that layer_types
	// marks "sliding_attention" (with use_sliding_window, from
	// max_window_layers on).
	SlidingWindow int64
	Sliding       []bool // per layer; nil: no layer

	// AttentionDropout is the dropout on the attention weights in
	// training mode (attention_dropout; usually 0).
	AttentionDropout float64

	// InitializerRange is the std of New's random weights.
	InitializerRange float64 // initializer_range

	// Token ids for generation; EOSTokenIDs may hold several. Negative:
	// none.
	BOSTokenID, PadTokenID int64
	EOSTokenIDs            []int64
}

// headDim returns the per-head width.
func (c *Config) headDim() int64 {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.NumAttentionHeads > 0 {
		return c.HiddenSize / c.NumAttentionHeads
	}
	return 0
}

func (c *Config) kvHeads() int64 {
	if c.NumKeyValueHeads > 0 {
		return c.NumKeyValueHeads
	}
	return c.NumAttentionHeads
}

// Validate checks the sizes and the supported options; an error names the
// config.json field at fault.
func (c *Config) Validate() error {
	if c == nil {
		return fmt.Errorf("llama: nil config")
	}
	if !slices.Contains(ModelTypes, c.ModelType) {
		return fmt.Errorf("llama: model_type %q is not supported (supported: %s)", c.ModelType, strings.Join(ModelTypes, ", "))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	} {
		if f.v <= 0 {
			return fmt.Errorf("llama: config: %s = %d: must be positive", f.name, f.v)
		}
	}
	if c.NumKeyValueHeads < 0 {
		return fmt.Errorf("llama: config: num_key_value_heads = %d: must be positive", c.NumKeyValueHeads)
	}
	if c.NumAttentionHeads%c.kvHeads() != 0 {
		return fmt.Errorf("llama: config: num_key_value_heads = %d must divide num_attention_heads = %d", c.kvHeads(), c.NumAttentionHeads)
	}
	if c.HeadDim < 0 {
		return fmt.Errorf("llama: config: head_dim = %d: must be positive", c.HeadDim)
	}
	if c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("llama: config: num_attention_heads = %d must divide hidden_size = %d (or set head_dim)", c.NumAttentionHeads, c.HiddenSize)
	}
	if d := c.headDim(); d%2 != 0 {
		return fmt.Errorf("llama: config: head_dim = %d: rotary embeddings need an even head_dim", d)
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		return fmt.Errorf("llama: config: rms_norm_eps = %g: must be positive", c.RMSNormEps)
	}
	if c.HiddenAct != "silu" && c.HiddenAct != "swish" {
		return fmt.Errorf("llama: config: hidden_act %q is not supported (supported: silu)", c.HiddenAct)
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("llama: config: sliding_window = %d: must be positive", c.SlidingWindow)
	}
	if c.Sliding != nil && int64(len(c.Sliding)) != c.NumHiddenLayers {
		return fmt.Errorf("llama: config: layer_types has %d entries for num_hidden_layers = %d", len(c.Sliding), c.NumHiddenLayers)
	}
	if !(c.AttentionDropout >= 0 && c.AttentionDropout < 1) {
		return fmt.Errorf("llama: config: attention_dropout = %g: want [0, 1)", c.AttentionDropout)
	}
	if c.InitializerRange < 0 {
		return fmt.Errorf("llama: config: initializer_range = %g: must not be negative", c.InitializerRange)
	}
	r := c.Rope
	if !(r.Theta > 0) || math.IsInf(r.Theta, 0) {
		return fmt.Errorf("llama: config: rope_theta = %g: must be positive", r.Theta)
	}
	switch r.Type {
	case "default":
	case "linear":
		if !(r.Factor > 0) || math.IsInf(r.Factor, 0) {
			return fmt.Errorf("llama: config: rope_scaling factor = %g: must be positive", r.Factor)
		}
	case "llama3":
		if !(r.Factor > 0) || math.IsInf(r.Factor, 0) {
			return fmt.Errorf("llama: config: rope_scaling factor = %g: must be positive", r.Factor)
		}
		if !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) {
			return fmt.Errorf("llama: config: rope_scaling low_freq_factor = %g, high_freq_factor = %g: want 0 < low < high", r.LowFreqFactor, r.HighFreqFactor)
		}
		if r.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("llama: config: rope_scaling original_max_position_embeddings = %d: must be positive", r.OriginalMaxPositionEmbeddings)
		}
	default:
		return fmt.Errorf("llama: config: rope_scaling type %q is not supported (supported: %s)", r.Type, strings.Join(RopeTypes, ", "))
	}
	return nil
}

// MaxLayers is the largest num_hidden_layers ConfigFrom accepts.
const MaxLayers = 1 << 16

// ConfigFrom reads a Llama-family config from a parsed config.json, in
// both styles: transformers ≥ 5's "rope_parameters" object (with
// rope_theta and rope_type inside), and the older top-level "rope_theta"
// with a "rope_scaling" object (whose type is "rope_type" or "type").
// Absent fields take the defaults of transformers' config class for the
// model_type. The result is validated.
func ConfigFrom(c *hf.Config) (*Config, error) {
	if c == nil {
		return nil, fmt.Errorf("llama: nil config")
	}
	if !slices.Contains(ModelTypes, c.ModelType) {
		return nil, fmt.Errorf("llama: model_type %q is not supported (supported: %s)", c.ModelType, strings.Join(ModelTypes, ", "))
	}
	// transformers' class defaults.
	cfg := &Config{
		ModelType: c.ModelType, VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008,
		NumHiddenLayers: 32, NumAttentionHeads: 32, MaxPositionEmbeddings: 2048,
		RMSNormEps: 1e-6, HiddenAct: "silu", InitializerRange: 0.02,
		BOSTokenID: 1, PadTokenID: -1, EOSTokenIDs: []int64{2},
	}
	switch c.ModelType {
	case "mistral":
		cfg.IntermediateSize, cfg.NumKeyValueHeads, cfg.MaxPositionEmbeddings = 14336, 8, 4096*32
	case "qwen2":
		cfg.VocabSize, cfg.IntermediateSize, cfg.MaxPositionEmbeddings = 151936, 22016, 32768
		cfg.BOSTokenID, cfg.EOSTokenIDs = -1, nil
	}
	var err error
	geti := func(key string, p *int64) {
		if err == nil {
			*p, err = c.Int(key, *p)
		}
	}
	getf := func(key string, p *float64) {
		if err == nil {
			*p, err = c.Float(key, *p)
		}
	}
	getb := func(key string, p *bool) {
		if err == nil {
			*p, err = c.Bool(key, *p)
		}
	}
	geti("vocab_size", &cfg.VocabSize)
	geti("hidden_size", &cfg.HiddenSize)
	geti("intermediate_size", &cfg.IntermediateSize)
	geti("num_hidden_layers", &cfg.NumHiddenLayers)
	geti("num_attention_heads", &cfg.NumAttentionHeads)
	geti("num_key_value_heads", &cfg.NumKeyValueHeads)
	geti("head_dim", &cfg.HeadDim)
	geti("max_position_embeddings", &cfg.MaxPositionEmbeddings)
	getf("rms_norm_eps", &cfg.RMSNormEps)
	getf("initializer_range", &cfg.InitializerRange)
	getf("attention_dropout", &cfg.AttentionDropout)
	getb("tie_word_embeddings", &cfg.TieWordEmbeddings)
	geti("bos_token_id", &cfg.BOSTokenID)
	geti("pad_token_id", &cfg.PadTokenID)
	if err == nil {
		cfg.HiddenAct, err = c.String("hidden_act", cfg.HiddenAct)
	}
	if err != nil {
		return nil, err
	}
	if c.Has("eos_token_id") {
		if one, ierr := c.Int("eos_token_id", -1); ierr == nil {
			cfg.EOSTokenIDs = []int64{one}
		} else if derr := c.Decode("eos_token_id", &cfg.EOSTokenIDs); derr != nil {
			return nil, fmt.Errorf("llama: %w (want an id or a list of ids)", ierr)
		}
	}
	if !c.Has("bos_token_id") && c.Raw["bos_token_id"] != nil {
		cfg.BOSTokenID = -1 // null
	}
	if !c.Has("eos_token_id") && c.Raw["eos_token_id"] != nil {
		cfg.EOSTokenIDs = nil // null
	}

	// The per-layer lists below are made from num_hidden_layers: bound it
	// first, so that a small config.json cannot claim 10¹² layers.
	if cfg.NumHiddenLayers > MaxLayers {
		return nil, fmt.Errorf("llama: config: num_hidden_layers = %d: more than %d", cfg.NumHiddenLayers, MaxLayers)
	}
	switch c.ModelType {
	case "llama":
		getb("attention_bias", &cfg.QKVBias)
		cfg.OBias = cfg.QKVBias
		getb("mlp_bias", &cfg.MLPBias)
	case "qwen2":
		cfg.QKVBias = true
		useSliding := false
		getb("use_sliding_window", &useSliding)
		window := int64(4096)
		geti("sliding_window", &window)
		maxWindowLayers := int64(28)
		geti("max_window_layers", &maxWindowLayers)
		if err != nil {
			return nil, err
		}
		if useSliding && c.Has("sliding_window") || useSliding && c.Raw["sliding_window"] == nil {
			cfg.SlidingWindow = window // Qwen2Config drops the window without use_sliding_window
		}
		var types []string
		if derr := c.Decode("layer_types", &types); derr != nil {
			return nil, derr
		}
		if cfg.SlidingWindow > 0 {
			if types == nil {
				for i := int64(0); i < cfg.NumHiddenLayers; i++ {
					types = append(types, map[bool]string{true: "sliding_attention", false: "full_attention"}[i >= maxWindowLayers])
				}
			}
			cfg.Sliding = make([]bool, len(types))
			for i, t := range types {
				switch t {
				case "sliding_attention":
					cfg.Sliding[i] = true
				case "full_attention":
				default:
					return nil, fmt.Errorf("llama: config: layer_types[%d] = %q: want full_attention or sliding_attention", i, t)
				}
			}
		}
	case "mistral":
		window := int64(4096)
		geti("sliding_window", &window)
		if c.Raw["sliding_window"] != nil && !c.Has("sliding_window") {
			window = 0 // null: no window
		}
		if window > 0 {
			cfg.SlidingWindow = window
			cfg.Sliding = make([]bool, max(cfg.NumHiddenLayers, 0))
			for i := range cfg.Sliding {
				cfg.Sliding[i] = true
			}
		} else if window < 0 {
			cfg.SlidingWindow = window
		}
	}
	if err != nil {
		return nil, err
	}
	if cfg.Rope, err = ropeFrom(c, cfg.MaxPositionEmbeddings); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		if c.Dir != "" {
			err = fmt.Errorf("%w (in %s)", err, filepath.Join(c.Dir, hf.ConfigFile))
		}
		return nil, err
	}
	return cfg, nil
}

// ropeFrom reads rope_parameters (transformers ≥ 5), or rope_scaling and
// rope_theta (older files), as transformers' standardize_rope_params
// does: rope_scaling wins over rope_parameters, a missing rope_theta
// inside comes from the top level (default 10000), a missing type is
// "default".
func ropeFrom(c *hf.Config, maxPos int64) (Rope, error) {
	r := Rope{Type: "default", Theta: 10000}
	var err error
	if r.Theta, err = c.Float("rope_theta", r.Theta); err != nil {
		return r, err
	}
	key := "rope_parameters"
	if c.Has("rope_scaling") {
		key = "rope_scaling"
	}
	if !c.Has(key) {
		return r, nil
	}
	var raw map[string]json.RawMessage
	if err := c.Decode(key, &raw); err != nil {
		return r, err
	}
	sub := &hf.Config{Dir: c.Dir, ModelType: c.ModelType, Raw: raw}
	wrap := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("%w (in %s)", err, key)
	}
	if _, ok := raw["partial_rotary_factor"]; ok {
		f, err := sub.Float("partial_rotary_factor", 1)
		if err != nil {
			return r, wrap(err)
		}
		if f != 1 {
			return r, fmt.Errorf("llama: config: %s: partial_rotary_factor = %g is not supported", key, f)
		}
	}
	t, err := sub.String("type", "default")
	if err != nil {
		return r, wrap(err)
	}
	if r.Type, err = sub.String("rope_type", t); err != nil {
		return r, wrap(err)
	}
	if r.Theta, err = sub.Float("rope_theta", r.Theta); err != nil {
		return r, wrap(err)
	}
	if r.Factor, err = sub.Float("factor", 0); err != nil {
		return r, wrap(err)
	}
	if r.LowFreqFactor, err = sub.Float("low_freq_factor", 0); err != nil {
		return r, wrap(err)
	}
	if r.HighFreqFactor, err = sub.Float("high_freq_factor", 0); err != nil {
		return r, wrap(err)
	}
	if r.OriginalMaxPositionEmbeddings, err = sub.Int("original_max_position_embeddings", maxPos); err != nil {
		return r, wrap(err)
	}
	// Keep only the fields of the type, so that equal ropes compare equal.
	switch r.Type {
	case "default":
		r.Factor = 0
		fallthrough
	case "linear":
		r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPositionEmbeddings = 0, 0, 0
	}
	return r, nil
}
