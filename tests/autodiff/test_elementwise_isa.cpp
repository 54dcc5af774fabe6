// The elementwise engine's AVX-512 loop (tensor/elementwise.h) gives the AVX2 loop's bits: every unary and
// binary primitive's forward, and the activations' VJPs and JVPs, on values across the ranges where the branch-free kernels of
// tensor/fast_math.h switch formulas (erf's |x| < 0.5, exp's range limits), with special values and a length
// that leaves a remainder after the 16-float vectors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernel_isa.h"
#include "tensor/kernels.h"
#include "tensor/random.h"

using namespace linfuse;

namespace {

// 4099 values: Gaussians at three scales, a ramp over [-12, 12] through erf's switch at 0.5 / sqrt 2, and
// +-0, +-inf, NaN, the smallest normal and the largest finite float.
Tensor probe_values(DType dtype, bool reversed) {
  Generator gen(53);
  std::vector<double> v;
  for (double scale : {0.3, 1.0, 6.0})
    for (double x : gen.normal({1000}).to_vector<double>()) v.push_back(scale * x);
  for (int i = 0; i < 1089; ++i) v.push_back(-12.0 + 24.0 * i / 1088.0);
  const double inf = std::numeric_limits<double>::infinity();
  for (double x : {0.0, -0.0, inf, -inf, std::numeric_limits<double>::quiet_NaN(), 1.17549435e-38, 3.4028234e38,
                   -3.4028234e38, 0.5 / std::sqrt(2.0), -0.5 / std::sqrt(2.0)})
    v.push_back(x);
  if (reversed) std::reverse(v.begin(), v.end());
  return kernels::cast(Tensor::from_vector(v, {int64_t(v.size())}), dtype);
}

// "" when a and b hold the same bits, else the first element where they differ, for the failure message. A NaN
// equals any NaN: x86 passes on the first operand's NaN, and the compiler may order the operands of a commutative
// operation differently at the two widths, so a NaN's sign bit may differ (quick_gelu_grad(NaN) does); a NaN
// stays a NaN, and the study stops at a NaN loss anyway.
std::string first_difference(const Tensor& input, const Tensor& a, const Tensor& b) {
  auto x = input.to_vector<double>(), u = a.to_vector<double>(), w = b.to_vector<double>();
  for (size_t i = 0; i < u.size(); ++i)
    if (std::memcmp(&u[i], &w[i], sizeof(double)) != 0 && !(std::isnan(u[i]) && std::isnan(w[i])))
      return "element " + std::to_string(i) + ": x = " + std::to_string(x[i]) + ", AVX2 " + std::to_string(u[i]) +
             ", AVX-512 " + std::to_string(w[i]);
  return "";
}

}  // namespace

TEST_CASE("the elementwise engine's AVX-512 loop gives the AVX2 loop's bits", "[autodiff][elementwise][isa]") {
  if (!testing::can_compare_kernel_paths("the elementwise engine's AVX-512 loop")) return;
  using Unary = std::function<Tensor(const Tensor&)>;
  using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
#define LINFUSE_UNARY(op) {#op, [](const Tensor& a) { return op(a); }}
#define LINFUSE_BINARY(op) {#op, [](const Tensor& a, const Tensor& b) { return op(a, b); }}
  const std::vector<std::pair<std::string, Unary>> unary{
      LINFUSE_UNARY(exp),        LINFUSE_UNARY(log),        LINFUSE_UNARY(sqrt),           LINFUSE_UNARY(rsqrt),
      LINFUSE_UNARY(tanh),       LINFUSE_UNARY(sigmoid),    LINFUSE_UNARY(relu),           LINFUSE_UNARY(gelu_tanh),
      LINFUSE_UNARY(gelu_erf),   LINFUSE_UNARY(quick_gelu), LINFUSE_UNARY(erf),            LINFUSE_UNARY(abs),
      LINFUSE_UNARY(square),     LINFUSE_UNARY(sign),       LINFUSE_UNARY(gelu_tanh_grad), LINFUSE_UNARY(gelu_erf_grad),
      LINFUSE_UNARY(quick_gelu_grad)};
  const std::vector<std::pair<std::string, Binary>> binary{
      LINFUSE_BINARY(add), LINFUSE_BINARY(sub),     LINFUSE_BINARY(mul),    LINFUSE_BINARY(div),
      LINFUSE_BINARY(pow), LINFUSE_BINARY(maximum), LINFUSE_BINARY(minimum)};
#undef LINFUSE_UNARY
#undef LINFUSE_BINARY
  for (DType dtype : {DType::F32, DType::F64}) {
    NoGradGuard no_grad;
    Tensor x = probe_values(dtype, false), y = probe_values(dtype, true);
    for (const auto& [name, op] : unary) {
      CAPTURE(name, dtype_name(dtype));
      kernels::set_kernel_isa(kernels::KernelIsa::avx2);
      Tensor narrow = op(x);
      kernels::set_kernel_isa(kernels::KernelIsa::avx512);
      Tensor wide = op(x);
      CHECK(first_difference(x, narrow, wide) == "");
    }
    for (const auto& [name, op] : binary) {
      CAPTURE(name, dtype_name(dtype));
      kernels::set_kernel_isa(kernels::KernelIsa::avx2);
      Tensor narrow = op(x, y);
      kernels::set_kernel_isa(kernels::KernelIsa::avx512);
      Tensor wide = op(x, y);
      CHECK(first_difference(x, narrow, wide) == "");
    }
  }
  // The activations' VJPs and JVPs (GELU's VJP is its own one-pass kernel g d1(x) outside recording).
  for (const auto& [name, op] : unary) {
    if (name != "gelu_erf" && name != "gelu_tanh" && name != "quick_gelu") continue;
    CAPTURE(name);
    Tensor x = probe_values(DType::F32, false), g = probe_values(DType::F32, true);
    std::vector<Tensor> narrow, wide;
    for (kernels::KernelIsa isa : {kernels::KernelIsa::avx2, kernels::KernelIsa::avx512}) {
      kernels::set_kernel_isa(isa);
      auto& out = isa == kernels::KernelIsa::avx2 ? narrow : wide;
      out.push_back(vjp([&](const Tensors& in) { return op(in[0]); }, {x}).pullback(g)[0]);
      out.push_back(jvp([&](const Tensors& in) { return op(in[0]); }, {x}, {g}).second);
    }
    CHECK(first_difference(x, narrow[0], wide[0]) == "");
    CHECK(first_difference(x, narrow[1], wide[1]) == "");
  }
  kernels::reset_kernel_isa();
}
