#pragma once
// Small helpers shared by the primitive definitions (internal to autodiff/).
#include <cmath>

#include "autodiff/ops.h"
#include "autodiff/primitive.h"
#include "autodiff/tape.h"
#include "tensor/elementwise.h"

namespace linfuse::rules {

// out = f(a) elementwise, for float32 and float64.
template <class F>
Tensor unary_kernel(const Tensor& a, const char* op, F f) {
  return dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    return map<T, T>([&](T x) { return static_cast<T>(f(x)); }, a);
  });
}

template <class F>
Tensor binary_kernel(const Tensor& a, const Tensor& b, const char* op, F f) {
  return dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    return map<T, T, T>([&](T x, T y) { return static_cast<T>(f(x, y)); }, a, b);
  });
}

// Sum of two tangents where undefined means zero.
inline Tensor add_defined(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

// x * y where an undefined x means zero (result undefined).
inline Tensor mul_defined(const Tensor& x, const Tensor& y) { return x.defined() ? mul(x, y) : Tensor(); }

// Whether rules run with gradient recording (higher-order differentiation needs composite, differentiable
// formulas; otherwise saved forward statistics and fused kernels may be used).
inline bool recording() { return grad_enabled(); }

}  // namespace linfuse::rules
