#pragma once
// A linear probe: how linearly decodable a frozen representation already is (Radford et al. 2021, section 3.2,
// CLIP's linear-probe evaluation). Per task, multinomial logistic regression on fixed features z (P):
//
//   p(y | z) = softmax(W z' + b),   z' = (z - mu) / sigma   (per feature; mu, sigma of the training split)
//   minimise  mean_i -log p(y_i | z_i) + (l2 / 2) ||W||^2   (b is not penalised)
//
// by full-batch Adam for a fixed number of steps from W = 0, b = 0, the learning rate decaying to 0 by a cosine.
// The problem is convex and every step sees the whole training split, so the fit is deterministic and does not
// depend on the order of the examples. The penalty l2 is chosen from a grid by validation accuracy (the first
// grid value wins ties); the probe is scored on the test split.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse::experiments {

struct LinearProbeConfig {
  int64_t steps = 300;
  double learning_rate = 0.05;
  std::vector<double> l2_grid = {1e-4, 1e-3, 1e-2};
  static LinearProbeConfig from_json(const nlohmann::json& j);   // missing fields keep the defaults
  // Throws std::invalid_argument naming the setting: steps >= 1, a finite learning rate > 0, a non-empty grid of
  // finite penalties >= 0.
  void validate() const;
};

// Features (N, P) float32 and labels (N) int64 of the three splits.
struct ProbeData {
  Tensor train_features, train_labels;
  Tensor validation_features, validation_labels;
  Tensor test_features, test_labels;
  int64_t classes = 0;
};

struct LinearProbeResult {
  double validation_accuracy = 0, test_accuracy = 0;
  double l2 = 0;            // the penalty chosen on validation
  double final_loss = 0;    // the training objective at the end of the chosen fit
};

// Throws std::invalid_argument naming the problem when the splits are empty, their sizes disagree, or a label
// is outside [0, classes).
LinearProbeResult fit_linear_probe(const ProbeData& data, const LinearProbeConfig& config);

}  // namespace linfuse::experiments
