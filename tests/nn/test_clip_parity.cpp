// Parity of the tiny CLIP with a PyTorch model written after Hugging Face's modeling_clip.py (fixtures written by
// tools/make_clip_fixtures.py): features, logits, contrastive loss, the gradient of every parameter, a JVP of the
// image features along random parameter tangents, the zero-shot head and the image classifier, in float64 and
// float32. Prints the largest relative errors measured.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/clip.h"
#include "nn/clip_classifier.h"
#include "nn/safetensors.h"

using namespace linfuse;
using namespace linfuse::nn;
using json = nlohmann::json;

namespace {

struct Fixture {
  StateDict tensors;
  json metadata;   // the safetensors metadata; lists and maps are stored as JSON text and parsed here
};

Fixture read_fixture(const std::string& path) {
  SafetensorsMetadata metadata;
  Fixture fixture{load_safetensors(path, &metadata), json::object()};
  for (const auto& [key, text] : metadata) fixture.metadata[key] = json::accept(text) ? json::parse(text) : json(text);
  return fixture;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// max |a - b| / max(max |b|, scale_floor) over the tensor; shapes must agree. The floor matters only for
// gradients that are zero in exact arithmetic: the k_proj biases (softmax is invariant to a shift of a query's
// scores, and k_proj.bias shifts them by q.b), where both sides hold rounding noise only.
double relative_error(const Tensor& actual, const Tensor& expected, double scale_floor = 0) {
  REQUIRE(actual.shape() == expected.shape());
  auto a = actual.to_vector<double>(), b = expected.to_vector<double>();
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
  if (diff == 0) return 0;
  double scale = std::max(max_abs(expected), scale_floor);
  return scale > 0 ? diff / scale : INFINITY;
}

// 1e-3 x the largest entry of all the expected gradients named prefix + parameter name.
double gradient_floor(Module& model, const StateDict& fx, const std::string& prefix) {
  double largest = 0;
  for (auto& [name, _] : model.named_parameters())
    if (fx.contains(prefix + name)) largest = std::max(largest, max_abs(fx.at(prefix + name)));
  return 1e-3 * largest;
}

struct WorstError {
  double value = 0;
  std::string where;
  void update(double e, const std::string& name) {
    if (e > value || where.empty()) {
      value = std::max(value, e);
      where = name;
    }
  }
};

void run_parity(DType dtype, const std::string& file, double tolerance) {
  const std::string dir = linfuse::testing::source_path("tests/fixtures/");
  CLIPConfig config = CLIPConfig::from_json_file(dir + "clip_parity_config.json");
  Fixture fixture = read_fixture(dir + file);
  const StateDict& fx = fixture.tensors;
  auto expected_names = fixture.metadata["parameter_names"].get<std::vector<std::string>>();

  Generator init(1);
  CLIPModel clip(config, init, dtype);
  // Names, order and shapes are HF's.
  REQUIRE(clip.state_dict().names() == expected_names);
  StateDict weights;
  for (const std::string& name : expected_names) weights.insert(name, fx.at(name));
  clip.load_state_dict(weights);

  Tensor pixels = fx.at("input.pixel_values"), ids = fx.at("input.input_ids"), mask = fx.at("input.attention_mask");
  WorstError outputs, grads, grads_nonzero, jvps, classifier;

  // ---- outputs and the contrastive loss ----
  CLIPOutput out = clip.forward(pixels, ids, mask);
  Tensor loss = clip_loss(out.logits_per_text);
  {
    NoGradGuard no_grad;
    outputs.update(relative_error(clip.get_image_features(pixels), fx.at("output.image_features")), "image_features");
    outputs.update(relative_error(clip.get_text_features(ids, mask), fx.at("output.text_features")), "text_features");
  }
  outputs.update(relative_error(out.logits_per_image, fx.at("output.logits_per_image")), "logits_per_image");
  outputs.update(relative_error(out.logits_per_text, fx.at("output.logits_per_text")), "logits_per_text");
  outputs.update(relative_error(loss, fx.at("output.loss")), "loss");

  // ---- the gradient of the loss for every parameter ----
  clip.zero_grad();
  backward(loss);
  const double grad_floor = gradient_floor(clip, fx, "grad.");
  for (auto& [name, tensor] : clip.named_parameters()) {
    INFO("gradient of " << name);
    REQUIRE(tensor->grad().defined());
    double error = relative_error(tensor->grad(), fx.at("grad." + name), grad_floor);
    grads.update(error, name);
    if (name.find("k_proj.bias") == std::string::npos) grads_nonzero.update(error, name);
  }
  clip.zero_grad();

  // ---- JVP of the image features along tangents of every vision-side parameter (forward mode) ----
  {
    NoGradGuard no_grad;
    DualLevel level;
    int64_t with_tangent = 0;
    for (auto& [name, tensor] : clip.named_parameters())
      if (fx.contains("tangent." + name)) {
        set_tangent(*tensor, fx.at("tangent." + name));
        ++with_tangent;
      }
    CHECK(with_tangent == int64_t(clip.vision_model->named_parameters().size()) + 1);   // + visual_projection
    Tensor features = clip.get_image_features(pixels);
    Tensor directional = tangent_of(features);
    REQUIRE(directional.defined());
    jvps.update(relative_error(directional, fx.at("output.image_features_jvp")), "image_features_jvp");
  }

  // ---- zero-shot head and image classifier ----
  auto prompt_ids = fixture.metadata["prompt_ids"].get<std::map<std::string, std::vector<int64_t>>>();
  TokenizeFunction lookup = [&](const std::string& text) {
    INFO("prompt \"" << text << "\"");
    REQUIRE(prompt_ids.count(text));
    return prompt_ids.at(text);
  };
  Tensor head = zero_shot_head_weight(clip, fixture.metadata["class_names"].get<std::vector<std::string>>(),
                                      fixture.metadata["templates"].get<std::vector<std::string>>(), lookup);
  classifier.update(relative_error(head, fx.at("output.head_weight")), "head_weight");
  auto model = ImageClassifier::from_clip(clip, head);
  Tensor logits = model->forward(pixels);
  Tensor classifier_loss = cross_entropy(logits, fx.at("input.labels"));
  classifier.update(relative_error(logits, fx.at("output.classifier_logits")), "classifier_logits");
  classifier.update(relative_error(classifier_loss, fx.at("output.classifier_loss")), "classifier_loss");
  backward(classifier_loss);
  const double classifier_floor = gradient_floor(*model, fx, "classifier_grad.");
  for (auto& [name, tensor] : model->named_parameters()) {
    INFO("classifier gradient of " << name);
    if (name.rfind("vision_model.", 0) == 0) {
      REQUIRE(tensor->grad().defined());
      classifier.update(relative_error(tensor->grad(), fx.at("classifier_grad." + name), classifier_floor),
                        "grad " + name);
    } else {
      CHECK_FALSE(tensor->grad().defined());   // visual_projection is frozen
    }
  }
  CHECK_FALSE(model->classification_head->weight.grad().defined());

  std::printf(
      "[clip parity %s] max relative error: outputs %.3g (%s), gradients %.3g (%s; %.3g without the zero k_proj.bias "
      "gradients, at %s), JVP %.3g, classifier %.3g (%s)\n",
      dtype_name(dtype), outputs.value, outputs.where.c_str(), grads.value, grads.where.c_str(), grads_nonzero.value,
      grads_nonzero.where.c_str(), jvps.value, classifier.value, classifier.where.c_str());
  CHECK(outputs.value < tolerance);
  CHECK(grads.value < tolerance);
  CHECK(jvps.value < tolerance);
  CHECK(classifier.value < tolerance);
}

}  // namespace

TEST_CASE("tiny CLIP matches the PyTorch reference in float64: outputs, every gradient, JVP, zero-shot classifier",
          "[clip][parity]") {
  run_parity(DType::F64, "clip_parity_f64.safetensors", 1e-9);
}

TEST_CASE("tiny CLIP matches the PyTorch reference in float32: outputs, every gradient, JVP, zero-shot classifier",
          "[clip][parity]") {
  run_parity(DType::F32, "clip_parity_f32.safetensors", 1e-4);
}
