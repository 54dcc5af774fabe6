#pragma once
// The retained gain, the report's headline number for a merged model:
//   G = (merged - zero_shot) / (single_task - zero_shot)
// on test averages over the tasks the normalized scores use (SuiteResults::normalized_tasks: the tasks every
// mode learned). It is the share of the mode's own fine-tuning gain that the merged model keeps: 1 all of it,
// 0 none (the pretrained model's score), below 0 worse than the pretrained model. Unlike the paper's normalized
// score (merged / single-task), it does not reward a mode for moving little from the pretrained model.
#include <optional>
#include <string>
#include <vector>

#include "experiments/report_results.h"
#include "experiments/report_uncertainty.h"

namespace linfuse::experiments::report {

// G from three averages, with a standard error by the delta method when all three have one, taking them as
// independent: sqrt(SE_m^2 + G^2 SE_s^2 + (1 - G)^2 SE_z^2) / (single_task - zero_shot). (They are scored on the
// same test examples and positively correlated; for 0 <= G <= 1 that mostly makes this an overestimate.)
// Empty when single_task <= zero_shot: fine-tuning gained nothing to retain.
std::optional<Estimate> gain_from_averages(const Estimate& merged, const Estimate& zero_shot, const Estimate& single_task);

// The lambda a merge chose (task arithmetic, TIES, DARE); empty when it has none or it is not a number.
std::optional<double> chosen_lambda(const MergedResult& merged);

// True when the merge chose lambda = 0 (task arithmetic, TIES, DARE): the merged model is then the
// pretrained model itself, whatever the task vectors.
bool merged_is_pretrained(const MergedResult& merged);

// G of one merged model and the averages it is computed from.
struct RetainedGain {
  // The tasks the averages are over: normalization_tasks(suite), or every task when none was learned.
  std::vector<std::string> tasks;
  std::optional<Estimate> merged, zero_shot, single_task;  // test averages over `tasks`
  std::optional<Estimate> gain;                           // G; empty when not defined, see `undefined_because`
  std::string undefined_because;  // "no task was learned by every mode", ... (empty when G is defined)
  // single_task - zero_shot is less than two standard errors of that difference: G divides by noise.
  bool gain_within_noise = false;
  bool pretrained_model = false;  // merged_is_pretrained(merged)
};

// G of `merged` in `suite`, over normalization_tasks(suite) (see RetainedGain).
RetainedGain retained_gain(const SuiteResults& suite, const MergedResult& merged);

// "0.65 ± 0.04" (two decimals); "0.65" without a standard error; "not defined" for no G.
std::string gain_text(const std::optional<Estimate>& gain);

}  // namespace linfuse::experiments::report
