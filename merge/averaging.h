#pragma once
// Linear merges of task vectors: simple average, weighted average, task arithmetic. Each returns the merged
// task vector; the merged model is apply(pretrained, merged).
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

// mean_t tau_t. theta0 + mean_t tau_t is the uniform average of the models ("model soup", Wortsman et al. 2022).
TaskVector simple_average(const std::vector<TaskVector>& task_vectors);

// sum_t weights[t] * tau_t. The weights are used as given and NOT normalized: this follows the original code of the
// weighted methods (Ilharco et al.'s per-task lambda, the RegMean/Fisher reference's `model_coeffs`, which multiply
// parameters directly). Pass weights summing to 1 for a convex average of the models.
TaskVector weighted_average(const std::vector<TaskVector>& task_vectors, const std::vector<double>& weights);

// Task arithmetic (Ilharco et al. 2023, "Editing Models with Task Arithmetic"): lambda * sum_t tau_t.
// Default lambda 0.3 is only a starting point: the paper chooses lambda on held-out validation data (a grid over
// [0, 1] in steps of 0.05), and tanganke/fusion_bench's config uses 0.5. Select it on a validation split.
TaskVector task_arithmetic(const std::vector<TaskVector>& task_vectors, double scaling = 0.3);

}  // namespace linfuse::merge
