package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
)

// ErrInterrupted is returned (wrapped) by Trainer.Run when its context was
// cancelled: the run stopped between two steps, after saving a checkpoint
// when it has a checkpoint path.
var ErrInterrupted = errors.New("train: interrupted")

// Config is a training run: the model and its forward pass, the optimizer
// and schedule, the data, and the loop's settings.
type Config struct {
	// Model is the model being trained; its trainable parameters are the
	// ones the optimizer steps and the checkpoint saves.
	Model module.Module
	// Logits runs the model on ids int64 [B, T] (on Device) and returns
	// the next-token logits [B, T, vocab]; its intermediates must join the
	// ids' scope (as the models packages' forward passes do).
	Logits func(ids *torch.Tensor) *torch.Tensor
	// Optimizer steps Model's trainable parameters; Scheduler, if not nil,
	// sets its learning rate step by step.
	Optimizer optim.Optimizer
	Scheduler *schedule.Scheduler

	// Data serves the training batches (micro-batches with GradAccum > 1).
	Data *Loader
	// Eval holds the held-out rows, evaluated every EvalEvery steps and at
	// the end in batches of EvalBatch rows (Data's batch size when 0).
	// Empty: no evaluation.
	Eval      []Row
	EvalBatch int

	// Steps is the number of optimizer steps of the whole run.
	Steps int64
	// GradAccum is the number of micro-batches whose gradients add up to
	// one step (1 when 0); each micro-batch's loss is divided by it.
	GradAccum int
	// GradClip, when positive, clips the gradients' total 2-norm to it
	// before each step.
	GradClip float64
	// Device is where batches go.
	Device torch.Device
	// Autocast, when torch.BFloat16 or torch.Float16, runs the forward
	// pass and the loss under torch.Autocast on Device with it; the
	// backward pass and the step run outside, as PyTorch's AMP. Any other
	// value (the zero value, torch.Float32): no autocast.
	Autocast torch.DType

	// EvalEvery and SaveEvery are the step periods of evaluation and of
	// checkpoints (0: never, but for the end of the run).
	EvalEvery, SaveEvery int64
	// Checkpoint is the path of the run's checkpoint, replaced atomically
	// every SaveEvery steps, at the end and when the run is interrupted.
	// Empty: no checkpoint.
	Checkpoint string
	// RunID identifies the run's configuration; it is saved with the
	// checkpoint and Resume refuses a checkpoint of another RunID.
	RunID string

	// OnStep and OnEval, when set, receive every step's and every
	// evaluation's metrics; an error from either stops the run.
	OnStep func(StepMetrics) error
	OnEval func(EvalMetrics) error
	// OnSave, when set, is called after each checkpoint is written, with
	// its step: to save the caller's own records beside it.
	OnSave func(step int64) error

	// Sync, when set, makes the run one rank of a data-parallel job (Data
	// then serves this rank's shard: NewShardedLoader). It is called on
	// every rank once per step, after the step's backward passes (all its
	// micro-batches) and before gradient clipping and the optimizer step,
	// and must average the trainable parameters' gradients over the ranks
	// in place (the dist package's DataParallel does; train does not
	// depend on it). It gets this rank's figures of the step and returns
	// the job's: the loss averaged over the ranks, the labelled tokens
	// summed, and Stop when any rank was interrupted. Every rank then
	// stops after the same step: with Sync set, a cancelled context is
	// acted on after the step under way (saving a checkpoint and
	// returning ErrInterrupted on every rank), not before it.
	Sync func(SyncStats) (SyncStats, error)
	// SaveState, when set, is called at every checkpoint of Run and by
	// Save, on every rank of a data-parallel run, even where Checkpoint is
	// empty (a rank that does not write: the hook may run collectives);
	// the JSON it returns is saved in the checkpoint, and Resume hands it
	// to LoadState. For state of the caller's own, such as every rank's
	// generator state.
	SaveState func() (json.RawMessage, error)
	// LoadState, when set, is called by Resume once the checkpoint is
	// loaded, with the JSON that SaveState saved in it (nil for none); an
	// error fails the resume.
	LoadState func(json.RawMessage) error
}

// SyncStats are the figures of a step that the ranks of a data-parallel
// run agree on (Config.Sync).
type SyncStats struct {
	Loss   float64 // the step's training loss: this rank's; Sync returns the mean over the ranks
	Tokens int64   // labelled tokens: this rank's; Sync returns the sum
	Stop   bool    // this rank was interrupted; Sync returns whether any rank was
}

// StepMetrics are one optimizer step's figures.
type StepMetrics struct {
	Step     int64   `json:"step"`      // 1-based: the number of steps taken
	Steps    int64   `json:"steps"`     // the run's total
	Epoch    float64 `json:"epoch"`     // epochs of data seen, fractional
	Loss     float64 `json:"loss"`      // mean training loss of the step's micro-batches
	LR       float64 `json:"lr"`        // learning rate the step used
	GradNorm float64 `json:"grad_norm"` // total gradient norm before clipping (NaN when not clipping)
	Tokens   int64   `json:"tokens"`    // labelled tokens in the step
	TokPerS  float64 `json:"tok_per_s"` // tokens (all positions) per second of the step
	Seconds  float64 `json:"seconds"`   // the step's wall time
}

// EvalMetrics are one evaluation's figures.
type EvalMetrics struct {
	Step       int64   `json:"step"`
	Loss       float64 `json:"eval_loss"`       // mean loss per labelled token
	Perplexity float64 `json:"eval_perplexity"` // exp(Loss)
	Tokens     int64   `json:"eval_tokens"`
}

// Result sums up a finished (or interrupted) run.
type Result struct {
	Step     int64         // steps taken, counting those before a resume
	Losses   []float64     // training loss of each step this process ran
	Evals    []EvalMetrics // every evaluation this process ran
	Duration time.Duration
}

// Trainer runs a Config.
type Trainer struct {
	cfg  Config
	step int64
}

// checkpointData is what a checkpoint's Position.Data holds.
type checkpointData struct {
	DataPosition
	RunID string          `json:"run_id,omitempty"`
	State json.RawMessage `json:"state,omitempty"` // Config.SaveState's
}

// New checks cfg and returns a Trainer at step 0.
func New(cfg Config) (*Trainer, error) {
	switch {
	case isNil(cfg.Model):
		return nil, errors.New("train: Config.Model is nil")
	case cfg.Logits == nil:
		return nil, errors.New("train: Config.Logits is nil")
	case isNil(cfg.Optimizer):
		return nil, errors.New("train: Config.Optimizer is nil")
	case cfg.Data == nil:
		return nil, errors.New("train: Config.Data is nil")
	case cfg.Steps < 1:
		return nil, fmt.Errorf("train: Config.Steps is %d, want ≥ 1", cfg.Steps)
	case cfg.GradAccum < 0:
		return nil, fmt.Errorf("train: Config.GradAccum is %d, want ≥ 1", cfg.GradAccum)
	case cfg.GradClip < 0 || math.IsNaN(cfg.GradClip) || math.IsInf(cfg.GradClip, 1):
		return nil, fmt.Errorf("train: Config.GradClip is %v, want a finite value ≥ 0 (0: no clipping)", cfg.GradClip)
	case cfg.EvalEvery < 0 || cfg.SaveEvery < 0:
		return nil, fmt.Errorf("train: EvalEvery %d, SaveEvery %d: want ≥ 0", cfg.EvalEvery, cfg.SaveEvery)
	}
	if cfg.GradAccum == 0 {
		cfg.GradAccum = 1
	}
	if cfg.EvalBatch <= 0 {
		cfg.EvalBatch = cfg.Data.batch
	}
	if cfg.Autocast != torch.BFloat16 && cfg.Autocast != torch.Float16 {
		cfg.Autocast = torch.Invalid
	}
	return &Trainer{cfg: cfg}, nil
}

// Step is the number of steps taken.
func (t *Trainer) Step() int64 { return t.step }

func (t *Trainer) state() State {
	return State{Model: t.cfg.Model, Optimizer: t.cfg.Optimizer, Scheduler: t.cfg.Scheduler}
}

// Resume loads the checkpoint at path (Config.Checkpoint when empty):
// the trainable weights, optimizer, schedule, generators, step and data
// position. A checkpoint of another run (another RunID), model, optimizer
// or schedule is an error, and nothing changes.
func (t *Trainer) Resume(path string) error {
	if path == "" {
		path = t.cfg.Checkpoint
	}
	pos, err := ReadPosition(path)
	if err != nil {
		return err
	}
	var cd checkpointData
	if len(pos.Data) > 0 {
		if err := json.Unmarshal(pos.Data, &cd); err != nil {
			return fmt.Errorf("train: Resume %s: data position: %v", path, err)
		}
	}
	if cd.RunID != t.cfg.RunID {
		return fmt.Errorf("train: Resume %s: the checkpoint is of another run (base, data or settings differ: run id %q, this run's %q)", path, cd.RunID, t.cfg.RunID)
	}
	if pos.Step > t.cfg.Steps {
		return fmt.Errorf("train: Resume %s: the checkpoint is at step %d, beyond this run's %d steps", path, pos.Step, t.cfg.Steps)
	}
	// Check the data position before anything changes.
	probe := *t.cfg.Data
	if err := probe.SetPosition(cd.DataPosition); err != nil {
		return fmt.Errorf("train: Resume %s: %w", path, err)
	}
	if _, err := LoadCheckpoint(path, t.state()); err != nil {
		return err
	}
	if err := t.cfg.Data.SetPosition(cd.DataPosition); err != nil {
		return err
	}
	t.step = pos.Step
	if t.cfg.LoadState != nil {
		if err := t.cfg.LoadState(cd.State); err != nil {
			return fmt.Errorf("train: Resume %s: %w", path, err)
		}
	}
	return nil
}

// Save writes a checkpoint of the current step to path (Config.Checkpoint
// when empty), atomically, with Config.SaveState's JSON when it is set.
func (t *Trainer) Save(path string) error {
	if path == "" {
		path = t.cfg.Checkpoint
	}
	if path == "" {
		return errors.New("train: Save: no checkpoint path")
	}
	extra, err := t.saveState()
	if err != nil {
		return err
	}
	return t.write(path, extra)
}

// saveState runs Config.SaveState, if set.
func (t *Trainer) saveState() (json.RawMessage, error) {
	if t.cfg.SaveState == nil {
		return nil, nil
	}
	b, err := t.cfg.SaveState()
	if err != nil {
		return nil, fmt.Errorf("train: saving the checkpoint: %w", err)
	}
	return b, nil
}

// write writes the checkpoint to path, with extra as its caller's state.
func (t *Trainer) write(path string, extra json.RawMessage) error {
	b, err := json.Marshal(checkpointData{DataPosition: t.cfg.Data.Position(), RunID: t.cfg.RunID, State: extra})
	if err != nil {
		return err
	}
	return SaveCheckpoint(path, t.state(), Position{Step: t.step, Data: b})
}

// Run trains from the current step to Config.Steps. It pins its goroutine
// to an OS thread for the whole run: libtorch's grad mode and autocast
// state are per thread. The model is put in training mode (and back in
// training mode after each evaluation).
//
// When ctx is cancelled (Ctrl-C), Run finishes the step under way, saves
// a checkpoint (when Config.Checkpoint is set) and returns an error
// wrapping ErrInterrupted with the result so far. An error in a step
// (a failed op, a non-finite loss) stops the run without saving.
func (t *Trainer) Run(ctx context.Context) (Result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := &t.cfg
	start := time.Now()
	res := Result{}
	module.Train(cfg.Model)
	params := module.Parameters(cfg.Model, true)
	if len(params) == 0 {
		return res, errors.New("train: the model has no trainable parameter")
	}
	finish := func(err error) (Result, error) {
		res.Step = t.step
		res.Duration = time.Since(start)
		return res, err
	}
	save := func() error {
		// SaveState first, on every rank (it may be a collective).
		extra, err := t.saveState()
		if err != nil || cfg.Checkpoint == "" {
			return err
		}
		if err := t.write(cfg.Checkpoint, extra); err != nil {
			return err
		}
		if cfg.OnSave != nil {
			return cfg.OnSave(t.step)
		}
		return nil
	}
	evaluated := int64(-1)
	evaluate := func() error {
		if len(cfg.Eval) == 0 || evaluated == t.step {
			return nil
		}
		m, err := t.Evaluate()
		if err != nil {
			return err
		}
		evaluated = t.step
		res.Evals = append(res.Evals, m)
		if cfg.OnEval != nil {
			return cfg.OnEval(m)
		}
		return nil
	}
	interrupted := func() (Result, error) {
		if err := save(); err != nil {
			return finish(fmt.Errorf("%w at step %d; saving the checkpoint failed: %v", ErrInterrupted, t.step, err))
		}
		return finish(fmt.Errorf("%w at step %d", ErrInterrupted, t.step))
	}
	for t.step < cfg.Steps {
		if cfg.Sync == nil && ctx.Err() != nil {
			return interrupted()
		}
		m, stop, err := t.runStep(ctx)
		if err != nil {
			return finish(fmt.Errorf("train: step %d: %w", t.step+1, err))
		}
		t.step++
		res.Losses = append(res.Losses, m.Loss)
		if cfg.OnStep != nil {
			if err := cfg.OnStep(m); err != nil {
				return finish(err)
			}
		}
		if cfg.EvalEvery > 0 && t.step%cfg.EvalEvery == 0 {
			if err := evaluate(); err != nil {
				return finish(err)
			}
		}
		if stop && t.step < cfg.Steps { // every rank agreed to stop after this step
			return interrupted()
		}
		if cfg.SaveEvery > 0 && t.step%cfg.SaveEvery == 0 && t.step < cfg.Steps {
			if err := save(); err != nil {
				return finish(err)
			}
		}
	}
	if err := evaluate(); err != nil {
		return finish(err)
	}
	if err := save(); err != nil {
		return finish(err)
	}
	return finish(nil)
}

// batchTensors turns rows into ids and labels tensors [B, T] on dev,
// owned by s.
func batchTensors(s *torch.Scope, rows []Row, dev torch.Device) (ids, labels *torch.Tensor) {
	T := len(rows[0].IDs)
	flatIDs := make([]int64, 0, len(rows)*T)
	flatLabels := make([]int64, 0, len(rows)*T)
	for _, r := range rows {
		flatIDs = append(flatIDs, r.IDs...)
		flatLabels = append(flatLabels, r.Labels...)
	}
	B := int64(len(rows))
	ids = s.Own(torch.FromSlice(flatIDs, B, int64(T)))
	labels = s.Own(torch.FromSlice(flatLabels, B, int64(T)))
	if dev != torch.CPU {
		ids, labels = ids.To(dev), labels.To(dev)
	}
	return ids, labels
}

// lossOf is the causal LM loss of rows: cross-entropy of the logits at
// positions 0…T−2 against the labels at 1…T−1, ignoring IgnoreIndex,
// reduced as r says. It runs under autocast when the config asks.
func (t *Trainer) lossOf(s *torch.Scope, rows []Row, r torch.Reduction) *torch.Tensor {
	ids, labels := batchTensors(s, rows, t.cfg.Device)
	var loss *torch.Tensor
	f := func() error {
		logits := t.cfg.Logits(ids)
		B, T := ids.SizeOf(0), ids.SizeOf(1)
		if err := logits.Err(); err != nil {
			loss = logits
			return err
		}
		V := logits.SizeOf(2)
		lg := logits.Narrow(1, 0, T-1).Reshape(B*(T-1), V)
		tg := labels.Narrow(1, 1, T-1).Reshape(B * (T - 1))
		loss = torch.CrossEntropy(lg, tg, IgnoreIndex, r)
		return loss.Err()
	}
	if t.cfg.Autocast.Valid() {
		dev := t.cfg.Device
		if err := torch.Autocast(dev, t.cfg.Autocast, f); err != nil && loss == nil {
			return torch.Failed(err)
		}
		return loss
	}
	_ = f()
	return loss
}

// labelled counts the positions 1…T−1 of rows that count in the loss.
func labelled(rows []Row) int64 {
	n := int64(0)
	for _, r := range rows {
		if len(r.Labels) == 0 { // an empty row: an error in batchTensors, not a panic here
			continue
		}
		for _, l := range r.Labels[1:] {
			if l != IgnoreIndex {
				n++
			}
		}
	}
	return n
}

// trainStep runs one step.
func (t *Trainer) trainStep() (StepMetrics, error) {
	m, _, err := t.runStep(context.Background())
	return m, err
}

// runStep runs one step; with Config.Sync, it also reports whether every
// rank is to stop after it (ctx cancelled on some rank).
func (t *Trainer) runStep(ctx context.Context) (StepMetrics, bool, error) {
	cfg := &t.cfg
	begin := time.Now()
	m := StepMetrics{Step: t.step + 1, Steps: cfg.Steps, LR: cfg.Optimizer.LR(), GradNorm: math.NaN()}
	positions := int64(0)
	for range cfg.GradAccum {
		rows := cfg.Data.Next()
		n := labelled(rows)
		m.Tokens += n
		positions += int64(len(rows) * len(rows[0].IDs))
		err := func() error {
			s := torch.NewScope()
			defer s.Close()
			loss := t.lossOf(s, rows, torch.ReductionMean)
			if n == 0 { // nothing to learn in this micro-batch: a zero loss
				return loss.Err()
			}
			v, err := loss.Item()
			if err != nil {
				return err
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("the loss is %v", v)
			}
			m.Loss += v / float64(cfg.GradAccum)
			if cfg.GradAccum > 1 {
				loss = loss.DivScalar(float64(cfg.GradAccum))
			}
			return loss.Backward()
		}()
		if err != nil {
			_ = cfg.Optimizer.ZeroGrad()
			return m, false, err
		}
	}
	stop := false
	if cfg.Sync != nil {
		st, err := cfg.Sync(SyncStats{Loss: m.Loss, Tokens: m.Tokens, Stop: ctx.Err() != nil})
		if err != nil {
			_ = cfg.Optimizer.ZeroGrad()
			return m, false, err
		}
		m.Loss, m.Tokens, stop = st.Loss, st.Tokens, st.Stop
	}
	if cfg.GradClip > 0 {
		norm, err := optim.ClipGradNorm(cfg.Optimizer.Params(), cfg.GradClip, 2)
		if err != nil {
			_ = cfg.Optimizer.ZeroGrad()
			return m, false, err
		}
		m.GradNorm = norm
	}
	if err := cfg.Optimizer.Step(); err != nil {
		return m, false, err
	}
	if err := cfg.Optimizer.ZeroGrad(); err != nil {
		return m, false, err
	}
	if cfg.Scheduler != nil {
		cfg.Scheduler.Step()
	}
	m.Seconds = time.Since(begin).Seconds()
	if m.Seconds > 0 {
		m.TokPerS = float64(positions) / m.Seconds
	}
	p := cfg.Data.Position()
	m.Epoch = float64(p.Epoch) + float64(p.Index)/float64(cfg.Data.EpochLen())
	return m, stop, nil
}

// Evaluate returns the mean loss per labelled token over Config.Eval and
// its perplexity, computed in evaluation mode without gradients; the
// model goes back to training mode after.
func (t *Trainer) Evaluate() (EvalMetrics, error) {
	m, err := EvaluateRows(t.cfg.Model, t.cfg.Eval, t.cfg.EvalBatch, func(s *torch.Scope, rows []Row) *torch.Tensor {
		return t.lossOf(s, rows, torch.ReductionSum)
	})
	m.Step = t.step
	return m, err
}

// EvaluateRows computes the mean loss per labelled token of rows, in
// batches of batch rows, with model in evaluation mode and without
// gradients, then puts model back in training mode. sumLoss returns the
// summed token losses of a batch, its tensors owned by s.
func EvaluateRows(model module.Module, rows []Row, batch int, sumLoss func(s *torch.Scope, rows []Row) *torch.Tensor) (EvalMetrics, error) {
	var m EvalMetrics
	if len(rows) == 0 {
		return m, errors.New("train: evaluate: no rows")
	}
	if batch < 1 {
		batch = 1
	}
	module.Eval(model)
	defer module.Train(model)
	total := 0.0
	err := torch.NoGrad(func() error {
		for i := 0; i < len(rows); i += batch {
			b := rows[i:min(i+batch, len(rows))]
			s := torch.NewScope()
			v, err := sumLoss(s, b).Item()
			s.Close()
			if err != nil {
				return err
			}
			total += v
			m.Tokens += labelled(b)
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("train: evaluate: %w", err)
	}
	if m.Tokens == 0 {
		return m, errors.New("train: evaluate: no labelled token")
	}
	m.Loss = total / float64(m.Tokens)
	m.Perplexity = math.Exp(m.Loss)
	return m, nil
}
