#include "merge/fisher.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "merge/named_tensors.h"

namespace linfuse::merge {
namespace {

// Every Fisher name must be a parameter with the same shape; lists all offenders.
void require_fishers_fit(const TaskVector& model, const StateDict& fisher) {
  std::vector<std::string> unknown, wrong_shape;
  for (const auto& [name, tensor] : fisher) {
    if (!model.contains(name)) unknown.push_back(name);
    else if (tensor.shape() != model.at(name).shape())
      wrong_shape.push_back(name + " " + shape_str(tensor.shape()) + " vs parameter " +
                            shape_str(model.at(name).shape()));
    else if (!is_floating(tensor.dtype()))
      wrong_shape.push_back(name + " holds " + dtype_name(tensor.dtype()));
  }
  if (!unknown.empty() || !wrong_shape.empty())
    throw std::invalid_argument("[fisher_merging] Fishers do not fit the parameters: " +
                                (unknown.empty() ? "" : "no such parameter: " + join_names(unknown)) +
                                (unknown.empty() || wrong_shape.empty() ? "" : "; ") +
                                (wrong_shape.empty() ? "" : "shape or dtype differs: " + join_names(wrong_shape)) +
                                ". Fix: key each Fisher by its parameter's name, shaped like the parameter.");
}

}  // namespace

TaskVector fisher_merging(const std::vector<TaskVector>& models, const std::vector<StateDict>& fishers,
                          const FisherMergeOptions& options) {
  require_matching("fisher_merging", models);
  size_t count = models.size();
  if (fishers.size() != count)
    throw std::invalid_argument("[fisher_merging] " + std::to_string(fishers.size()) + " Fishers for " +
                                std::to_string(count) + " models; give one Fisher state dict per model");
  // Names only here (shapes are checked against the parameters below; dtypes may differ between models).
  for (size_t t = 1; t < count; ++t) {
    std::vector<std::string> differ;
    for (const auto& entry : fishers[0])
      if (!fishers[t].contains(entry.first)) differ.push_back(entry.first + " (missing in Fisher " + std::to_string(t) + ")");
    for (const auto& entry : fishers[t])
      if (!fishers[0].contains(entry.first)) differ.push_back(entry.first + " (missing in Fisher 0)");
    if (!differ.empty())
      throw std::invalid_argument("[fisher_merging] a parameter must have a Fisher in every model or in none: " +
                                  join_names(differ) + ". Fix: compute Fishers over the same parameters.");
  }
  for (size_t t = 0; t < count; ++t) require_fishers_fit(models[t], fishers[t]);
  if (!(options.fisher_floor > 0.0))
    throw std::invalid_argument("[fisher_merging] fisher_floor must be > 0, got " + std::to_string(options.fisher_floor));

  std::vector<double> coefficients = options.model_coefficients;
  if (coefficients.empty()) coefficients.assign(count, 1.0 / double(count));
  if (coefficients.size() != count)
    throw std::invalid_argument("[fisher_merging] " + std::to_string(coefficients.size()) + " model coefficients for " +
                                std::to_string(count) + " models; give one per model or none");
  double coefficient_sum = 0.0;
  for (double c : coefficients) {
    if (!(c >= 0.0)) throw std::invalid_argument("[fisher_merging] model coefficients must be >= 0, got " + std::to_string(c));
    coefficient_sum += c;
  }
  if (coefficient_sum == 0.0) throw std::invalid_argument("[fisher_merging] model coefficients are all 0");

  if (options.normalize_fishers) {
    for (size_t t = 0; t < count; ++t) {
      double squared = 0.0;
      for (const auto& entry : fishers[t])
        for (double f : to_float64(entry.second)) squared += f * f;
      if (squared == 0.0)
        throw std::invalid_argument("[fisher_merging] cannot normalize: the Fisher of model " + std::to_string(t) +
                                    " is zero everywhere");
      coefficients[t] /= std::sqrt(squared);
    }
  }

  StateDict out;
  for (const auto& [name, tensor] : models[0]) {
    size_t n = size_t(tensor.numel());
    std::vector<double> numerator(n, 0.0), denominator(n, 0.0);
    bool has_fisher = fishers[0].contains(name);
    for (size_t t = 0; t < count; ++t) {
      std::vector<double> theta = to_float64(models[t].at(name));
      std::vector<double> fisher = has_fisher ? to_float64(fishers[t].at(name)) : std::vector<double>(n, 1.0);
      for (size_t i = 0; i < n; ++i) {
        double weight = coefficients[t] * (has_fisher ? std::max(fisher[i], options.fisher_floor) : 1.0);
        numerator[i] += weight * theta[i];
        denominator[i] += weight;
      }
    }
    for (size_t i = 0; i < n; ++i) numerator[i] /= denominator[i];
    out.insert(name, from_float64(numerator, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(out));
}

}  // namespace linfuse::merge
