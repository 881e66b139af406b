package gpt2

import (
	"encoding/json"
	"fmt"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// ignoredKeys are checkpoint keys that the model does not use: the causal
// mask and masked_bias that older transformers saved with every attention.
var ignoredKeys = []string{`(^|\.)attn\.bias$`, `(^|\.)attn\.masked_bias$`}

// ConfigFromHF reads a GPT-2 config.json (model_type "gpt2") into a Config,
// with GPT2Config's defaults for absent fields, and validates it.
func ConfigFromHF(hc *hf.Config) (Config, error) {
	if hc == nil {
		return Config{}, fmt.Errorf("gpt2: nil config")
	}
	if hc.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("gpt2: %s: model_type %q is not supported by this package (supported: gpt2)", where(hc), hc.ModelType)
	}
	c := DefaultConfig()
	var err error
	ints := []struct {
		key string
		p   *int64
	}{
		{"vocab_size", &c.VocabSize}, {"n_positions", &c.NPositions}, {"n_embd", &c.NEmbd},
		{"n_layer", &c.NLayer}, {"n_head", &c.NHead}, {"n_inner", &c.NInner},
	}
	for _, f := range ints {
		if *f.p, err = hc.Int(f.key, *f.p); err != nil {
			return Config{}, fmt.Errorf("gpt2: %w", err)
		}
	}
	floats := []struct {
		key string
		p   *float64
	}{
		{"layer_norm_epsilon", &c.LayerNormEpsilon}, {"initializer_range", &c.InitializerRange},
		{"resid_pdrop", &c.ResidPdrop}, {"embd_pdrop", &c.EmbdPdrop}, {"attn_pdrop", &c.AttnPdrop},
	}
	for _, f := range floats {
		if *f.p, err = hc.Float(f.key, *f.p); err != nil {
			return Config{}, fmt.Errorf("gpt2: %w", err)
		}
	}
	bools := []struct {
		key string
		p   *bool
	}{
		{"scale_attn_weights", &c.ScaleAttnWeights},
		{"scale_attn_by_inverse_layer_idx", &c.ScaleAttnByInverseLayerIdx},
		{"tie_word_embeddings", &c.TieWordEmbeddings},
	}
	for _, f := range bools {
		if *f.p, err = hc.Bool(f.key, *f.p); err != nil {
			return Config{}, fmt.Errorf("gpt2: %w", err)
		}
	}
	if c.ActivationFunction, err = hc.String("activation_function", c.ActivationFunction); err != nil {
		return Config{}, fmt.Errorf("gpt2: %w", err)
	}
	if c.BOSTokenID, err = tokenID(hc, "bos_token_id", c.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOSTokenID, err = tokenID(hc, "eos_token_id", c.EOSTokenID); err != nil {
		return Config{}, err
	}
	cross, err := hc.Bool("add_cross_attention", false)
	if err != nil {
		return Config{}, fmt.Errorf("gpt2: %w", err)
	}
	if cross {
		return Config{}, fmt.Errorf("gpt2: %s: add_cross_attention is not supported", where(hc))
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, where(hc))
	}
	return c, nil
}

// tokenID reads a token id that config.json may write as a number, a list
// of numbers (the first is taken) or null (-1 when there is no default).
func tokenID(hc *hf.Config, key string, def int64) (int64, error) {
	if !hc.Has(key) {
		return def, nil
	}
	if v, err := hc.Int(key, def); err == nil {
		return v, nil
	}
	var list []int64
	if err := hc.Decode(key, &list); err != nil || len(list) == 0 {
		raw, _ := json.Marshal(hc.Raw[key])
		return 0, fmt.Errorf("gpt2: %s: %s must be a token id or a list of them, got %s", where(hc), key, raw)
	}
	return list[0], nil
}

func where(hc *hf.Config) string {
	if hc.Dir == "" {
		return hf.ConfigFile
	}
	return hc.Dir + "/" + hf.ConfigFile
}

// Load reads a GPT-2 checkpoint from a local directory in Hugging Face's
// layout: config.json (model_type "gpt2") and model.safetensors or a
// sharded model.safetensors.index.json. Keys of GPT2LMHeadModel
// ("transformer.h.0.…") and of GPT2Model ("h.0.…") both load; a tied
// lm_head.weight may be absent. Options choose the dtype and device
// (float32 on the CPU by default). The model is returned in evaluation
// mode, as from_pretrained does.
func Load(dir string, opts ...hf.Option) (*Model, error) {
	hc, err := hf.ReadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	cfg, err := ConfigFromHF(hc)
	if err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	if _, err := hf.CheckpointFile(dir); err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	if err := checkSize(dir, cfg); err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	m, err := build(cfg, []torch.Option{torch.WithDType(o.DType), torch.WithDevice(o.Device)})
	if err != nil {
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	err = hf.LoadWeightsWith(dir, m, o, hf.LoadSpec{Ignore: ignoredKeys, BasePrefix: "transformer"})
	if err != nil {
		module.Close(m)
		return nil, fmt.Errorf("gpt2: Load: %w", err)
	}
	module.Eval(m)
	return m, nil
}

// checkSize compares the sizes cfg gives with the checkpoint's headers
// before anything is allocated (hf.CheckSize).
func checkSize(dir string, cfg Config) error {
	V, P, E, I, L := float64(cfg.VocabSize), float64(cfg.NPositions), float64(cfg.NEmbd), float64(cfg.inner()), float64(cfg.NLayer)
	// Weights only: biases and norms are smaller than the weights beside them.
	n := V*E + P*E + L*(4*E*E+2*E*I) + E
	if !cfg.TieWordEmbeddings {
		n += V * E
	}
	return hf.CheckSize(dir, hf.LoadSpec{BasePrefix: "transformer"}, n,
		hf.Expect{Name: "transformer.wte.weight", Shape: []int64{cfg.VocabSize, cfg.NEmbd}},
		hf.Expect{Name: "transformer.wpe.weight", Shape: []int64{cfg.NPositions, cfg.NEmbd}},
		hf.Expect{Name: "transformer.ln_f.weight", Shape: []int64{cfg.NEmbd}})
}
