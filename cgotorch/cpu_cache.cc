// cpu_cache.cc: a caching allocator for large CPU blocks.
//
// libtorch's default CPU allocator gives every block to malloc, and glibc
// serves a large one with a fresh mmap and unmaps it on free. Each page of
// a fresh block costs a page fault on first touch (the kernel zeroes it), so
// a training loop that allocates and frees the same activations every step
// faults them all in again every step: in bench/gptstep's small LoRA
// config, ~200,000 faults and about 0.2 s of a 0.67 s step.
//
// This allocator keeps freed blocks of at least kMinBytes and hands them
// out again, like PyTorch's CUDA caching allocator, but bounded:
//   - A block's size is rounded up to a size class (four per power of two,
//     so at most 25 % more; the tail beyond what a tensor touches is virtual
//     memory that is never faulted in), and a request takes a cached block
//     of its own class: a KV cache growing by one token, or batches of
//     varying length, reuse blocks instead of leaving one per size.
//   - At most `limit` bytes wait in the cache. Past it, the least recently
//     freed blocks go back to the system first.
//   - An allocation that fails empties the cache and tries once more.
//   - The limit starts at a quarter of physical memory, at most 2 GiB;
//     GOLORA_CPU_CACHE_MIB sets it at load (0 turns caching off), and
//     cg_cpu_cache_set_limit at any time.
// Small blocks are not cached; they come from malloc (see alloc).
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cgotorch.h"

namespace {

constexpr size_t kMinBytes = size_t(1) << 20;  // 1 MiB
// Data is 64-byte aligned, as libtorch's default allocator gives it. A
// large block has kHeader bytes in front of its data, alloc_cpu keeping
// the alignment; a small one up to kSlack bytes more than asked for.
constexpr size_t kAlign = 64;
constexpr size_t kHeader = 64;
constexpr size_t kSlack = 80;

// size_class rounds n up to one of four classes per power of two.
size_t size_class(size_t n) {
  size_t p = size_t(1) << (63 - __builtin_clzll(n));  // largest power of 2 <= n
  size_t step = p / 4;
  return (n + step - 1) / step * step;
}

struct Block {
  void *base;   // what alloc_cpu returned (the header)
  size_t size;  // class size of the data
};

class CachingCPUAllocator final : public c10::Allocator {
 public:
  CachingCPUAllocator() {
    int64_t limit = default_limit();
    if (const char *env = std::getenv("GOLORA_CPU_CACHE_MIB")) {
      char *end = nullptr;
      long long mib = std::strtoll(env, &end, 10);
      // Anything else keeps the default; the Go package warns about it.
      if (end != env && *end == '\0' && mib >= 0)
        limit = mib > (INT64_MAX >> 20) ? INT64_MAX : int64_t(mib) << 20;
    }
    limit_ = limit;
  }

  // libtorch 1.x declares allocate const, 2.x not: both are defined, and
  // each forwards to alloc.
  c10::DataPtr allocate(size_t n) const { return alloc(n); }
  c10::DataPtr allocate(size_t n) { return alloc(n); }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  // Pure virtual in libtorch 2.x, absent in 1.x.
  void copy_data(void *dest, const void *src, std::size_t count) const {
    if (count > 0) std::memcpy(dest, src, count);
  }

  void set_limit(int64_t bytes) {
    std::vector<void *> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      limit_ = bytes < 0 ? 0 : bytes;
      evict_locked(0, drop);
    }
    for (void *p : drop) c10::free_cpu(p);
  }

  void empty() {
    std::vector<void *> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      int64_t keep = limit_;
      limit_ = 0;
      evict_locked(0, drop);
      limit_ = keep;
    }
    for (void *p : drop) c10::free_cpu(p);
  }

  void stats(int64_t *cached, int64_t *limit, int64_t *hits, int64_t *misses) {
    std::lock_guard<std::mutex> g(mu_);
    if (cached) *cached = cached_;
    if (limit) *limit = limit_;
    if (hits) *hits = hits_;
    if (misses) *misses = misses_;
  }

 private:
  static int64_t default_limit() {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t quarter = (pages > 0 && page > 0) ? int64_t(pages) * page / 4 : 0;
    const int64_t cap = int64_t(2) << 30;
    return quarter < cap ? quarter : cap;
  }

  // Every block, small ones too, carries a header just before the data:
  // raw_deleter (which libtorch's raw_allocate/raw_deallocate pair uses)
  // must find how to free a block from its data pointer alone. The header
  // holds what malloc or alloc_cpu returned and the class size, 0 for a
  // small block. Small blocks come from malloc and are aligned by hand:
  // posix_memalign, which libtorch's default allocator uses, misses
  // glibc's per-thread cache and takes its slow path on every call (about
  // a tenth of a 4x4 op's time).
  c10::DataPtr alloc(size_t n) const {
    auto *self = const_cast<CachingCPUAllocator *>(this);
    if (n == 0) return {nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU)};
    size_t cls = 0;
    void *raw = nullptr;
    char *data = nullptr;
    if (n < kMinBytes) {
      raw = std::malloc(n + kSlack);
      if (raw == nullptr) {
        self->empty();
        raw = std::malloc(n + kSlack);
        TORCH_CHECK(raw != nullptr, "CPU allocator: can't allocate memory: you tried to allocate ",
                    n, " bytes");
      }
      // data is the first 64-byte boundary at least 16 bytes into raw:
      // at most raw + 79, so n + 80 bytes hold the header and the data.
      uintptr_t a = reinterpret_cast<uintptr_t>(raw) + 16;
      data = reinterpret_cast<char *>((a + kAlign - 1) & ~uintptr_t(kAlign - 1));
    } else {
      cls = size_class(n);
      raw = self->take(cls);
      if (raw == nullptr) {
        try {
          raw = c10::alloc_cpu(cls + kHeader);
        } catch (...) {
          self->empty();
          raw = c10::alloc_cpu(cls + kHeader);  // throws again if still short
        }
      }
      data = static_cast<char *>(raw) + kHeader;
    }
    std::memcpy(data - 16, &raw, sizeof raw);
    std::memcpy(data - 8, &cls, sizeof cls);
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // take returns a cached block of class cls, or nullptr (a miss).
  void *take(size_t cls) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = by_class_.find(cls);
    if (it == by_class_.end() || it->second.empty()) {
      misses_++;
      return nullptr;
    }
    auto node = it->second.back();  // the most recently freed: warmest
    it->second.pop_back();
    void *base = node->base;
    cached_ -= int64_t(node->size + kHeader);
    lru_.erase(node);
    hits_++;
    return base;
  }

  // put caches a freed large block of class cls, or frees it when it
  // cannot fit.
  void put(void *base, size_t cls) {
    int64_t bytes = int64_t(cls + kHeader);
    std::vector<void *> drop;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (bytes > limit_) {
        drop.push_back(base);
      } else {
        evict_locked(bytes, drop);
        lru_.push_front(Block{base, cls});
        by_class_[cls].push_back(lru_.begin());
        cached_ += bytes;
      }
    }
    for (void *p : drop) c10::free_cpu(p);
  }

  // evict_locked drops the least recently freed blocks until `room` more
  // bytes fit under the limit. mu_ is held; the blocks are freed by the
  // caller after unlocking.
  void evict_locked(int64_t room, std::vector<void *> &drop) {
    while (!lru_.empty() && cached_ + room > limit_) {
      Block b = lru_.back();
      auto &v = by_class_[b.size];
      // The oldest of a class is first in its list.
      v.erase(v.begin());
      lru_.pop_back();
      cached_ -= int64_t(b.size + kHeader);
      drop.push_back(b.base);
    }
  }

  static void release(void *data);

  std::mutex mu_;
  std::list<Block> lru_;  // front: most recently freed
  std::unordered_map<size_t, std::vector<std::list<Block>::iterator>> by_class_;
  int64_t cached_ = 0, limit_ = 0, hits_ = 0, misses_ = 0;
};

// The allocator is never destroyed: tensors may be freed during exit, after
// static destructors would have run.
CachingCPUAllocator *cache = nullptr;

void CachingCPUAllocator::release(void *data) {
  if (data == nullptr) return;
  char *d = static_cast<char *>(data);
  void *raw;
  size_t cls;
  std::memcpy(&raw, d - 16, sizeof raw);
  std::memcpy(&cls, d - 8, sizeof cls);
  if (cls == 0)
    std::free(raw);
  else
    cache->put(raw, cls);
}

// Installed when the library is loaded, before any entry point runs; the
// priority outranks libtorch's default registration (0).
struct Install {
  Install() {
    cache = new CachingCPUAllocator();
    c10::SetCPUAllocator(cache, /*priority=*/1);
  }
} install;

}  // namespace

extern "C" {

void cg_cpu_cache_set_limit(int64_t bytes) { cache->set_limit(bytes); }

void cg_cpu_cache_empty(void) { cache->empty(); }

void cg_cpu_cache_stats(int64_t *cached, int64_t *limit, int64_t *hits,
                        int64_t *misses) {
  cache->stats(cached, limit, hits, misses);
}

int cg_cpu_cache_installed(void) {
  return c10::GetCPUAllocator() == cache ? 1 : 0;
}

}  // extern "C"
