#pragma once
// The activations' scalar formulas, value and first derivative, for float32 and float64: one definition used by
// the elementwise primitives (prim_elementwise.cpp) and by the linear layer with a fused activation
// (prim_linear_activation.cpp), so that the two give the same bits.
//   gelu_erf(x)   = x Phi(x)                             d1 = Phi(x) + x phi(x)
//   gelu_tanh(x)  = 0.5 x (1 + th), th = tanh(u), u = c (x + k x^3)
//                                                        d1 = 0.5 (1 + th) + 0.5 x (1 - th^2) u',  u' = c (1 + 3k x^2)
//   quick_gelu(x) = x s, s = sigmoid(a x)                d1 = s + a x s (1 - s)
//   relu(x)       = max(x, 0)                            d1 = [x > 0] (0 at the kink, as PyTorch)
#include <cmath>

#include "tensor/fast_math.h"

namespace linfuse::activation_math {

constexpr double kSqrt2OverPi = 0.7978845608028654;   // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;
constexpr double kQuickGeluScale = 1.702;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;    // 1 / sqrt(2 pi)

template <class T>
T stable_sigmoid(T x) {
  T e = fast::exp_of(-std::fabs(x));   // never overflows
  T pos = T(1) / (T(1) + e);
  return x >= 0 ? pos : e / (T(1) + e);
}

template <class T>
T gelu_erf_value(T x) {
  return T(0.5) * x * (T(1) + fast::erf_of(x * T(kInvSqrt2)));
}
template <class T>
T gelu_erf_d1(T x) {
  return T(0.5) * (T(1) + fast::erf_of(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * fast::exp_of(T(-0.5) * x * x);
}
// float: phi's exp(-x^2 / 2) is the exp(-z^2), z = x / sqrt 2, that erf(z) needs; computed once.
template <>
inline float gelu_erf_d1(float x) {
  float z = x * float(kInvSqrt2);
  float gauss = fast::exp(-std::fabs(z) * std::fabs(z));
  return 0.5f * (1.0f + fast::erf_given_gauss(z, gauss)) + x * float(kInvSqrt2Pi) * gauss;
}

template <class T>
T gelu_tanh_value(T x) {
  T u = T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x);
  return T(0.5) * x * (T(1) + fast::tanh_of(u));
}
template <class T>
T gelu_tanh_d1(T x) {
  T u = T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x);
  T th = fast::tanh_of(u);
  T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
}

template <class T>
T quick_gelu_value(T x) {
  return x * stable_sigmoid(T(kQuickGeluScale) * x);
}
template <class T>
T quick_gelu_d1(T x) {
  T s = stable_sigmoid(T(kQuickGeluScale) * x);
  return s + T(kQuickGeluScale) * x * s * (T(1) - s);
}

template <class T>
T relu_value(T x) {
  return x > 0 ? x : T(0);
}
template <class T>
T relu_d1(T x) {
  return x > T(0) ? T(1) : T(0);
}

}  // namespace linfuse::activation_math
