package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golora/golora/dist"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
	"github.com/golora/golora/train"
)

// Data-parallel runs: launched by torchrun (or with RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT set by hand), every process trains the same
// model on its shard of the data (train.NewShardedLoader), the gradients
// are averaged after each backward (dist.DataParallel: one all-reduce a
// step, which also carries the step's loss, tokens and a stop flag), and
// only rank 0 writes: logs, checkpoints, history, the adapter, the plot.
// Checkpoints hold every rank's generator states (gathered to rank 0), so
// that a resume at the same world size is exact.

// distJob is this process's part of a data-parallel job.
type distJob struct {
	g       *dist.Group
	dp      *dist.DataParallel
	backend torch.Backend
	dev     torch.Device // the training device: where NCCL's tensors go
	o       *options

	bytes   int64           // what one sync all-reduces: the trainable gradients and 3 floats
	syncDur []time.Duration // each sync's all-reduce
}

// joinJob joins the data-parallel job described by torchrun's variables,
// or returns nil when there is none: WORLD_SIZE unset (or 1) is a single
// process, as without torchrun.
func joinJob(o *options) (*distJob, error) {
	ws, ok := os.LookupEnv("WORLD_SIZE")
	if !ok || strings.TrimSpace(ws) == "1" {
		return nil, nil
	}
	backend := torch.Gloo
	if d, _ := parseDevice(o.device); d.cuda || (d.auto && torch.CUDAIsAvailable()) {
		backend = torch.NCCL
	}
	g, err := dist.InitFromEnv(dist.WithTimeout(o.distTimeout), dist.WithBackend(backend))
	if err != nil {
		return nil, fmt.Errorf("data-parallel launch (WORLD_SIZE=%s): %v", ws, err)
	}
	return &distJob{g: g, o: o, backend: backend}, nil
}

// rank and world are the job's, or 0 and 1 for a single process.
func (d *distJob) rank() int {
	if d == nil {
		return 0
	}
	return d.g.Rank()
}

func (d *distJob) world() int {
	if d == nil {
		return 1
	}
	return d.g.WorldSize()
}

// main reports whether this process writes: rank 0, or a single process.
func (d *distJob) main() bool { return d == nil || d.g.IsMain() }

// wrap explains a failed collective: a peer that died, or the timeout.
func (d *distJob) wrap(what string, err error) error {
	return fmt.Errorf("data-parallel rank %d of %d: %s: %v (a peer process failed or exited, or did not answer within --dist-timeout %v)",
		d.g.Rank(), d.g.WorldSize(), what, err, d.o.distTimeout)
}

// start makes every rank's trainable weights rank 0's and reseeds the
// generators of ranks > 0 (each rank its own dropout masks; rank 0 keeps
// a single process's stream). The broadcast is also the first
// synchronisation: every rank has loaded the base and the data.
func (d *distJob) start(root module.Module, dev torch.Device, seed uint64) error {
	d.dev = dev
	dp, err := dist.NewDataParallel(d.g, module.Parameters(root, true))
	if err != nil {
		return d.wrap("broadcasting rank 0's initial weights", err)
	}
	d.dp = dp
	d.bytes = 3 * 4
	for _, p := range module.Parameters(root, true) {
		d.bytes += p.Numel() * int64(p.DType().ElemSize())
	}
	if r := d.g.Rank(); r > 0 {
		if err := torch.ManualSeed(seed + uint64(r)*0x9e3779b97f4a7c15); err != nil {
			return err
		}
	}
	return nil
}

// syncSummary describes the all-reduces of a run of total duration:
// their bytes, median time and share of the run.
func (d *distJob) syncSummary(total time.Duration) string {
	if d == nil || len(d.syncDur) == 0 {
		return ""
	}
	ds := slices.Clone(d.syncDur)
	slices.Sort(ds)
	var sum time.Duration
	for _, x := range ds {
		sum += x
	}
	share := 0.0
	if total > 0 {
		share = 100 * float64(sum) / float64(total)
	}
	return fmt.Sprintf("all-reduce %s bytes a step (%s): median %s, %.1f%% of the run",
		commas(d.bytes), d.backend, ds[len(ds)/2].Round(time.Microsecond), share)
}

// barrier waits for every rank.
func (d *distJob) barrier(what string) error {
	if err := d.g.Barrier(); err != nil {
		return d.wrap(what, err)
	}
	return nil
}

// sync is train.Config.Sync: it averages the gradients and, in the same
// all-reduce, the step's loss, labelled tokens and stop flag.
func (d *distJob) sync(st train.SyncStats) (train.SyncStats, error) {
	stop := 0.0
	if st.Stop {
		stop = 1
	}
	s := torch.NewScope()
	defer s.Close()
	stats := s.Own(torch.FromSlice([]float32{float32(st.Loss), float32(st.Tokens), float32(stop)}, 3))
	if d.dev != torch.CPU {
		stats = stats.To(d.dev)
	}
	if err := stats.Err(); err != nil {
		return st, err
	}
	t0 := time.Now()
	if err := d.dp.SyncGradsWith(stats); err != nil {
		return st, d.wrap("averaging the gradients", err)
	}
	d.syncDur = append(d.syncDur, time.Since(t0))
	if d.dev != torch.CPU {
		stats = stats.To(torch.CPU)
	}
	v, err := torch.ToSlice[float32](stats)
	if err != nil {
		return st, err
	}
	w := float64(d.g.WorldSize())
	return train.SyncStats{Loss: float64(v[0]), Tokens: int64(math.Round(float64(v[1]) * w)), Stop: v[2] > 0}, nil
}

// rankState is what a data-parallel checkpoint holds beside rank 0's
// state (train.Config.SaveState): the world size, and every rank's
// generator states, by rank.
type rankState struct {
	World int            `json:"world"`
	RNG   []rankRNGState `json:"rng"`
}

type rankRNGState struct {
	CPU  []byte `json:"cpu"`            // torch.RNGState(CPU)
	CUDA []byte `json:"cuda,omitempty"` // the rank's CUDA device's, when it trains on one
}

// gather returns every rank's b (of the same length on every rank).
func (d *distJob) gather(b []byte) ([][]byte, error) {
	s := torch.NewScope()
	defer s.Close()
	t := s.Own(torch.FromSlice(b, int64(len(b))))
	if d.dev != torch.CPU { // NCCL: CUDA tensors
		t = t.To(d.dev)
	}
	if err := t.Err(); err != nil {
		return nil, err
	}
	all, err := d.g.AllGather(t)
	if err != nil {
		return nil, d.wrap("gathering the ranks' generator states", err)
	}
	defer torch.CloseAll(all...)
	out := make([][]byte, len(all))
	for i, a := range all {
		if d.dev != torch.CPU {
			a = s.Own(a.To(torch.CPU))
		}
		if out[i], err = torch.ToSlice[uint8](a); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func rngBytes(dev torch.Device) ([]byte, error) {
	t := torch.RNGState(dev)
	defer t.Close()
	return torch.ToSlice[uint8](t)
}

// saveState is train.Config.SaveState: on every rank, at every
// checkpoint, it gathers the ranks' generator states (rank 0 saves them).
func (d *distJob) saveState() (json.RawMessage, error) {
	st := rankState{World: d.g.WorldSize(), RNG: make([]rankRNGState, d.g.WorldSize())}
	devs := []torch.Device{torch.CPU}
	if d.dev.IsCUDA() {
		devs = append(devs, d.dev)
	}
	for _, dev := range devs {
		b, err := rngBytes(dev)
		if err != nil {
			return nil, fmt.Errorf("generator state of %v: %w", dev, err)
		}
		all, err := d.gather(b)
		if err != nil {
			return nil, err
		}
		for r, b := range all {
			if dev.IsCUDA() {
				st.RNG[r].CUDA = b
			} else {
				st.RNG[r].CPU = b
			}
		}
	}
	return json.Marshal(st)
}

// loadState is train.Config.LoadState: each rank restores its own
// generator states from the checkpoint.
func (d *distJob) loadState(b json.RawMessage) error {
	var st rankState
	if len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("the ranks' state: %v", err)
		}
	}
	if w := max(st.World, 1); w != d.g.WorldSize() {
		return worldMismatch(w, d.g.WorldSize())
	}
	r := d.g.Rank()
	if len(st.RNG) != st.World || len(st.RNG[r].CPU) == 0 {
		return fmt.Errorf("the checkpoint lacks rank %d's generator state", r)
	}
	restore := func(dev torch.Device, b []byte) error {
		t := torch.FromSlice(b, int64(len(b)))
		defer t.Close()
		if err := torch.SetRNGState(dev, t); err != nil {
			return fmt.Errorf("rank %d's generator state of %v: %v", r, dev, err)
		}
		return nil
	}
	if err := restore(torch.CPU, st.RNG[r].CPU); err != nil {
		return err
	}
	if d.dev.IsCUDA() && len(st.RNG[r].CUDA) > 0 {
		return restore(d.dev, st.RNG[r].CUDA)
	}
	return nil
}

// checkpointWorld returns the world size a checkpoint's data position
// records (1: a single process's).
func checkpointWorld(data json.RawMessage) int {
	var p struct {
		State rankState `json:"state"`
	}
	_ = json.Unmarshal(data, &p)
	return max(p.State.World, 1)
}

func worldMismatch(saved, now int) error {
	return fmt.Errorf("the checkpoint was written by a run of %d process(es) (WORLD_SIZE=%d) and this run has %d: resume with the same number of processes (a resume at another world size would change the global batch, the data shards and the generators)", saved, saved, now)
}
