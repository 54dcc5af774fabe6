#include <catch2/catch.hpp>
#include <cmath>

#include "tensor/fast_math.h"

using namespace linfuse;

TEST_CASE("fast float32 exp for x <= 0 (softmax's) stays within 1 ulp, and gives 0 for -inf", "[tensor][fast_math]") {
  double ulps = 0;
  for (int i = -1746000; i <= 0; ++i) {
    float x = float(i) * 5e-5f;   // [-87.3, 0]; below, 0 (as fast::exp gives)
    double e = std::exp(double(x));
    double ulp = std::nextafter(float(e), INFINITY) - float(e);
    ulps = std::max(ulps, std::abs(double(fast::exp_nonpositive(x)) - e) / ulp);
  }
  INFO("exp_nonpositive " << ulps << " ulp");
  CHECK(ulps <= 1);
  CHECK(fast::exp_nonpositive(0.0f) == 1.0f);
  CHECK(fast::exp_nonpositive(-100.0f) == 0.0f);
  CHECK(fast::exp_nonpositive(-INFINITY) == 0.0f);
}

TEST_CASE("fast float32 exp, erf and tanh stay within their documented error", "[tensor][fast_math]") {
  double exp_ulps = 0, erf_abs = 0, erf_rel_small = 0, tanh_abs = 0;
  for (int i = -400000; i <= 400000; ++i) {
    float x = float(i) * 5e-5f;   // [-20, 20]
    double e = std::exp(double(x));
    float fe = fast::exp(x);
    double ulp = std::nextafter(float(e), INFINITY) - float(e);
    exp_ulps = std::max(exp_ulps, std::abs(double(fe) - e) / ulp);
    double erf_err = std::abs(double(fast::erf(x)) - std::erf(double(x)));
    erf_abs = std::max(erf_abs, erf_err);
    if (x != 0 && std::abs(x) < 0.5f) erf_rel_small = std::max(erf_rel_small, erf_err / std::abs(std::erf(double(x))));
    tanh_abs = std::max(tanh_abs, std::abs(double(fast::tanh(x)) - std::tanh(double(x))));
  }
  INFO("exp " << exp_ulps << " ulp, erf " << erf_abs << " (relative below 0.5: " << erf_rel_small << "), tanh " << tanh_abs);
  CHECK(exp_ulps <= 1);
  CHECK(erf_abs <= 5e-7);
  CHECK(erf_rel_small <= 1e-6);
  CHECK(tanh_abs <= 3e-7);
  CHECK(fast::exp(-100.0f) == 0.0f);
  CHECK(fast::exp(0.0f) == 1.0f);
  CHECK(fast::erf(0.0f) == 0.0f);
  CHECK(fast::tanh(-30.0f) == -1.0f);
}
