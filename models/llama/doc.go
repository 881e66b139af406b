// Package llama is the Llama family of causal language models in Go:
// Llama 2 and 3, Mistral and Qwen2, loaded from Hugging Face checkpoints
// and run as transformers runs them.
//
// The architecture: token embeddings, blocks of pre-norm grouped-query
// attention (q/k/v/o_proj, biases as Qwen2 has them, RoPE with rope_theta
// and the "default", "linear" and "llama3" scalings, an optional sliding
// window for Mistral and Qwen2) and a SwiGLU MLP (gate/up/down_proj), an
// RMSNorm computed in float32 like LlamaRMSNorm, and a tied or untied
// lm_head. Parameter names are transformers' (model.layers.0.self_attn.
// q_proj.weight, ...), so checkpoints load without renaming and PEFT
// adapter keys map one to one; the projections are module.Layer fields
// that lora.Apply can wrap.
//
//	m, err := llama.Load(dir, hf.WithDType(torch.BFloat16))   // config.json + model.safetensors (or shards)
//	defer m.Close()
//	logits := m.Forward(ids)                                   // [B, T, vocab]
//	cache := m.NewCache()
//	logits = m.ForwardCache(ids, attentionMask, nil, cache)    // left padding, incremental decoding
//
// Attention runs transformers' eager path op for op, so float32 logits
// agree with transformers 5 to about 1e-6 of the largest logit (see
// llama_interop_test.go). Positions: without explicit position ids, they
// follow the attention mask as in transformers' generate (cumsum - 1, 0 at
// padding), else count from the cache's length.
//
// Not supported: other rope types (dynamic, yarn, longrope), partial
// rotary factors, packed sequences without an attention mask
// (transformers detects them from position ids), and activation
// checkpointing (Block.Forward with a Step is the seam for it).
package llama
