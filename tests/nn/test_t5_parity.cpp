// Parity of the tiny T5 with a PyTorch T5 written after Hugging Face's modeling_t5.py
// (tools/make_t5_fixtures.py): encoder output, logits, loss, the gradient of the loss for every parameter,
// and the JVP of the logits along random tangents on every parameter, in float64 and float32, for a
// gated-gelu untied model and a relu tied one.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/safetensors.h"
#include "nn/t5.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {

// max |a - b| / max |b| (the error relative to the reference tensor's scale)
double relative_error(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.shape() == expected.shape());
  auto a = actual.to_vector<double>(), b = expected.to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return diff / (scale > 0 ? scale : 1.0);
}

struct WorstError {
  double error = 0;
  std::string name;
  void add(const std::string& n, double e) {
    if (e >= error) {
      error = e;
      name = n;
    }
  }
};

void check_case(const std::string& case_name, DType dtype) {
  const std::string base = linfuse::testing::source_path("tests/fixtures/t5_" + case_name);
  const std::string tag = dtype == DType::F64 ? "f64" : "f32";
  const double tolerance = dtype == DType::F64 ? 1e-9 : 1e-4;
  T5Config config = T5Config::load(base + ".json");
  StateDict fixture = load_safetensors(base + ".safetensors");

  Generator init(0);
  T5ForConditionalGeneration model(config, init, dtype);
  model.eval();
  StateDict weights;
  for (const auto& [name, tensor] : fixture)
    if (name.rfind("param/", 0) == 0) weights.insert(name.substr(6), tensor);
  model.load_hf_state_dict(weights);   // strict: the names match Hugging Face's both ways

  const Tensor& input_ids = fixture.at("input_ids");
  const Tensor& attention_mask = fixture.at("attention_mask");
  const Tensor& labels = fixture.at("labels");
  Tensor decoder_mask = fixture.contains("decoder_attention_mask") ? fixture.at("decoder_attention_mask") : Tensor();

  T5Output out = model.forward(input_ids, attention_mask, labels, decoder_mask);
  double encoder_error = relative_error(out.encoder_hidden, fixture.at(tag + "/encoder_hidden"));
  double logits_error = relative_error(out.logits, fixture.at(tag + "/logits"));
  double loss_error = relative_error(reshape(out.loss, {}), fixture.at(tag + "/loss"));
  backward(out.loss);
  WorstError grads;
  int64_t checked = 0;
  for (auto& p : model.named_parameters()) {
    REQUIRE(p.tensor->grad().defined());
    grads.add(p.name, relative_error(p.tensor->grad(), fixture.at(tag + "/grad/" + p.name)));
    ++checked;
  }
  model.zero_grad();

  Tensor jvp_logits;
  {
    NoGradGuard no_grad;
    DualLevel level;
    for (auto& p : model.named_parameters()) set_tangent(*p.tensor, cast(fixture.at("tangent/" + p.name), dtype));
    Tensor logits = model.forward(input_ids, attention_mask, labels, decoder_mask).logits;
    jvp_logits = tangent_of(logits);
    REQUIRE(jvp_logits.defined());
    jvp_logits = kernels::copy(jvp_logits);
  }
  double jvp_error = relative_error(jvp_logits, fixture.at(tag + "/jvp_logits"));

  std::printf("[t5 parity] %-17s %s: encoder %.2e  logits %.2e  loss %.2e  grads %.2e (worst %s, %lld params)  jvp %.2e\n",
              case_name.c_str(), tag.c_str(), encoder_error, logits_error, loss_error, grads.error, grads.name.c_str(),
              (long long)checked, jvp_error);
  CHECK(encoder_error < tolerance);
  CHECK(logits_error < tolerance);
  CHECK(loss_error < tolerance);
  CHECK(grads.error < tolerance);
  CHECK(jvp_error < tolerance);
  CHECK(checked == (int64_t)weights.size());
}

}  // namespace

TEST_CASE("T5 gated-gelu untied matches PyTorch in outputs, every gradient and the JVP (float64 and float32)",
          "[t5][parity]") {
  check_case("gated_gelu_untied", DType::F64);
  check_case("gated_gelu_untied", DType::F32);
}

TEST_CASE("T5 relu tied (3 decoder blocks, decoder mask, pad-padded labels) matches PyTorch (float64 and float32)",
          "[t5][parity]") {
  check_case("relu_tied", DType::F64);
  check_case("relu_tied", DType::F32);
}
