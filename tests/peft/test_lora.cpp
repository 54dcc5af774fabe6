#include <catch2/catch.hpp>

#include <functional>
#include <map>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "peft/lora.h"
#include "tensor/kernels.h"
#include "tensor/threading.h"
#include "peft_test_model.h"

using namespace linfuse;
using namespace linfuse::peft;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;
using linfuse::testing::TinyNet;

TEST_CASE("LoRA wraps the targeted Linear layers with PEFT names and trains only the adapters", "[peft][lora]") {
  TinyNet net;
  LoraConfig config;
  config.rank = 2;
  config.alpha = 4;
  config.target_modules = {"*.q_proj", "*.v_proj", "fc1"};
  config.exclude_modules = {"layers.1.fc1"};
  auto wrapped = apply_lora(net, config);
  CHECK(wrapped == std::vector<std::string>{"layers.0.q_proj", "layers.0.v_proj", "layers.0.fc1", "layers.1.q_proj",
                                            "layers.1.v_proj"});
  auto trainable = net.trainable_parameters();
  REQUIRE(trainable.size() == 10);
  CHECK(trainable[0].name == "layers.0.q_proj.lora_A.weight");
  CHECK(trainable[1].name == "layers.0.q_proj.lora_B.weight");
  // r (in + out) per wrapped layer: q, v: 2 (8 + 8); fc1: 2 (8 + 16)
  CHECK(net.num_parameters(true) == 4 * 32 + 48);
  CHECK(config.scaling() == 2.0);
  config.use_rslora = true;
  CHECK(config.scaling() == Approx(4 / std::sqrt(2.0)));
  config.target_modules = {"*.nothing"};
  TinyNet other;
  CHECK_THROWS_WITH(apply_lora(other, config), Catch::Contains("no Linear module matches"));
}

TEST_CASE("LoRA with PEFT's default init starts at the base model; init depends only on init_seed", "[peft][lora]") {
  Generator g(9);
  Tensor x = g.normal({2, 3, 8}, 0, 1, DType::F64);
  TinyNet base, a, b;
  Tensor y0 = base.forward(x);
  LoraConfig config;
  config.init_seed = 42;
  apply_lora(a, config);
  apply_lora(b, config);
  CHECK(bit_equal(a.forward(x), y0));
  CHECK(bit_equal(a.parameter("layers.1.fc2.lora_A.weight"), b.parameter("layers.1.fc2.lora_A.weight")));
  for (double v : a.parameter("layers.1.fc2.lora_B.weight").to_vector<double>()) CHECK(v == 0.0);
  double bound = 1 / std::sqrt(16.0);   // fc2 has 16 inputs
  for (double v : a.parameter("layers.1.fc2.lora_A.weight").to_vector<double>()) CHECK(std::abs(v) <= bound);
}

TEST_CASE("both-random init changes B0 but, compensated, still starts at the base model", "[peft][lora]") {
  Generator g(9);
  Tensor x = g.normal({2, 3, 8}, 0, 1, DType::F64);
  TinyNet base, net;
  LoraConfig config;
  config.init = LoraInit::BothRandom;
  apply_lora(net, config);
  double b_norm = 0;
  for (double v : net.parameter("layers.0.q_proj.lora_B.weight").to_vector<double>()) b_norm += v * v;
  CHECK(b_norm > 0.1);
  CHECK(max_abs_diff(net.forward(x), base.forward(x)) < 1e-12);
}

TEST_CASE("merging LoRA into the base weights gives the same function, and unmerging restores them exactly",
          "[peft][lora]") {
  Generator g(3);
  Tensor x = g.normal({2, 3, 8}, 0, 1, DType::F64);
  TinyNet net;
  LoraConfig config;
  config.init = LoraInit::BothRandom;
  config.compensate_base = false;
  apply_lora(net, config);
  StateDict before = net.state_dict();
  std::map<std::string, std::vector<double>> weights;
  for (auto& [name, t] : before) weights[name] = t.to_vector<double>();
  Tensor y = net.forward(x);
  merge_lora(net);
  CHECK(max_abs_diff(net.forward(x), y) < 1e-12);
  CHECK_FALSE(net.parameter("layers.0.q_proj.weight").to_vector<double>() == weights["layers.0.q_proj.weight"]);
  unmerge_lora(net);
  for (auto& [name, t] : net.state_dict()) CHECK(t.to_vector<double>() == weights[name]);
  CHECK(bit_equal(net.forward(x), y));
}

TEST_CASE("layer-level L-LoRA with B0 = 0 is LoRA with A frozen at A0", "[peft][lora]") {
  Generator g(4);
  Tensor x = g.normal({2, 3, 8}, 0, 1, DType::F64);
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 2}, {2});
  TinyNet local, frozen_a;
  LoraConfig config;
  config.target_modules = {"*_proj", "*.fc1", "*.fc2"};
  apply_lora(local, config);
  apply_lora(frozen_a, config);
  set_lora_mode(local, LoraMode::LocalLinear);
  // Move B away from zero in both (as training would), identically.
  for (auto* net : {&local, &frozen_a})
    for (auto& [name, adapter] : lora_adapters(*net))
      kernels::copy_into(adapter->lora_B->weight, Generator(7).normal(adapter->lora_B->weight.shape(), 0, 0.3, DType::F64));
  Tensor loss_local = cross_entropy(local.forward(x), labels);
  Tensor loss_frozen = cross_entropy(frozen_a.forward(x), labels);
  CHECK(std::abs(loss_local.item() - loss_frozen.item()) < 1e-14);
  backward(loss_local);
  backward(loss_frozen);
  for (auto& [name, adapter] : lora_adapters(local)) {
    INFO(name);
    Tensor ga = adapter->lora_A->weight.grad();
    REQUIRE(ga.defined());
    for (double v : ga.to_vector<double>()) CHECK(v == 0.0);   // exactly zero: B0 = 0
    auto other = std::dynamic_pointer_cast<LoraAdapter>(
        std::dynamic_pointer_cast<nn::Linear>(frozen_a.find_module(name))->adapter());
    CHECK(max_abs_diff(adapter->lora_B->weight.grad(), other->lora_B->weight.grad()) < 1e-14);
  }
}

TEST_CASE("the fused LoRA linear equals base + s B A x written with separate ops, with the same bits for 1 and 2 "
          "threads", "[peft][lora][threads]") {
  // The reference workload's fc1 with a rank-8 adapter: x (3200, 128), W (512, 128), A (8, 128), B (512, 8).
  auto run = [](int threads, bool fused) {
    set_num_threads(threads);
    Generator g(5);
    Tensor x = g.normal({3200, 128}).set_requires_grad(true);
    Tensor w = g.normal({512, 128}, 0, 0.1).set_requires_grad(true);
    Tensor b = g.normal({512}, 0, 0.1).set_requires_grad(true);
    Tensor a = g.normal({8, 128}, 0, 0.1).set_requires_grad(true);
    Tensor bb = g.normal({512, 8}, 0, 0.1).set_requires_grad(true);
    Tensor cot = g.normal({3200, 512});
    Tensor y = fused ? lora_linear(x, w, a, bb, b, 2.0)
                     : add(linear(x, w, b), mul(matmul(matmul(x, transpose(a, 0, 1)), transpose(bb, 0, 1)), 2.0));
    Tensors grads = grad({y}, {x, w, b, a, bb}, {cot});
    grads.insert(grads.begin(), y);
    return grads;
  };
  Tensors fused1 = run(1, true), fused2 = run(2, true), separate = run(2, false);
  set_num_threads(2);
  for (size_t i = 0; i < fused1.size(); ++i) {
    INFO("tensor " << i << " (output, then the gradients of x, W, b, A, B)");
    CHECK(bit_equal(fused1[i], fused2[i]));
    double scale = std::max(1.0, max_abs_diff(separate[i], zeros_like(separate[i])));
    CHECK(max_abs_diff(fused1[i], separate[i]) / scale < 1e-5);
  }
}

TEST_CASE("lora_linear folds the leading dims of x into rows, as linear does", "[peft][lora]") {
  // (batch, tokens, in) as the models call it, against the same rows as one (batch * tokens, in) matrix
  Generator g(11);
  Tensor x = g.normal({3, 5, 16}), w = g.normal({12, 16}), b = g.normal({12}), a = g.normal({4, 16}), bb = g.normal({12, 4});
  Tensor r = g.normal({3, 5, 12});
  Tensor y = lora_linear(x, w, a, bb, b, 2.0);
  REQUIRE(y.shape() == Shape{3, 5, 12});
  CHECK(bit_equal(reshape(y, {15, 12}), lora_linear(reshape(x, {15, 16}), w, a, bb, b, 2.0)));
  Tensor yr = lora_linear_residual(x, w, a, bb, b, 2.0, r);
  REQUIRE(yr.shape() == Shape{3, 5, 12});
  CHECK(bit_equal(reshape(yr, {15, 12}), lora_linear_residual(reshape(x, {15, 16}), w, a, bb, b, 2.0, reshape(r, {15, 12}))));
}

TEST_CASE("the fused LoRA linear's JVP equals the separate ops' JVP, tangents in x and every factor", "[peft][lora]") {
  // The forward-mode pass of a linearized model at the reference workload's q projection with a rank-8 adapter:
  // x (3200, 128), W (128, 128), A (8, 128), B (128, 8); x_t W^T and x_t A^T come from one pass over x_t.
  Generator g(7);
  Tensor x = g.normal({3200, 128}), w = g.normal({128, 128}, 0, 0.1), b = g.normal({128}, 0, 0.1);
  Tensor a = g.normal({8, 128}, 0, 0.1), bb = g.normal({128, 8}, 0, 0.1);
  Tensors tangents{g.normal({3200, 128}), g.normal({128, 128}, 0, 0.1), g.normal({128}, 0, 0.1), g.normal({8, 128}, 0, 0.1),
                   g.normal({128, 8}, 0, 0.1)};
  auto fused = [](const Tensors& p) { return lora_linear(p[0], p[1], p[3], p[4], p[2], 2.0); };
  auto separate = [](const Tensors& p) {
    return add(linear(p[0], p[1], p[2]), mul(matmul(matmul(p[0], transpose(p[3], 0, 1)), transpose(p[4], 0, 1)), 2.0));
  };
  auto [y1, t1] = jvp(fused, {x, w, b, a, bb}, tangents);
  auto [y2, t2] = jvp(separate, {x, w, b, a, bb}, tangents);
  double scale = std::max(1.0, max_abs_diff(t2, zeros_like(t2)));
  CHECK(max_abs_diff(t1, t2) / scale < 1e-5);
  CHECK(max_abs_diff(y1, y2) / std::max(1.0, max_abs_diff(y2, zeros_like(y2))) < 1e-5);
}

namespace {
// What a fused LoRA layer (inputs x, W, b, A, B, ...) must give bit for bit: its output and the gradients of every
// input (a training step); then a linearized model's step: the JVP at constant primals with tangents in A and B
// that require grad, its tangent output, and the gradients of <cot, tangent output> with respect to those tangents.
Tensors fused_lora_outputs(const std::function<Tensor(const Tensors&)>& layer, const Tensors& primals, const Tensors& tangents,
                           const Tensor& cot) {
  Tensors p;
  for (const Tensor& t : primals) p.push_back(t.detach().set_requires_grad(true));
  Tensor y = layer(p);
  Tensors all = grad({y}, p, {cot});
  all.insert(all.begin(), y);
  Tensors t = tangents;
  t[3] = t[3].detach().set_requires_grad(true);
  t[4] = t[4].detach().set_requires_grad(true);
  auto [y2, y_t] = jvp(layer, primals, t);
  all.push_back(y_t);
  for (const Tensor& d : grad({y_t}, {t[3], t[4]}, {cot})) all.push_back(d);
  return all;
}
}  // namespace

// Output, gradients, the JVP and reverse over it, on each kernel path at 1 and 2 threads. (Catch2 2.13's console
// reporter aborted while wrapping this case's first, longer name in a failure report.)
TEST_CASE("lora_linear with a fused activation gives the bits of lora_linear then the activation",
          "[peft][lora][threads]") {
  // The reference workload's fc1 with a rank-8 adapter (the pair product with the folded weight, carrying the
  // activation), and a rank-4 layer of the text model's size (separate products).
  struct Case {
    int64_t rows, in, out, rank;
    Activation f;
  };
  for (Case c : {Case{3200, 128, 512, 8, Activation::GeluErf}, Case{96, 32, 64, 4, Activation::QuickGelu}}) {
    CAPTURE(c.rows, c.in, c.out, c.rank);
    Generator g(21);
    Tensor x = g.normal({c.rows, c.in}), w = g.normal({c.out, c.in}, 0, 0.1), b = g.normal({c.out}, 0, 0.1);
    Tensor a = g.normal({c.rank, c.in}, 0, 0.1), bb = g.normal({c.out, c.rank}, 0, 0.1);
    Tensor cot = g.normal({c.rows, c.out});
    Tensors tangents{g.normal({c.rows, c.in}), Tensor(), Tensor(), g.normal({c.rank, c.in}, 0, 0.1), g.normal({c.out, c.rank}, 0, 0.1)};
    auto layer = [&](const Tensors& p, bool fused) {
      if (fused) return lora_linear(p[0], p[1], p[3], p[4], p[2], 2.0, c.f);
      Tensor pre = lora_linear(p[0], p[1], p[3], p[4], p[2], 2.0);
      return c.f == Activation::GeluErf ? gelu_erf(pre) : quick_gelu(pre);
    };
    auto outputs = [&](bool fused) {
      return fused_lora_outputs([&](const Tensors& q) { return layer(q, fused); }, {x, w, b, a, bb}, tangents, cot);
    };
    set_num_threads(2);
    testing::check_bits_on_every_path(outputs(false), [&] { return outputs(true); },
                                      "output; gradients of x, W, b, A, B; tangent output; its gradients in A_t, B_t");
  }
}

// Output, gradients (the residual's too), the JVP and reverse over it, on each kernel path at 1 and 2 threads.
TEST_CASE("lora_linear_residual gives the bits of add(residual, lora_linear)", "[peft][lora][threads]") {
  // The reference workload's out_proj and fc2 with rank-8 adapters (the pair product with the folded weight, carrying
  // the addition), and a rank-4 layer of the text model's size (separate products).
  struct Case {
    int64_t rows, in, out, rank;
  };
  for (Case c : {Case{3200, 128, 128, 8}, Case{3200, 512, 128, 8}, Case{96, 32, 64, 4}}) {
    CAPTURE(c.rows, c.in, c.out, c.rank);
    Generator g(22);
    Tensor x = g.normal({c.rows, c.in}), w = g.normal({c.out, c.in}, 0, 0.1), b = g.normal({c.out}, 0, 0.1);
    Tensor a = g.normal({c.rank, c.in}, 0, 0.1), bb = g.normal({c.out, c.rank}, 0, 0.1), r = g.normal({c.rows, c.out});
    Tensor cot = g.normal({c.rows, c.out});
    // tangents in x, A, B and the residual (a linearized model's: the frozen W and b have none)
    Tensors tangents{g.normal({c.rows, c.in}), Tensor(), Tensor(), g.normal({c.rank, c.in}, 0, 0.1),
                     g.normal({c.out, c.rank}, 0, 0.1), g.normal({c.rows, c.out})};
    auto layer = [&](const Tensors& p, bool fused) {
      if (fused) return lora_linear_residual(p[0], p[1], p[3], p[4], p[2], 2.0, p[5]);
      return add(p[5], lora_linear(p[0], p[1], p[3], p[4], p[2], 2.0));
    };
    auto outputs = [&](bool fused) {
      return fused_lora_outputs([&](const Tensors& q) { return layer(q, fused); }, {x, w, b, a, bb, r}, tangents, cot);
    };
    set_num_threads(2);
    testing::check_bits_on_every_path(outputs(false), [&] { return outputs(true); },
                                      "output; gradients of x, W, b, A, B, r; tangent output; its gradients in A_t, B_t");
  }
}

// With B exactly zero (PEFT's init; a network-level L-LoRA's expansion point) the primitives leave out B's terms:
// output, every gradient, the JVP (with and without a tangent in x: the first layer's has none) and reverse over it,
// bit for bit those of the general path, on each kernel path at 1 and 2 threads; A's gradient exactly zero.
TEST_CASE("lora_linear with B = 0 leaves out B's terms and gives the general path's bits", "[peft][lora][threads]") {
  enum class Kind { plain, activation, residual };
  struct Case {
    int64_t rows, in, out, rank;
    Kind kind;
    bool bias;
  };
  for (Case c : {Case{3200, 128, 128, 8, Kind::plain, true}, Case{3200, 128, 512, 8, Kind::activation, true},
                 Case{3200, 512, 128, 8, Kind::residual, true}, Case{96, 32, 64, 4, Kind::activation, false},
                 Case{96, 32, 64, 4, Kind::residual, false}}) {
    for (bool tangent_in_x : {true, false}) {
      CAPTURE(c.rows, c.in, c.out, c.rank, int(c.kind), c.bias, tangent_in_x);
      Generator g(23);
      Tensor x = g.normal({c.rows, c.in}), w = g.normal({c.out, c.in}, 0, 0.1), b = g.normal({c.out}, 0, 0.1);
      Tensor a = g.normal({c.rank, c.in}, 0, 0.1), zero_b = Tensor::zeros({c.out, c.rank}), r = g.normal({c.rows, c.out});
      Tensor cot = g.normal({c.rows, c.out});
      Tensors tangents{tangent_in_x ? g.normal({c.rows, c.in}) : Tensor(), Tensor(), Tensor(), g.normal({c.rank, c.in}, 0, 0.1),
                       g.normal({c.out, c.rank}, 0, 0.1), g.normal({c.rows, c.out})};
      auto layer = [&](const Tensors& p) {
        const Tensor bias = c.bias ? p[2] : Tensor();
        switch (c.kind) {
          case Kind::plain: return lora_linear(p[0], p[1], p[3], p[4], bias, 2.0);
          case Kind::activation: return lora_linear(p[0], p[1], p[3], p[4], bias, 2.0, Activation::GeluErf);
          case Kind::residual: break;
        }
        return lora_linear_residual(p[0], p[1], p[3], p[4], bias, 2.0, p[5]);
      };
      auto outputs = [&] { return fused_lora_outputs(layer, {x, w, b, a, zero_b, r}, tangents, cot); };
      set_num_threads(2);
      set_lora_skip_zero_b(false);
      const Tensors general = outputs();
      set_lora_skip_zero_b(true);
      testing::check_bits_on_every_path(general, outputs,
                                        "output; gradients of x, W, b, A, B, r; tangent output; its gradients in A_t, B_t");
      for (float v : outputs()[4].to_vector<float>()) REQUIRE(v == 0.0f);   // A's gradient (after y, x, W, b)
    }
  }
}
