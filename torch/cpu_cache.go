package torch

/*
#include "cgotorch.h"
*/
import "C"

import (
	"log/slog"
	"os"
	"strconv"
)

// CPUCacheStats describes libcgotorch's caching allocator for large CPU
// blocks (see SetCPUCacheLimit).
type CPUCacheStats struct {
	Cached    int64 // bytes of freed blocks waiting in the cache now
	Limit     int64 // the most bytes that may wait (0: caching is off)
	Hits      int64 // requests of 1 MiB or more served from the cache, since the process started
	Misses    int64 // such requests that went to the system
	Installed bool  // whether libtorch's CPU allocator is the cache
}

// CPUCache returns the state of the caching allocator.
//
// libtorch's default CPU allocator returns every large block to the
// system when it is freed, so a training loop that allocates the same
// activations every step pays a page fault for each of their pages every
// step (about a third of a small model's step time on CPU). libcgotorch
// installs, when it loads, an allocator that keeps freed blocks of 1 MiB
// or more, by size class (four per power of two), for the next request
// of their class, as PyTorch's CUDA allocator does for GPU memory. It is
// bounded: at most Limit bytes wait, the least recently freed going back
// to the system first, and an allocation that fails empties the cache and
// tries again. Cached blocks count in the process's resident set, not in
// LiveBytes.
func CPUCache() CPUCacheStats {
	var cached, limit, hits, misses C.int64_t
	C.cg_cpu_cache_stats(&cached, &limit, &hits, &misses)
	return CPUCacheStats{
		Cached:    int64(cached),
		Limit:     int64(limit),
		Hits:      int64(hits),
		Misses:    int64(misses),
		Installed: C.cg_cpu_cache_installed() != 0,
	}
}

// SetCPUCacheLimit sets how many bytes of freed large CPU blocks the
// caching allocator may keep; 0 (or less) turns caching off and frees
// what it holds. The limit starts at a quarter of physical memory, at most
// 2 GiB, or at the environment's GOLORA_CPU_CACHE_MIB mebibytes when that
// is set when the process starts.
func SetCPUCacheLimit(bytes int64) { C.cg_cpu_cache_set_limit(C.int64_t(bytes)) }

// EmptyCPUCache frees every block the caching allocator holds, like
// torch.cuda.empty_cache for CPU memory. The limit is unchanged.
func EmptyCPUCache() { C.cg_cpu_cache_empty() }

// cpuCacheEnv names the environment variable libcgotorch reads, when it
// loads, for the cache's limit in MiB.
const cpuCacheEnv = "GOLORA_CPU_CACHE_MIB"

// cpuCacheEnvProblem says why libcgotorch ignored a value of cpuCacheEnv
// (keeping its default limit), or "" for a whole number of MiB >= 0.
func cpuCacheEnvProblem(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return "is not a whole number of MiB"
	case n < 0:
		return "is negative"
	}
	return ""
}

func init() {
	if v, ok := os.LookupEnv(cpuCacheEnv); ok && abiErr == nil {
		if p := cpuCacheEnvProblem(v); p != "" {
			slog.Warn("golora: "+cpuCacheEnv+" "+p+"; the CPU cache keeps its default limit",
				"value", v, "limit_bytes", CPUCache().Limit)
		}
	}
}
