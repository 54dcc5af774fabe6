// The exercise of docs/tutorial-l-lora.md: merging two tasks' adapters by task arithmetic (lambda = 1), the part of
// the merged output that is not the sum of the two tasks' own changes,
//   I(h) = h(phi0 + tau1 + tau2) - h(phi0 + tau1) - h(phi0 + tau2) + h(phi0),
// computed with linfuse's own layers and checked against the tutorial's closed forms.
#include <catch2/catch.hpp>
#include <algorithm>
#include <functional>

#include "../helpers.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "peft/linearized_model.h"
#include "peft/lora.h"
#include "peft_test_model.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::peft;
using linfuse::testing::max_abs_diff;

namespace {

// One Linear layer (5 -> 4) with a LoRA adapter whose B0 is not zero.
struct OneLayer : nn::Module {
  std::shared_ptr<nn::Linear> layer;
  OneLayer() {
    Generator g(3);
    layer = register_module("layer", std::make_shared<nn::Linear>(5, 4, true, g, DType::F64));
  }
};

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

TEST_CASE("tutorial exercise: a LoRA layer's merge adds exactly s (dB1 dA2 + dB2 dA1) x; a layer-level L-LoRA "
          "layer's adds nothing",
          "[peft][tutorial]") {
  for (LoraMode mode : {LoraMode::Standard, LoraMode::LocalLinear}) {
    OneLayer model;
    LoraConfig config;
    config.rank = 2;
    config.alpha = 3;                       // s = alpha / rank = 1.5
    config.init = LoraInit::BothRandom;     // B0 != 0
    apply_lora(model, config);
    auto adapter = lora_adapters(model).front().second;
    set_lora_mode(model, mode);   // LocalLinear expands around the current (A0, B0)
    const Tensor A0 = kernels::copy(adapter->lora_A->weight), B0 = kernels::copy(adapter->lora_B->weight);
    Generator g(11);
    const Tensor dA1 = g.normal(A0.shape(), 0, 0.5, DType::F64), dB1 = g.normal(B0.shape(), 0, 0.5, DType::F64);
    const Tensor dA2 = g.normal(A0.shape(), 0, 0.5, DType::F64), dB2 = g.normal(B0.shape(), 0, 0.5, DType::F64);
    const Tensor x = g.normal({6, 5}, 0, 1, DType::F64);
    NoGradGuard no_grad;
    auto h = [&](const Tensor& dA, const Tensor& dB) {   // the layer's output at phi0 + (dA, dB)
      kernels::copy_into(adapter->lora_A->weight, add(A0, dA));
      kernels::copy_into(adapter->lora_B->weight, add(B0, dB));
      return model.layer->forward(x);
    };
    Tensor zero_a = zeros_like(A0), zero_b = zeros_like(B0);
    Tensor interaction = add(sub(sub(h(add(dA1, dA2), add(dB1, dB2)), h(dA1, dB1)), h(dA2, dB2)), h(zero_a, zero_b));
    // s (dB1 dA2 + dB2 dA1) x, for row vectors x: s x (dA2^T dB1^T + dA1^T dB2^T)
    Tensor cross = mul(matmul(x, add(matmul(transpose(dA2, 0, 1), transpose(dB1, 0, 1)),
                                     matmul(transpose(dA1, 0, 1), transpose(dB2, 0, 1)))),
                       adapter->scaling);
    if (mode == LoraMode::Standard) {
      INFO("plain LoRA");
      CHECK(max_abs(cross) > 0.1);   // the cross terms are not negligible here
      CHECK(max_abs_diff(interaction, cross) < 1e-12);
    } else {
      INFO("layer-level L-LoRA");
      CHECK(max_abs(interaction) < 1e-12);
    }
  }
}

TEST_CASE("tutorial exercise: a network-level linearized model's merge adds nothing, a LoRA network's does",
          "[peft][tutorial]") {
  testing::TinyNet net;   // two pre-norm transformer blocks and a head, float64
  LoraConfig config;
  config.init = LoraInit::BothRandom;
  apply_lora(net, config);
  const Tensor x = Generator(5).normal({3, 4, 8}, 0, 1, DType::F64);
  std::vector<std::string> names;
  for (auto& e : net.trainable_parameters()) names.push_back(e.name);   // the adapters' A and B
  StateDict phi0, tau1, tau2;
  Generator g(9);
  for (auto& e : net.named_parameters())
    if (std::find(names.begin(), names.end(), e.name) != names.end()) {
      phi0.insert(e.name, kernels::copy(*e.tensor));
      tau1.insert(e.name, g.normal(e.tensor->shape(), 0, 0.3, DType::F64));
      tau2.insert(e.name, g.normal(e.tensor->shape(), 0, 0.3, DType::F64));
    }
  auto at = [&](double a1, double a2) {   // phi0 + a1 tau1 + a2 tau2
    StateDict out;
    for (auto& [name, p] : phi0) out.insert(name, add(p, add(mul(tau1.at(name), a1), mul(tau2.at(name), a2))));
    return out;
  };
  NoGradGuard no_grad;
  auto interaction_of = [&](const std::function<Tensor(const StateDict&)>& f) {
    return add(sub(sub(f(at(1, 1)), f(at(1, 0))), f(at(0, 1))), f(at(0, 0)));
  };
  // Plain LoRA network: load the adapter values and run it.
  Tensor lora = interaction_of([&](const StateDict& phi) {
    for (auto& [name, value] : phi) kernels::copy_into(net.parameter(name), value);
    return net.forward(x);
  });
  for (auto& [name, value] : phi0) kernels::copy_into(net.parameter(name), value);
  // The network linearized in the adapters at phi0 (the paper's equation).
  LinearizedModel linearized(net, LinearizedModel::ExactNames{names});
  Tensor linear = interaction_of([&](const StateDict& phi) {
    linearized.set_phi(phi);
    return linearized([&] { return net.forward(x); });
  });
  CHECK(max_abs(lora) > 1e-3);
  CHECK(max_abs(linear) < 1e-12);
}
