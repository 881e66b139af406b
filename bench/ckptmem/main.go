// Command ckptmem measures what activation checkpointing saves: the peak
// resident memory of one training step (forward, cross-entropy loss,
// backward) of a randomly initialised Llama-architecture model, with and
// without Model.GradientCheckpointing. Run each setting in a fresh
// process (bench/ckptmem/run.sh does):
//
//	go run ./bench/ckptmem -ckpt=false -hidden 256 -layers 8 -seq 1024 -batch 4
//	go run ./bench/ckptmem -ckpt=true  -hidden 256 -layers 8 -seq 1024 -batch 4
//
// Every weight is frozen except the token embedding, the first thing the
// forward reads, so the backward runs through every block, as LoRA
// training's does; the memory that checkpointing saves is the blocks'
// activations. It prints one line with the step time, the peak RSS
// (VmHWM) and the RSS before the step.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func main() {
	ckpt := flag.Bool("ckpt", false, "activation checkpointing per block")
	hidden := flag.Int64("hidden", 256, "hidden size")
	layers := flag.Int64("layers", 8, "blocks")
	seq := flag.Int64("seq", 1024, "sequence length")
	batch := flag.Int64("batch", 4, "batch size")
	flag.Parse()
	if *hidden <= 0 || *hidden%64 != 0 || *layers <= 0 || *seq <= 1 || *batch <= 0 {
		fmt.Fprintln(os.Stderr, "ckptmem: -hidden must be a positive multiple of 64; -layers, -seq > 1 and -batch positive")
		os.Exit(2)
	}
	runtime.LockOSThread() // grad mode is per OS thread
	if err := run(*ckpt, *hidden, *layers, *seq, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "ckptmem:", err)
		os.Exit(1)
	}
}

func run(ckpt bool, hidden, layers, seq, batch int64) error {
	cfg := llama.Config{
		ModelType: "llama", VocabSize: 1000, HiddenSize: hidden, IntermediateSize: hidden * 8 / 3,
		NumHiddenLayers: layers, NumAttentionHeads: hidden / 64, NumKeyValueHeads: hidden / 64,
		MaxPositionEmbeddings: seq, RMSNormEps: 1e-5, HiddenAct: "silu",
		Rope: llama.Rope{Type: "default", Theta: 10000}, InitializerRange: 0.02,
	}
	if err := torch.ManualSeed(0); err != nil {
		return err
	}
	m, err := llama.New(cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := module.Freeze(m); err != nil {
		return err
	}
	for _, p := range module.NamedParameters(m) {
		if p.Name == "model.embed_tokens.weight" {
			if err := p.Tensor.SetRequiresGrad(true); err != nil {
				return err
			}
		}
	}
	m.Train()
	m.SetGradientCheckpointing(ckpt)
	s := torch.NewScope()
	defer s.Close()
	ids := s.Own(torch.Rand([]int64{batch, seq})).MulScalar(float64(cfg.VocabSize)).To(torch.Int64) // uniform ids in [0, vocab)
	before := status("VmRSS")
	t0 := time.Now()
	logits := m.Forward(ids)
	loss := torch.CrossEntropy(logits.View(-1, cfg.VocabSize), ids.View(-1), -100, torch.ReductionMean)
	if err := loss.Backward(); err != nil {
		return err
	}
	el := time.Since(t0)
	l, err := loss.Item()
	if err != nil {
		return err
	}
	fmt.Printf("ckptmem ckpt=%v hidden=%d layers=%d seq=%d batch=%d loss=%.6f step=%.3fs rss_before_mib=%d peak_rss_mib=%d\n",
		ckpt, hidden, layers, seq, batch, l, el.Seconds(), before/1024, status("VmHWM")/1024)
	return nil
}

// status returns a /proc/self/status field in kB.
func status(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	return -1
}
