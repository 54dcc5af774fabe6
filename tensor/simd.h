#pragma once
#include <cstdint>

// 32-byte vectors for linfuse's own GEMM kernels (skinny_gemm, packed_gemm, the fused attention): eight floats
// (Vec) or four doubles (VecD), GCC vector extensions, which are AVX registers in the default x86-64-v3 build and
// SSE pairs otherwise. Internal to tensor/.
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

// Without -march=native the 32-byte vectors are lowered to SSE pairs and GCC warns that passing them by value
// has another ABI than with AVX: harmless here, every function taking them is inline or has internal linkage.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace linfuse::kernels::simd {

constexpr int64_t kLanes = 8;   // floats per vector
typedef float Vec __attribute__((vector_size(32)));

inline Vec splat(float s) { return Vec{s, s, s, s, s, s, s, s}; }

inline Vec load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, const Vec& v) { __builtin_memcpy(p, &v, sizeof v); }

// a * b + c: one rounding where the CPU has FMA (-march=native), else two (the compiler never fuses on its own:
// -ffp-contract=off).
inline Vec multiply_add(const Vec& a, const Vec& b, const Vec& c) {
#if defined(__AVX__) && defined(__FMA__)
  return (Vec)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

// The same for four doubles (the fused attention's float64 path, which the gradient checks run).
typedef double VecD __attribute__((vector_size(32)));

inline VecD splat(double s) { return VecD{s, s, s, s}; }

inline VecD multiply_add(const VecD& a, const VecD& b, const VecD& c) {
#if defined(__AVX__) && defined(__FMA__)
  return (VecD)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;
#endif
}

}  // namespace linfuse::kernels::simd
