package bert

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// ignoredKeys are checkpoint keys the model does not use: the position and
// token-type id buffers older transformers saved, and the pre-training
// heads of BertForPreTraining and BertForMaskedLM checkpoints.
var ignoredKeys = []string{`(^|\.)embeddings\.position_ids$`, `(^|\.)embeddings\.token_type_ids$`, `^cls\.`}

// ConfigFromHF reads a BERT config.json (model_type "bert") into a Config,
// with BertConfig's defaults for absent fields, and validates it.
// SequenceClassification is set when architectures names
// BertForSequenceClassification; Load decides from the checkpoint's keys.
func ConfigFromHF(hc *hf.Config) (Config, error) {
	if hc == nil {
		return Config{}, fmt.Errorf("bert: nil config")
	}
	if hc.ModelType != "bert" {
		return Config{}, fmt.Errorf("bert: %s: model_type %q is not supported by this package (supported: bert)", where(hc), hc.ModelType)
	}
	c := DefaultConfig()
	var err error
	for _, f := range []struct {
		key string
		p   *int64
	}{
		{"vocab_size", &c.VocabSize}, {"hidden_size", &c.HiddenSize}, {"num_hidden_layers", &c.NumHiddenLayers},
		{"num_attention_heads", &c.NumAttentionHeads}, {"intermediate_size", &c.IntermediateSize},
		{"max_position_embeddings", &c.MaxPositionEmbeddings}, {"type_vocab_size", &c.TypeVocabSize},
		{"pad_token_id", &c.PadTokenID}, {"num_labels", &c.NumLabels},
	} {
		if *f.p, err = hc.Int(f.key, *f.p); err != nil {
			return Config{}, fmt.Errorf("bert: %w", err)
		}
	}
	for _, f := range []struct {
		key string
		p   *float64
	}{
		{"layer_norm_eps", &c.LayerNormEps}, {"hidden_dropout_prob", &c.HiddenDropoutProb},
		{"attention_probs_dropout_prob", &c.AttentionDropoutProb}, {"classifier_dropout", &c.ClassifierDropout},
		{"initializer_range", &c.InitializerRange},
	} {
		if *f.p, err = hc.Float(f.key, *f.p); err != nil {
			return Config{}, fmt.Errorf("bert: %w", err)
		}
	}
	if c.HiddenAct, err = hc.String("hidden_act", c.HiddenAct); err != nil {
		return Config{}, fmt.Errorf("bert: %w", err)
	}
	pet, err := hc.String("position_embedding_type", "absolute")
	if err != nil {
		return Config{}, fmt.Errorf("bert: %w", err)
	}
	if pet != "absolute" {
		return Config{}, fmt.Errorf("bert: %s: position_embedding_type %q is not supported (supported: absolute)", where(hc), pet)
	}
	dec, err := hc.Bool("is_decoder", false)
	if err != nil {
		return Config{}, fmt.Errorf("bert: %w", err)
	}
	if dec {
		return Config{}, fmt.Errorf("bert: %s: is_decoder is not supported (an encoder only)", where(hc))
	}
	if hc.Has("id2label") {
		var raw map[string]string
		if err := hc.Decode("id2label", &raw); err != nil {
			return Config{}, fmt.Errorf("bert: %w", err)
		}
		c.ID2Label = map[int64]string{}
		for k, v := range raw {
			id, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				return Config{}, fmt.Errorf("bert: %s: id2label key %q is not an integer", where(hc), k)
			}
			c.ID2Label[id] = v
		}
		if !hc.Has("num_labels") {
			c.NumLabels = int64(len(raw))
		}
	}
	var archs []string
	if err := hc.Decode("architectures", &archs); err != nil {
		return Config{}, fmt.Errorf("bert: %w", err)
	}
	c.SequenceClassification = slices.Contains(archs, "BertForSequenceClassification")
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, where(hc))
	}
	return c, nil
}

func where(hc *hf.Config) string {
	if hc.Dir == "" {
		return hf.ConfigFile
	}
	return hc.Dir + "/" + hf.ConfigFile
}

// checkpointKeys returns the tensor names of the checkpoint in dir, reading
// only the headers.
func checkpointKeys(dir string) ([]string, error) {
	var keys []string
	_, _, err := torch.LoadSafetensors(dir, torch.LoadOnly(func(name string) bool {
		keys = append(keys, name)
		return false
	}))
	return keys, err
}

// Load reads a BERT checkpoint from a local directory in Hugging Face's
// layout: config.json (model_type "bert") and model.safetensors or a
// sharded model.safetensors.index.json. The checkpoint's keys decide the
// shape of the model: with "classifier.weight" it is
// BertForSequenceClassification (keys "bert.…"), otherwise BertModel, keys
// with or without the "bert." prefix (a BertForMaskedLM or
// BertForPreTraining checkpoint loads its encoder; its "cls.…" heads are
// skipped); the pooler is built when the checkpoint has one. The int64
// embeddings.position_ids buffer that older checkpoints carry is accepted.
// Options choose the dtype and device (float32 on the CPU by default).
// The model is returned in evaluation mode, as from_pretrained does.
func Load(dir string, opts ...hf.Option) (*Model, error) {
	hc, err := hf.ReadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	cfg, err := ConfigFromHF(hc)
	if err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	if _, err := hf.CheckpointFile(dir); err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	keys, err := checkpointKeys(dir)
	if err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	cfg.SequenceClassification = slices.Contains(keys, "classifier.weight")
	cfg.AddPoolingLayer = slices.ContainsFunc(keys, func(k string) bool {
		return k == "pooler.dense.weight" || k == "bert.pooler.dense.weight"
	})
	if cfg.SequenceClassification && !cfg.AddPoolingLayer {
		return nil, fmt.Errorf("bert: Load: %s: the checkpoint has a classifier but no pooler (bert.pooler.dense.weight)", dir)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bert: Load: %w (in %s)", err, where(hc))
	}
	o := hf.NewOptions(opts...)
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	if err := checkSize(dir, cfg); err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	m, err := build(cfg, []torch.Option{torch.WithDType(o.DType), torch.WithDevice(o.Device)})
	if err != nil {
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	spec := hf.LoadSpec{Ignore: ignoredKeys}
	if !cfg.SequenceClassification {
		spec.BasePrefix = "bert"
	}
	if err := hf.LoadWeightsWith(dir, m, o, spec); err != nil {
		module.Close(m)
		return nil, fmt.Errorf("bert: Load: %w", err)
	}
	module.Eval(m)
	return m, nil
}

// checkSize compares the sizes cfg gives with the checkpoint's headers
// before anything is allocated (hf.CheckSize).
func checkSize(dir string, cfg Config) error {
	V, P, T, H, I, L := float64(cfg.VocabSize), float64(cfg.MaxPositionEmbeddings), float64(cfg.TypeVocabSize),
		float64(cfg.HiddenSize), float64(cfg.IntermediateSize), float64(cfg.NumHiddenLayers)
	// Weights only: biases and norms are smaller than the weights beside them.
	n := (V+P+T)*H + L*(4*H*H+2*H*I) + H
	if cfg.AddPoolingLayer {
		n += H * H
	}
	if cfg.SequenceClassification {
		n += H * float64(cfg.NumLabels)
	}
	spec, prefix := hf.LoadSpec{BasePrefix: "bert"}, ""
	if cfg.SequenceClassification {
		spec, prefix = hf.LoadSpec{}, "bert."
	}
	return hf.CheckSize(dir, spec, n,
		hf.Expect{Name: prefix + "embeddings.word_embeddings.weight", Shape: []int64{cfg.VocabSize, cfg.HiddenSize}},
		hf.Expect{Name: prefix + "embeddings.position_embeddings.weight", Shape: []int64{cfg.MaxPositionEmbeddings, cfg.HiddenSize}},
		hf.Expect{Name: prefix + "embeddings.token_type_embeddings.weight", Shape: []int64{cfg.TypeVocabSize, cfg.HiddenSize}})
}
