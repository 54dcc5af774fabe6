#include <catch2/catch.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;

namespace {
// A small network with every kind of non-linearity the models use: a scalar loss of (x, W1, b1, W2).
Tensor small_network(const Tensors& p) {
  Tensor h = layer_norm(p[0], Tensor(), Tensor(), 1e-5);
  h = gelu_tanh(linear(h, p[1], p[2]));
  Tensor logits = linear(h, p[3]);
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 2, 1, 2}, {4});
  return add(cross_entropy(logits, labels), mul(sum(mul(tanh(p[1]), p[1])), 0.01));
}
Tensors network_params(uint64_t seed) {
  Generator g(seed);
  return {g.normal({4, 5}, 0, 1, DType::F64), g.normal({6, 5}, 0, 0.5, DType::F64), g.normal({6}, 0, 0.1, DType::F64),
          g.normal({3, 6}, 0, 0.5, DType::F64)};
}
}  // namespace

TEST_CASE("Hessian-vector product by reverse-over-forward matches finite differences of the gradient",
          "[autodiff][hvp]") {
  Tensors x = network_params(11);
  Generator g(12);
  Tensors v;
  for (const Tensor& xi : x) v.push_back(g.normal(xi.shape(), 0, 1, DType::F64));
  Tensors hv = hvp(small_network, x, v);

  auto gradient_at = [&](double t) {
    Tensors xs;
    for (size_t i = 0; i < x.size(); ++i) {
      Tensor leaf = add(x[i], mul(v[i], t)).detach();
      leaf.set_requires_grad(true);
      xs.push_back(leaf);
    }
    return grad({small_network(xs)}, xs);
  };
  double h = 1e-5;
  Tensors gp = gradient_at(h), gm = gradient_at(-h);
  for (size_t i = 0; i < x.size(); ++i) {
    Tensor numeric = div(sub(gp[i], gm[i]), 2 * h);
    double scale = std::max(1.0, max_abs_diff(numeric, zeros_like(numeric)));
    INFO("parameter " << i);
    CHECK(max_abs_diff(hv[i], numeric) / scale < 1e-7);
  }
}

TEST_CASE("backward accumulates into .grad, frees the graph, and refuses a second pass", "[autodiff][tape]") {
  Tensor w = Tensor::from_list({1, 2, 3}, {3}, DType::F64);
  w.set_requires_grad(true);
  Tensor loss = sum(mul(w, w));
  backward(loss, Tensor(), /*retain_graph=*/true);
  CHECK(w.grad().to_vector<double>() == std::vector<double>{2, 4, 6});
  backward(loss);   // accumulates
  CHECK(w.grad().to_vector<double>() == std::vector<double>{4, 8, 12});
  CHECK_THROWS_WITH(backward(loss), Catch::Contains("retain_graph"));
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("the tape keeps nothing for results that were dropped, and nothing under NoGradGuard", "[autodiff][tape]") {
  Tensor w = Tensor::ones({8}, DType::F64).set_requires_grad(true);
  size_t before = tape::live_nodes().size();
  {
    Tensor unused = exp(mul(w, 2.0));
  }
  CHECK(tape::live_nodes().size() == before);
  {
    NoGradGuard no_grad;
    Tensor y = exp(w);
    CHECK_FALSE(y.requires_grad());
  }
  Tensor y = sum(exp(w));
  CHECK(tape::live_nodes().size() == before + 2);
  backward(y);
  CHECK(tape::live_nodes().size() == before);   // consumed nodes are released and dropped
}

TEST_CASE("grad with respect to an intermediate result stops there", "[autodiff][tape]") {
  Tensor x = Tensor::from_list({0.5, -1.0}, {2}, DType::F64).set_requires_grad(true);
  Tensor h = tanh(x);
  Tensor y = sum(mul(h, h));
  Tensors g = grad({y}, {h});
  CHECK(max_abs_diff(g[0], mul(h, 2.0)) < 1e-15);
}

TEST_CASE("jvp and linearize agree, and linearize does not run f again", "[autodiff][forward]") {
  Tensors x = network_params(3);
  Generator g(4);
  Tensors v;
  for (const Tensor& xi : x) v.push_back(g.normal(xi.shape(), 0, 1, DType::F64));
  int calls = 0;
  Function f = [&](const Tensors& p) {
    ++calls;
    return small_network(p);
  };
  auto [y, jv] = jvp(f, x, v);
  Linearized lin = linearize(f, x);
  CHECK(calls == 2);
  Tensor jv1 = lin.jvp(v);
  Tensors v2;
  for (const Tensor& vi : v) v2.push_back(mul(vi, -3.0));
  Tensor jv2 = lin.jvp(v2);
  CHECK(calls == 2);
  CHECK(bit_equal(y, lin.output));
  CHECK(max_abs_diff(jv, jv1) < 1e-14);
  CHECK(max_abs_diff(jv2, mul(jv1, -3.0)) < 1e-13);   // linear in the tangent
}

TEST_CASE("a DualLevel that does not record tangents leaves only the primal graph on the tape", "[autodiff][forward]") {
  Tensor w = Tensor::from_list({0.3, -0.2, 0.9}, {3}, DType::F64).set_requires_grad(true);
  Tensor dw = Tensor::from_list({1, 0, -1}, {3}, DType::F64);
  size_t before = tape::live_nodes().size();
  Tensor y, ty;
  {
    DualLevel level(/*record_tangents=*/false);
    set_tangent(w, dw);
    y = sum(tanh(mul(w, w)));
    ty = tangent_of(y);
    CHECK_FALSE(ty.requires_grad());
  }
  CHECK(tape::live_nodes().size() == before + 3);   // mul, tanh, sum
  // d/dw <grad tanh(w^2), dw> = ... only checks that the primal gradient is still right here
  Tensor g = grad({y}, {w})[0];
  auto wv = w.to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    double t = std::tanh(wv[i] * wv[i]);
    CHECK(g.to_vector<double>()[i] == Approx((1 - t * t) * 2 * wv[i]).epsilon(1e-14));
  }
  CHECK(ty.item() == Approx(2 * 0.3 * (1 - std::pow(std::tanh(0.09), 2)) - 2 * 0.9 * (1 - std::pow(std::tanh(0.81), 2))));
}

TEST_CASE("the same seed gives bit-identical forward and backward passes with 1 and 2 threads", "[autodiff][threads]") {
  auto run = [](int threads) {
    set_num_threads(threads);
    Generator g(2024);
    Tensor x = g.normal({256, 64});
    Tensor w1 = g.normal({128, 64}, 0, 0.1).set_requires_grad(true);
    Tensor b1 = g.normal({128}, 0, 0.1).set_requires_grad(true);
    Tensor w2 = g.normal({10, 128}, 0, 0.1).set_requires_grad(true);
    Tensor labels = g.randint({256}, 0, 10);
    Tensor h = gelu_tanh(linear(layer_norm(x, Tensor(), Tensor(), 1e-5), w1, b1));
    Tensor loss = cross_entropy(linear(softmax(h, -1), w2), labels);
    backward(loss);
    return Tensors{loss, w1.grad(), b1.grad(), w2.grad()};
  };
  Tensors one = run(1), two = run(2);
  set_num_threads(2);
  for (size_t i = 0; i < one.size(); ++i) CHECK(bit_equal(one[i], two[i]));
}
