#include <catch2/catch.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

#include "autodiff/tape.h"
#include "peft/finetune.h"
#include "peft_test_model.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::peft;
using linfuse::testing::TinyNet;

namespace {
// A task TinyNet can learn: the class is which third of the feature vector has the largest mean.
void make_task(Generator& g, int64_t n, Tensor& x, Tensor& y) {
  x = g.normal({n, 4, 8}, 0, 1, DType::F64);
  auto v = x.to_vector<double>();
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    double s[3] = {0, 0, 0};
    for (int t = 0; t < 4; ++t)
      for (int d = 0; d < 6; ++d) s[d / 2] += v[(i * 4 + t) * 8 + d];
    labels[i] = std::max_element(s, s + 3) - s;
  }
  y = Tensor::from_vector(labels, {n});
}
double accuracy(const Tensor& logits, const Tensor& labels) {
  auto l = logits.to_vector<double>();
  auto y = labels.to_vector<int64_t>();
  int64_t correct = 0, c = logits.size(1);
  for (size_t i = 0; i < y.size(); ++i)
    correct += std::max_element(l.begin() + i * c, l.begin() + (i + 1) * c) - (l.begin() + i * c) == y[i];
  return double(correct) / double(y.size());
}
}  // namespace

TEST_CASE("each fine-tuning mode trains the selected part and improves accuracy", "[peft][finetune]") {
  Generator g(1);
  Tensor x, y, xt, yt;
  make_task(g, 256, x, y);
  make_task(g, 256, xt, yt);
  for (FinetuneMode mode : all_modes()) {
    DYNAMIC_SECTION(mode_name(mode)) {
      TinyNet net(2);
      double before;
      {
        NoGradGuard no_grad;
        before = accuracy(net.forward(xt), yt);
      }
      FinetuneConfig config;
      config.mode = mode;
      config.steps = 60;
      config.learning_rate = is_lora_mode(mode) ? 1e-2 : 3e-3;
      config.lora.rank = 4;
      config.lora.init = LoraInit::BothRandom;   // B0 != 0: every mode, network-level L-LoRA included, can move
      // Fine-tune the blocks; the head stays frozen (as CLIP's zero-shot head).
      PreparedModel prepared(net, {"layers.*"}, config);
      StateDict start = prepared.trainable_state();
      FinetuneResult r = finetune(prepared, config, [&](int64_t step) {
        int64_t b = (step * 32) % 256;
        Tensor xb = kernels::slice(x, {b, 0, 0}, {b + 32, 4, 8}, {1, 1, 1});
        Tensor yb = kernels::slice(y, {b}, {b + 32}, {1});
        return cross_entropy(prepared.forward([&] { return net.forward(xb); }), yb);
      });
      double after;
      {
        NoGradGuard no_grad;
        after = accuracy(prepared.forward([&] { return net.forward(xt); }), yt);
      }
      INFO(mode_name(mode) << ": accuracy " << before << " -> " << after << ", loss " << r.losses.front() << " -> "
                           << r.losses.back() << ", trainable " << r.trainable_parameters);
      CHECK(after > before + 0.15);
      // Only the trainable state moved; the head did not.
      CHECK(prepared.trainable_state().names() == start.names());
      CHECK_FALSE(net.head->weight.requires_grad());
      if (is_lora_mode(mode)) CHECK(r.trainable_parameters < 2000);
    }
  }
}

TEST_CASE("fine-tuning refuses out-of-range settings before it trains, naming the setting", "[peft][finetune]") {
  FinetuneConfig ok;
  REQUIRE_NOTHROW(ok.validate());
  auto message_of = [](const FinetuneConfig& c) {
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  struct Case {
    void (*spoil)(FinetuneConfig&);
    const char* message;
  };
  const Case cases[] = {
      {[](FinetuneConfig& c) { c.steps = 0; }, "steps must be at least 1"},
      {[](FinetuneConfig& c) { c.steps = -5; }, "steps must be at least 1, got -5"},
      {[](FinetuneConfig& c) { c.learning_rate = 0; }, "learning_rate"},
      {[](FinetuneConfig& c) { c.learning_rate = std::nan(""); }, "learning_rate"},
      {[](FinetuneConfig& c) { c.weight_decay = -0.1; }, "weight_decay"},
      {[](FinetuneConfig& c) { c.warmup_fraction = 1.5; }, "warmup_fraction"},
      {[](FinetuneConfig& c) { c.max_grad_norm = 0; }, "max_grad_norm"},
  };
  for (const Case& bad_case : cases) {
    FinetuneConfig c = ok;
    bad_case.spoil(c);
    CHECK_THAT(message_of(c), Catch::Contains(bad_case.message));
  }

  // finetune() itself checks, so no caller can start (and crash) a run of -5 steps
  TinyNet net(3);
  PreparedModel prepared(net, {"layers.*"}, ok);
  FinetuneConfig bad = ok;
  bad.steps = -5;
  int calls = 0;
  CHECK_THROWS_AS(finetune(prepared, bad, [&](int64_t) { ++calls; return Tensor(); }), std::invalid_argument);
  CHECK(calls == 0);
}
