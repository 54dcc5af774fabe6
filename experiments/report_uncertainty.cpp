// Standard errors of test scores and of their averages (see report_uncertainty.h).
#include "experiments/report_uncertainty.h"

#include <cmath>

#include "experiments/report_format.h"

namespace linfuse::experiments::report {

std::optional<double> score_standard_error(double score, const std::string& metric, int64_t examples) {
  const double n = double(examples);
  if (metric == "accuracy") {
    if (examples < 1 || score < 0 || score > 1) return std::nullopt;
    return std::sqrt(score * (1 - score) / n);
  }
  if (metric == "spearman") {
    if (examples < 3 || std::abs(score) > 1) return std::nullopt;
    return (1 - score * score) / std::sqrt(n - 2);
  }
  return std::nullopt;
}

std::optional<Estimate> task_estimate(const SuiteResults& suite, const ScoreByTask& scores, const std::string& task) {
  auto score = scores.find(task);
  if (score == scores.end()) return std::nullopt;
  Estimate estimate{score->second, std::nullopt};
  auto metric = suite.metric.find(task);
  if (metric != suite.metric.end() && suite.test_examples)
    if (auto examples = suite.test_examples->find(task); examples != suite.test_examples->end())
      estimate.standard_error = score_standard_error(score->second, metric->second, examples->second);
  return estimate;
}

std::optional<Estimate> average_estimate(const SuiteResults& suite, const ScoreByTask& scores,
                                         const std::vector<std::string>& tasks) {
  if (tasks.empty()) return std::nullopt;
  double sum = 0, variance_sum = 0;
  bool every_error_known = true;
  for (const auto& task : tasks) {
    auto estimate = task_estimate(suite, scores, task);
    if (!estimate) return std::nullopt;
    sum += estimate->value;
    if (estimate->standard_error) variance_sum += *estimate->standard_error * *estimate->standard_error;
    else every_error_known = false;
  }
  const double count = double(tasks.size());
  Estimate average{sum / count, std::nullopt};
  if (every_error_known) average.standard_error = std::sqrt(variance_sum) / count;
  return average;
}

std::string percent_with_error(const std::optional<Estimate>& estimate) {
  if (!estimate) return kMissing;
  std::string text = percent(estimate->value);
  if (estimate->standard_error) text += " ± " + percent(*estimate->standard_error);
  return text;
}

}  // namespace linfuse::experiments::report
