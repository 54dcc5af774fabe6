// Cross-task leakage of the task vectors, to first order (see leakage.h).
#include "experiments/leakage.h"

#include <cmath>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "merge/task_vector.h"

namespace linfuse::experiments {

double first_order_change(MergeTarget& target, const StateDict& direction, int task, int64_t examples) {
  Tensor change = target.output_jvp(direction, task, examples);   // (N, K)
  NoGradGuard no_grad;
  Tensor per_input = sqrt(mean(square(cast(change, DType::F64)), {1}));   // (N): rms over the K logits of J f(x) tau
  return mean(per_input).item();
}

nlohmann::json leakage_matrix(MergeTarget& target, int64_t examples, const StudyLog& log) {
  const int n = target.num_tasks();
  const size_t tasks = static_cast<size_t>(n);
  std::vector<std::vector<double>> matrix(tasks, std::vector<double>(tasks));
  for (int t = 0; t < n; ++t) {
    StateDict tau = merge::TaskVector::between(target.finetuned_state(t), target.initial_state()).tensors();
    std::vector<double> change(tasks);
    for (int s = 0; s < n; ++s) change[size_t(s)] = first_order_change(target, tau, s, examples);
    const double own = change[size_t(t)];
    bool finite = true;
    for (double c : change) finite = finite && std::isfinite(c);
    if (!finite || !(own > 0)) {
      log(peft::mode_name(target.mode()) + " leakage skipped: the task vector of " + target.task_name(t) +
          " moves its own task's outputs by " + std::to_string(own) +
          " to first order: no ratio to take (a non-finite change elsewhere is skipped too)");
      return nlohmann::json::object();
    }
    for (int s = 0; s < n; ++s) matrix[size_t(t)][size_t(s)] = change[size_t(s)] / own;
  }
  double others = 0;
  for (int t = 0; t < n; ++t)
    for (int s = 0; s < n; ++s)
      if (s != t) others += matrix[size_t(t)][size_t(s)] / double(n * (n - 1));
  log(peft::mode_name(target.mode()) + " leakage: a task vector moves the other tasks' outputs " +
      std::to_string(others).substr(0, 4) + " times as far as its own (first order, mean over pairs)");
  return {{"matrix", matrix}};
}

}  // namespace linfuse::experiments
