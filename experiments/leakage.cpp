// Cross-task leakage of the task vectors, to first order (see leakage.h).
#include "experiments/leakage.h"

#include <cmath>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "merge/analysis.h"
#include "merge/task_vector.h"

namespace linfuse::experiments {

OutputChange first_order_change(MergeTarget& target, const StateDict& direction, int task, int64_t examples) {
  // (N, K) and (N, C), the latter undefined when the outputs are the scores
  MergeTarget::OutputJvps change = target.output_and_score_jvp(direction, task, examples);
  NoGradGuard no_grad;
  Tensor change64 = cast(change.outputs, DType::F64);
  Tensor scores64 = change.scores.defined() ? cast(change.scores, DType::F64) : change64;
  Tensor centered = sub(scores64, mean(scores64, {1}, true));   // (N, C): each input's common move taken out
  // rms over each row (an input's K logits or C scores), then the mean over the inputs
  auto mean_rms = [](const Tensor& moves) { return mean(sqrt(mean(square(moves), {1}))).item(); };
  return {mean_rms(change64), mean_rms(centered)};
}

nlohmann::json leakage_matrix(MergeTarget& target, int64_t examples, const StudyLog& log) {
  const int n = target.num_tasks();
  const size_t tasks = static_cast<size_t>(n);
  std::vector<std::vector<double>> matrix(tasks, std::vector<double>(tasks)), centered(matrix);
  bool has_centered = true;
  for (int t = 0; t < n; ++t) {
    StateDict tau = merge::TaskVector::between(target.finetuned_state(t), target.initial_state()).tensors();
    std::vector<OutputChange> change(tasks);
    for (int s = 0; s < n; ++s) change[size_t(s)] = first_order_change(target, tau, s, examples);
    const OutputChange own = change[size_t(t)];
    bool finite = true;
    for (const OutputChange& c : change) finite = finite && std::isfinite(c.rms) && std::isfinite(c.centered_rms);
    if (!finite || !(own.rms > 0)) {
      log(peft::mode_name(target.mode()) + " leakage skipped: the task vector of " + target.task_name(t) +
          " moves its own task's outputs by " + std::to_string(own.rms) +
          " to first order: no ratio to take (a non-finite change elsewhere is skipped too)");
      return nlohmann::json::object();
    }
    has_centered = has_centered && own.centered_rms > 0;
    for (int s = 0; s < n; ++s) {
      matrix[size_t(t)][size_t(s)] = change[size_t(s)].rms / own.rms;
      if (has_centered) centered[size_t(t)][size_t(s)] = change[size_t(s)].centered_rms / own.centered_rms;
    }
  }
  auto mean_others = [](const std::vector<std::vector<double>>& m) { return std::to_string(merge::mean_off_diagonal(m)).substr(0, 4); };
  log(peft::mode_name(target.mode()) + " leakage: a task vector moves the other tasks' outputs " + mean_others(matrix) +
      " times as far as its own (first order, mean over pairs)" +
      (has_centered ? "; " + mean_others(centered) + " on the scores its predictions compare, their common move taken out (centered)" : ""));
  nlohmann::json out = {{"matrix", matrix}};
  if (has_centered) out["centered"] = centered;
  return out;
}

}  // namespace linfuse::experiments
