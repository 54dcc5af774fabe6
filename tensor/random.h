#pragma once
// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). Element i of a draw is a pure function
// of (seed, draw offset, i), so the same seed gives the same numbers whatever the thread count.
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  // An independent generator for sub-stream `stream` (for example one per task), seeded from this one.
  Generator fork(uint64_t stream) const { return Generator(seed_, stream_ * 0x9E3779B97F4A7C15ull + stream + 1); }

  Tensor uniform(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = DType::F32);
  Tensor normal(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = DType::F32);
  Tensor bernoulli(const Shape& shape, double p, DType dtype = DType::F32);   // 1 with probability p, else 0
  Tensor randint(const Shape& shape, int64_t low, int64_t high);              // int64 in [low, high)
  std::vector<int64_t> permutation(int64_t n);                                 // a uniform random shuffle of 0..n-1

  double next_uniform();    // one value in [0, 1)
  uint64_t next_u64();

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }   // counters consumed so far
  void set_offset(uint64_t offset) { offset_ = offset; }

 private:
  // Reserves `count` counters and returns the first.
  uint64_t take(uint64_t count) {
    uint64_t first = offset_;
    offset_ += count;
    return first;
  }
  uint64_t seed_, stream_, offset_ = 0;
};

// The Philox4x32-10 block: four 32-bit outputs for a 128-bit counter and a 64-bit key.
void philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key, uint32_t out[4]);

}  // namespace linfuse
