#pragma once
// Standard errors of the report's test scores: each score is measured on a finite test split (results.json's
// "test_examples" per task), so it carries sampling noise that the report shows as "71.2 ± 1.4". Only the
// sampling of test examples is counted, not the randomness of training or merging.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/report_results.h"

namespace linfuse::experiments::report {

// A measured number (a fraction of 1, like results.json's scores) and its standard error, when known.
struct Estimate {
  double value = 0;
  std::optional<double> standard_error;
};

// The standard error of one task's score measured on `examples` test examples:
//   accuracy p:        sqrt(p (1 - p) / n)      (binomial proportion)
//   Spearman's rho:    (1 - rho^2) / sqrt(n - 2) (large-sample approximation)
// Empty for another metric, for fewer than 1 example (3 pairs for rho), or a score outside the metric's range.
std::optional<double> score_standard_error(double score, const std::string& metric, int64_t examples);

// The score of `task` in `scores` with its standard error (from the suite's metric and test_examples, the
// error empty when either is unknown); empty when the task has no score.
std::optional<Estimate> task_estimate(const SuiteResults& suite, const ScoreByTask& scores, const std::string& task);

// The mean of `scores` over `tasks` with standard error sqrt(sum_t SE_t^2) / T (the tasks' test splits are
// independent samples); the error is empty when a task's is. Empty when a task has no score or `tasks` is empty.
std::optional<Estimate> average_estimate(const SuiteResults& suite, const ScoreByTask& scores,
                                         const std::vector<std::string>& tasks);

// "71.2 ± 1.4" (percent, one decimal); "71.2" without a standard error; kMissing for no estimate.
std::string percent_with_error(const std::optional<Estimate>& estimate);

}  // namespace linfuse::experiments::report
