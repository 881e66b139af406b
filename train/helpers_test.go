package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/optim/schedule"
	"github.com/golora/golora/torch"
)

// The test run: a two-layer LoRA model with dropout, trained by AdamW
// under a warmup-cosine schedule on data drawn from a seeded generator.
const (
	nIn, nHidden, nOut = 16, 32, 4
	batch              = 8
	halfSteps          = 10 // N: the resume tests run 2N steps
	modelSeed          = 0
	dataSeed           = 7
)

// net is Linear → ReLU → Dropout(0.1) → Linear, both Linears adapted by
// lora.Apply.
type net struct {
	module.Base
	Fc1  module.Layer
	Drop *module.Dropout
	Fc2  module.Layer
}

func (n *net) Forward(x *torch.Tensor) *torch.Tensor {
	return n.Fc2.Forward(n.Drop.Forward(n.Fc1.Forward(x).Relu()))
}

// newNet builds the model from modelSeed, as every process does: the same
// frozen base, LoRA adapters on fc1 and fc2 (rank 4, alpha 8), training
// mode.
func newNet(hidden int64) (*net, error) {
	if err := torch.ManualSeed(modelSeed); err != nil {
		return nil, err
	}
	fc1, err := module.NewLinear(nIn, hidden, true)
	if err != nil {
		return nil, err
	}
	fc2, err := module.NewLinear(hidden, nOut, true)
	if err != nil {
		return nil, err
	}
	drop, err := module.NewDropout(0.1)
	if err != nil {
		return nil, err
	}
	n := &net{Fc1: fc1, Drop: drop, Fc2: fc2}
	module.Child(&n.Base, "fc1", &n.Fc1)
	module.Child(&n.Base, "drop", &n.Drop)
	module.Child(&n.Base, "fc2", &n.Fc2)
	if _, err := lora.Apply(n, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"fc1", "fc2"}}); err != nil {
		return nil, err
	}
	module.Train(n)
	return n, nil
}

// run is a training run: model, optimizer, scheduler and data generator.
type run struct {
	model *net
	opt   optim.Optimizer
	sched *schedule.Scheduler
	pcg   *rand.PCG
	step  int64
}

// dataPos is the run's data position, saved as Position.Data.
type dataPos struct {
	PCG []byte `json:"pcg"` // the data generator's state (MarshalBinary)
}

func newRun(t testing.TB) *run {
	r, err := newRunErr(nHidden, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// newRunErr builds a run; adam picks Adam instead of AdamW.
func newRunErr(hidden int64, adam bool) (*run, error) {
	m, err := newNet(hidden)
	if err != nil {
		return nil, err
	}
	ctor := optim.NewAdamWGroups
	if adam {
		ctor = optim.NewAdamGroups
	}
	opt, err := ctor([]optim.Group{optim.FromModule(m)}, optim.LR(1e-2), optim.WeightDecay(0.05))
	if err != nil {
		module.Close(m)
		return nil, err
	}
	sched, err := schedule.New(opt, schedule.Must(schedule.WarmupCosine(1e-2, 3, 2*halfSteps, 1e-3)))
	if err != nil {
		opt.Close()
		module.Close(m)
		return nil, err
	}
	return &run{model: m, opt: opt, sched: sched, pcg: rand.NewPCG(dataSeed, dataSeed+1)}, nil
}

func (r *run) close() {
	r.opt.Close()
	module.Close(r.model)
}

func (r *run) state() State { return State{Model: r.model, Optimizer: r.opt, Scheduler: r.sched} }

func (r *run) position() (Position, error) {
	b, err := r.pcg.MarshalBinary()
	if err != nil {
		return Position{}, err
	}
	data, err := json.Marshal(dataPos{PCG: b})
	return Position{Step: r.step, Data: data}, err
}

func (r *run) setPosition(p Position) error {
	var d dataPos
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return err
	}
	r.step = p.Step
	return r.pcg.UnmarshalBinary(d.PCG)
}

func (r *run) save(path string) error {
	pos, err := r.position()
	if err != nil {
		return err
	}
	return SaveCheckpoint(path, r.state(), pos)
}

func (r *run) load(path string) error {
	pos, err := LoadCheckpoint(path, r.state())
	if err != nil {
		return err
	}
	return r.setPosition(pos)
}

// steps trains n steps and returns their losses as float32 bits.
func (r *run) steps(n int) ([]uint32, error) {
	rng := rand.New(r.pcg)
	var losses []uint32
	for range n {
		xs := make([]float32, batch*nIn)
		ys := make([]float32, batch*nOut)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		for i := range ys {
			ys[i] = float32(rng.NormFloat64())
		}
		loss, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
			x := s.Own(torch.FromSlice(xs, batch, nIn))
			y := s.Own(torch.FromSlice(ys, batch, nOut))
			return torch.MSELoss(r.model.Forward(x), y, torch.ReductionMean)
		})
		if err != nil {
			return nil, err
		}
		err = loss.Backward()
		if err == nil {
			err = r.opt.Step()
		}
		if err == nil {
			err = r.opt.ZeroGrad()
		}
		var v []float32
		if err == nil {
			v, err = torch.ToSlice[float32](loss)
		}
		loss.Close()
		if err != nil {
			return nil, err
		}
		r.sched.Step()
		r.step++
		losses = append(losses, math.Float32bits(v[0]))
	}
	return losses, nil
}

// weights returns the trainable weights as float32 bits, by name.
func weights(m module.Module) (map[string][]uint32, error) {
	out := map[string][]uint32{}
	for _, p := range module.NamedParameters(m) {
		if !p.Trainable {
			continue
		}
		v, err := torch.ToSlice[float32](p.Tensor)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		bits := make([]uint32, len(v))
		for i, f := range v {
			bits[i] = math.Float32bits(f)
		}
		out[p.Name] = bits
	}
	return out, nil
}

// result is what a helper process reports.
type result struct {
	Losses  []uint32            `json:"losses"`
	Weights map[string][]uint32 `json:"weights"`
	Step    int64               `json:"step"`
	LR      float64             `json:"lr"`
}

const helperEnv = "GOLORA_TRAIN_HELPER"

// runHelper runs TestHelperProcess in a new process of this test binary
// with mode and dir, and returns its exit code and output.
func runHelper(t *testing.T, mode, dir string, extraEnv ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GOLORA_TRAIN_DIR="+dir)
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("helper %s: %v\n%s", mode, err, out)
	}
	return 0, string(out)
}

// mustHelper runs a helper that must succeed and reads its result.
func mustHelper(t *testing.T, mode, dir string) result {
	t.Helper()
	if code, out := runHelper(t, mode, dir); code != 0 {
		t.Fatalf("helper %s exited %d:\n%s", mode, code, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, mode+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// tempFiles lists the leftover temporary files of checkpoints in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}
