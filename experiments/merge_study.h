#pragma once
// The merging study of one suite in one fine-tuning mode: every merging method with its hyperparameters chosen
// on the validation split and scored on the test split, the number-of-tasks sweep, the cosine similarity of
// the task vectors and the weight-disentanglement error maps. Results are JSON entries in the layout of
// experiments/RESULTS_SCHEMA.md.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/merge_target.h"

namespace linfuse::experiments {

struct MergeStudyConfig {
  std::vector<std::string> methods = {"simple_average", "task_arithmetic", "ties",      "dare_task_arithmetic",
                                      "dare_ties",      "fisher",          "regmean",   "adamerging_task",
                                      "adamerging_layer", "lorahub"};
  std::vector<std::string> lora_spaces = {"parameter", "weight"};
  std::vector<double> task_arithmetic_lambdas;   // default 0, 0.05, ..., 1 (Ilharco et al.)
  std::vector<double> ties_keep = {0.1, 0.2, 0.3};
  std::vector<double> ties_lambdas;              // default 0.1 .. 1.5 step 0.1 (TIES grid)
  std::vector<double> dare_drop = {0.3, 0.5, 0.7};
  std::vector<double> dare_lambdas;              // default as task arithmetic's
  uint64_t dare_seed = 0;
  int64_t fisher_examples = 64;
  int64_t regmean_examples = 256;
  double regmean_alpha = 0.9;
  int64_t adamerging_steps = 50;
  int64_t adamerging_batch = 16;
  double adamerging_learning_rate = 1e-2;
  double adamerging_init = 0.3;
  int64_t lorahub_budget = 40;                   // objective evaluations
  int64_t lorahub_examples = 16;                 // labelled examples per task
  double lorahub_l1 = 0.05;
  double lorahub_bound = 1.5;

  static MergeStudyConfig from_json(const nlohmann::json& j);   // missing fields keep the defaults
};

// The methods run_merging_methods knows (MergeStudyConfig's default list, which is all of them) and its LoRA spaces.
std::vector<std::string> merge_method_names();
std::vector<std::string> lora_space_names();

// Status lines ("lora ties keep 0.2 lambda 0.8: validation 71.2") go here.
using StudyLog = std::function<void(const std::string&)>;

// Whether a task has a normalized score, given its normalizer (the single-task score): a positive number.
// NaN marks a task some mode did not learn (learned_threshold in suite_common.h); a Spearman's rho of 0 or
// below cannot be divided by.
inline bool has_normalized_score(double single_task_score) { return single_task_score > 0; }

// Runs every configured method that applies to the target's mode. `single_task_test[t]` is the fine-tuned
// score of task t (the normalizer; NaN or <= 0: the task has no normalized score). Returns the "merged" entries.
nlohmann::json run_merging_methods(MergeTarget& target, const MergeStudyConfig& config,
                                   const std::vector<double>& single_task_test, const StudyLog& log);

// The methods the number-of-tasks sweep knows.
std::vector<std::string> sweep_method_names();

struct SweepConfig {
  std::vector<std::string> methods = {"task_arithmetic"};
  int64_t max_subsets = 10;          // per k; all subsets when there are at most this many
  std::vector<double> lambdas = {0.2, 0.4, 0.6, 0.8, 1.0};
  uint64_t seed = 0;
  static SweepConfig from_json(const nlohmann::json& j);
};
// Normalized score against the number of merged tasks k = 2..n ("num_tasks_sweep" entries): subsets of every
// task that hold at least one task with a normalized score (single_task_test as for run_merging_methods),
// normalized over those tasks of the subset; "absolute_average" is over all of the subset's tasks.
nlohmann::json run_num_tasks_sweep(MergeTarget& target, const SweepConfig& config,
                                   const std::vector<double>& single_task_test, const StudyLog& log);

// Cosine similarity of the mode's task vectors, flattened and layer-averaged.
nlohmann::json task_vector_similarity(MergeTarget& target);

// Cross-task scores: {"matrix": m} with m[i][j] = test score on task j of the model fine-tuned on task i
// alone (task x task; the diagonal is the single-task score). Read against the zero-shot score of task j, the
// off-diagonal entries show how much one task's fine-tuning disturbs the other tasks: the interference a
// merge of the task vectors starts from (Ilharco et al.'s "control task" accuracy, for every pair).
nlohmann::json cross_task_scores(MergeTarget& target);

// How much of its own gain one task vector keeps when scaled: {"lambdas": l, "matrix": m} with m[t][i] = test
// score on task t of theta0 + l[i] tau_t. Task arithmetic over all tasks adds every tau at one lambda, so its
// retained gain is this curve at that lambda minus what the other tasks' vectors cost: the curve separates the
// two (a gain linear in lambda keeps only lambda of itself before any interference).
nlohmann::json task_vector_scaling(MergeTarget& target, const std::vector<double>& lambdas);

struct DisentanglementConfig {
  std::vector<std::pair<std::string, std::string>> pairs;
  double coefficient_range = 2.0;
  int64_t steps = 21;
  int64_t examples = 100;
  static DisentanglementConfig from_json(const nlohmann::json& j);
};
nlohmann::json run_disentanglement(MergeTarget& target, const DisentanglementConfig& config, const StudyLog& log);

}  // namespace linfuse::experiments
