// Package dist runs data-parallel training on PyTorch's own distributed
// engine, c10d: the same launcher (torchrun), rendezvous (a TCPStore) and
// collectives (Gloo on CPU, NCCL on GPU) as PyTorch's
// DistributedDataParallel, with no protocol of golora's own.
//
// A program launched by torchrun joins its job with InitFromEnv:
//
//	g, err := dist.InitFromEnv()          // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ...
//	defer g.Destroy()
//	dp, err := dist.NewDataParallel(g, trainable) // rank 0's initial weights everywhere
//	for step := ... {
//		... forward on this rank's shard, loss.Backward() ...
//		err = dp.SyncGrads()               // average the gradients: one all-reduce per step
//		err = opt.Step()
//	}
//
// and is launched as
//
//	torchrun --nproc-per-node=2 --no-python ./train ...
//
// Without torchrun, set the variables by hand in each process: RANK (0 to
// WORLD_SIZE-1), WORLD_SIZE, MASTER_ADDR and MASTER_PORT (rank 0 hosts the
// store there), and optionally LOCAL_RANK and LOCAL_WORLD_SIZE.
//
// Every collective is bounded by the group's timeout (WithTimeout, default
// 5 minutes): a rank that dies makes the others fail with an error after
// it, never hang.
package dist

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golora/golora/torch"
)

// Group is this process's membership of a data-parallel job.
type Group struct {
	pg                    *torch.ProcessGroup
	rank, world           int
	localRank, localWorld int
}

type options struct {
	backend torch.Backend
	timeout time.Duration
	lookup  func(string) (string, bool)
}

// Option configures InitFromEnv.
type Option func(*options)

// WithBackend picks the backend: torch.Gloo (the default, CPU tensors) or
// torch.NCCL (CUDA tensors).
func WithBackend(b torch.Backend) Option { return func(o *options) { o.backend = b } }

// WithTimeout bounds the rendezvous and every collective (default 5
// minutes).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithLookup reads the launcher's variables through f instead of the
// process environment (os.LookupEnv), for tests and embedding.
func WithLookup(f func(string) (string, bool)) Option { return func(o *options) { o.lookup = f } }

// InitFromEnv joins the job described by torchrun's environment: RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT (required), LOCAL_RANK and
// LOCAL_WORLD_SIZE (optional). Rank 0 hosts the TCPStore at
// MASTER_ADDR:MASTER_PORT unless TORCHELASTIC_USE_AGENT_STORE is True:
// torchrun's agent then hosts it already, and every rank, rank 0
// included, connects as a client. A variable that is missing or malformed
// is an error that names it.
func InitFromEnv(opts ...Option) (*Group, error) {
	o := options{backend: torch.Gloo, timeout: 5 * time.Minute, lookup: os.LookupEnv}
	for _, f := range opts {
		f(&o)
	}
	env := envReader{lookup: o.lookup}
	rank := env.int("RANK", -1, 0)
	world := env.int("WORLD_SIZE", -1, 1)
	localRank := env.int("LOCAL_RANK", rank, 0)
	localWorld := env.int("LOCAL_WORLD_SIZE", world, 1)
	addr := env.str("MASTER_ADDR")
	port := env.int("MASTER_PORT", -1, 1)
	agent := false
	if v, ok := o.lookup("TORCHELASTIC_USE_AGENT_STORE"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1":
			agent = true
		case "false", "0", "":
		default:
			env.fail("TORCHELASTIC_USE_AGENT_STORE=%q is not True or False", v)
		}
	}
	if err := env.err(); err != nil {
		return nil, err
	}
	switch {
	case rank >= world:
		return nil, fmt.Errorf("dist: RANK=%d is out of range for WORLD_SIZE=%d", rank, world)
	case localRank >= localWorld:
		return nil, fmt.Errorf("dist: LOCAL_RANK=%d is out of range for LOCAL_WORLD_SIZE=%d", localRank, localWorld)
	case port > 65535:
		return nil, fmt.Errorf("dist: MASTER_PORT=%d is out of range", port)
	case o.timeout <= 0:
		return nil, fmt.Errorf("dist: the timeout must be positive, got %v", o.timeout)
	}
	pg, err := torch.NewProcessGroup(torch.GroupConfig{
		Backend: o.backend, Store: torch.TCPStore, Addr: addr, Port: port,
		IsServer: rank == 0 && !agent, Rank: rank, World: world, Timeout: o.timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("dist: joining rank %d of %d at %s:%d: %w", rank, world, addr, port, err)
	}
	return &Group{pg: pg, rank: rank, world: world, localRank: localRank, localWorld: localWorld}, nil
}

// envReader reads the launcher's variables, keeping the first problem.
type envReader struct {
	lookup func(string) (string, bool)
	errs   []string
}

func (e *envReader) fail(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func (e *envReader) err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return errors.New("dist: " + strings.Join(e.errs, "; ") +
		" (launch with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)")
}

// int reads a whole number ≥ min; def < 0 means required (def ≥ 0 is the
// value when the variable is unset).
func (e *envReader) int(name string, def, min int) int {
	v, ok := e.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		if def < 0 {
			e.fail("%s is not set", name)
		}
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min {
		e.fail("%s=%q is not a whole number ≥ %d", name, v, min)
		return 0
	}
	return n
}

func (e *envReader) str(name string) string {
	v, ok := e.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		e.fail("%s is not set", name)
	}
	return strings.TrimSpace(v)
}

// Rank is this process's rank, 0 to WorldSize-1.
func (g *Group) Rank() int { return g.rank }

// WorldSize is the number of processes in the job.
func (g *Group) WorldSize() int { return g.world }

// LocalRank is this process's rank on its host (its GPU index, usually).
func (g *Group) LocalRank() int { return g.localRank }

// LocalWorldSize is the number of processes on this host.
func (g *Group) LocalWorldSize() int { return g.localWorld }

// IsMain reports whether this is rank 0, the one that writes logs,
// checkpoints and adapters.
func (g *Group) IsMain() bool { return g.rank == 0 }

// Barrier returns once every rank has reached it.
func (g *Group) Barrier() error { return g.pg.Barrier() }

// AllReduce sums ts across the ranks in place (averages with average).
func (g *Group) AllReduce(ts []*torch.Tensor, average bool) error { return g.pg.AllReduce(ts, average) }

// Broadcast copies rank root's ts into every rank's, in place.
func (g *Group) Broadcast(ts []*torch.Tensor, root int) error { return g.pg.Broadcast(ts, root) }

// AllGather returns every rank's t, indexed by rank.
func (g *Group) AllGather(t *torch.Tensor) ([]*torch.Tensor, error) { return g.pg.AllGather(t) }

// Destroy leaves the job. It is idempotent.
func (g *Group) Destroy() error {
	if g == nil {
		return nil
	}
	return g.pg.Close()
}
