#include "tensor/random.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "tensor/threading.h"

namespace linfuse {

void philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key, uint32_t out[4]) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32), c2 = uint32_t(counter_hi),
           c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

namespace {

// Two 53-bit uniforms in [0, 1) from one Philox block.
inline void two_uniforms(uint64_t counter, uint64_t stream, uint64_t key, double& u0, double& u1) {
  uint32_t r[4];
  philox4x32(counter, stream, key, r);
  u0 = double(((uint64_t(r[0]) << 32) | r[1]) >> 11) * 0x1.0p-53;
  u1 = double(((uint64_t(r[2]) << 32) | r[3]) >> 11) * 0x1.0p-53;
}

// Fills n values, one Philox block each, from counter `first`; `make(u0, u1)` turns two uniforms into a value.
template <class T, class Make>
void fill(Tensor& t, uint64_t first, uint64_t stream, uint64_t key, Make make) {
  T* p = t.data<T>();
  parallel_for(t.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double u0, u1;
      two_uniforms(first + uint64_t(i), stream, key, u0, u1);
      p[i] = static_cast<T>(make(u0, u1));
    }
  });
}

}  // namespace

Tensor Generator::uniform(const Shape& shape, double low, double high, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  uint64_t first = take(uint64_t(t.numel()));
  dispatch_float(dtype, "uniform", [&](auto tag) {
    fill<decltype(tag)>(t, first, stream_, seed_, [&](double u0, double) { return low + (high - low) * u0; });
  });
  return t;
}

Tensor Generator::normal(const Shape& shape, double mean, double std, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  uint64_t first = take(uint64_t(t.numel()));
  dispatch_float(dtype, "normal", [&](auto tag) {
    fill<decltype(tag)>(t, first, stream_, seed_, [&](double u0, double u1) {
      // Box-Muller; 1 - u0 is in (0, 1], so the log is finite.
      return mean + std * std::sqrt(-2.0 * std::log(1.0 - u0)) * std::cos(2.0 * std::numbers::pi * u1);
    });
  });
  return t;
}

Tensor Generator::bernoulli(const Shape& shape, double p, DType dtype) {
  if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("[bernoulli] p must be in [0, 1], got " + std::to_string(p));
  Tensor t = Tensor::empty(shape, dtype);
  int64_t n = t.numel();
  // Four draws per Philox block (one 32-bit lane each, compared with p 2^32): dropout masks are drawn every
  // step, so this is 4x fewer blocks than the one-block-per-element fill of the other distributions.
  uint64_t blocks = uint64_t((n + 3) / 4);
  uint64_t first = take(blocks);
  double scaled = p * 4294967296.0;
  uint64_t threshold = scaled >= 4294967296.0 ? (uint64_t(1) << 32) : uint64_t(scaled);
  dispatch_float(dtype, "bernoulli", [&](auto tag) {
    using T = decltype(tag);
    T* out = t.template data<T>();
    parallel_for(int64_t(blocks), 1 << 12, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        uint32_t r[4];
        philox4x32(first + uint64_t(b), stream_, seed_, r);
        for (int k = 0; k < 4; ++k) {
          int64_t i = b * 4 + k;
          if (i < n) out[i] = uint64_t(r[k]) < threshold ? T(1) : T(0);
        }
      }
    });
  });
  return t;
}

Tensor Generator::randint(const Shape& shape, int64_t low, int64_t high) {
  if (high <= low) throw std::invalid_argument("[randint] empty range [" + std::to_string(low) + ", " + std::to_string(high) + ")");
  Tensor t = Tensor::empty(shape, DType::I64);
  uint64_t first = take(uint64_t(t.numel()));
  uint64_t range = uint64_t(high - low);
  int64_t* p = t.data<int64_t>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    uint32_t r[4];
    philox4x32(first + uint64_t(i), stream_, seed_, r);
    uint64_t x = (uint64_t(r[0]) << 32) | r[1];
    p[i] = low + int64_t(x % range);   // bias below 2^-32 for the ranges used here
  }
  return t;
}

std::vector<int64_t> Generator::permutation(int64_t n) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  uint64_t first = take(uint64_t(n));
  for (int64_t i = n - 1; i > 0; --i) {   // Fisher-Yates
    uint32_t r[4];
    philox4x32(first + uint64_t(i), stream_, seed_, r);
    uint64_t x = (uint64_t(r[0]) << 32) | r[1];
    std::swap(perm[i], perm[int64_t(x % uint64_t(i + 1))]);
  }
  return perm;
}

double Generator::next_uniform() {
  double u0, u1;
  two_uniforms(take(1), stream_, seed_, u0, u1);
  return u0;
}

uint64_t Generator::next_u64() {
  uint32_t r[4];
  philox4x32(take(1), stream_, seed_, r);
  return (uint64_t(r[0]) << 32) | r[1];
}

}  // namespace linfuse
