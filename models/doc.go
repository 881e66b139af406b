// Package models loads Hugging Face checkpoints into golora's model
// families, one package each:
//
//   - models/llama: Llama 2 and 3, Mistral and Qwen2 causal language models;
//   - models/gpt2: GPT-2;
//   - models/bert: BERT encoders, with an optional classification head;
//
// on top of models/hf, which reads config.json, loads the weights by
// transformers' state-dict names and holds the KV cache and attention masks
// that the causal families share.
//
// # Concurrency
//
// A loaded model keeps no per-call state: its forward passes (Score,
// Logits, LastLogits, the families' Forward and Run) only read the
// parameters and buffers, and the KV cache lives outside it. So one model
// may serve many goroutines at once, each with its own inputs and, for
// generation (generate.Generate, gpt2's Greedy), its own KV cache: each
// gets bitwise the answer it would get alone. Keep the model in
// evaluation mode while it is shared (dropout in training mode draws from
// libtorch's one global generator) and run inference under torch.NoGrad
// (Generate does). Sampling draws from generate's private per-call
// generator, so seeded samples do not depend on other goroutines either.
// An hf.KVCache is safe for concurrent use but serves one generation at a
// time; never share one between two.
//
// Changing the model — Train/Eval, To, loading weights, lora's adapter
// operations, an optimizer step — must not overlap with its other uses:
// training a model while goroutines serve it needs a sync.RWMutex, held
// for writing around each step, for reading around each request (see the
// module package's "Concurrency"). Close while requests are in flight
// never crashes: each request returns its right answer or an error
// wrapping torch's "use of closed tensor", naming the closed tensor.
package models
