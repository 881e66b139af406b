package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
)

// The checkpoint layout; see the package doc.
const (
	formatValue = "golora.checkpoint.1"

	metaFormat = "format"
	metaStep   = "step"
	metaData   = "data_position"

	modelPrefix   = "model."
	optimPrefix   = "optim." // of the optimizer's tensors and of its metadata keys
	rngCPU        = "rng.cpu"
	rngCUDAPrefix = "rng.cuda."
)

// State is the live state of a training run that a checkpoint saves and
// restores. Model is required; Optimizer and Scheduler may be nil, and a
// checkpoint saved without one loads only into a State without it.
type State struct {
	// Model is the model being trained. Its trainable parameters (those
	// that require grad, such as LoRA's A and B) are saved under their
	// dotted names (module.NamedParameters).
	Model module.Module
	// Optimizer is the optimizer that trains Model; its state and
	// hyperparameters are saved (optim.Optimizer.StateDict).
	Optimizer optim.Optimizer
	// Scheduler is the learning-rate schedule driving Optimizer; its step
	// and schedule are saved (schedule.Scheduler.State).
	Scheduler *schedule.Scheduler
}

// Position is where a training run is: the caller's step count and data
// position. The checkpoint stores both as given and LoadCheckpoint returns
// them.
type Position struct {
	// Step is the caller's step count, ≥ 0: usually the number of
	// optimizer steps taken, so that the loop resumes at this step.
	Step int64
	// Data is where the data stream is, as any JSON value the caller
	// chooses (json.Marshal of an epoch and batch index, a shuffling
	// generator's state, a file offset...); empty for none.
	Data json.RawMessage
}

// SaveCheckpoint writes st's trainable weights, optimizer state, schedule
// state, the generators' states (the CPU's, and every CUDA device's when
// CUDA is available) and pos to path, a safetensors file laid out as the
// package doc describes.
//
// The file is replaced atomically: it is written to a temporary file in
// the same directory (named ".<base>.tmp-*"), fsynced, renamed over path,
// and the directory is fsynced. On an error the temporary file is removed
// and path keeps its previous content; a crash can at most leave
// temporary files (".<base>.tmp-*") behind, which nothing reads and which
// may be deleted.
//
// Save between steps, with the gradients zeroed: the gradients are not
// saved.
func SaveCheckpoint(path string, st State, pos Position) error {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("train: SaveCheckpoint %s: "+format, append([]any{path}, args...)...)
	}
	if isNil(st.Model) {
		return errf("State.Model is nil")
	}
	if isNil(st.Optimizer) && st.Optimizer != nil {
		return errf("State.Optimizer is a nil %T", st.Optimizer)
	}
	if pos.Step < 0 {
		return errf("Position.Step is %d, want ≥ 0", pos.Step)
	}
	meta := map[string]string{
		metaFormat: formatValue,
		metaStep:   strconv.FormatInt(pos.Step, 10),
	}
	if len(pos.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, pos.Data); err != nil {
			return errf("Position.Data is not valid JSON: %v", err)
		}
		meta[metaData] = buf.String()
	}
	addMeta := func(k, v string) error {
		if _, dup := meta[k]; dup {
			return errf("metadata key %q is written twice", k)
		}
		meta[k] = v
		return nil
	}

	tensors := map[string]*torch.Tensor{}
	for _, p := range module.NamedParameters(st.Model) {
		if p.Trainable {
			tensors[modelPrefix+p.Name] = p.Tensor
		}
	}
	if st.Optimizer != nil {
		ts, md, err := st.Optimizer.StateDict()
		if err != nil {
			return errf("optimizer: %w", err)
		}
		defer torch.CloseMap(ts) // handles sharing the state: closing them leaves it alone
		for k, t := range ts {
			tensors[optimPrefix+k] = t
		}
		for k, v := range md {
			if !strings.HasPrefix(k, optimPrefix) {
				return errf("optimizer metadata key %q does not start with %q", k, optimPrefix)
			}
			if err := addMeta(k, v); err != nil {
				return err
			}
		}
	}
	if st.Scheduler != nil {
		for k, v := range st.Scheduler.State() {
			if err := addMeta(k, v); err != nil {
				return err
			}
		}
	}
	rng, err := rngStates()
	defer torch.CloseMap(rng)
	if err != nil {
		return errf("%w", err)
	}
	maps.Copy(tensors, rng)
	if err := writeFile(path, tensors, meta); err != nil {
		return errf("%w", err)
	}
	return nil
}

// rngStates returns the state of the CPU generator and of every CUDA
// device's, under their checkpoint keys.
func rngStates() (map[string]*torch.Tensor, error) {
	out := map[string]*torch.Tensor{}
	devs := []torch.Device{torch.CPU}
	if torch.CUDAIsAvailable() {
		for i := range torch.CUDADeviceCount() {
			devs = append(devs, torch.CUDA(i))
		}
	}
	for _, d := range devs {
		t := torch.RNGState(d)
		if err := t.Err(); err != nil {
			return out, fmt.Errorf("generator state of %v: %w", d, err)
		}
		out[rngKey(d)] = t
	}
	return out, nil
}

func rngKey(d torch.Device) string {
	if d.IsCUDA() {
		return rngCUDAPrefix + strconv.Itoa(d.Index)
	}
	return rngCPU
}

// testHookBeforeRename, when set (by tests), is called with the temporary
// file's name once it is written and synced, before the rename. An error
// from it fails the write.
var testHookBeforeRename func(tmp string) error

// writeFile writes tensors and metadata to path atomically, with
// torch.SaveSafetensors, which writes through atomicfile.Write: a
// temporary file in path's directory, fsynced, renamed over path, and the
// directory fsynced. On an error the temporary file is removed.
func writeFile(path string, tensors map[string]*torch.Tensor, meta map[string]string) error {
	if _, base := filepath.Split(path); base == "" {
		return errors.New("the path names a directory")
	}
	if h := testHookBeforeRename; h != nil {
		defer atomicfile.SetTestHooks(atomicfile.Hooks{BeforeRename: func(p, tmp string) error {
			if p != path {
				return nil
			}
			return h(tmp)
		}})()
	}
	return torch.SaveSafetensors(path, tensors, meta)
}

// ReadPosition returns the Position stored in the checkpoint at path,
// reading only its header: to find where a run stands, or the latest of
// several checkpoints, without loading one.
func ReadPosition(path string) (Position, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return Position{}, fmt.Errorf("train: ReadPosition: %w", err)
	}
	defer f.Close()
	pos, err := parsePosition(f.Metadata())
	if err != nil {
		return Position{}, fmt.Errorf("train: ReadPosition %s: %w", path, err)
	}
	return pos, nil
}

// parsePosition checks the checkpoint's format and returns its Position.
func parsePosition(meta map[string]string) (Position, error) {
	switch v, ok := meta[metaFormat]; {
	case !ok:
		return Position{}, fmt.Errorf("not a golora training checkpoint (no %q metadata)", metaFormat)
	case v != formatValue:
		return Position{}, fmt.Errorf("checkpoint format %q, this golora reads %q", v, formatValue)
	}
	var pos Position
	s, ok := meta[metaStep]
	if !ok {
		return Position{}, fmt.Errorf("no %q metadata", metaStep)
	}
	step, err := strconv.ParseInt(s, 10, 64)
	if err != nil || step < 0 {
		return Position{}, fmt.Errorf("metadata %q = %q is not a step count (an integer ≥ 0)", metaStep, s)
	}
	pos.Step = step
	if d, ok := meta[metaData]; ok {
		if !json.Valid([]byte(d)) {
			return Position{}, fmt.Errorf("metadata %q is not valid JSON", metaData)
		}
		pos.Data = json.RawMessage(d)
	}
	return pos, nil
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into st
// and the generators, and returns the Position saved with it: the model's
// trainable weights (copied in place, into their dtype and device), the
// optimizer's state and hyperparameters, the scheduler's step (which sets
// the optimizer's learning rate), the CPU generator's state, and the state
// of each CUDA device's generator that this process has.
//
// The checkpoint must fit st: weights for exactly the model's trainable
// parameters, of the same shapes (and floating-point dtypes); optimizer
// state of the same algorithm over the same parameter groups and names;
// the same schedule; generator states of this libtorch's sizes; and an
// optimizer and a scheduler in the file exactly when st has them.
// Otherwise LoadCheckpoint returns an error that names the file and lists
// everything that does not fit, and changes nothing.
//
// Everything is checked before anything changes, so an error leaves the
// model, optimizer, scheduler and generators as they were; only a failure
// of libtorch itself while copying (out of memory) could leave a partial
// load, as in optim.Optimizer.LoadStateDict.
//
// CUDA generator states for devices this process does not have (a run
// saved on a GPU and resumed on the CPU, or on fewer GPUs) are skipped: a
// run moved to other hardware cannot continue bit for bit anyway.
func LoadCheckpoint(path string, st State) (Position, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("train: LoadCheckpoint %s: "+format, append([]any{path}, args...)...)
	}
	if isNil(st.Model) {
		return Position{}, errf("State.Model is nil")
	}
	if isNil(st.Optimizer) && st.Optimizer != nil {
		return Position{}, errf("State.Optimizer is a nil %T", st.Optimizer)
	}
	// The header first: a file that is no checkpoint fails before its
	// tensors are read.
	hdr, err := safetensors.Open(path)
	if err != nil {
		return Position{}, fmt.Errorf("train: LoadCheckpoint: %w", err)
	}
	meta := hdr.Metadata()
	_ = hdr.Close()
	pos, err := parsePosition(meta)
	if err != nil {
		return Position{}, errf("%w", err)
	}
	tensors, _, err := torch.LoadSafetensors(path)
	if err != nil {
		return Position{}, fmt.Errorf("train: LoadCheckpoint: %w", err)
	}
	defer torch.CloseMap(tensors)

	weights := map[string]*torch.Tensor{}
	optState := map[string]*torch.Tensor{}
	rng := map[torch.Device]*torch.Tensor{}
	var problems, unknown []string
	for _, k := range slices.Sorted(maps.Keys(tensors)) {
		t := tensors[k]
		switch {
		case strings.HasPrefix(k, modelPrefix):
			weights[strings.TrimPrefix(k, modelPrefix)] = t
		case strings.HasPrefix(k, optimPrefix):
			optState[strings.TrimPrefix(k, optimPrefix)] = t
		case k == rngCPU:
			rng[torch.CPU] = t
		case strings.HasPrefix(k, rngCUDAPrefix):
			i, err := strconv.Atoi(strings.TrimPrefix(k, rngCUDAPrefix))
			if err != nil || i < 0 || strconv.Itoa(i) != strings.TrimPrefix(k, rngCUDAPrefix) {
				unknown = append(unknown, k)
				continue
			}
			rng[torch.CUDA(i)] = t
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		problems = append(problems, "tensors of no known part: "+listKeys(unknown))
	}
	problems = append(problems, checkModel(st.Model, weights)...)
	optMeta, ps := checkOptimizer(st.Optimizer, optState, meta)
	problems = append(problems, ps...)
	problems = append(problems, checkScheduler(st.Scheduler, meta)...)
	restore, ps := checkRNG(rng)
	problems = append(problems, ps...)
	if len(problems) > 0 {
		return Position{}, errf("the checkpoint does not fit (nothing loaded): %s", strings.Join(problems, "; "))
	}

	// Apply. The optimizer goes first: its LoadStateDict checks what the
	// checks above could not (the state slots its hyperparameters need)
	// and changes nothing when that fails. The rest cannot fail the
	// checks above passed.
	if st.Optimizer != nil {
		if err := st.Optimizer.LoadStateDict(optState, optMeta); err != nil {
			if strings.Contains(err.Error(), "nothing loaded") {
				return Position{}, errf("%w", err)
			}
			return Position{}, errf("the checkpoint does not fit (nothing loaded): %w", err)
		}
	}
	if st.Scheduler != nil {
		if err := st.Scheduler.LoadState(meta); err != nil {
			return Position{}, errf("%w (the optimizer state is loaded already)", err)
		}
	}
	for _, d := range slices.SortedFunc(maps.Keys(restore), func(a, b torch.Device) int {
		return strings.Compare(rngKey(a), rngKey(b))
	}) {
		if err := torch.SetRNGState(d, restore[d]); err != nil {
			return Position{}, errf("generator of %v: %w (the optimizer and scheduler state is loaded already)", d, err)
		}
	}
	if err := module.LoadStateDictPartial(st.Model, weights); err != nil {
		return Position{}, errf("weights: %w (the optimizer, scheduler and generator state is loaded already)", err)
	}
	return pos, nil
}

// checkModel compares the checkpoint's weights with m's trainable
// parameters: the same names, shapes and kinds of dtype.
func checkModel(m module.Module, weights map[string]*torch.Tensor) []string {
	trainable := map[string]*torch.Tensor{}
	frozen := map[string]bool{}
	for _, p := range module.NamedParameters(m) {
		if p.Trainable {
			trainable[p.Name] = p.Tensor
		} else {
			frozen[p.Name] = true
		}
	}
	var missing, unexpected, mismatched []string
	for _, name := range slices.Sorted(maps.Keys(trainable)) {
		if _, ok := weights[name]; !ok {
			missing = append(missing, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(weights)) {
		p, ok := trainable[name]
		if !ok {
			if frozen[name] {
				name += " (frozen in this model)"
			}
			unexpected = append(unexpected, name)
			continue
		}
		t := weights[name]
		want, err := p.Size()
		if err != nil {
			mismatched = append(mismatched, fmt.Sprintf("%s: the model's parameter: %v", name, err))
			continue
		}
		if got := t.Shape(); !slices.Equal(got, want) {
			mismatched = append(mismatched, fmt.Sprintf("%s: shape %v in the checkpoint, %v in the model", name, got, want))
			continue
		}
		if wd, gd := p.DType(), t.DType(); wd != gd && !(wd.IsFloat() && gd.IsFloat()) {
			mismatched = append(mismatched, fmt.Sprintf("%s: dtype %v in the checkpoint, %v in the model", name, gd, wd))
		}
	}
	var out []string
	if len(missing) > 0 {
		out = append(out, "model: no weights for trainable parameters "+listKeys(missing))
	}
	if len(unexpected) > 0 {
		out = append(out, "model: weights for parameters this model does not train: "+listKeys(unexpected))
	}
	if len(mismatched) > 0 {
		out = append(out, "model: "+strings.Join(mismatched, "; "))
	}
	return out
}

// groupNames is the part of the optimizer's optim.param_groups metadata
// that names the groups and their parameters.
type groupNames struct {
	Name   string   `json:"name"`
	Params []string `json:"params"`
}

// checkOptimizer checks that the checkpoint has optimizer state exactly
// when opt is set, of the same algorithm over the same groups and
// parameter names, and returns its metadata (the "optim." keys). The
// optimizer's LoadStateDict checks the rest (slots, shapes,
// hyperparameters).
func checkOptimizer(opt optim.Optimizer, state map[string]*torch.Tensor, meta map[string]string) (map[string]string, []string) {
	saved := map[string]string{}
	for k, v := range meta {
		if strings.HasPrefix(k, optimPrefix) {
			saved[k] = v
		}
	}
	has := len(saved) > 0 || len(state) > 0
	switch {
	case opt == nil && !has:
		return nil, nil
	case opt == nil:
		return nil, []string{fmt.Sprintf("optimizer: the checkpoint has %s optimizer state but State.Optimizer is nil", orUnknown(saved[optim.MetaAlgorithm]))}
	case !has:
		return nil, []string{"optimizer: the checkpoint has no optimizer state but State.Optimizer is set"}
	}
	ts, cur, err := opt.StateDict()
	torch.CloseMap(ts)
	if err != nil {
		return nil, []string{fmt.Sprintf("optimizer: %v", err)}
	}
	if a, b := saved[optim.MetaAlgorithm], cur[optim.MetaAlgorithm]; a != b {
		return nil, []string{fmt.Sprintf("optimizer: the checkpoint's is %s, State.Optimizer is %s", orUnknown(a), b)}
	}
	var sg, cg []groupNames
	if err := json.Unmarshal([]byte(saved[optim.MetaGroups]), &sg); err != nil {
		return nil, []string{fmt.Sprintf("optimizer: metadata %q: %v", optim.MetaGroups, err)}
	}
	if err := json.Unmarshal([]byte(cur[optim.MetaGroups]), &cg); err != nil {
		return nil, []string{fmt.Sprintf("optimizer: State.Optimizer's %q: %v", optim.MetaGroups, err)}
	}
	var out []string
	if len(sg) != len(cg) {
		out = append(out, fmt.Sprintf("optimizer: %d parameter groups in the checkpoint, %d in State.Optimizer", len(sg), len(cg)))
	} else {
		for i := range sg {
			if sg[i].Name != cg[i].Name {
				out = append(out, fmt.Sprintf("optimizer: group %d is %q in the checkpoint, %q in State.Optimizer", i, sg[i].Name, cg[i].Name))
			}
			if !slices.Equal(sg[i].Params, cg[i].Params) {
				out = append(out, fmt.Sprintf("optimizer: group %d has parameters [%s] in the checkpoint, [%s] in State.Optimizer",
					i, strings.Join(sg[i].Params, ", "), strings.Join(cg[i].Params, ", ")))
			}
		}
	}
	names := map[string]bool{}
	for _, g := range cg {
		for _, p := range g.Params {
			names[p] = true
		}
	}
	stray := map[string]bool{}
	for k := range state {
		rest, ok := strings.CutPrefix(k, optim.StatePrefix)
		i := strings.LastIndexByte(rest, '.')
		switch {
		case !ok || i <= 0:
			stray[optimPrefix+k] = true
		case !names[rest[:i]]:
			stray[rest[:i]] = true
		}
	}
	if len(stray) > 0 {
		out = append(out, "optimizer: state of parameters State.Optimizer does not have: "+listKeys(slices.Collect(maps.Keys(stray))))
	}
	return saved, out
}

func orUnknown(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

// nopTarget is the target of the scheduler that checkScheduler tries the
// saved state on.
type nopTarget struct{}

func (nopTarget) SetLR(float64) {}

// checkScheduler checks that the checkpoint has schedule state exactly
// when sched is set, and that sched.LoadState would take it, by loading
// it into a copy of sched.
func checkScheduler(sched *schedule.Scheduler, meta map[string]string) []string {
	has := false
	for k := range meta {
		if strings.HasPrefix(k, schedule.StateKeyPrefix) {
			has = true
			break
		}
	}
	switch {
	case sched == nil && has:
		return []string{fmt.Sprintf("schedule: the checkpoint has schedule state (%s) but State.Scheduler is nil", orUnknown(meta[schedule.StateKeyPrefix+"kind"]))}
	case sched == nil:
		return nil
	case !has:
		return []string{"schedule: the checkpoint has no schedule state but State.Scheduler is set"}
	}
	trial, err := schedule.New(nopTarget{}, sched.Schedule())
	if err == nil {
		err = trial.LoadState(meta)
	}
	if err != nil {
		return []string{err.Error()} // "schedule.New: ..." or "schedule: LoadState: ..."
	}
	return nil
}

// checkRNG checks the generator states: the CPU's is required, and each
// state must be a uint8 tensor of the size of this libtorch's. It returns
// the states to restore (CUDA devices this process lacks left out).
func checkRNG(rng map[torch.Device]*torch.Tensor) (map[torch.Device]*torch.Tensor, []string) {
	restore := map[torch.Device]*torch.Tensor{}
	var out []string
	if _, ok := rng[torch.CPU]; !ok {
		out = append(out, fmt.Sprintf("generators: no CPU generator state (%q)", rngCPU))
	}
	cuda := 0
	if torch.CUDAIsAvailable() {
		cuda = torch.CUDADeviceCount()
	}
	for _, d := range slices.SortedFunc(maps.Keys(rng), func(a, b torch.Device) int {
		return strings.Compare(rngKey(a), rngKey(b))
	}) {
		if d.IsCUDA() && d.Index >= cuda {
			continue
		}
		t := rng[d]
		cur := torch.RNGState(d)
		want, err := cur.Size()
		cur.Close()
		if err != nil {
			out = append(out, fmt.Sprintf("generators: %v: %v", d, err))
			continue
		}
		if got := t.Shape(); t.DType() != torch.Uint8 || !slices.Equal(got, want) {
			out = append(out, fmt.Sprintf("generators: %s is %v %v, this libtorch's %v state is uint8 %v",
				rngKey(d), t.DType(), got, d, want))
			continue
		}
		restore[d] = t
	}
	return restore, out
}

// listKeys formats keys for a message: sorted, at most 20, with a count.
func listKeys(keys []string) string {
	keys = slices.Sorted(slices.Values(keys))
	const most = 20
	if len(keys) <= most {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s, ... (%d in all)", strings.Join(keys[:most], ", "), len(keys))
}

// isNil reports whether v is nil or a nil pointer in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return r.IsNil()
	}
	return false
}
