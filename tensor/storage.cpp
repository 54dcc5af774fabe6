#include "tensor/storage.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

namespace linfuse {
namespace {

constexpr size_t kAlignment = 64;
// Above this many cached bytes, freed buffers go straight back to the system.
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

// Buffers are rounded up so that nearby sizes share cache entries: to 64 bytes below 64 KiB, then to a
// quarter of the next power of two (at most 25% waste).
size_t round_size(size_t bytes) {
  if (bytes == 0) return kAlignment;
  if (bytes <= (64u << 10)) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t p = 1;
  while (p < bytes) p <<= 1;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;
  AllocatorStats stats;

  void* allocate(size_t bytes) {
    {
      std::lock_guard lock(mutex);
      auto it = free_blocks.find(bytes);
      stats.bytes_in_use += bytes;
      stats.peak_bytes_in_use = std::max(stats.peak_bytes_in_use, stats.bytes_in_use);
      if (it != free_blocks.end()) {
        void* p = it->second;
        free_blocks.erase(it);
        stats.bytes_cached -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (!p) {
      release_all();
      p = std::aligned_alloc(kAlignment, bytes);
      if (!p) throw std::bad_alloc();
    }
    return p;
  }

  void release(void* p, size_t bytes) {
    std::lock_guard lock(mutex);
    stats.bytes_in_use -= bytes;
    if (stats.bytes_cached + bytes > kMaxCachedBytes) {
      std::free(p);
      return;
    }
    free_blocks.emplace(bytes, p);
    stats.bytes_cached += bytes;
  }

  void release_all() {
    std::lock_guard lock(mutex);
    for (auto& [size, p] : free_blocks) std::free(p);
    free_blocks.clear();
    stats.bytes_cached = 0;
  }
};

Cache& cache() {
  static Cache* c = new Cache();   // never destroyed: tensors in static objects may outlive it
  return *c;
}

}  // namespace

Storage::Storage(size_t bytes) : bytes_(round_size(bytes)) { data_ = cache().allocate(bytes_); }

Storage::Storage(void* data, size_t bytes, std::shared_ptr<void> keep_alive)
    : data_(data), bytes_(bytes), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (!keep_alive_) cache().release(data_, bytes_);
}

AllocatorStats allocator_stats() {
  std::lock_guard lock(cache().mutex);
  return cache().stats;
}

void allocator_release_cache() { cache().release_all(); }

}  // namespace linfuse
