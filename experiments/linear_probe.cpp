// Multinomial logistic regression on frozen features (see linear_probe.h).
#include "experiments/linear_probe.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/suite_common.h"
#include "nn/optim.h"

namespace linfuse::experiments {

LinearProbeConfig LinearProbeConfig::from_json(const nlohmann::json& j) {
  LinearProbeConfig c;
  c.steps = j.value("steps", c.steps);
  c.learning_rate = j.value("learning_rate", c.learning_rate);
  if (j.contains("l2_grid")) c.l2_grid = j["l2_grid"].get<std::vector<double>>();
  return c;
}

void LinearProbeConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("[linear probe] " + what); };
  if (steps < 1) fail("diagnostics.linear_probe.steps must be at least 1, got " + std::to_string(steps));
  if (!std::isfinite(learning_rate) || learning_rate <= 0)
    fail("diagnostics.linear_probe.learning_rate must be a positive number, got " + std::to_string(learning_rate));
  if (l2_grid.empty()) fail("diagnostics.linear_probe.l2_grid must list at least one L2 penalty (e.g. [0.001])");
  for (double l2 : l2_grid)
    if (!std::isfinite(l2) || l2 < 0) fail("diagnostics.linear_probe.l2_grid holds " + std::to_string(l2) + ": penalties must be >= 0");
}

namespace {

void check_split(const Tensor& features, const Tensor& labels, int64_t classes, const std::string& split) {
  if (!features.defined() || features.dim() != 2 || features.size(0) == 0)
    throw std::invalid_argument("[linear probe] the " + split + " features must be a non-empty (N, P) matrix");
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != features.size(0))
    throw std::invalid_argument("[linear probe] " + std::to_string(features.size(0)) + " " + split +
                                " feature rows but labels of shape " + (labels.defined() ? labels.describe() : std::string("none")));
  for (int64_t y : labels.to_vector<int64_t>())
    if (y < 0 || y >= classes)
      throw std::invalid_argument("[linear probe] " + split + " label " + std::to_string(y) + " is outside [0, " +
                                  std::to_string(classes) + ")");
}

double accuracy(const Tensor& features, const Tensor& labels, const Tensor& weight, const Tensor& bias) {
  NoGradGuard no_grad;
  return double(count_correct(linear(features, weight, bias), labels)) / double(labels.size(0));
}

}  // namespace

LinearProbeResult fit_linear_probe(const ProbeData& data, const LinearProbeConfig& config) {
  if (data.classes < 2) throw std::invalid_argument("[linear probe] needs at least 2 classes, got " + std::to_string(data.classes));
  config.validate();
  check_split(data.train_features, data.train_labels, data.classes, "training");
  check_split(data.validation_features, data.validation_labels, data.classes, "validation");
  check_split(data.test_features, data.test_labels, data.classes, "test");
  NoGradGuard no_grad;
  // Standardise with the training split's statistics: Adam then sees features of one scale.
  Tensor mu = mean(data.train_features, {0}, true);                                   // (1, P)
  Tensor sigma = add(sqrt(var(data.train_features, {0}, true)), 1e-6);                // (1, P)
  auto standardised = [&](const Tensor& z) { return div(sub(z, mu), sigma); };
  const Tensor train = standardised(data.train_features), validation = standardised(data.validation_features),
               test = standardised(data.test_features);
  const int64_t features = train.size(1);
  LinearProbeResult best;
  best.validation_accuracy = -1;
  for (double l2 : config.l2_grid) {
    Tensor weight = Tensor::zeros({data.classes, features}), bias = Tensor::zeros({data.classes});
    weight.set_requires_grad(true);
    bias.set_requires_grad(true);
    nn::Adam optimizer({weight, bias}, config.learning_rate);
    double loss_value = 0;
    for (int64_t step = 0; step < config.steps; ++step) {
      optimizer.set_lr(nn::warmup_cosine_lr(step, 0, config.steps, config.learning_rate));
      optimizer.zero_grad();
      EnableGradGuard with_grad;
      Tensor loss = add(cross_entropy(linear(train, weight, bias), data.train_labels), mul(sum(square(weight)), 0.5 * l2));
      loss_value = loss.item();
      backward(loss);
      optimizer.step();
    }
    double validation_accuracy = accuracy(validation, data.validation_labels, weight, bias);
    if (validation_accuracy > best.validation_accuracy) {
      best.validation_accuracy = validation_accuracy;
      best.test_accuracy = accuracy(test, data.test_labels, weight, bias);
      best.l2 = l2;
      best.final_loss = loss_value;
    }
  }
  return best;
}

}  // namespace linfuse::experiments
