// Command lorastep times one LoRA training step in golora, beside its
// PyTorch twin bench/lora_step.py, which takes the same arguments in the
// same order and prints the same line.
//
//	go run ./bench/lorastep -dim D -layers L -batch B -rank R -steps N [-device cpu|cuda]
//	/usr/bin/python3 bench/lora_step.py -dim D -layers L -batch B -rank R -steps N [-device cpu|cuda]
//
// The step: L lora.Linear layers of d×d with bias (α = r), ReLU between
// them, MSE loss against a fixed target, backward, AdamW (lr 1e-3) over A
// and B only (the base weight and bias are frozen), then ZeroGrad
// (set_to_none). Each step runs in one torch.Scope, which frees the step's
// activations and graph handles when it closes.
//
// The weights are seeded and drawn in PyTorch's order, so the final loss
// that both programs print is the same (it was, to every printed digit, in
// every run in bench/README.md): a check that they run the same
// computation.
//
// Timing: -warmup untimed steps, then -repeats runs of -steps steps; each
// run's time is divided by -steps. The line shows the process's CPU time
// per step of the run that used least (cpu=, user and system time of all
// threads: less sensitive than wall time to other load on a shared
// machine), the fastest and the median run in wall time, and ends in the
// fastest (the least disturbed) followed by "us/step".
//
// Other flags: -fused=false computes each layer's forward from separate
// ops (Linear, T, MatMul, T, MatMul, MulScalar, Add: seven C calls instead
// of torch.LoraLinear's one); -zerograd=params drops the gradients with one
// ClearGrad per parameter instead of the optimizer's one call; -peropt
// gives every parameter an AdamW of its own (2L Step calls a step instead
// of one). -full trains the same model without adapters (module.Linear,
// every weight and bias trainable) for the memory comparison; -mem prints
// the trainable parameters, the optimizer-state bytes and the peak RSS
// (VmHWM) on a line before the timing; -phases prints the time of each
// phase of the step; -lockthread makes every libtorch call from one OS
// thread, as in Python (otherwise the goroutine may move between threads,
// and glibc gives each thread that allocates a heap arena of its own);
// -cpuprofile writes a pprof CPU profile of the timed steps.
// bench/README.md has the figures.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// config is the command line.
type config struct {
	dim, layers, batch, rank, steps int64
	device                          string
	repeats, warmup, threads        int
	dtype                           string
	seed                            uint64
	full, fused, peropt, mem        bool
	phases, lockThread              bool
	zerograd, cpuprofile            string

	dev torch.Device
	dt  torch.DType
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if errors.Is(err, errReported) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lorastep:", err)
		os.Exit(2)
	}
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lorastep:", err)
		os.Exit(1)
	}
}

// errReported is parseFlags's error when the flag package has already
// printed the problem and the usage.
var errReported = errors.New("bad command line")

// parseFlags parses and checks the command line.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("lorastep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lorastep -dim D -layers L -batch B -rank R -steps N [-device cpu|cuda] [flags]")
		fmt.Fprintln(stderr, "Times one LoRA training step (forward, MSE, backward, AdamW, ZeroGrad); see bench/README.md.")
		fs.PrintDefaults()
	}
	fs.Int64Var(&c.dim, "dim", 64, "d: every layer is d×d")
	fs.Int64Var(&c.layers, "layers", 4, "L: number of layers")
	fs.Int64Var(&c.batch, "batch", 8, "B: rows of the batch")
	fs.Int64Var(&c.rank, "rank", 8, "r: LoRA rank")
	fs.Int64Var(&c.steps, "steps", 1000, "N: timed steps per repeat")
	fs.StringVar(&c.device, "device", "cpu", "cpu or cuda (cuda:i)")
	fs.IntVar(&c.repeats, "repeats", 1, "K: repeats of N steps")
	fs.IntVar(&c.warmup, "warmup", -1, "untimed steps first (-1: N/10, at least 3)")
	fs.IntVar(&c.threads, "threads", 0, "libtorch intra-op threads (0: libtorch's default)")
	fs.StringVar(&c.dtype, "dtype", "float32", "float32 or float64")
	fs.Uint64Var(&c.seed, "seed", 0, "torch.ManualSeed")
	fs.BoolVar(&c.full, "full", false, "full fine-tuning: no adapters, every weight and bias trainable")
	fs.BoolVar(&c.mem, "mem", false, "print parameters, optimizer-state bytes and peak RSS")
	fs.BoolVar(&c.phases, "phases", false, "print the time of each phase of the step")
	fs.BoolVar(&c.fused, "fused", true, "LoRA forward in one C call (torch.LoraLinear); false: composed from 7 ops")
	fs.StringVar(&c.zerograd, "zerograd", "optim", "optim: the optimizer's ZeroGrad; params: ClearGrad per parameter")
	fs.BoolVar(&c.peropt, "peropt", false, "one AdamW per parameter (2L Step and ZeroGrad calls) instead of one")
	fs.BoolVar(&c.lockThread, "lockthread", false, "run every libtorch call from one OS thread (runtime.LockOSThread)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the timed steps to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errReported
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags are -dim D -layers L -batch B -rank R -steps N [-device cpu|cuda])", fs.Arg(0))
	}
	for _, p := range []struct {
		name string
		v    int64
	}{{"dim", c.dim}, {"layers", c.layers}, {"batch", c.batch}, {"rank", c.rank}, {"steps", c.steps}, {"repeats", int64(c.repeats)}} {
		if p.v <= 0 {
			return nil, fmt.Errorf("-%s must be positive, got %d", p.name, p.v)
		}
	}
	if c.threads < 0 {
		return nil, fmt.Errorf("-threads must be >= 0, got %d", c.threads)
	}
	if c.warmup < 0 {
		c.warmup = max(3, int(c.steps/10))
	}
	dev, err := parseDevice(c.device)
	if err != nil {
		return nil, err
	}
	c.dev = dev
	switch c.dtype {
	case "float32":
		c.dt = torch.Float32
	case "float64":
		c.dt = torch.Float64
	default:
		return nil, fmt.Errorf("-dtype must be float32 or float64, got %q", c.dtype)
	}
	if c.zerograd != "optim" && c.zerograd != "params" {
		return nil, fmt.Errorf("-zerograd must be optim or params, got %q", c.zerograd)
	}
	if c.full && !c.fused {
		return nil, errors.New("-fused=false needs the LoRA model (drop -full)")
	}
	return c, nil
}

// parseDevice reads "cpu", "cuda" or "cuda:i".
func parseDevice(s string) (torch.Device, error) {
	switch {
	case s == "cpu":
		return torch.CPU, nil
	case s == "cuda":
		return torch.CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err == nil && i >= 0 {
			return torch.CUDA(i), nil
		}
	}
	return torch.Device{}, fmt.Errorf("-device must be cpu, cuda or cuda:i, got %q", s)
}

// bench is the model, the data and the optimizers of one run.
type bench struct {
	c       *config
	lora    []*lora.Linear   // the LoRA model, or nil with -full
	full    []*module.Linear // the fully trained model with -full
	params  []*torch.Tensor  // the trainable parameters
	opts    []optim.Optimizer
	x, y    *torch.Tensor // batch and target, outside every scope
	phase   [5]time.Duration
	phasesN int
}

// model returns the layers as modules, for counting and closing.
func (b *bench) model() []module.Module {
	var ms []module.Module
	for _, l := range b.lora {
		ms = append(ms, l)
	}
	for _, l := range b.full {
		ms = append(ms, l)
	}
	return ms
}

func newBench(c *config) (*bench, error) {
	if err := torch.CheckABI(); err != nil {
		return nil, err
	}
	if c.dev.IsCUDA() && !torch.CUDAIsAvailable() {
		return nil, fmt.Errorf("-device %s: CUDA is not available to libtorch", c.device)
	}
	if c.threads > 0 {
		if err := torch.SetNumThreads(c.threads); err != nil {
			return nil, err
		}
	}
	if err := torch.ManualSeed(c.seed); err != nil {
		return nil, err
	}
	b := &bench{c: c}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	// Like the twin: made on the CPU (seeded draws equal PyTorch's there),
	// then moved.
	for range c.layers {
		if c.full {
			l, err := module.NewLinear(c.dim, c.dim, true, torch.WithDType(c.dt))
			if err != nil {
				return nil, err
			}
			b.full = append(b.full, l)
		} else {
			l, err := lora.NewLinear(c.dim, c.dim, true, c.rank, lora.WithDType(c.dt))
			if err != nil {
				return nil, err
			}
			b.lora = append(b.lora, l)
		}
	}
	x := torch.Randn([]int64{c.batch, c.dim}, torch.WithDType(c.dt))
	y := torch.Randn([]int64{c.batch, c.dim}, torch.WithDType(c.dt))
	b.x, b.y = x.To(c.dev), y.To(c.dev)
	torch.CloseAll(x, y)
	if err := torch.FirstErr(b.x, b.y); err != nil {
		return nil, err
	}
	for _, m := range b.model() {
		if c.dev != torch.CPU {
			if err := module.To(m, c.dev); err != nil {
				return nil, err
			}
		}
		b.params = append(b.params, module.Parameters(m, true)...)
	}
	if c.peropt {
		for _, p := range b.params {
			o, err := optim.NewAdamW([]*torch.Tensor{p}, optim.LR(1e-3))
			if err != nil {
				return nil, err
			}
			b.opts = append(b.opts, o)
		}
	} else {
		o, err := optim.NewAdamW(b.params, optim.LR(1e-3))
		if err != nil {
			return nil, err
		}
		b.opts = append(b.opts, o)
	}
	ok = true
	return b, nil
}

func (b *bench) close() {
	for _, o := range b.opts {
		o.Close()
	}
	for _, m := range b.model() {
		module.Close(m)
	}
	torch.CloseAll(b.x, b.y)
}

// forward runs the model on the step's borrowed batch; the results join
// s. With -fused=false each LoRA layer is composed from separate ops, as
// the spec's class writes it: F.linear(x, W, b) + (x @ Aᵀ @ Bᵀ)·α/r.
func (b *bench) forward(s *torch.Scope, h *torch.Tensor) *torch.Tensor {
	last := int(b.c.layers) - 1
	for i := 0; i <= last; i++ {
		switch {
		case b.full != nil:
			h = b.full[i].Forward(h)
		case b.c.fused:
			h = b.lora[i].Forward(h)
		default:
			l := b.lora[i]
			at, bt := s.Own(l.LoraA.T()), s.Own(l.LoraB.T())
			h = torch.Linear(h, l.Weight, l.Bias).Add(h.MatMul(at).MatMul(bt).MulScalar(l.Scaling()))
		}
		if i < last {
			h = h.Relu()
		}
	}
	return torch.MSELoss(h, b.y, torch.ReductionMean)
}

// step runs one training step in a scope of its own. With keep it
// returns the loss, moved out of the scope (the caller closes it).
func (b *bench) step(keep bool) (*torch.Tensor, error) {
	s := torch.NewScope()
	defer s.Close()
	loss := b.forward(s, s.Borrow(b.x))
	if err := loss.Backward(); err != nil {
		return nil, err
	}
	var out *torch.Tensor
	if keep {
		var err error
		if out, err = s.Done(loss); err != nil {
			return nil, err
		}
	} else if err := s.Err(); err != nil {
		return nil, err
	}
	s.Close()
	for _, o := range b.opts {
		if err := o.Step(); err != nil {
			torch.CloseAll(out)
			return nil, err
		}
	}
	if err := b.zeroGrad(); err != nil {
		torch.CloseAll(out)
		return nil, err
	}
	return out, nil
}

func (b *bench) zeroGrad() error {
	if b.c.zerograd == "params" {
		for _, p := range b.params {
			if err := p.ClearGrad(); err != nil {
				return err
			}
		}
		return nil
	}
	for _, o := range b.opts {
		if err := o.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// stepPhases is step with a clock read between the phases: forward (loss
// included), backward, closing the scope, the optimizer step, zero_grad.
// On CUDA each phase ends with a synchronize.
func (b *bench) stepPhases() error {
	var t [6]time.Time
	t[0] = time.Now()
	s := torch.NewScope()
	defer s.Close()
	loss := b.forward(s, s.Borrow(b.x))
	if err := b.sync(loss.Err()); err != nil {
		return err
	}
	t[1] = time.Now()
	if err := b.sync(loss.Backward()); err != nil {
		return err
	}
	t[2] = time.Now()
	if err := s.Err(); err != nil {
		return err
	}
	s.Close()
	t[3] = time.Now()
	for _, o := range b.opts {
		if err := o.Step(); err != nil {
			return err
		}
	}
	if err := b.sync(nil); err != nil {
		return err
	}
	t[4] = time.Now()
	if err := b.sync(b.zeroGrad()); err != nil {
		return err
	}
	t[5] = time.Now()
	for i := range b.phase {
		b.phase[i] += t[i+1].Sub(t[i])
	}
	b.phasesN++
	return nil
}

// sync waits for the device when it is a GPU (so that a phase's time is
// its own), passing err through.
func (b *bench) sync(err error) error {
	if err != nil || !b.c.dev.IsCUDA() {
		return err
	}
	return torch.Synchronize(b.c.dev.Index)
}

func (b *bench) runStep() error {
	if b.c.phases {
		return b.stepPhases()
	}
	_, err := b.step(false)
	return err
}

func run(c *config, w io.Writer) error {
	if c.lockThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	rss0 := procStatus("VmRSS:")
	b, err := newBench(c)
	if err != nil {
		return err
	}
	defer b.close()

	for range c.warmup {
		if err := b.runStep(); err != nil {
			return err
		}
	}
	b.phase, b.phasesN = [5]time.Duration{}, 0
	if err := b.sync(nil); err != nil {
		return err
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	per := make([]float64, 0, c.repeats)
	cpu := make([]float64, 0, c.repeats)
	for range c.repeats {
		cpu0 := cpuTime()
		start := time.Now()
		for range c.steps {
			if err := b.runStep(); err != nil {
				return err
			}
		}
		if err := b.sync(nil); err != nil {
			return err
		}
		per = append(per, float64(time.Since(start).Nanoseconds())/1e3/float64(c.steps))
		cpu = append(cpu, float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(c.steps))
	}
	if c.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	// One more step, untimed, to read its loss (the twin does the same):
	// compare losses at equal -steps, -repeats and -warmup.
	lossT, err := b.step(true)
	if err != nil {
		return err
	}
	loss, err := lossT.Item()
	lossT.Close()
	if err != nil {
		return err
	}

	mode := "lora"
	if c.full {
		mode = "full"
	}
	if c.mem {
		var total, trainable int64
		for _, m := range b.model() {
			t, tr := module.Count(m)
			total, trainable = total+t, trainable+tr
		}
		fmt.Fprintf(w, "mem go %s: params=%d trainable=%d opt_state_bytes=%d rss_start_MiB=%.1f peak_rss_MiB=%.1f\n",
			mode, total, trainable, b.stateBytes(), mib(rss0), mib(procStatus("VmHWM:")))
	}
	if c.phases {
		n := float64(b.phasesN)
		names := []string{"forward", "backward", "scope_close", "step", "zero_grad"}
		var parts []string
		for i, d := range b.phase {
			parts = append(parts, fmt.Sprintf("%s=%.1f", names[i], float64(d.Nanoseconds())/1e3/n))
		}
		fmt.Fprintf(w, "phases go: %s us/step\n", strings.Join(parts, " "))
	}
	variant := "fused"
	switch {
	case c.full:
		variant = "linear"
	case !c.fused:
		variant = "composed"
	}
	if c.zerograd == "params" {
		variant += ",zerograd=params"
	}
	if c.peropt {
		variant += ",peropt"
	}
	if c.lockThread {
		variant += ",lockthread"
	}
	sorted := slices.Clone(per)
	slices.Sort(sorted)
	fmt.Fprintf(w, "go d=%d L=%d B=%d r=%d steps=%dx%d %s %s threads=%d %s %s loss=%.6g cpu=%.1f min=%.1f median=%.1f | %.1f us/step\n",
		c.dim, c.layers, c.batch, c.rank, c.steps, c.repeats, c.dev, c.dtype, torch.NumThreads(), mode, variant,
		loss, slices.Min(cpu), sorted[0], median(sorted), sorted[0])
	return nil
}

// stateBytes is the optimizer state allocated so far (exp_avg,
// exp_avg_sq and the step counter of every parameter with AdamW), as the
// optimizers report it.
func (b *bench) stateBytes() int64 {
	var n int64
	for _, o := range b.opts {
		n += o.StateBytes()
	}
	return n
}

// cpuTime returns the CPU time of the process so far, user and system,
// all threads (Go's runtime included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// procStatus returns a size field of /proc/self/status (such as VmHWM:,
// the peak resident set) in bytes, or 0 where there is none.
func procStatus(key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
