#pragma once
// Softmax on one row, shared by softmax along the last axis (kernels_nn.cpp) and the fused attention
// (kernels_attention.cpp), so that both give the same bits on the same scores. Internal to tensor/.
#include <cstdint>
#include <limits>

#include "tensor/fast_math.h"

namespace linfuse::kernels::row_kernels {

// Sum of x[0..n) in double with four interleaved accumulators: a fixed order, independent of threads.
template <class T>
double sum_in_order(const T* x, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]);
  for (; i < n; ++i) acc[0] += double(x[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// <a, b> as sum_in_order of the products a[i] b[i] rounded to T (the bits of storing them and summing).
template <class T>
double dot_in_order(const T* a, const T* b, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) acc[k] += double(T(a[i + k] * b[i + k]));
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

// y = softmax(x) over n entries, max-subtracted; y may be x. A fully masked row (all -inf) gives zeros.
template <class T>
void softmax(const T* x, T* y, int64_t n) {
  T m = max_of(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {   // no mass anywhere
    for (int64_t i = 0; i < n; ++i) y[i] = 0;
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = fast::exp_of(x[i] - m);   // vectorised
  T inv = T(1.0 / sum_in_order(y, n));
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

// Softmax's VJP / JVP rule on one row: out = y (v - <v, y>); out may be v.
template <class T>
void softmax_rule(const T* y, const T* v, T* out, int64_t n) {
  T dot = T(dot_in_order(v, y, n));
  for (int64_t i = 0; i < n; ++i) out[i] = y[i] * (v[i] - dot);
}

}  // namespace linfuse::kernels::row_kernels
