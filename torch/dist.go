package torch

/*
#include <stdlib.h>
#include "cgotorch.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// Backend is a c10d communication backend.
type Backend int

// The backends: Gloo (CPU tensors, any build with Gloo's headers) and NCCL
// (CUDA tensors, a CUDA libtorch built with NCCL).
const (
	Gloo Backend = C.CG_DIST_GLOO
	NCCL Backend = C.CG_DIST_NCCL
)

func (b Backend) String() string {
	switch b {
	case Gloo:
		return "gloo"
	case NCCL:
		return "nccl"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// DistAvailable reports whether the loaded libcgotorch.so was built with
// backend b (decided when it was built: Gloo needs Gloo's headers, Debian's
// libgloo-dev; NCCL a CUDA libtorch with NCCL).
func DistAvailable(b Backend) bool {
	if abiErr != nil {
		return false
	}
	return int(C.cg_dist_backends())&int(b) != 0
}

// StoreKind is how a group's processes find each other.
type StoreKind int

const (
	// TCPStore is c10d's TCPStore at Addr:Port, hosted by the process with
	// IsServer set (torchrun's agent hosts it itself).
	TCPStore StoreKind = C.CG_STORE_TCP
	// FileStore is c10d's FileStore at the path Addr (one host, or a shared
	// file system).
	FileStore StoreKind = C.CG_STORE_FILE
)

// GroupConfig says how to join a process group.
type GroupConfig struct {
	Backend     Backend
	Store       StoreKind
	Addr        string // TCPStore host, or FileStore path
	Port        int    // TCPStore port
	IsServer    bool   // host the TCPStore
	Rank, World int
	// Timeout bounds the store's rendezvous and every collective; a dead
	// peer makes them fail after it. Default 5 minutes.
	Timeout time.Duration
	// BucketBytes caps the flat buffers that AllReduce and Broadcast send
	// (one collective per bucket). Default 25 MiB, as DDP's bucket_cap_mb.
	BucketBytes int64
}

// ProcessGroup is a c10d process group: the processes of one data-parallel
// job and their collectives. Its methods are safe for concurrent use (they
// run one at a time, in call order, which every rank must agree on).
type ProcessGroup struct {
	mu     sync.Mutex
	h      C.cg_pg
	cfg    GroupConfig
	closed bool
}

// NewProcessGroup joins a group; it returns when every rank has joined, or
// fails after the timeout.
func NewProcessGroup(cfg GroupConfig) (*ProcessGroup, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.BucketBytes == 0 {
		cfg.BucketBytes = 25 << 20
	}
	switch {
	case cfg.Backend != Gloo && cfg.Backend != NCCL:
		return nil, fmt.Errorf("torch: NewProcessGroup: unknown backend %v", cfg.Backend)
	case !DistAvailable(cfg.Backend):
		return nil, fmt.Errorf("torch: NewProcessGroup: backend %v is not in this libcgotorch.so (built without it: %s)", cfg.Backend, distHint(cfg.Backend))
	case cfg.World <= 0 || cfg.Rank < 0 || cfg.Rank >= cfg.World:
		return nil, fmt.Errorf("torch: NewProcessGroup: rank %d is out of range for world size %d", cfg.Rank, cfg.World)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("torch: NewProcessGroup: negative timeout %v", cfg.Timeout)
	case cfg.BucketBytes < 0:
		return nil, fmt.Errorf("torch: NewProcessGroup: negative bucket size %d", cfg.BucketBytes)
	case cfg.Addr == "":
		return nil, fmt.Errorf("torch: NewProcessGroup: empty store address")
	case cfg.Store == TCPStore && (cfg.Port <= 0 || cfg.Port > 65535):
		return nil, fmt.Errorf("torch: NewProcessGroup: store port %d is out of range", cfg.Port)
	case cfg.Store != TCPStore && cfg.Store != FileStore:
		return nil, fmt.Errorf("torch: NewProcessGroup: unknown store kind %d", cfg.Store)
	}
	addr := C.CString(cfg.Addr)
	defer C.free(unsafe.Pointer(addr))
	g := &ProcessGroup{cfg: cfg}
	err := check("NewProcessGroup", C.cg_pg_new(C.int(cfg.Backend), C.int(cfg.Store), addr, C.int(cfg.Port),
		cbool(cfg.IsServer), C.int(cfg.Rank), C.int(cfg.World), C.int64_t(cfg.Timeout.Milliseconds()), &g.h))
	if err != nil {
		return nil, err
	}
	return g, nil
}

func distHint(b Backend) string {
	if b == NCCL {
		return "NCCL needs a CUDA libtorch built with NCCL"
	}
	return "install libgloo-dev and rerun scripts/install_libtorch.sh"
}

// Rank is this process's rank; World the group's size.
func (g *ProcessGroup) Rank() int { return g.cfg.Rank }

// World is the number of processes in the group.
func (g *ProcessGroup) World() int { return g.cfg.World }

// Timeout is the bound on every collective.
func (g *ProcessGroup) Timeout() time.Duration { return g.cfg.Timeout }

// collective runs f on the group's handle and the tensors' handles,
// read-locked for the call.
func (g *ProcessGroup) collective(op, arg string, ts []*Tensor, f func(hs []C.cg_tensor) C.cg_err) error {
	if g == nil {
		return fmt.Errorf("torch: %s: nil process group", op)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("torch: %s: the process group is closed", op)
	}
	if g.h == nil {
		return fmt.Errorf("torch: %s: the process group was not made by NewProcessGroup", op)
	}
	c := begin(op)
	hs := make([]C.cg_tensor, len(ts)+1) // +1: never a zero-length array
	for i, t := range ts {
		if arg == "tensor" {
			hs[i] = c.in(arg, t) // a single tensor
		} else {
			hs[i] = c.inAt(arg, i, t)
		}
	}
	if c.ok() {
		c.check(f(hs))
	}
	return c.done()
}

// AllReduce sums ts across the group in place (every rank passes tensors of
// the same shapes and dtypes, in the same order); with average it then
// divides by the world size. The tensors travel flattened, in buckets
// (GroupConfig.BucketBytes): a LoRA model's gradients are one collective.
func (g *ProcessGroup) AllReduce(ts []*Tensor, average bool) error {
	return g.collective("AllReduce", "tensors", ts, func(hs []C.cg_tensor) C.cg_err {
		return C.cg_pg_allreduce(g.h, &hs[0], C.int(len(ts)), cbool(average), C.int64_t(g.cfg.BucketBytes))
	})
}

// Broadcast copies rank root's ts into every other rank's, in place.
func (g *ProcessGroup) Broadcast(ts []*Tensor, root int) error {
	return g.collective("Broadcast", "tensors", ts, func(hs []C.cg_tensor) C.cg_err {
		return C.cg_pg_broadcast(g.h, &hs[0], C.int(len(ts)), C.int(root), C.int64_t(g.cfg.BucketBytes))
	})
}

// AllGather returns every rank's t, indexed by rank (new tensors that join
// t's scope).
func (g *ProcessGroup) AllGather(t *Tensor) ([]*Tensor, error) {
	var outs []C.cg_tensor
	var scope *Scope
	err := g.collective("AllGather", "tensor", []*Tensor{t}, func(hs []C.cg_tensor) C.cg_err {
		outs = make([]C.cg_tensor, g.World()) // here: g is not nil
		scope = t.scope
		return C.cg_pg_allgather(g.h, hs[0], &outs[0])
	})
	if err != nil {
		return nil, err
	}
	res := make([]*Tensor, len(outs))
	for i, h := range outs {
		res[i] = newTensor(h, scope)
	}
	return res, nil
}

// Barrier returns when every rank has called it (or fails after the
// timeout).
func (g *ProcessGroup) Barrier() error {
	return g.collective("Barrier", "", nil, func([]C.cg_tensor) C.cg_err { return C.cg_pg_barrier(g.h) })
}

// Close leaves the group and frees its store connection. It is idempotent.
func (g *ProcessGroup) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		C.cg_pg_free(g.h)
		g.h = nil
	}
	return nil
}
