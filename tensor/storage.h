#pragma once
// Reference-counted byte buffers. Freed buffers go back to a size-keyed cache, so a training loop that
// allocates the same shapes every step stops calling malloc (and stops page-faulting) after step one.
#include <cstddef>
#include <memory>

namespace linfuse {

class Storage {
 public:
  explicit Storage(size_t bytes);   // uninitialised, 64-byte aligned
  // Wraps memory owned elsewhere (a memory-mapped file); `keep_alive` holds the owner.
  Storage(void* data, size_t bytes, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
  std::shared_ptr<void> keep_alive_;   // non-null for borrowed memory
};

// Statistics and control of the buffer cache (for benchmarks and memory tests).
struct AllocatorStats {
  size_t bytes_in_use = 0;     // held by live tensors
  size_t bytes_cached = 0;     // free, kept for reuse
  size_t peak_bytes_in_use = 0;
};
AllocatorStats allocator_stats();
void allocator_release_cache();   // returns every cached buffer to the system

}  // namespace linfuse
