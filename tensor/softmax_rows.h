#pragma once
// Softmax on one row, shared by softmax along the last axis (kernels_nn.cpp) and the fused attention
// (kernels_attention.cpp), so that both give the same bits on the same scores. Internal to tensor/.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "tensor/fast_math.h"

// As in simd.h: without AVX (the x86-64 baseline build) the 32-byte vectors below have another ABI, which GCC
// warns about; harmless, every function taking or returning them is inline.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace linfuse::kernels::row_kernels {

// Four values of T as one vector (four doubles: the accumulators below, one AVX register).
typedef float FourFloats __attribute__((vector_size(16)));
typedef double FourDoubles __attribute__((vector_size(32)));
inline FourFloats load_four(const float* p) {
  FourFloats v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline FourDoubles load_four(const double* p) {
  FourDoubles v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// Sum of x[0..n) in double with four interleaved accumulators (lane k sums x[k], x[k + 4], ...; the last n % 4
// entries go to lane 0): a fixed order, independent of threads. Written on vectors of four, which computes the
// same lanes in the same order as the scalar loop would.
template <class T>
double sum_in_order(const T* x, int64_t n) {
  FourDoubles acc = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) acc += __builtin_convertvector(load_four(x + i), FourDoubles);
  for (; i < n; ++i) acc[0] += double(x[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// <a, b> as sum_in_order of the products a[i] b[i] rounded to T (the bits of storing them and summing).
template <class T>
double dot_in_order(const T* a, const T* b, int64_t n) {
  FourDoubles acc = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) acc += __builtin_convertvector(load_four(a + i) * load_four(b + i), FourDoubles);
  for (; i < n; ++i) acc[0] += double(T(a[i] * b[i]));
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// max of x[0..n), -inf for n = 0. Eight running maxima, so that the loop vectorises (one scalar chain of
// compares costs more than the rest of a softmax row); a maximum does not depend on the order.
template <class T>
T max_of(const T* x, int64_t n) {
  T lanes[8];
  for (T& l : lanes) l = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] = x[i + k] > lanes[k] ? x[i + k] : lanes[k];
  for (; i < n; ++i) lanes[0] = x[i] > lanes[0] ? x[i] : lanes[0];
  T m = lanes[0];
  for (int k = 1; k < 8; ++k) m = lanes[k] > m ? lanes[k] : m;
  return m;
}

// y = softmax(x) along each of `rows` rows of n entries, max-subtracted, with exp(x) computed by exp_of(x); x and y
// hold their rows `padded` >= n entries apart (y may be x), and y's entries n..padded of a row come out 0, so that
// the elementwise loops run over whole vectors (exp's scalar tail costs as much as a vector step). A fully masked
// row (all -inf) gives zeros. The work goes pass by pass over the rows (maxima, exponentials, sums, scaling), so
// that the dependency chains of neighbouring rows (a running maximum, a running sum) overlap; each row gets the
// bits it gets alone.
template <class T, class Exp>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, int64_t padded, Exp exp_of) {
  constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * padded;
    T* yr = y + r * padded;
    T m = max_of(xr, n);
    if (m == minus_inf) m = 0;   // no mass anywhere: exp(-inf - 0) = 0, and no scaling below
    for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - m;
    for (int64_t i = n; i < padded; ++i) yr[i] = minus_inf;   // exp gives 0
  }
  for (int64_t i = 0; i < rows * padded; ++i) y[i] = exp_of(y[i]);   // vectorised, over all rows
  constexpr int64_t kBlock = 8;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t block = std::min<int64_t>(kBlock, rows - r0);
    T inv[kBlock];
    for (int64_t b = 0; b < block; ++b) {
      double sum = sum_in_order(y + (r0 + b) * padded, n);
      inv[b] = sum == 0 ? T(0) : T(1.0 / sum);   // 0: a fully masked row stays 0
    }
    for (int64_t b = 0; b < block; ++b)
      for (int64_t i = 0; i < padded; ++i) y[(r0 + b) * padded + i] *= inv[b];
  }
}

// One row with fast::exp_of (softmax_last).
template <class T>
void softmax(const T* x, T* y, int64_t n) {
  softmax_rows(x, y, 1, n, n, [](T v) { return fast::exp_of(v); });
}

// Softmax's VJP / JVP rule along each of `rows` rows, times `scale`: out = (y (v - <v, y>)) scale, y's rows y_stride
// apart, v's and out's v_stride apart (out may be v). The rows' dot products first, eight at a time, so that their
// running sums overlap. (A scale of 1 changes no bit.)
template <class T>
void softmax_rule_rows(const T* y, int64_t y_stride, const T* v, T* out, int64_t v_stride, int64_t rows, int64_t n,
                       T scale = T(1)) {
  constexpr int64_t kBlock = 8;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t block = std::min<int64_t>(kBlock, rows - r0);
    T dot[kBlock];
    for (int64_t b = 0; b < block; ++b) dot[b] = T(dot_in_order(v + (r0 + b) * v_stride, y + (r0 + b) * y_stride, n));
    for (int64_t b = 0; b < block; ++b) {
      const T* yr = y + (r0 + b) * y_stride;
      const T* vr = v + (r0 + b) * v_stride;
      T* o = out + (r0 + b) * v_stride;
      for (int64_t i = 0; i < n; ++i) o[i] = T(yr[i] * (vr[i] - dot[b])) * scale;
    }
  }
}

// One row (softmax_rule_last).
template <class T>
void softmax_rule(const T* y, const T* v, T* out, int64_t n) {
  softmax_rule_rows(y, n, v, out, n, 1, n);
}

}  // namespace linfuse::kernels::row_kernels
