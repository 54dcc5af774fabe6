#pragma once
// Branch-free float32 exp, erf and tanh that the compiler can vectorise inside the elementwise loops
// (glibc's expf/erff/tanhf are scalar calls: in a training step they cost more than all non-GEMM work).
// Accuracy (measured over [-20, 20] by tests/tensor/test_fast_math.cpp): exp within 1 ulp, erf within 5e-7
// absolute (1e-6 relative below 0.5), tanh within 3e-7 absolute. float64 keeps the libm functions (the gradient checks need them).
#include <cmath>
#include <cstdint>
#include <cstring>

namespace linfuse::fast {

// exp(x) = 2^n e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by a degree-6 polynomial (Cephes expf).
inline float exp(float x_in) {
  float x = x_in < -87.3f ? -87.3f : (x_in > 88.7f ? 88.7f : x_in);
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;                      // ln 2 split in two for an exact reduction
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float er = p * r * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = er * scale;
  y = x_in < -87.3f ? 0.0f : y;   // below the smallest normal
  return x_in > 88.7f ? INFINITY : y;
}

// exp(x) for x <= 0, -inf included (gives 0): softmax's exp(x - max). exp's reduction and polynomial above with
// fused multiply-adds and no overflow branch, about half its instructions; within 1 ulp as well (tested).
inline float exp_nonpositive(float x_in) {
  float x = x_in < -87.3f ? -87.3f : x_in;
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(n, -0.693359375f, x);   // exact: n * 0.693359375 needs few bits
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  float er = std::fma(p * r, r, r) + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = er * scale;
  return x_in < -87.3f ? 0.0f : y;   // below the smallest normal
}

// erf: for |x| < 0.5 the odd Taylor series to x^11 (relative error < 1e-7), above it Abramowitz & Stegun
// 7.1.26, erf(|x|) = 1 - t P(t) exp(-x^2) with t = 1 / (1 + p |x|) (absolute error < 5e-7). Both are
// computed and one selected, so the loop stays branch-free.
// erf_given_gauss takes gauss = fast::exp(-x * x) from the caller (GELU's derivative needs it too).
inline float erf_given_gauss(float x, float gauss) {
  float ax = std::fabs(x);
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  float large = 1.0f - poly * gauss;
  float x2 = ax * ax;
  float series = 1.0f / 1320;
  series = -series * x2 + 1.0f / 216;
  series = series * x2 - 1.0f / 42;
  series = series * x2 + 1.0f / 10;
  series = series * x2 - 1.0f / 3;
  series = series * x2 + 1.0f;
  float small = 1.1283791670955126f * ax * series;   // 2 / sqrt(pi) x (1 - x^2/3 + x^4/10 - ...)
  return std::copysign(ax < 0.5f ? small : large, x);
}
inline float erf(float x) { return erf_given_gauss(x, fast::exp(-std::fabs(x) * std::fabs(x))); }

// tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)), exact to rounding near 0 by the odd Taylor term below 2^-5.
inline float tanh(float x) {
  float ax = std::fabs(x);
  float e = fast::exp(2.0f * (ax > 15.0f ? 15.0f : ax));   // tanh(15) rounds to 1 in float
  float big = 1.0f - 2.0f / (e + 1.0f);
  float x2 = ax * ax;
  float small = ax * (1.0f - x2 * (1.0f / 3.0f - x2 * (2.0f / 15.0f)));
  return std::copysign(ax < 0.03125f ? small : big, x);
}

// Dispatch: the fast versions for float, libm for double.
inline float exp_of(float x) { return fast::exp(x); }
inline double exp_of(double x) { return std::exp(x); }
inline float exp_nonpositive_of(float x) { return fast::exp_nonpositive(x); }
inline double exp_nonpositive_of(double x) { return std::exp(x); }
inline float erf_of(float x) { return fast::erf(x); }
inline double erf_of(double x) { return std::erf(x); }
inline float tanh_of(float x) { return fast::tanh(x); }
inline double tanh_of(double x) { return std::tanh(x); }

}  // namespace linfuse::fast
