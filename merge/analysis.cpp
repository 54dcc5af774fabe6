#include "merge/analysis.h"

#include <cctype>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string_view>

namespace linfuse::merge {
namespace {

// dots[i][j] = per-tensor dot products of task vectors i and j (j >= i; the lower triangle mirrors it).
std::vector<std::vector<PerTensorValues>> pairwise_dots(const std::vector<TaskVector>& task_vectors) {
  require_matching("cosine similarity", task_vectors);
  size_t count = task_vectors.size();
  std::vector<std::vector<PerTensorValues>> dots(count, std::vector<PerTensorValues>(count));
  for (size_t i = 0; i < count; ++i)
    for (size_t j = i; j < count; ++j) dots[i][j] = dots[j][i] = dot_per_tensor(task_vectors[i], task_vectors[j]);
  return dots;
}

// Cosine matrix from dot products summed over the tensors selected by `in_group` (tensor index -> bool).
template <class Selector>
SimilarityMatrix cosine_from_dots(const std::vector<std::vector<PerTensorValues>>& dots, Selector in_group) {
  size_t count = dots.size();
  std::vector<std::vector<double>> summed(count, std::vector<double>(count, 0.0));
  for (size_t i = 0; i < count; ++i)
    for (size_t j = 0; j < count; ++j)
      for (size_t k = 0; k < dots[i][j].entries.size(); ++k)
        if (in_group(k)) summed[i][j] += dots[i][j].entries[k].second;
  SimilarityMatrix cosine(count, std::vector<double>(count, 0.0));
  for (size_t i = 0; i < count; ++i)
    for (size_t j = 0; j < count; ++j) {
      double scale = std::sqrt(summed[i][i]) * std::sqrt(summed[j][j]);
      cosine[i][j] = scale == 0.0 ? 0.0 : summed[i][j] / scale;
    }
  return cosine;
}

std::vector<std::string> split_dots(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

bool all_digits(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

double mean_off_diagonal(const SimilarityMatrix& matrix) {
  double sum = 0;
  int count = 0;
  for (size_t i = 0; i < matrix.size(); ++i)
    for (size_t j = 0; j < matrix[i].size(); ++j)
      if (i != j) sum += matrix[i][j], ++count;
  return count ? sum / count : 0.0;
}

SimilarityMatrix cosine_similarity_matrix(const std::vector<TaskVector>& task_vectors) {
  return cosine_from_dots(pairwise_dots(task_vectors), [](size_t) { return true; });
}

std::string layer_of(const std::string& name, LayerGrouping grouping) {
  if (grouping == LayerGrouping::per_tensor) return name;
  if (grouping == LayerGrouping::per_block) {
    std::vector<std::string> parts = split_dots(name);
    std::string prefix;
    for (const auto& part : parts) {
      prefix += (prefix.empty() ? "" : ".") + part;
      if (all_digits(part) && prefix != name) return prefix;
    }
  }
  for (std::string_view suffix : {".lora_A.weight", ".lora_B.weight"})
    if (name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
  size_t last_dot = name.rfind('.');
  return last_dot == std::string::npos ? name : name.substr(0, last_dot);
}

SimilarityMatrix layer_averaged_cosine_similarity(const std::vector<TaskVector>& task_vectors, LayerGrouping grouping) {
  auto dots = pairwise_dots(task_vectors);
  std::vector<std::string> names = task_vectors[0].names();
  std::map<std::string, std::vector<bool>> layers;   // layer -> which tensors belong to it
  for (size_t k = 0; k < names.size(); ++k) {
    auto& members = layers[layer_of(names[k], grouping)];
    members.resize(names.size(), false);
    members[k] = true;
  }
  size_t count = task_vectors.size();
  SimilarityMatrix mean(count, std::vector<double>(count, 0.0));
  if (layers.empty()) return mean;
  for (const auto& [layer, members] : layers) {
    SimilarityMatrix cosine = cosine_from_dots(dots, [&](size_t k) { return members[k]; });
    for (size_t i = 0; i < count; ++i)
      for (size_t j = 0; j < count; ++j) mean[i][j] += cosine[i][j] / double(layers.size());
  }
  return mean;
}

double normalized_accuracy(double merged_accuracy, double single_task_accuracy) {
  if (!(single_task_accuracy > 0.0))
    throw std::invalid_argument("[normalized_accuracy] the single-task accuracy must be > 0 to normalize by it, got " +
                                std::to_string(single_task_accuracy));
  return merged_accuracy / single_task_accuracy;
}

std::vector<double> normalized_accuracy(const std::vector<double>& merged_accuracy,
                                        const std::vector<double>& single_task_accuracy) {
  if (merged_accuracy.size() != single_task_accuracy.size())
    throw std::invalid_argument("[normalized_accuracy] " + std::to_string(merged_accuracy.size()) +
                                " merged accuracies for " + std::to_string(single_task_accuracy.size()) +
                                " single-task accuracies; give one of each per task");
  std::vector<double> out;
  for (size_t t = 0; t < merged_accuracy.size(); ++t)
    out.push_back(normalized_accuracy(merged_accuracy[t], single_task_accuracy[t]));
  return out;
}

DisentanglementGrid weight_disentanglement_error(const StateDict& pretrained, const TaskVector& task_vector_1,
                                                 const TaskVector& task_vector_2, const PredictFunction& predict,
                                                 const DisentanglementOptions& options) {
  if (options.steps < 2 || !(options.coefficient_max > options.coefficient_min))
    throw std::invalid_argument("[weight_disentanglement_error] needs steps >= 2 and coefficient_max > "
                                "coefficient_min, got steps " + std::to_string(options.steps) + " over [" +
                                std::to_string(options.coefficient_min) + ", " +
                                std::to_string(options.coefficient_max) + "]");
  std::vector<TaskVector> pair{task_vector_1, task_vector_2};
  require_matching("weight_disentanglement_error", pair);
  DisentanglementGrid grid;
  for (int64_t k = 0; k < options.steps; ++k)
    grid.coefficients.push_back(options.coefficient_min + (options.coefficient_max - options.coefficient_min) *
                                                              double(k) / double(options.steps - 1));
  size_t steps = grid.coefficients.size();

  // Fraction of positions where `a` and `b` differ.
  auto disagreement = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b, int task) {
    if (a.size() != b.size() || a.empty())
      throw std::invalid_argument("[weight_disentanglement_error] the predict function returned " +
                                  std::to_string(a.size()) + " and " + std::to_string(b.size()) +
                                  " predictions for task " + std::to_string(task) +
                                  "; it must return the same non-empty example set every time");
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    return double(differ) / double(a.size());
  };

  // Single-task references f(x; theta0 + a_t tau_t), one per coefficient and task.
  std::vector<std::vector<int64_t>> single_1(steps), single_2(steps);
  for (size_t k = 0; k < steps; ++k) {
    single_1[k] = predict(apply(pretrained, scale(task_vector_1, grid.coefficients[k])), 0);
    single_2[k] = predict(apply(pretrained, scale(task_vector_2, grid.coefficients[k])), 1);
  }
  grid.error.assign(steps, std::vector<double>(steps, 0.0));
  for (size_t i = 0; i < steps; ++i)
    for (size_t j = 0; j < steps; ++j) {
      StateDict joint = apply(pretrained, linear_combination(pair, {grid.coefficients[i], grid.coefficients[j]}));
      grid.error[i][j] = disagreement(predict(joint, 0), single_1[i], 0) + disagreement(predict(joint, 1), single_2[j], 1);
    }
  return grid;
}

}  // namespace linfuse::merge
