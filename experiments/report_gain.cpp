// The retained gain G of a merged model (see report_gain.h).
#include "experiments/report_gain.h"

#include <cmath>
#include <stdexcept>

#include "experiments/report_format.h"

namespace linfuse::experiments::report {

std::optional<Estimate> gain_from_averages(const Estimate& merged, const Estimate& zero_shot, const Estimate& single_task) {
  const double fine_tuning_gain = single_task.value - zero_shot.value;
  if (!(fine_tuning_gain > 0)) return std::nullopt;
  Estimate gain{(merged.value - zero_shot.value) / fine_tuning_gain, std::nullopt};
  if (merged.standard_error && zero_shot.standard_error && single_task.standard_error) {
    // Delta method: dG/dmerged = 1/D, dG/dsingle = -G/D, dG/dzero = (G - 1)/D, with D = single - zero.
    const double g = gain.value, m = *merged.standard_error, s = *single_task.standard_error, z = *zero_shot.standard_error;
    gain.standard_error = std::sqrt(m * m + g * g * s * s + (1 - g) * (1 - g) * z * z) / fine_tuning_gain;
  }
  return gain;
}

std::optional<double> chosen_lambda(const MergedResult& merged) {
  for (const auto& [name, value] : merged.hyperparameters) {
    if (name != "lambda") continue;
    try {
      return std::stod(value);
    } catch (const std::exception&) {
      return std::nullopt;  // not a number: not a scale of the task vectors
    }
  }
  return std::nullopt;
}

bool merged_is_pretrained(const MergedResult& merged) {
  const std::optional<double> lambda = chosen_lambda(merged);
  return lambda && *lambda == 0.0;
}

RetainedGain retained_gain(const SuiteResults& suite, const MergedResult& merged) {
  RetainedGain result;
  result.pretrained_model = merged_is_pretrained(merged);
  result.tasks = normalization_tasks(suite);
  if (result.tasks.empty()) {
    result.tasks = suite.tasks;
    result.undefined_because = "no task was learned by every mode";
  }
  result.merged = average_estimate(suite, merged.test, result.tasks);
  if (suite.zero_shot) result.zero_shot = average_estimate(suite, *suite.zero_shot, result.tasks);
  if (suite.single_task)
    if (auto scores = suite.single_task->find(merged.mode); scores != suite.single_task->end())
      result.single_task = average_estimate(suite, scores->second, result.tasks);
  if (!result.undefined_because.empty()) return result;
  if (!result.merged) result.undefined_because = "a task has no merged test score";
  else if (!result.zero_shot) result.undefined_because = "no zero-shot score of every task";
  else if (!result.single_task) result.undefined_because = "no single-task score of every task in " + merged.mode;
  else if (!(result.single_task->value > result.zero_shot->value))
    result.undefined_because = "the single-task average of " + merged.mode + " is not above zero-shot";
  if (!result.undefined_because.empty()) return result;
  result.gain = gain_from_averages(*result.merged, *result.zero_shot, *result.single_task);
  // The pretrained model scored twice on the same examples: merged - zero-shot has no sampling spread, and
  // the single-task term of the delta method vanishes at G = 0. Its G is 0 by construction, without an error.
  if (result.pretrained_model && result.gain) result.gain->standard_error.reset();
  if (result.single_task->standard_error && result.zero_shot->standard_error) {
    const double s = *result.single_task->standard_error, z = *result.zero_shot->standard_error;
    result.gain_within_noise = result.single_task->value - result.zero_shot->value < 2 * std::sqrt(s * s + z * z);
  }
  return result;
}

std::string gain_text(const std::optional<Estimate>& gain) {
  if (!gain) return "not defined";
  std::string text = fixed(gain->value, 2);
  if (gain->standard_error) text += " ± " + fixed(*gain->standard_error, 2);
  return text;
}

}  // namespace linfuse::experiments::report
