// linear_residual (a linear layer whose output is added onto a residual stream as the product is stored) against
// add(residual, linear(...)): the same bits for the output, every gradient and the JVP, on every kernel path and
// thread count, because the fusion moves where the one addition happens, not what is summed.
#include <catch2/catch.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;

namespace {

// A layer's shapes: x (rows..., in), W (out, in), bias or none; the residual has the output's shape.
struct Layer {
  Shape x;
  int64_t out;
  bool bias;
};
// The reference workload's out_proj (3200 token rows as (64, 50), 128 -> 128) and fc2 (512 -> 128) on the packed
// GEMM, whose register tiles carry the addition; a layer without a bias; a product too small for the packed GEMM
// (OpenBLAS, then the addition over the whole output).
const Layer kLayers[] = {{{64, 50, 128}, 128, true}, {{3200, 512}, 128, true}, {{8, 12, 32}, 64, false}, {{5, 7}, 9, true}};

Shape output_shape(const Layer& layer) {
  Shape y = layer.x;
  y.back() = layer.out;
  return y;
}

}  // namespace

TEST_CASE("linear_residual gives the bits of add(residual, linear): output and every gradient, each kernel path, "
          "1 and 2 threads", "[autodiff][linear_residual][threads]") {
  Generator gen(31);
  for (const Layer& layer : kLayers) {
    CAPTURE(shape_str(layer.x), layer.out, layer.bias);
    const int64_t in = layer.x.back();
    Tensor x = gen.normal(layer.x).set_requires_grad(true);
    Tensor w = gen.normal({layer.out, in}, 0, 1.0 / std::sqrt(double(in))).set_requires_grad(true);
    Tensor b = layer.bias ? gen.normal({layer.out}, 0, 0.5).set_requires_grad(true) : Tensor();
    Tensor r = gen.normal(output_shape(layer)).set_requires_grad(true);
    Tensor seed = gen.normal(output_shape(layer));
    Tensors wrt{x, w, r};
    if (b.defined()) wrt.push_back(b);
    auto outputs = [&](bool fused) {
      Tensor y = fused ? linear_residual(x, w, b, r) : add(r, linear(x, w, b));
      Tensors all = grad({y}, wrt, {seed});
      all.insert(all.begin(), y);
      return all;
    };
    set_num_threads(2);
    const Tensors reference = outputs(false);
    testing::check_bits_on_every_path(reference, [&] { return outputs(true); },
                                      "the output, then the gradients of x, W, the residual and b");
    NoGradGuard no_grad;   // evaluation: the same output
    CHECK(bit_equal(linear_residual(x, w, b, r), reference[0]));
  }
}

TEST_CASE("linear_residual's JVP gives the bits of add(residual, linear), for tangents in any input",
          "[autodiff][linear_residual]") {
  Generator gen(32);
  for (const Layer& layer : {kLayers[0], kLayers[2]}) {
    CAPTURE(shape_str(layer.x), layer.bias);
    const int64_t in = layer.x.back();
    // primals and tangents in the order x, W, residual, b
    Tensors primals{gen.normal(layer.x), gen.normal({layer.out, in}, 0, 0.1), gen.normal(output_shape(layer))};
    Tensors all_tangents{gen.normal(layer.x), gen.normal({layer.out, in}, 0, 0.1), gen.normal(output_shape(layer))};
    if (layer.bias) {
      primals.push_back(gen.normal({layer.out}, 0, 0.5));
      all_tangents.push_back(gen.normal({layer.out}, 0, 0.5));
    }
    auto bias_of = [](const Tensors& p) { return p.size() > 3 ? p[3] : Tensor(); };
    auto fused = [&](const Tensors& p) { return linear_residual(p[0], p[1], bias_of(p), p[2]); };
    auto separate = [&](const Tensors& p) { return add(p[2], linear(p[0], p[1], bias_of(p))); };
    // every tangent; only x's (the layer after a frozen one); only the residual's; only the parameters'
    for (int which : {0, 1, 2, 3}) {
      CAPTURE(which);
      Tensors tangents = all_tangents;
      if (which == 1) std::fill(tangents.begin() + 1, tangents.end(), Tensor());
      if (which == 2) {
        tangents.assign(all_tangents.size(), Tensor());
        tangents[2] = all_tangents[2];
      }
      if (which == 3) tangents[0] = tangents[2] = Tensor();
      auto [y1, t1] = jvp(fused, primals, tangents);
      auto [y2, t2] = jvp(separate, primals, tangents);
      CHECK(bit_equal(y1, y2));
      CHECK(bit_equal(t1, t2));
    }
  }
}

TEST_CASE("linear_residual's second derivatives equal the separate ops'", "[autodiff][linear_residual]") {
  // Reverse over reverse: the gradient of <dL/dx, v> with respect to W, the residual and b, with
  // L = <seed, r + x W^T + b> * <seed, r + x W^T + b> (a quadratic, so the second derivatives are not zero).
  Generator gen(33);
  Tensor x = gen.normal({6, 4}, 0, 1.0, DType::F64).set_requires_grad(true);
  Tensor w = gen.normal({5, 4}, 0, 0.7, DType::F64).set_requires_grad(true);
  Tensor b = gen.normal({5}, 0, 0.5, DType::F64).set_requires_grad(true);
  Tensor r = gen.normal({6, 5}, 0, 1.0, DType::F64).set_requires_grad(true);
  Tensor seed = gen.normal({6, 5}, 0, 1.0, DType::F64), v = gen.normal({6, 4}, 0, 1.0, DType::F64);
  auto second = [&](bool fused) {
    Tensor y = fused ? linear_residual(x, w, b, r) : add(r, linear(x, w, b));
    Tensor s = sum(mul(y, seed));
    Tensor dx = grad({mul(s, s)}, {x}, {}, false, true)[0];
    return grad({sum(mul(dx, v))}, {w, r, b});
  };
  Tensors a = second(true), c = second(false);
  for (size_t i = 0; i < a.size(); ++i) CHECK(testing::relative_error(a[i], c[i]) < 1e-12);
}

TEST_CASE("linear_residual names the mismatched operand", "[autodiff][linear_residual]") {
  Tensor x = Tensor::zeros({3, 4}), w = Tensor::zeros({5, 4}), r = Tensor::zeros({3, 5});
  CHECK_THROWS_WITH(linear_residual(x, Tensor::zeros({5, 3}), Tensor(), r), Catch::Contains("does not fit weight"));
  CHECK_THROWS_WITH(linear_residual(x, w, Tensor::zeros({4}), r), Catch::Contains("bias"));
  CHECK_THROWS_WITH(linear_residual(x, w, Tensor(), Tensor::zeros({1, 5})), Catch::Contains("does not match the layer's output"));
  CHECK_THROWS_WITH(linear_residual(x, w, Tensor(), Tensor::zeros({3, 5}, DType::F64)), Catch::Contains("dtypes differ"));
  CHECK_THROWS_WITH(lora_linear_residual(x, w, Tensor::zeros({2, 4}), Tensor::zeros({5, 2}), Tensor(), 1.0, Tensor::zeros({3, 4})),
                    Catch::Contains("residual"));
  // a LoRA layer's factors, and a residual whose leading dims differ from x's (folding them would hide it)
  CHECK_THROWS_WITH(lora_linear(x, w, Tensor::zeros({2, 3}), Tensor::zeros({5, 2}), Tensor(), 1.0),
                    Catch::Contains("expected A (r, in) and B (out, r)"));
  CHECK_THROWS_WITH(lora_linear(x, w, Tensor::zeros({2, 4}), Tensor::zeros({5, 3}), Tensor(), 1.0),
                    Catch::Contains("expected A (r, in) and B (out, r)"));
  CHECK_THROWS_WITH(lora_linear_residual(Tensor::zeros({2, 3, 4}), w, Tensor::zeros({2, 4}), Tensor::zeros({5, 2}), Tensor(), 1.0,
                                         Tensor::zeros({3, 2, 5})),
                    Catch::Contains("residual float32(3,2,5) does not match the layer's output (2,3,5)"));
}
