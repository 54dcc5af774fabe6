#include "experiments/state_fingerprint.h"

#include <cstring>

#include "tensor/kernels.h"

namespace linfuse::experiments {
namespace {

uint64_t rotate_left(uint64_t x, int bits) { return (x << bits) | (x >> (64 - bits)); }

// Two streams that mix each 64-bit word differently (odd multipliers of MurmurHash3 / splitmix64).
struct Streams {
  uint64_t a = 0x9e3779b97f4a7c15ull, b = 0xc2b2ae3d27d4eb4full;
  void mix(uint64_t word) {
    a = rotate_left(a ^ (word * 0x87c37b91114253d5ull), 31) * 0x4cf5ad432745937full;
    b = rotate_left(b + (word ^ 0xff51afd7ed558ccdull) * 0xbf58476d1ce4e5b9ull, 29) * 0x94d049bb133111ebull;
  }
  void mix_bytes(const unsigned char* bytes, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
      uint64_t word;
      std::memcpy(&word, bytes + i, 8);
      mix(word);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, bytes + i, count - i);
    mix(tail ^ (uint64_t(count - i) << 56));   // the tail's length, so "ab" and "ab\0" differ
  }
};

}  // namespace

StateFingerprint state_fingerprint(const StateDict& state, uint64_t salt) {
  Streams s;
  s.mix(salt);
  s.mix(uint64_t(state.size()));
  for (const auto& [name, tensor] : state) {
    s.mix_bytes(reinterpret_cast<const unsigned char*>(name.data()), name.size());
    s.mix(uint64_t(tensor.dtype()));
    s.mix(uint64_t(tensor.dim()));
    for (int64_t extent : tensor.shape()) s.mix(uint64_t(extent));
    const Tensor flat = tensor.is_contiguous() ? tensor : kernels::copy(tensor);
    s.mix_bytes(static_cast<const unsigned char*>(flat.raw_data()), size_t(flat.numel()) * dtype_size(flat.dtype()));
  }
  return {s.a, s.b};
}

}  // namespace linfuse::experiments
