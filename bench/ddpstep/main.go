// Command ddpstep times data-parallel LoRA training steps on c10d (Gloo
// over loopback): the step, the gradient all-reduce inside it (bytes and
// µs) and the job's throughput, for 1 process against N.
//
//	go run ./bench/ddpstep -arch llama -hidden 256 -layers 4 -seq 128 -batch 8 -r 8 -steps 20 -nproc 2
//	go run ./bench/ddpstep -arch gpt2 -hidden 768 -layers 12 -seq 128 -batch 2 -r 8 -steps 5 -nproc 2
//
// -batch is the global batch: with N processes each takes batch/N
// sequences per step. Without RANK in the environment the command
// launches -nproc copies of itself (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT set as torchrun would) and prints rank 0's line; with
// -nproc 1 it runs alone, without a group. The models are random
// (Llama-architecture with LoRA on q_proj and v_proj, or GPT-2 with LoRA
// on c_attn), float32 on the CPU, one libtorch thread per process.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/golora/golora/dist"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models/gpt2"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

type flags struct {
	arch                         string
	hidden, layers, seq, batch   int64
	r                            int64
	steps, warmup, nproc, thread int
}

func main() {
	var f flags
	flag.StringVar(&f.arch, "arch", "llama", "llama or gpt2")
	flag.Int64Var(&f.hidden, "hidden", 256, "hidden size (a multiple of 64)")
	flag.Int64Var(&f.layers, "layers", 4, "blocks")
	flag.Int64Var(&f.seq, "seq", 128, "sequence length")
	flag.Int64Var(&f.batch, "batch", 8, "global batch (sequences per step, split over the processes)")
	flag.Int64Var(&f.r, "r", 8, "LoRA rank")
	flag.IntVar(&f.steps, "steps", 20, "timed steps")
	flag.IntVar(&f.warmup, "warmup", 2, "untimed steps first")
	flag.IntVar(&f.nproc, "nproc", 1, "processes (launched here unless RANK is set)")
	flag.IntVar(&f.thread, "threads", 1, "libtorch threads per process")
	flag.Parse()
	switch {
	case f.arch != "llama" && f.arch != "gpt2":
		fail(2, "-arch must be llama or gpt2, got %q", f.arch)
	case f.hidden <= 0 || f.hidden%64 != 0 || f.layers <= 0 || f.seq <= 1 || f.r <= 0 || f.steps <= 0 || f.warmup < 0 || f.nproc <= 0:
		fail(2, "-hidden must be a positive multiple of 64; -layers, -seq > 1, -r, -steps, -nproc positive")
	case f.batch%int64(f.nproc) != 0:
		fail(2, "-batch %d must divide by -nproc %d", f.batch, f.nproc)
	}
	if _, ok := os.LookupEnv("RANK"); !ok && f.nproc > 1 {
		launch(f)
		return
	}
	runtime.LockOSThread()
	if err := run(f); err != nil {
		fail(1, "%v", err)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ddpstep: "+format+"\n", args...)
	os.Exit(code)
}

func launch(f flags) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(1, "%v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmds := make([]*exec.Cmd, f.nproc)
	for r := range cmds {
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(f.nproc),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(f.nproc),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		c.Stderr = os.Stderr
		if r == 0 {
			c.Stdout = os.Stdout
		}
		if err := c.Start(); err != nil {
			fail(1, "%v", err)
		}
		cmds[r] = c
	}
	code := 0
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			code = 1
		}
	}
	os.Exit(code)
}

// lm is what the two architectures share here.
type lm interface {
	module.Module
	Forward(ids *torch.Tensor) *torch.Tensor
}

func build(f flags) (lm, int64, []string, error) {
	if f.arch == "gpt2" {
		c := gpt2.DefaultConfig()
		c.VocabSize, c.NPositions, c.NEmbd, c.NLayer, c.NHead = 50257, max(1024, f.seq), f.hidden, f.layers, f.hidden/64
		c.ResidPdrop, c.EmbdPdrop, c.AttnPdrop = 0, 0, 0
		m, err := gpt2.New(c)
		return m, c.VocabSize, []string{"c_attn"}, err
	}
	c := llama.Config{
		ModelType: "llama", VocabSize: 4096, HiddenSize: f.hidden, IntermediateSize: f.hidden * 8 / 3,
		NumHiddenLayers: f.layers, NumAttentionHeads: f.hidden / 64, NumKeyValueHeads: f.hidden / 64,
		MaxPositionEmbeddings: f.seq, RMSNormEps: 1e-5, HiddenAct: "silu",
		Rope: llama.Rope{Type: "default", Theta: 10000}, InitializerRange: 0.02,
	}
	m, err := llama.New(c)
	return m, c.VocabSize, []string{"q_proj", "v_proj"}, err
}

func run(f flags) error {
	if err := torch.SetNumThreads(f.thread); err != nil {
		return err
	}
	var g *dist.Group
	world, rank := 1, 0
	if _, ok := os.LookupEnv("RANK"); ok {
		var err error
		if g, err = dist.InitFromEnv(); err != nil {
			return err
		}
		defer g.Destroy()
		world, rank = g.WorldSize(), g.Rank()
	}
	if err := torch.ManualSeed(0); err != nil {
		return err
	}
	m, vocab, targets, err := build(f)
	if err != nil {
		return err
	}
	defer module.Close(m)
	if _, err := lora.Apply(m, lora.Config{R: f.r, Alpha: float64(2 * f.r), TargetModules: targets}); err != nil {
		return err
	}
	module.Train(m)
	params := module.Parameters(m, true)
	total, trainable := module.Count(m)
	var dp *dist.DataParallel
	if g != nil {
		if dp, err = dist.NewDataParallel(g, params); err != nil {
			return err
		}
	}
	opt, err := optim.NewAdamW(params, optim.LR(1e-4))
	if err != nil {
		return err
	}
	defer opt.Close()
	per := f.batch / int64(world)
	if err := torch.ManualSeed(uint64(1 + rank)); err != nil { // each rank its own data
		return err
	}
	var stepTimes, syncTimes []time.Duration
	var syncBytes int64
	for i := 0; i < f.warmup+f.steps; i++ {
		t0 := time.Now()
		s := torch.NewScope()
		ids := s.Own(torch.Rand([]int64{per, f.seq})).MulScalar(float64(vocab)).To(torch.Int64)
		logits := m.Forward(ids)
		loss := torch.CrossEntropy(logits.View(-1, vocab), ids.View(-1), -100, torch.ReductionMean)
		if err := loss.Backward(); err != nil {
			s.Close()
			return err
		}
		var sync time.Duration
		if dp != nil {
			if err := dp.SyncGrads(); err != nil {
				s.Close()
				return err
			}
			sync, syncBytes = dp.LastSync, dp.LastBytes
		}
		if err := opt.Step(); err != nil {
			s.Close()
			return err
		}
		if err := opt.ZeroGrad(); err != nil {
			s.Close()
			return err
		}
		s.Close()
		if i >= f.warmup {
			stepTimes = append(stepTimes, time.Since(t0))
			syncTimes = append(syncTimes, sync)
		}
	}
	if rank != 0 {
		return nil
	}
	step, syncMed := median(stepTimes), median(syncTimes)
	tokS := float64(f.batch*f.seq) / step.Seconds()
	fmt.Printf("ddpstep arch=%s hidden=%d layers=%d seq=%d batch=%d r=%d nproc=%d params=%d trainable=%d "+
		"allreduce_bytes=%d allreduce_us=%.0f step_us=%.0f allreduce_share=%.1f%% tok_s=%.0f\n",
		f.arch, f.hidden, f.layers, f.seq, f.batch, f.r, world, total, trainable,
		syncBytes, float64(syncMed.Microseconds()), float64(step.Microseconds()),
		100*syncMed.Seconds()/step.Seconds(), tokS)
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
