package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/tokenizer"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// Files the program writes in --out.
const (
	runFile     = "run.json"
	ckptFile    = "checkpoint.safetensors"
	historyFile = "history.json"
	plotFile    = "loss.png"
	mergedDir   = "merged"
	defaultStep = 250
)

// ownedFiles are every name the program writes in --out, removed by
// --overwrite and after a failed run.
var ownedFiles = []string{runFile, ckptFile, historyFile, plotFile, mergedDir,
	lora.ConfigFile, "adapter_model.safetensors",
	"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}

// tokenizerFiles are copied from the base next to a saved full model.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}

// run is the program: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if o == nil { // flag syntax: the flag package printed the error and usage
			return 2
		}
		fmt.Fprintln(stderr, "train:", err)
		return 1
	}
	err = train1(ctx, o, stdout, stderr)
	switch {
	case errors.Is(err, train.ErrInterrupted):
		fmt.Fprintln(stderr, "train:", err)
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "train:", oneLine(err))
		return 1
	}
	return 0
}

// oneLine keeps an error on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// lm is the model being trained, whatever its family.
type lm struct {
	root   module.Module // the family's model: LoRA, parameters, Save
	logits func(ids *torch.Tensor) *torch.Tensor
	gen    generate.LM
	save   func(dir string) error // nil: the family cannot be saved
	vocab  int64
	ctxLen int64 // max positions; 0: unknown
	eos    []int64
	pad    int64
	close  func()
}

// job is a run being set up: everything resolved from the options.
type job struct {
	o        *options
	log      *slog.Logger
	stdout   io.Writer
	dev      torch.Device
	dtype    torch.DType
	baseDir  string // the base's directory (absolute), or the --init directory
	tok      *tokenizer.Tokenizer
	model    *lm
	trainSet []train.Example
	evalSet  []train.Example
	dataName string
	evalName string
	targets  []string
	steps    int64
	runID    string
	dist     *distJob // nil: a single process
}

func train1(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	j := &job{o: o, stdout: stdout}
	level := slog.LevelInfo
	if j.dist, err = joinJob(o); err != nil {
		return err
	}
	if d := j.dist; d != nil {
		defer d.g.Destroy()
		defer func() {
			if err != nil {
				err = fmt.Errorf("rank %d of %d: %w", d.rank(), d.world(), err)
			}
		}()
		if !d.main() { // only rank 0 prints and writes
			j.stdout, level = io.Discard, slog.LevelWarn
		}
	}
	j.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	torch.SetWarningLogger(j.log)
	if err := j.resolveDevice(); err != nil {
		return err
	}
	if err := j.loadBase(); err != nil {
		return err
	}
	defer j.model.close()
	if err := j.loadData(); err != nil {
		return err
	}
	if err := j.adapt(); err != nil {
		return err
	}
	if j.dist != nil {
		if err := j.dist.start(j.model.root, j.dev, o.seed); err != nil {
			return err
		}
	}
	return j.train(ctx)
}

// resolveDevice picks the device and dtype, refusing CUDA where there is
// none and float16 on the CPU.
func (j *job) resolveDevice() error {
	d, _ := parseDevice(j.o.device)
	if j.dist != nil && (d.auto || j.o.device == "cuda") {
		d.index = j.dist.g.LocalRank() // a data-parallel rank: its own GPU
	}
	switch {
	case d.auto && torch.CUDAIsAvailable():
		j.dev = torch.CUDA(d.index)
	case d.auto:
		j.dev = torch.CPU
	case d.cuda:
		if !torch.CUDAIsAvailable() {
			return fmt.Errorf("--device %s: CUDA is not available (libtorch sees no GPU, or is a CPU build); use --device cpu", j.o.device)
		}
		if n := torch.CUDADeviceCount(); d.index >= n {
			return fmt.Errorf("--device %s: there are %d CUDA device(s)", j.o.device, n)
		}
		j.dev = torch.CUDA(d.index)
	default:
		j.dev = torch.CPU
	}
	dt, err := hf.ParseDType(j.o.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	if dt == torch.Float16 && !j.dev.IsCUDA() {
		return errors.New("--dtype float16 needs --device cuda: libtorch has no float16 matrix product on the CPU (use bfloat16)")
	}
	j.dtype = dt
	return nil
}

// loadBase loads the tokenizer and the model (in float32: LoRA converts
// the frozen weights to --dtype after adding the adapters).
func (j *job) loadBase() error {
	o := j.o
	dir, flagName := o.base, "--base"
	switch {
	case o.initDir != "":
		dir, flagName = o.initDir, "--init"
	case dir == "":
		d, err := shippedBase()
		if err != nil {
			return err
		}
		dir = d
	}
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: %v", flagName, dir, errors.Unwrap(err))
	case !st.IsDir():
		return fmt.Errorf("%s %s: not a directory (want a Hugging Face checkpoint directory)", flagName, dir)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	j.baseDir = dir
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %v", flagName, dir, err)
	}
	j.tok = tok
	hc, err := hf.ReadConfig(dir)
	if err != nil {
		return fmt.Errorf("%s: %v", flagName, err)
	}
	opts := []hf.Option{hf.WithDType(torch.Float32), hf.WithDevice(j.dev)}
	m := &lm{pad: -1}
	if o.initDir != "" {
		cfg, err := llama.ConfigFrom(hc)
		if err != nil {
			return fmt.Errorf("--init %s: %v (--init builds Llama-family models)", dir, err)
		}
		if err := torch.ManualSeed(o.seed); err != nil {
			return err
		}
		lm1, err := llama.New(*cfg, opts...)
		if err != nil {
			return fmt.Errorf("--init %s: %v", dir, err)
		}
		m.root, m.gen, m.save = lm1, lm1, lm1.Save
		m.logits = lm1.Forward
		m.close = lm1.Close
		m.vocab = cfg.VocabSize
		m.ctxLen = cfg.MaxPositionEmbeddings
	} else {
		mm, err := models.Load(dir, opts...)
		if err != nil {
			return fmt.Errorf("--base %s: %v", dir, strings.TrimPrefix(err.Error(), "models: "))
		}
		if mm.Kind() != models.CausalLM {
			mm.Close()
			return fmt.Errorf("--base %s: model_type %q is an encoder; train fine-tunes causal language models", dir, mm.Type())
		}
		m.root, m.gen = mm.Unwrap(), mm
		m.logits = func(ids *torch.Tensor) *torch.Tensor { return mm.Score(module.Inputs{IDs: ids}) }
		m.close = mm.Close
		m.vocab = mm.VocabSize()
		if s, ok := m.root.(interface{ Save(string) error }); ok {
			m.save = s.Save
		}
		for _, k := range []string{"max_position_embeddings", "n_positions"} {
			if v, err := hc.Int(k, 0); err == nil && v > 0 {
				m.ctxLen = v
				break
			}
		}
	}
	j.model = m
	// Special ids: config.json's, else the tokenizer's.
	var eos any
	if hc.Has("eos_token_id") {
		_ = hc.Decode("eos_token_id", &eos)
	}
	switch v := eos.(type) {
	case float64:
		m.eos = []int64{int64(v)}
	case []any:
		for _, x := range v {
			if f, ok := x.(float64); ok {
				m.eos = append(m.eos, int64(f))
			}
		}
	}
	if len(m.eos) == 0 {
		if id, ok := tok.EOS(); ok {
			m.eos = []int64{id}
		}
	}
	if p, err := hc.Int("pad_token_id", -1); err == nil && p >= 0 {
		m.pad = p
	} else if id, ok := tok.PAD(); ok {
		m.pad = id
	} else if len(m.eos) > 0 {
		m.pad = m.eos[0]
	} else {
		m.pad = 0
	}
	if mx := tok.MaxID(); mx >= m.vocab {
		return fmt.Errorf("%s %s: the tokenizer has ids up to %d, the model's vocabulary %d", flagName, dir, mx, m.vocab)
	}
	if m.ctxLen > 0 && int64(o.seq) > m.ctxLen {
		return fmt.Errorf("--seq %d is beyond the model's context of %d positions (max_position_embeddings in %s)", o.seq, m.ctxLen, filepath.Join(dir, hf.ConfigFile))
	}
	return nil
}

// loadData reads and tokenizes the training and evaluation data.
func (j *job) loadData() error {
	o := j.o
	dopt := train.DataOptions{EOS: -1, MaxID: j.model.vocab - 1}
	if len(j.model.eos) > 0 {
		dopt.EOS = j.model.eos[0]
	}
	read := func(flagName, path, embedded string) ([]train.Example, string, error) {
		if path == "" {
			f, err := dataFS.Open(embedded)
			if err != nil {
				return nil, "", err
			}
			defer f.Close()
			ex, err := train.ReadExamples(shippedBaseDir[:len("cmd/train/")]+embedded, f, j.tok, dopt)
			return ex, "cmd/train/" + embedded, err
		}
		ex, err := train.ReadExamplesFile(path, j.tok, dopt)
		if err != nil {
			return nil, "", fmt.Errorf("%s %s: %v", flagName, path, strings.TrimPrefix(err.Error(), "train: "))
		}
		return ex, path, nil
	}
	var err error
	j.trainSet, j.dataName, err = read("--data", o.data, taskTrain)
	if err != nil {
		return err
	}
	switch {
	case o.evalData != "":
		j.evalSet, j.evalName, err = read("--eval-data", o.evalData, "")
	case o.data == "":
		j.evalSet, j.evalName, err = read("--eval-data", "", taskEval)
	default:
		j.trainSet, j.evalSet, err = train.Split(j.trainSet, o.evalSplit, o.seed)
		if err != nil {
			return fmt.Errorf("--data %s: %v", o.data, strings.TrimPrefix(err.Error(), "train: Split: "))
		}
		j.evalName = fmt.Sprintf("%.0f%% of %s", 100*o.evalSplit, o.data)
	}
	return err
}

// adapt adds the LoRA adapters (or unfreezes everything for --full) and
// converts the frozen weights to --dtype.
func (j *job) adapt() error {
	o, root := j.o, j.model.root
	if o.full {
		if err := module.Unfreeze(root); err != nil {
			return err
		}
		if j.model.save == nil {
			return errors.New("--full: this model family cannot be saved as a checkpoint yet (Llama family only)")
		}
	} else {
		names, re, err := targetSpec(o.targets)
		if err != nil {
			return err
		}
		if o.merge && j.model.save == nil {
			return errors.New("--merge: this model family cannot be saved as a checkpoint yet (Llama family only)")
		}
		if err := torch.ManualSeed(o.seed); err != nil {
			return err
		}
		cfg := lora.Config{R: o.r, Alpha: o.alpha, Dropout: o.dropout, TargetModules: names, TargetRegexp: re,
			UseRSLoRA: o.rslora, UseDoRA: o.dora, TaskType: "CAUSAL_LM", BaseModelNameOrPath: j.baseDir}
		if err := module.Freeze(root); err != nil {
			return err
		}
		lins := linears(root)
		adapted, err := lora.Apply(root, cfg)
		if err != nil {
			if strings.Contains(err.Error(), "matched no module") {
				return fmt.Errorf("--targets %s matches no module; the linear layers are: %s (or all-linear)", o.targets, shortNames(lins))
			}
			return fmt.Errorf("--targets %s: %v", o.targets, strings.TrimPrefix(err.Error(), "lora: "))
		}
		j.targets = adapted
		for _, l := range lins {
			if slices.Contains(adapted, l.name) && o.r > min(l.in, l.out) {
				return fmt.Errorf("--r %d is larger than layer %s (%d→%d): r must be ≤ %d", o.r, l.name, l.in, l.out, min(l.in, l.out))
			}
		}
		if j.dtype != torch.Float32 {
			// The frozen base in --dtype; adapters stay float32 (autocast).
			for _, p := range module.NamedParameters(root) {
				if p.Trainable || !p.Tensor.DType().IsFloat() {
					continue
				}
				c := p.Tensor.To(j.dtype)
				err := p.Tensor.SetData(c)
				c.Close()
				if err != nil {
					return fmt.Errorf("converting %s to %s: %v", p.Name, o.dtype, err)
				}
			}
		}
	}
	if o.gradCkpt {
		gc, ok := root.(interface{ SetGradientCheckpointing(bool) })
		if !ok {
			return errors.New("--gradient-checkpointing: this model family does not support it")
		}
		gc.SetGradientCheckpointing(true)
	}
	return nil
}

// lin is a linear layer of the model: its name and sides.
type lin struct {
	name    string
	in, out int64
}

// linears lists the model's linear layers (Linear and Conv1D).
func linears(root module.Module) []lin {
	var lins []lin
	for _, m := range module.Modules(root) {
		switch l := m.Module.(type) {
		case *module.Linear:
			lins = append(lins, lin{m.Name, l.Weight.SizeOf(1), l.Weight.SizeOf(0)})
		case *module.Conv1D:
			lins = append(lins, lin{m.Name, l.Weight.SizeOf(0), l.Weight.SizeOf(1)})
		}
	}
	return lins
}

// shortNames lists the distinct last names of lins, in order.
func shortNames(lins []lin) string {
	var list []string
	for _, l := range lins {
		short := l.name[strings.LastIndex(l.name, ".")+1:]
		if !slices.Contains(list, short) {
			list = append(list, short)
		}
	}
	return strings.Join(list, ", ")
}

// hashData returns the SHA-256 of a data file's bytes (or of the
// embedded default data).
func hashData(path, embedded string) string {
	var b []byte
	var err error
	if path == "" {
		b, err = dataFS.ReadFile(embedded)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "?"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fingerprint identifies the run: everything that changes its steps.
func (j *job) fingerprint() string {
	o := j.o
	base := map[string]any{"dir": j.baseDir}
	if b, err := jsonfile.Read(filepath.Join(j.baseDir, hf.ConfigFile), jsonfile.MaxConfigSize); err == nil {
		s := sha256.Sum256(b)
		base["config"] = hex.EncodeToString(s[:])
	}
	if f, err := hf.CheckpointFile(j.baseDir); err == nil {
		if st, err := os.Stat(f); err == nil {
			base["weights"] = fmt.Sprint(st.Size(), st.ModTime().UnixNano())
		}
	}
	evalHash := ""
	if o.evalData != "" || o.data == "" {
		evalHash = hashData(o.evalData, taskEval)
	}
	v := map[string]any{
		"base": base, "init": o.initDir != "", "data": hashData(o.data, taskTrain), "eval": evalHash,
		"targets": o.targets, "r": o.r, "alpha": o.alpha, "dropout": o.dropout, "rslora": o.rslora, "dora": o.dora,
		"lr": o.lr, "schedule": o.schedule, "warmup": o.warmup, "steps": j.steps, "batch": o.batch,
		"grad_accum": o.gradAccum, "seq": o.seq, "grad_clip": o.gradClip, "seed": o.seed, "pack": o.pack,
		"eval_split": o.evalSplit, "dtype": o.dtype, "full": o.full, "gradient_checkpointing": o.gradCkpt,
	}
	if w := j.dist.world(); w > 1 { // the global batch and the shards: another run
		v["world"] = w
	}
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// runInfo is run.json: what the run in --out is.
type runInfo struct {
	RunID string   `json:"run_id"`
	Args  []string `json:"args"`
	Base  string   `json:"base"`
	Data  string   `json:"data"`
	Mode  string   `json:"mode"`
}

// checkOut checks --out: a new or empty directory, one holding this
// same run, or (with --overwrite) another run whose files are removed.
// It reports whether the directory was created. It writes nothing.
func (j *job) checkOut() (exists bool, err error) {
	o := j.o
	st, err := os.Stat(o.out)
	if errors.Is(err, os.ErrNotExist) {
		if o.resume {
			return false, fmt.Errorf("--resume: %s does not exist: no checkpoint to resume", o.out)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("--out %s: %v", o.out, err)
	}
	if !st.IsDir() {
		return false, fmt.Errorf("--out %s: not a directory", o.out)
	}
	entries, err := os.ReadDir(o.out)
	if err != nil {
		return false, fmt.Errorf("--out %s: %v", o.out, err)
	}
	if o.resume {
		ck := filepath.Join(o.out, ckptFile)
		if _, err := os.Stat(ck); err != nil {
			return true, fmt.Errorf("--resume: no checkpoint in %s (%s)", o.out, ckptFile)
		}
		pos, err := train.ReadPosition(ck)
		if err != nil {
			return true, fmt.Errorf("--resume: %v", strings.TrimPrefix(err.Error(), "train: "))
		}
		var d struct {
			RunID string `json:"run_id"`
		}
		_ = json.Unmarshal(pos.Data, &d)
		if w := checkpointWorld(pos.Data); w != j.dist.world() {
			return true, fmt.Errorf("--resume %s: %v", o.out, worldMismatch(w, j.dist.world()))
		}
		if d.RunID != j.runID {
			return true, fmt.Errorf("--resume: the checkpoint in %s is of another run (another base, data or settings; its run id %s, this one %s)", o.out, d.RunID, j.runID)
		}
		return true, nil
	}
	if len(entries) == 0 {
		return true, nil
	}
	var ri runInfo
	b, rerr := jsonfile.Read(filepath.Join(o.out, runFile), jsonfile.MaxConfigSize)
	sameRun := rerr == nil && json.Unmarshal(b, &ri) == nil && ri.RunID == j.runID
	if !sameRun && !o.overwrite {
		what := "files that are not a train run"
		if rerr == nil {
			what = "a different run (run.json: another base, data or settings)"
		}
		return true, fmt.Errorf("--out %s already holds %s; pass --overwrite to replace it, or choose another --out", o.out, what)
	}
	return true, nil
}

// removeOwned removes the files the program writes in dir.
func removeOwned(dir string) {
	for _, f := range ownedFiles {
		_ = os.RemoveAll(filepath.Join(dir, f))
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents { // temporary files of interrupted atomic writes
			if atomicfile.IsTemp(e.Name()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// writeJSON writes v to path atomically (internal/atomicfile).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// history is the run's metrics, saved beside each checkpoint so that a
// resumed run plots the whole curve.
type history struct {
	Steps []train.StepMetrics `json:"steps"`
	Evals []train.EvalMetrics `json:"evals"`
}

func (h *history) cut(step int64) {
	h.Steps = slices.DeleteFunc(h.Steps, func(m train.StepMetrics) bool { return m.Step > step })
	h.Evals = slices.DeleteFunc(h.Evals, func(m train.EvalMetrics) bool { return m.Step > step })
}

func (j *job) train(ctx context.Context) (err error) {
	o, m := j.o, j.model
	var rows []train.Row
	if o.pack {
		rows, err = train.Pack(j.trainSet, o.seq, m.pad)
	} else {
		rows, err = train.Pad(j.trainSet, o.seq, m.pad)
	}
	if err != nil {
		return fmt.Errorf("--data %s: %v", j.dataName, err)
	}
	evalRows, err := train.Pad(j.evalSet, o.seq, m.pad)
	if o.pack && err == nil {
		evalRows, err = train.Pack(j.evalSet, o.seq, m.pad)
	}
	if err != nil {
		return fmt.Errorf("--eval-data %s: %v", j.evalName, err)
	}
	loader, err := train.NewShardedLoader(rows, o.batch, o.seed, j.dist.rank(), j.dist.world())
	if err != nil {
		return err
	}
	switch {
	case o.steps > 0:
		j.steps = int64(o.steps)
	case o.epochs > 0:
		j.steps = max(1, int64(math.Ceil(o.epochs*float64(loader.BatchesPerEpoch())/float64(o.gradAccum))))
	default:
		j.steps = defaultStep
	}
	if !o.set["warmup"] {
		o.warmup = int(min(int64(o.warmup), j.steps/10))
	}
	if int64(o.warmup) >= j.steps && o.warmup > 0 {
		return fmt.Errorf("--warmup %d: want fewer warmup steps than the run's %d", o.warmup, j.steps)
	}
	j.runID = j.fingerprint()

	root := m.root
	opt, err := optim.NewAdamWGroups([]optim.Group{optim.FromModule(root)}, optim.LR(o.lr), optim.WeightDecay(0))
	if err != nil {
		return err
	}
	defer opt.Close()
	var sch schedule.Schedule
	switch o.schedule {
	case "constant":
		if o.warmup > 0 {
			sch, err = schedule.ConstantWarmup(o.lr, o.warmup)
		} else {
			sch, err = schedule.Constant(o.lr)
		}
	case "cosine":
		sch, err = schedule.WarmupCosine(o.lr, o.warmup, int(j.steps), 0)
	case "linear":
		sch, err = schedule.WarmupLinear(o.lr, o.warmup, int(j.steps), 0)
	}
	if err != nil {
		return fmt.Errorf("--schedule: %v", err)
	}
	sched, err := schedule.New(opt, sch)
	if err != nil {
		return err
	}

	autocast := torch.Invalid
	if j.dtype != torch.Float32 {
		autocast = j.dtype
	}
	var hist history
	var logJSON *os.File
	tcfg := train.Config{
		Model: root, Logits: m.logits, Optimizer: opt, Scheduler: sched,
		Data: loader, Eval: evalRows, EvalBatch: o.batch,
		Steps: j.steps, GradAccum: o.gradAccum, GradClip: o.gradClip,
		Device: j.dev, Autocast: autocast,
		EvalEvery: int64(o.evalEvery), SaveEvery: int64(o.saveEvery),
		Checkpoint: filepath.Join(o.out, ckptFile), RunID: j.runID,
	}
	isMain := j.dist.main()
	if d := j.dist; d != nil {
		tcfg.Sync, tcfg.SaveState, tcfg.LoadState = d.sync, d.saveState, d.loadState
		if !isMain {
			tcfg.Checkpoint = "" // rank 0 writes it
		}
	}
	var prog *progress
	tcfg.OnStep = func(sm train.StepMetrics) error {
		sm.TokPerS *= float64(j.dist.world()) // every rank's (each runs as fast)
		hist.Steps = append(hist.Steps, sm)
		if prog != nil { // nil on ranks other than 0
			prog.step(sm)
		}
		if logJSON != nil {
			b, _ := json.Marshal(map[string]any{"type": "step", "step": sm.Step, "epoch": sm.Epoch, "loss": sm.Loss, "lr": sm.LR,
				"grad_norm": finiteOrNil(sm.GradNorm), "tokens": sm.Tokens, "tok_per_s": sm.TokPerS, "seconds": sm.Seconds})
			if _, err := logJSON.Write(append(b, '\n')); err != nil {
				return fmt.Errorf("--log-json: %v", err)
			}
		}
		return nil
	}
	tcfg.OnEval = func(em train.EvalMetrics) error {
		hist.Evals = append(hist.Evals, em)
		if prog != nil { // nil on ranks other than 0
			prog.eval(em)
		}
		if logJSON != nil {
			b, _ := json.Marshal(map[string]any{"type": "eval", "step": em.Step, "eval_loss": em.Loss, "eval_perplexity": em.Perplexity, "eval_tokens": em.Tokens})
			if _, err := logJSON.Write(append(b, '\n')); err != nil {
				return fmt.Errorf("--log-json: %v", err)
			}
		}
		return nil
	}
	tcfg.OnSave = func(int64) error { // the history up to the checkpoint's step
		return writeJSON(filepath.Join(o.out, historyFile), hist)
	}
	tr, err := train.New(tcfg)
	if err != nil {
		return err
	}

	// --out: checked before anything is written.
	existed, err := j.checkOut()
	if err != nil {
		return err
	}
	if o.resume {
		// Every rank reads the checkpoint (on a file system they share).
		if err := tr.Resume(filepath.Join(o.out, ckptFile)); err != nil {
			return fmt.Errorf("--resume: %v", strings.TrimPrefix(err.Error(), "train: "))
		}
	}
	if o.resume && isMain {
		b, err := jsonfile.Read(filepath.Join(o.out, historyFile), jsonfile.MaxHistorySize)
		if errors.Is(err, jsonfile.ErrTooLarge) {
			return fmt.Errorf("--resume: %v", err)
		}
		if err == nil {
			_ = json.Unmarshal(b, &hist)
			hist.cut(tr.Step())
		}
	}

	total, trainable := module.Count(root)
	mode := "LoRA"
	if o.full {
		mode = "full fine-tuning"
	}
	fmt.Fprintf(j.stdout, "base      %s (%s)\n", j.baseDir, describe(root))
	fmt.Fprintf(j.stdout, "data      %s: %d examples, %d rows of %d tokens; eval %s: %d examples\n",
		j.dataName, len(j.trainSet), len(rows), o.seq, j.evalName, len(j.evalSet))
	if o.full {
		fmt.Fprintf(j.stdout, "mode      %s\n", mode)
	} else {
		fmt.Fprintf(j.stdout, "mode      LoRA r=%d alpha=%g dropout=%g on %d modules (%s)\n", o.r, o.alpha, o.dropout, len(j.targets), summarizeTargets(j.targets))
	}
	fmt.Fprintf(j.stdout, "params    trainable %s of %s (%.2f%%)\n", commas(trainable), commas(total), 100*float64(trainable)/float64(total))
	fmt.Fprintf(j.stdout, "run       %d steps × %d rows × %d accum, lr %g %s (warmup %d), %s %s\n",
		j.steps, o.batch, o.gradAccum, o.lr, o.schedule, o.warmup, j.dev, o.dtype)
	if w := j.dist.world(); w > 1 {
		fmt.Fprintf(j.stdout, "parallel  %d processes (data-parallel, %s): global batch %d × %d = %d rows a micro-batch, each rank %d rows of the data an epoch\n",
			w, j.dist.backend, o.batch, w, o.batch*w, loader.EpochLen())
	}

	// Before: samples and the validation loss of the base (or of the
	// checkpoint when resuming).
	label := "base"
	if o.resume {
		label = fmt.Sprintf("step %d", tr.Step())
	}
	if isMain {
		if err := j.samples("before (" + label + ")"); err != nil {
			return err
		}
	}
	before, err := tr.Evaluate() // on every rank: the same weights, the same figures
	if err != nil {
		return err
	}
	fmt.Fprintf(j.stdout, "validation loss before training (%s): %.4f (perplexity %.2f)\n", label, before.Loss, before.Perplexity)

	if d := j.dist; d != nil {
		// Rank 0 writes only once every rank has checked --out and read
		// the checkpoint.
		if err := d.barrier("waiting for every rank to be ready"); err != nil {
			return err
		}
		if !isMain {
			return j.trainRank(ctx, tr)
		}
	}

	// Now the run writes.
	created := !existed
	if existed && !o.resume {
		removeOwned(o.out)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("--out %s: %v", o.out, err)
	}
	success := false
	defer func() {
		if success || errors.Is(err, train.ErrInterrupted) {
			return
		}
		if created {
			_ = os.RemoveAll(o.out)
		} else if !o.resume {
			removeOwned(o.out)
		}
		if logJSON != nil && !o.resume {
			_ = os.Remove(o.logJSON)
		}
	}()
	if err := writeJSON(filepath.Join(o.out, runFile), runInfo{RunID: j.runID, Args: os.Args[1:], Base: j.baseDir, Data: j.dataName, Mode: mode}); err != nil {
		return fmt.Errorf("--out %s: %v", o.out, err)
	}
	if o.logJSON != "" {
		flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if o.resume {
			flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		logJSON, err = os.OpenFile(o.logJSON, flags, 0o644)
		if err != nil {
			return fmt.Errorf("--log-json: %v", err)
		}
		defer logJSON.Close()
	}

	prog = newProgress(j.stdout, j.log, j.steps, tr.Step())
	if !o.resume { // a resumed run's history has the base's evaluation already
		before.Step = tr.Step()
		hist.Evals = append(hist.Evals, before)
	}
	res, err := tr.Run(ctx)
	prog.finish()
	if errors.Is(err, train.ErrInterrupted) {
		if d := j.dist; d != nil { // the others wait until the checkpoint is written
			if berr := d.barrier("after the interruption"); berr != nil {
				return fmt.Errorf("%w; %v", err, berr)
			}
		}
		return fmt.Errorf("%w; checkpoint saved in %s: run the same command with --resume to continue", err, filepath.Join(o.out, ckptFile))
	}
	if err != nil {
		return err
	}
	after := res.Evals[len(res.Evals)-1]
	fmt.Fprintf(j.stdout, "validation loss after %d steps: %.4f (perplexity %.2f); before: %.4f\n", res.Step, after.Loss, after.Perplexity, before.Loss)
	if err := j.samples("after"); err != nil {
		return err
	}

	// Outputs.
	if o.full {
		if err := m.save(o.out); err != nil {
			return err
		}
		if err := copyTokenizer(j.baseDir, o.out); err != nil {
			return err
		}
		fmt.Fprintf(j.stdout, "wrote     %s: the fine-tuned model (config.json, model.safetensors, tokenizer.json)\n", o.out)
	} else {
		if err := lora.SaveAdapter(root, o.out, lora.DefaultAdapter); err != nil {
			return err
		}
		fmt.Fprintf(j.stdout, "wrote     %s: PEFT adapter (adapter_config.json, adapter_model.safetensors) for base %s\n", o.out, j.baseDir)
	}
	if err := plotLoss(filepath.Join(o.out, plotFile), hist, mode); err != nil {
		return fmt.Errorf("loss plot: %v", err)
	}
	fmt.Fprintf(j.stdout, "wrote     %s\n", filepath.Join(o.out, plotFile))
	ob := int64(0)
	if sb, ok := opt.(interface{ StateBytes() int64 }); ok {
		ob = sb.StateBytes()
	}
	fmt.Fprintf(j.stdout, "memory    %s: trainable params %s, optimizer state %s, peak RSS %s\n",
		mode, commas(trainable), mib(ob), mib(peakRSS()))
	fmt.Fprintf(j.stdout, "time      %s for %d steps (%.0f tok/s)\n", res.Duration.Round(100*time.Millisecond), len(res.Losses), prog.tokPerS())
	if s := j.dist.syncSummary(res.Duration); s != "" {
		fmt.Fprintf(j.stdout, "parallel  %s\n", s)
	}
	if o.merge {
		dir := filepath.Join(o.out, mergedDir)
		merged, err := lora.MergeAndUnload(root)
		if err != nil {
			return fmt.Errorf("--merge: %v", err)
		}
		s, ok := merged.(interface{ Save(string) error })
		if !ok {
			return errors.New("--merge: this model family cannot be saved")
		}
		if err := s.Save(dir); err != nil {
			return fmt.Errorf("--merge: %v", err)
		}
		if err := copyTokenizer(j.baseDir, dir); err != nil {
			return err
		}
		fmt.Fprintf(j.stdout, "wrote     %s: the base with the adapter merged in (Hugging Face checkpoint)\n", dir)
	}
	success = true
	if d := j.dist; d != nil { // the others wait until the outputs are written
		return d.barrier("finishing")
	}
	return nil
}

// trainRank is the run of a data-parallel rank other than 0: it trains
// in step with the others and writes nothing.
func (j *job) trainRank(ctx context.Context, tr *train.Trainer) error {
	_, err := tr.Run(ctx)
	if err != nil && !errors.Is(err, train.ErrInterrupted) {
		return err
	}
	if berr := j.dist.barrier("waiting for rank 0 to write its outputs"); berr != nil {
		if err != nil {
			return fmt.Errorf("%w; %v", err, berr)
		}
		return berr
	}
	return err
}

func finiteOrNil(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// copyTokenizer copies the base's tokenizer files (those present) to dir.
func copyTokenizer(base, dir string) error {
	for _, f := range tokenizerFiles {
		b, err := jsonfile.Read(filepath.Join(base, f), jsonfile.MaxTokenizerSize)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// samples prints the model's generations: --samples continuations of
// --sample (of BOS alone by default), the first greedy, the others
// sampled at temperature 0.7 with seeds --seed+i.
func (j *job) samples(when string) error {
	o := j.o
	if o.samples == 0 {
		return nil
	}
	prompt, err := j.tok.Encode(o.sample, true)
	if err != nil {
		return fmt.Errorf("--sample: %v", err)
	}
	if len(prompt) == 0 {
		return errors.New("--sample: the prompt has no token (and the tokenizer adds no BOS): give one")
	}
	fmt.Fprintf(j.stdout, "samples %s:\n", when)
	module.Eval(j.model.root)
	defer module.Train(j.model.root)
	for i := range o.samples {
		var ids []int64
		opts := []generate.Option{generate.MaxNewTokens(o.maxNewTokens), generate.EOS(j.model.eos...)}
		kind := "greedy "
		if i > 0 { // the first greedy, the others sampled
			opts = append(opts, generate.Sample(o.seed+uint64(i)), generate.Temperature(0.7))
			kind = "sampled"
		}
		gen := func() error {
			out, err := generate.Generate(context.Background(), j.model.gen, [][]int64{prompt}, opts...)
			if err != nil {
				return err
			}
			ids = out.Tokens[0][:out.Lengths[0]]
			return nil
		}
		err := torch.NoGrad(func() error {
			if j.dtype != torch.Float32 && !o.full {
				// The frozen base is in --dtype: run under autocast, as
				// training does.
				return torch.Autocast(j.dev, j.dtype, gen)
			}
			return gen()
		})
		if err != nil {
			return fmt.Errorf("generating a sample: %v", err)
		}
		text, err := j.tok.Decode(ids, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(j.stdout, "  %s %q\n", kind, o.sample+text)
	}
	return nil
}

// describe says what the model is: its family and size.
func describe(m module.Module) string {
	switch v := m.(type) {
	case *llama.Model:
		c := v.Cfg
		return fmt.Sprintf("%s: %d layers, hidden %d, vocabulary %d", c.ModelType, c.NumHiddenLayers, c.HiddenSize, c.VocabSize)
	}
	return fmt.Sprintf("%T", m)
}

// summarizeTargets names the adapted modules by their last name.
func summarizeTargets(names []string) string {
	var short []string
	for _, n := range names {
		s := n[strings.LastIndex(n, ".")+1:]
		if !slices.Contains(short, s) {
			short = append(short, s)
		}
	}
	return strings.Join(short, ", ")
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// peakRSS is the process's peak resident set in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss
	}
	return ru.Maxrss * 1024
}
