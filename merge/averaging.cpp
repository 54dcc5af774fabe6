#include "merge/averaging.h"

#include <stdexcept>
#include <string>

namespace linfuse::merge {

TaskVector simple_average(const std::vector<TaskVector>& task_vectors) {
  if (task_vectors.empty()) throw std::invalid_argument("[simple_average] needs at least one task vector, got none");
  return linear_combination(task_vectors, std::vector<double>(task_vectors.size(), 1.0 / double(task_vectors.size())));
}

TaskVector weighted_average(const std::vector<TaskVector>& task_vectors, const std::vector<double>& weights) {
  if (weights.size() != task_vectors.size())
    throw std::invalid_argument("[weighted_average] " + std::to_string(weights.size()) + " weights for " +
                                std::to_string(task_vectors.size()) + " task vectors; give one weight per task");
  return linear_combination(task_vectors, weights);
}

TaskVector task_arithmetic(const std::vector<TaskVector>& task_vectors, double scaling) {
  return linear_combination(task_vectors, std::vector<double>(task_vectors.size(), scaling));
}

}  // namespace linfuse::merge
