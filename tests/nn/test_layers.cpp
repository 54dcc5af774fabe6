#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/primitive.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "t5_buckets_reference.h"

using namespace linfuse;
using namespace linfuse::nn;
using linfuse::testing::max_abs_diff;

TEST_CASE("Linear computes x W^T + b over leading dims and is initialised within 1/sqrt(in)", "[nn][layers]") {
  Generator g(0);
  Linear lin(3, 2, true, g, DType::F64);
  for (double w : lin.weight.to_vector<double>()) CHECK(std::abs(w) <= 1 / std::sqrt(3.0));
  Tensor x = g.normal({2, 5, 3}, 0, 1, DType::F64);
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == Shape{2, 5, 2});
  auto xv = x.to_vector<double>(), wv = lin.weight.to_vector<double>(), bv = lin.bias.to_vector<double>(),
       yv = y.to_vector<double>();
  for (int r = 0; r < 10; ++r)
    for (int o = 0; o < 2; ++o) {
      double e = bv[o];
      for (int i = 0; i < 3; ++i) e += xv[r * 3 + i] * wv[o * 3 + i];
      CHECK(yv[r * 2 + o] == Approx(e).epsilon(1e-14));
    }
}

TEST_CASE("Dropout is seeded, keeps the expected value, and is the identity in eval mode", "[nn][layers]") {
  Tensor x = Tensor::ones({100000});
  Dropout a(0.25, 7), b(0.25, 7);
  Tensor ya = a.forward(x), yb = b.forward(x);
  CHECK(linfuse::testing::bit_equal(ya, yb));
  auto v = ya.to_vector<double>();
  double mean = 0;
  int zeros = 0;
  for (double e : v) {
    mean += e / v.size();
    zeros += e == 0;
  }
  CHECK(mean == Approx(1.0).epsilon(0.01));
  CHECK(zeros / double(v.size()) == Approx(0.25).epsilon(0.03));
  CHECK_FALSE(linfuse::testing::bit_equal(a.forward(x), ya));   // the next call draws a new mask
  a.eval();
  CHECK(a.forward(x).same_as(x));
}

TEST_CASE("activations are found by their Hugging Face names", "[nn][layers]") {
  Tensor x = Tensor::from_list({-1.0, 0.5, 2.0}, {3}, DType::F64);
  CHECK(max_abs_diff(activate(activation_from_name("gelu"), x), gelu_erf(x)) == 0);
  CHECK(max_abs_diff(activate(activation_from_name("gelu_new"), x), gelu_tanh(x)) == 0);
  CHECK(max_abs_diff(activate(activation_from_name("quick_gelu"), x), quick_gelu(x)) == 0);
  CHECK(activate(activation_from_name("relu"), x).to_vector<double>() == std::vector<double>{0, 0.5, 2});
  CHECK_THROWS_WITH(activation_from_name("swish"), Catch::Contains("unknown activation 'swish'"));
}

TEST_CASE("LayerNorm and RMSNorm modules match their definitions", "[nn][layers]") {
  Generator g(2);
  Tensor x = g.normal({3, 8}, 1.0, 2.0, DType::F64);
  LayerNorm ln(8, 1e-5, DType::F64);
  RMSNorm rms(8, 1e-6, DType::F64);
  auto xv = x.to_vector<double>(), lv = ln.forward(x).to_vector<double>(), rv = rms.forward(x).to_vector<double>();
  for (int r = 0; r < 3; ++r) {
    double m = 0, v = 0, ms = 0;
    for (int i = 0; i < 8; ++i) m += xv[r * 8 + i] / 8;
    for (int i = 0; i < 8; ++i) v += (xv[r * 8 + i] - m) * (xv[r * 8 + i] - m) / 8;
    for (int i = 0; i < 8; ++i) ms += xv[r * 8 + i] * xv[r * 8 + i] / 8;
    for (int i = 0; i < 8; ++i) {
      CHECK(lv[r * 8 + i] == Approx((xv[r * 8 + i] - m) / std::sqrt(v + 1e-5)).epsilon(1e-12));
      CHECK(rv[r * 8 + i] == Approx(xv[r * 8 + i] / std::sqrt(ms + 1e-6)).epsilon(1e-12));
    }
  }
}

TEST_CASE("attention with a causal mask ignores the future, and a fully masked query gives zeros", "[nn][attention]") {
  Generator g(4);
  Tensor q = g.normal({1, 2, 4, 3}, 0, 1, DType::F64), k = g.normal({1, 2, 4, 3}, 0, 1, DType::F64),
         v = g.normal({1, 2, 4, 3}, 0, 1, DType::F64);
  Tensor out = scaled_dot_product_attention(q, k, v, causal_mask(4, DType::F64), 1 / std::sqrt(3.0));
  // Changing the last key/value changes only the last query's output.
  std::vector<double> kv = k.to_vector<double>(), vv = v.to_vector<double>();
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < 3; ++d) {
      kv[(h * 4 + 3) * 3 + d] -= 1.0;
      vv[(h * 4 + 3) * 3 + d] += 5.0;
    }
  Tensor k2 = Tensor::from_vector(kv, {1, 2, 4, 3});
  Tensor out2 = scaled_dot_product_attention(q, k2, Tensor::from_vector(vv, {1, 2, 4, 3}), causal_mask(4, DType::F64), 1 / std::sqrt(3.0));
  auto a = out.to_vector<double>(), b = out2.to_vector<double>();
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 4; ++t)
      for (int d = 0; d < 3; ++d) {
        size_t i = (h * 4 + t) * 3 + d;
        if (t < 3) CHECK(a[i] == b[i]);
        else CHECK(a[i] != b[i]);
      }
  Tensor all_masked = padding_mask(Tensor::zeros({1, 4}), DType::F64);
  Tensor z = scaled_dot_product_attention(q, k, v, all_masked, 1.0);
  for (double e : z.to_vector<double>()) CHECK(e == 0.0);
}

TEST_CASE("attention runs the fused primitive for a mask and for a learned bias, which gets the composed ops' gradient",
          "[nn][attention]") {
  Generator g(5);
  Tensor q = g.normal({2, 2, 4, 3}, 0, 1, DType::F64), k = g.normal({2, 2, 4, 3}, 0, 1, DType::F64),
         v = g.normal({2, 2, 4, 3}, 0, 1, DType::F64);
  Tensor bias = g.normal({1, 2, 4, 4}, 0, 1, DType::F64);
  {
    PrimitiveTrace trace;
    scaled_dot_product_attention(q, k, v, bias, 0.5);   // a constant bias: one fused primitive
    CHECK(trace.names() == std::vector<std::string>{"fused_attention"});
  }
  Tensor learned = bias.detach().set_requires_grad(true), reference_bias = bias.detach().set_requires_grad(true);
  Tensor out;
  {
    PrimitiveTrace trace;
    out = scaled_dot_product_attention(q, k, v, learned, 0.5);   // a learned bias: the same one primitive
    CHECK(trace.names() == std::vector<std::string>{"fused_attention"});
  }
  Tensor reference = composed_attention(q, k, v, reference_bias, 0.5);
  CHECK(max_abs_diff(out, reference) < 1e-14);
  Tensor seed = g.normal(out.shape(), 0, 1, DType::F64);
  Tensor dbias = grad({out}, {learned}, {seed})[0], reference_dbias = grad({reference}, {reference_bias}, {seed})[0];
  CHECK(dbias.shape() == learned.shape());
  CHECK(max_abs_diff(dbias, reference_dbias) < 1e-14);
  CHECK(max_abs_diff(dbias, Tensor::zeros(learned.shape(), DType::F64)) > 0.01);
}

TEST_CASE("split_heads and merge_heads are inverse", "[nn][attention]") {
  Tensor x = reshape(Tensor::arange(2 * 3 * 8, DType::F64), {2, 3, 8});
  Tensor h = split_heads(x, 4);
  CHECK(h.shape() == Shape{2, 4, 3, 2});
  CHECK(max_abs_diff(merge_heads(h), x) == 0);
}

TEST_CASE("T5 relative position buckets equal Hugging Face's for both variants", "[nn][attention]") {
  for (int i = 0; i < 301; ++i) {
    int64_t rel = i - 150;
    CHECK(relative_position_bucket(rel, true, 32, 128) == linfuse::testing::kT5BucketsBidirectional32[i]);
    CHECK(relative_position_bucket(rel, false, 32, 128) == linfuse::testing::kT5BucketsCausal32[i]);
  }
  for (int i = 0; i < 81; ++i) CHECK(relative_position_bucket(i - 40, true, 8, 20) == linfuse::testing::kT5BucketsBidirectional8[i]);
  Tensor b = relative_position_buckets(3, 5, true, 32, 128);
  CHECK(b.shape() == Shape{3, 5});
  CHECK(b.to_vector<int64_t>()[0 * 5 + 1] == relative_position_bucket(1, true, 32, 128));
}
