// Command infer runs a Hugging Face checkpoint with golora: it scores token
// ids, generates text, or tokenizes, optionally with a PEFT LoRA adapter.
//
// Usage:
//
//	infer --base DIR [--adapter DIR [--merge]] [--device cpu|cuda[:i]|auto] [--dtype float32|bfloat16|float16] MODE
//
// Modes (exactly one):
//
//	--ids IN.safetensors --out OUT.safetensors
//	    Scoring: reads the int64 tensor input_ids (B, T) and, when present,
//	    attention_mask (B, T); writes the float32 tensor logits (B, T, V)
//	    for a causal LM, or last_hidden_state (B, T, H) for an encoder, as
//	    transformers' model(input_ids=..., attention_mask=...) computes
//	    them (positions 0…T−1, padding masked out of attention).
//	--prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
//	    Generation: encodes TEXT with the checkpoint's tokenizer.json
//	    (special tokens added, as transformers' tokenizer(text) does) and
//	    streams the continuation to stdout as it is produced, then a
//	    newline. Greedy (transformers' do_sample=False) unless
//	    --temperature, --top-k, --top-p or --seed is given; then it samples
//	    with --seed (default 0), reproducibly (see models/generate on the
//	    generator: not torch.multinomial's draws). It stops at
//	    max-new-tokens (default 20) or at the checkpoint's EOS
//	    (generation_config.json, else config.json, else the tokenizer's).
//	    --repetition-penalty and --stop (a stop string) are optional.
//	--tokenize TEXT [--no-special]
//	    Prints the ids of TEXT as a JSON array; --no-special leaves out the
//	    post-processor's special tokens (BOS, [CLS], ...).
//
// --adapter loads a PEFT adapter directory (adapter_config.json and
// adapter_model.safetensors) onto the base model with lora.LoadAdapter;
// --merge folds it into the base weights first. --device auto picks
// cuda:0 when libtorch sees a GPU, else the CPU.
//
// Errors (a missing directory, an unsupported model_type, an adapter made
// for another base, ids outside the vocabulary, bad flags) print one line
// on stderr, "infer: ...", and exit with status 1 (2 for flag syntax).
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	// Ctrl-C stops a generation between two tokens.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
