#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/gradcheck.h"
#include "autodiff/primitive.h"
#include "autodiff/tape.h"
#include "peft/linearized_model.h"
#include "peft/lora.h"
#include "peft_test_model.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::peft;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;
using linfuse::testing::TinyNet;

namespace {
const std::vector<std::string> kAdapterPatterns = {"*.lora_A.weight", "*.lora_B.weight"};

Tensor input(uint64_t seed) { return Generator(seed).normal({3, 4, 8}, 0, 1, DType::F64); }

// phi0 + t d for every linearized parameter
StateDict shifted(const StateDict& phi0, const StateDict& direction, double t) {
  StateDict out;
  for (auto& [name, p] : phi0) out.insert(name, add(p, mul(direction.at(name), t)));
  return out;
}
StateDict random_direction(const StateDict& like, uint64_t seed) {
  Generator g(seed);
  StateDict d;
  for (auto& [name, p] : like) d.insert(name, g.normal(p.shape(), 0, 1, DType::F64));
  return d;
}
}  // namespace

TEST_CASE("f_lin(phi0) equals f(phi0) to the last bit", "[peft][linearize]") {
  for (auto init : {LoraInit::PeftDefault, LoraInit::BothRandom}) {
    TinyNet net;
    LoraConfig config;
    config.init = init;
    apply_lora(net, config);
    Tensor x = input(1);
    Tensor f0 = net.forward(x);
    LinearizedModel lin(net, kAdapterPatterns);
    CHECK(bit_equal(lin([&] { return net.forward(x); }), f0));
  }
  TinyNet full;
  Tensor x = input(2);
  Tensor f0 = full.forward(x);
  LinearizedModel lin(full, {"*"});
  CHECK(bit_equal(lin([&] { return full.forward(x); }), f0));
}

TEST_CASE("the gap between f_lin and f shrinks as t^2 (log-log slope 2 +- 0.2)", "[peft][linearize]") {
  for (std::string mode : {"l-lora", "linear-full"}) {
    DYNAMIC_SECTION(mode) {
      TinyNet net(3);
      if (mode == "l-lora") {
        LoraConfig config;
        config.init = LoraInit::BothRandom;
        apply_lora(net, config);
      }
      LinearizedModel lin(net, mode == "l-lora" ? kAdapterPatterns : std::vector<std::string>{"*"});
      Tensor x = input(4);
      StateDict phi0 = lin.phi0(), d = random_direction(phi0, 5);
      std::vector<double> log_t, log_gap;
      for (double t : {0.02, 0.01, 0.005, 0.0025, 0.00125}) {   // the asymptotic regime for unit directions
        lin.set_phi(shifted(phi0, d, t));
        Tensor f_lin = lin([&] { return net.forward(x); });
        // f at phi0 + t d: load the shifted values into the model itself
        StateDict full = net.state_dict();
        StateDict saved;
        for (auto& [name, p] : phi0) saved.insert(name, kernels::copy(full.at(name)));
        net.load_state_dict(shifted(phi0, d, t), false);
        Tensor f = net.forward(x);
        net.load_state_dict(saved, false);
        log_t.push_back(std::log(t));
        log_gap.push_back(std::log(max_abs_diff(f_lin, f)));
        UNSCOPED_INFO("t " << t << " gap " << max_abs_diff(f_lin, f));
      }
      double mt = 0, mg = 0;
      for (size_t i = 0; i < log_t.size(); ++i) {
        mt += log_t[i] / log_t.size();
        mg += log_gap[i] / log_t.size();
      }
      double num = 0, den = 0;
      for (size_t i = 0; i < log_t.size(); ++i) {
        num += (log_t[i] - mt) * (log_gap[i] - mg);
        den += (log_t[i] - mt) * (log_t[i] - mt);
      }
      double slope = num / den;
      INFO("fitted slope " << slope);
      CHECK(std::abs(slope - 2.0) <= 0.2);
    }
  }
}

TEST_CASE("the linearized training gradient equals central differences and reverse-over-forward", "[peft][linearize]") {
  TinyNet net(6);
  LoraConfig config;
  config.init = LoraInit::BothRandom;
  config.rank = 2;
  config.target_modules = {"*.q_proj", "*.fc2"};
  apply_lora(net, config);
  LinearizedModel lin(net, kAdapterPatterns);
  Tensor x = input(7);
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 0, 1}, {3});
  // Move phi away from phi0 so the test is not at the expansion point.
  lin.set_phi(shifted(lin.phi0(), random_direction(lin.phi0(), 8), 0.3));
  auto loss_at = [&](const StateDict& phi) {
    lin.set_phi(phi);
    NoGradGuard no_grad;
    return cross_entropy(lin([&] { return net.forward(x); }), labels).item();
  };
  StateDict phi = lin.phi();
  Tensor loss = cross_entropy(lin([&] { return net.forward(x); }), labels);
  backward(loss);

  // (1) central differences along a random direction: <grad, d> = (L(phi + h d) - L(phi - h d)) / 2h
  StateDict d = random_direction(phi, 9);
  double directional = 0;
  for (size_t i = 0; i < lin.names().size(); ++i)
    directional += sum(mul(lin.parameters()[i].grad(), d.at(lin.names()[i]))).item();
  double h = 1e-5;
  double numeric = (loss_at(shifted(phi, d, h)) - loss_at(shifted(phi, d, -h))) / (2 * h);
  CHECK(directional == Approx(numeric).epsilon(1e-7));

  // (2) reverse-over-forward: differentiate L(f0 + jvp(f, phi0, phi - phi0)) through the recorded JVP.
  lin.set_phi(phi);
  StateDict phi0 = lin.phi0();
  std::vector<Tensor*> slots;
  for (const auto& name : lin.names()) slots.push_back(&net.parameter(name));
  Tensors phi_leaves;
  for (const auto& name : lin.names()) phi_leaves.push_back(kernels::copy(phi.at(name)).set_requires_grad(true));
  Tensors primals;
  for (const auto& name : lin.names()) primals.push_back(phi0.at(name));
  Tensors directions;
  for (size_t i = 0; i < phi_leaves.size(); ++i) directions.push_back(sub(phi_leaves[i], primals[i]));
  auto [f0, jv] = jvp(
      [&](const Tensors& params) {
        std::vector<Tensor> saved;
        for (size_t i = 0; i < slots.size(); ++i) {
          saved.push_back(*slots[i]);
          *slots[i] = params[i];
        }
        Tensor out = net.forward(x);
        for (size_t i = 0; i < slots.size(); ++i) *slots[i] = saved[i];
        return out;
      },
      primals, directions);
  Tensors rof = grad({cross_entropy(add(f0.detach(), jv), labels)}, phi_leaves);
  for (size_t i = 0; i < rof.size(); ++i) {
    INFO(lin.names()[i]);
    CHECK(max_abs_diff(rof[i], lin.parameters()[i].grad()) < 1e-12);
  }
}

TEST_CASE("with B0 = 0 the network-level L-LoRA gradient with respect to A is exactly zero", "[peft][linearize]") {
  TinyNet net(10);
  apply_lora(net, LoraConfig{});
  LinearizedModel lin(net, kAdapterPatterns);
  Tensor x = input(11);
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 1, 0}, {3});
  lin.set_phi(shifted(lin.phi0(), random_direction(lin.phi0(), 12), 0.2));   // phi != phi0; J is still at phi0
  backward(cross_entropy(lin([&] { return net.forward(x); }), labels));
  int checked_a = 0;
  for (size_t i = 0; i < lin.names().size(); ++i) {
    const std::string& name = lin.names()[i];
    Tensor g = lin.parameters()[i].grad();
    REQUIRE(g.defined());
    double norm = 0;
    for (double v : g.to_vector<double>()) norm += v * v;
    if (name.find("lora_A") != std::string::npos) {
      CHECK(norm == 0.0);
      ++checked_a;
    } else {
      CHECK(norm > 0.0);
    }
  }
  CHECK(checked_a == 13);   // every Linear of TinyNet (all-linear)
}

TEST_CASE("every primitive registered by peft is covered by a passing gradient check", "[peft][gradcheck]") {
  std::set<std::string> covered;
  for (const auto& c : gradcheck_cases()) {
    GradcheckResult r = run_gradcheck(c, 3);
    INFO(c.name << ": vjp " << r.vjp_error << " jvp " << r.jvp_error << " adjoint " << r.adjoint_error << " " << r.message);
    CHECK(r.passed);
    covered.insert(r.primitives.begin(), r.primitives.end());
  }
  CHECK(covered.count("linearized_call") == 1);
  for (const auto& name : registered_primitives()) CHECK(covered.count(name) == 1);
}
