// linear_activation (a linear layer with its activation applied as the product is stored) against linear() followed
// by the activation's own primitive: the same bits for the output, every gradient and the JVP, on every kernel path
// and thread count, because the fusion moves where f is evaluated, not what is summed.
#include <catch2/catch.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernel_isa.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;

namespace {

const Activation kActivations[] = {Activation::GeluErf, Activation::GeluTanh, Activation::QuickGelu, Activation::Relu};

Tensor unfused(const Tensor& x, const Tensor& w, const Tensor& b, Activation f) { return activate(f, linear(x, w, b)); }
const char* name_of(Activation f) {
  switch (f) {
    case Activation::GeluErf: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Relu: return "relu";
  }
  return "?";
}

// A layer's shapes: x (rows..., in), W (out, in), bias or none.
struct Layer {
  Shape x;
  int64_t out;
  bool bias;
};
// The reference workload's fc1 (3200 token rows as (64, 50), 128 -> 512: the packed GEMM, whose register tiles
// carry the activation), its fc2-sized product, the tiny T5's wi (no bias), and a product too small for the packed
// GEMM (OpenBLAS, then f over the whole output).
const Layer kLayers[] = {{{64, 50, 128}, 512, true}, {{3200, 512}, 128, true}, {{8, 12, 32}, 64, false}, {{5, 7}, 9, true}};

}  // namespace

TEST_CASE("linear_activation gives the bits of linear then the activation: output and every gradient, each kernel path, "
          "1 and 2 threads", "[autodiff][linear_activation][threads]") {
  Generator gen(11);
  for (const Layer& layer : kLayers)
    for (Activation f : kActivations) {
      CAPTURE(shape_str(layer.x), layer.out, layer.bias, name_of(f));
      const int64_t in = layer.x.back();
      Tensor x = gen.normal(layer.x).set_requires_grad(true);
      Tensor w = gen.normal({layer.out, in}, 0, 1.0 / std::sqrt(double(in))).set_requires_grad(true);
      Tensor b = layer.bias ? gen.normal({layer.out}, 0, 0.5).set_requires_grad(true) : Tensor();
      Shape y_shape = layer.x;
      y_shape.back() = layer.out;
      Tensor seed = gen.normal(y_shape);
      Tensors wrt{x, w};
      if (b.defined()) wrt.push_back(b);
      auto outputs = [&](bool fused) {
        Tensor y = fused ? linear_activation(x, w, b, f) : unfused(x, w, b, f);
        Tensors all = grad({y}, wrt, {seed});
        all.insert(all.begin(), y);
        return all;
      };
      set_num_threads(2);
      const Tensors reference = outputs(false);
      testing::check_bits_on_every_path(reference, [&] { return outputs(true); }, "the output, then the gradients of x, W and b");
      NoGradGuard no_grad;   // evaluation: no derivative kept, the same output
      CHECK(bit_equal(linear_activation(x, w, b, f), reference[0]));
    }
}

TEST_CASE("linear_activation's JVP gives the bits of linear then the activation, for tangents in any of x, W and b",
          "[autodiff][linear_activation]") {
  Generator gen(12);
  for (const Layer& layer : {kLayers[0], kLayers[2]})
    for (Activation f : {Activation::GeluErf, Activation::QuickGelu}) {
      CAPTURE(shape_str(layer.x), layer.bias, name_of(f));
      const int64_t in = layer.x.back();
      Tensors primals{gen.normal(layer.x), gen.normal({layer.out, in}, 0, 0.1)};
      if (layer.bias) primals.push_back(gen.normal({layer.out}, 0, 0.5));
      Tensors all_tangents{gen.normal(layer.x), gen.normal({layer.out, in}, 0, 0.1)};
      if (layer.bias) all_tangents.push_back(gen.normal({layer.out}, 0, 0.5));
      auto bias_of = [](const Tensors& p) { return p.size() > 2 ? p[2] : Tensor(); };
      auto fused = [&](const Tensors& p) { return linear_activation(p[0], p[1], bias_of(p), f); };
      auto separate = [&](const Tensors& p) { return unfused(p[0], p[1], bias_of(p), f); };
      // every tangent; only x's (a linearized model's first layer after a frozen one); only the parameters'
      for (int which : {0, 1, 2}) {
        CAPTURE(which);
        Tensors tangents = all_tangents;
        if (which == 1) std::fill(tangents.begin() + 1, tangents.end(), Tensor());
        if (which == 2) tangents[0] = Tensor();
        auto [y1, t1] = jvp(fused, primals, tangents);
        auto [y2, t2] = jvp(separate, primals, tangents);
        CHECK(bit_equal(y1, y2));
        CHECK(bit_equal(t1, t2));
      }
    }
}

TEST_CASE("linear_activation's second derivatives, where f' depends on the inputs, equal the separate ops'",
          "[autodiff][linear_activation]") {
  // Reverse over reverse: the gradient of <dL/dx, v> with respect to W and b, with L = <seed, f(x W^T + b)>. The
  // rules then rebuild x W^T + b with ops instead of using the saved f'.
  Generator gen(13);
  for (Activation f : {Activation::GeluErf, Activation::GeluTanh, Activation::QuickGelu}) {
    CAPTURE(name_of(f));
    Tensor x = gen.normal({6, 4}, 0, 1.0, DType::F64).set_requires_grad(true);
    Tensor w = gen.normal({5, 4}, 0, 0.7, DType::F64).set_requires_grad(true);
    Tensor b = gen.normal({5}, 0, 0.5, DType::F64).set_requires_grad(true);
    Tensor seed = gen.normal({6, 5}, 0, 1.0, DType::F64), v = gen.normal({6, 4}, 0, 1.0, DType::F64);
    auto second = [&](bool fused) {
      Tensor y = fused ? linear_activation(x, w, b, f) : unfused(x, w, b, f);
      Tensor dx = grad({y}, {x}, {seed}, false, true)[0];
      return grad({sum(mul(dx, v))}, {w, b});
    };
    Tensors a = second(true), c = second(false);
    for (size_t i = 0; i < a.size(); ++i) CHECK(testing::relative_error(a[i], c[i]) < 1e-12);
  }
}

TEST_CASE("linear_activation names the mismatched operand", "[autodiff][linear_activation]") {
  Tensor x = Tensor::zeros({3, 4}), w = Tensor::zeros({5, 4});
  CHECK_THROWS_WITH(linear_activation(x, Tensor::zeros({5, 3}), Tensor(), Activation::Relu), Catch::Contains("does not fit weight"));
  CHECK_THROWS_WITH(linear_activation(x, w, Tensor::zeros({4}), Activation::Relu), Catch::Contains("bias"));
  CHECK_THROWS_WITH(linear_activation(x, Tensor::zeros({5, 4}, DType::F64), Tensor(), Activation::Relu),
                    Catch::Contains("dtypes differ"));
}
