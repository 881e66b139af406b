// Package hf reads Hugging Face checkpoints for golora's model families
// (models/llama, models/gpt2, models/bert): config.json (Config, in both
// the transformers ≥ 5 and the older field styles), the weights
// (model.safetensors or a sharded model.safetensors.index.json) loaded
// strictly into a module by transformers' state-dict names (LoadWeights),
// dtype and device options, and what causal language models share at run
// time: a KV cache (KVCache), transformers' eager causal and padding mask
// (CausalMask) and the position ids that generate derives from a
// left-padded attention mask (PositionIDs).
package hf
