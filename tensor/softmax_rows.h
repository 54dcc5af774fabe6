#pragma once
// Softmax on one row, shared by softmax along the last axis (kernels_nn.cpp) and the fused attention
// (kernels_attention.cpp), so that both give the same bits on the same scores. Internal to tensor/.
#include <cstdint>
#include <limits>

#include "tensor/fast_math.h"

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

// y = softmax(x) over n entries, max-subtracted, exp(x) computed by exp_of(x); y may be x. A fully masked row (all
// -inf) gives zeros. `padded` >= n: y[n..padded) are set to 0 and the elementwise loops run over whole vectors
// (exp's scalar tail costs as much as a vector step); the entries < n come out as for padded = n.
template <class T, class Exp>
void softmax(const T* x, T* y, int64_t n, int64_t padded, Exp exp_of) {
  T m = max_of(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {   // no mass anywhere
    for (int64_t i = 0; i < padded; ++i) y[i] = 0;
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] - m;
  for (int64_t i = n; i < padded; ++i) y[i] = -std::numeric_limits<T>::infinity();   // exp gives 0
  for (int64_t i = 0; i < padded; ++i) y[i] = exp_of(y[i]);   // vectorised
  T inv = T(1.0 / sum_in_order(y, n));
  for (int64_t i = 0; i < padded; ++i) y[i] *= inv;
}
template <class T>
void softmax(const T* x, T* y, int64_t n) {
  softmax(x, y, n, n, [](T v) { return fast::exp_of(v); });
}

// Softmax's VJP / JVP rule on one row, times `scale`: out = (y (v - <v, y>)) scale; out may be v. (A scale of 1
// changes no bit.)
template <class T>
void softmax_rule(const T* y, const T* v, T* out, int64_t n, T scale = T(1)) {
  T dot = T(dot_in_order(v, y, n));
  for (int64_t i = 0; i < n; ++i) out[i] = T(y[i] * (v[i] - dot)) * scale;
}

}  // namespace linfuse::kernels::row_kernels
