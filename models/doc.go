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
package models
