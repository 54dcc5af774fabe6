#include <catch2/catch.hpp>
#include <cmath>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "nn/optim.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {
Tensor param(std::vector<double> v) { return Tensor::from_vector(v, {(int64_t)v.size()}).set_requires_grad(true); }
}  // namespace

TEST_CASE("AdamW matches the reference update for two steps (decoupled weight decay)", "[nn][optim]") {
  Tensor p = param({1.0, -2.0});
  AdamW opt({p}, 0.1, 0.01);
  std::vector<std::vector<double>> grads{{0.5, -1.0}, {0.25, 2.0}};
  std::vector<double> ref{1.0, -2.0}, m{0, 0}, v{0, 0};
  for (int t = 1; t <= 2; ++t) {
    p.set_grad(Tensor::from_vector(grads[t - 1], {2}));
    opt.step();
    for (int j = 0; j < 2; ++j) {
      double g = grads[t - 1][j];
      ref[j] -= 0.1 * 0.01 * ref[j];
      m[j] = 0.9 * m[j] + 0.1 * g;
      v[j] = 0.999 * v[j] + 0.001 * g * g;
      double mh = m[j] / (1 - std::pow(0.9, t)), vh = v[j] / (1 - std::pow(0.999, t));
      ref[j] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  auto got = p.to_vector<double>();
  CHECK(got[0] == Approx(ref[0]).epsilon(1e-14));
  CHECK(got[1] == Approx(ref[1]).epsilon(1e-14));
}

TEST_CASE("Adam with L2 weight decay differs from AdamW", "[nn][optim]") {
  Tensor a = param({1.0}), b = param({1.0});
  Adam adam({a}, 0.1, 0.9, 0.999, 1e-8, 0.5);
  AdamW adamw({b}, 0.1, 0.5);
  a.set_grad(Tensor::from_list({0.1}, {1}, DType::F64));
  b.set_grad(Tensor::from_list({0.1}, {1}, DType::F64));
  adam.step();
  adamw.step();
  // Adam: g' = 0.1 + 0.5 = 0.6; first step moves by lr * sign = 0.1. AdamW: decay 1 - 0.05, then 0.1.
  CHECK(a.item() == Approx(0.9).epsilon(1e-6));
  CHECK(b.item() == Approx(0.95 - 0.1).epsilon(1e-6));
}

TEST_CASE("SGD with momentum follows PyTorch's recurrence", "[nn][optim]") {
  Tensor p = param({1.0});
  SGD opt({p}, 0.1, 0.9);
  p.set_grad(Tensor::from_list({1.0}, {1}, DType::F64));
  opt.step();   // v = 1, p = 0.9
  opt.step();   // v = 1.9, p = 0.71
  CHECK(p.item() == Approx(0.71).epsilon(1e-14));
}

TEST_CASE("gradient clipping scales to the max norm and rejects a non-finite norm", "[nn][optim]") {
  Tensor a = param({3.0}), b = param({4.0});
  a.set_grad(Tensor::from_list({3.0}, {1}, DType::F64));
  b.set_grad(Tensor::from_list({4.0}, {1}, DType::F64));
  double before = clip_grad_norm({a, b}, 1.0);
  CHECK(before == Approx(5.0));
  CHECK(grad_norm({a, b}) == Approx(1.0).epsilon(1e-5));
  a.set_grad(Tensor::from_list({NAN}, {1}, DType::F64));
  CHECK_THROWS_WITH(clip_grad_norm({a, b}, 1.0), Catch::Contains("diverged"));
}

TEST_CASE("warm-up + cosine schedule rises linearly then decays to the floor", "[nn][optim]") {
  CHECK(warmup_cosine_lr(0, 10, 110, 1.0) == Approx(0.1));
  CHECK(warmup_cosine_lr(9, 10, 110, 1.0) == Approx(1.0));
  CHECK(warmup_cosine_lr(60, 10, 110, 1.0) == Approx(0.5));
  CHECK(warmup_cosine_lr(110, 10, 110, 1.0, 0.1) == Approx(0.1));
}

TEST_CASE("AdamW minimises a quadratic", "[nn][optim]") {
  Tensor p = param({3.0, -4.0});
  AdamW opt({p}, 0.1, 0.0);
  for (int i = 0; i < 300; ++i) {
    opt.zero_grad();
    Tensor loss = sum(mul(p, p));
    backward(loss);
    opt.step();
  }
  for (double v : p.to_vector<double>()) CHECK(std::abs(v) < 0.05);
}
