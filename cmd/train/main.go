// Command train fine-tunes a causal language model with LoRA (or fully,
// with --full) and writes a PEFT-format adapter that Python's PEFT loads
// as it stands.
//
// With no arguments it runs the shipped demo in about a minute on two CPU
// cores: a small Llama-architecture base model (cmd/train/base), pre-trained
// by this program's --full mode on sentences of a generated language, learns
// through a LoRA adapter to write the same sentences with every word spelled
// backwards. It prints the trainable parameters, the training and validation
// losses as it goes and generated samples before and after, and writes the
// adapter and a loss curve (loss.png) to ./train-out.
//
//	go run ./cmd/train
//	go run ./cmd/train --base DIR --data train.jsonl --eval-data eval.jsonl --out run1
//	go run ./cmd/train --help
//
// See cmd/train/README.md for the demo's figures, the command that rebuilds
// the base, and --full against LoRA.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Ctrl-C or SIGTERM: the run saves a checkpoint between two steps and
	// exits with status 130.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
