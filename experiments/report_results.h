#pragma once
// results.json (experiments/RESULTS_SCHEMA.md) as typed structs, for the report writer: parsed and checked
// in one place, so that the code that writes tables, plots and claims never meets a wrong type. A section
// that results.json does not have is an empty std::optional (the report says it was not run); a section of
// the wrong shape is an error naming the file and the JSON path ("suites.vision.merged[2].test.mnist").
// Scores stay in results.json's units: fractions of 1 (accuracy, or Spearman's rho for regression tasks).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace linfuse::experiments::report {

using ScoreByTask = std::map<std::string, double>;  // task name -> score (a failed task is absent)
using Matrix = std::vector<std::vector<double>>;    // rows of equal length

struct Manifest {
  bool present = false;
  std::string preset, commit, started;
  std::vector<std::string> suites;
  std::optional<int64_t> seed, threads;
  std::optional<bool> dirty;
  std::vector<std::pair<std::string, double>> stage_seconds;  // in file order, which is pipeline order
  // How the binary was built (manifest.json's "build"): compiler, target instruction set, BLAS and its kernel.
  std::string compiler, target_isa, blas, blas_core, kernel_isa;
};

// The pretraining of a suite's model, or the text suite's instruction tuning (`examples`: the mixture's size).
struct PretrainSummary {
  std::optional<int64_t> steps, examples;
  std::optional<double> final_loss, seconds;
};

// One merged model: `method` applied to the task vectors of fine-tuning `mode`, in `space`.
struct MergedResult {
  std::string method, mode, space;
  std::vector<std::pair<std::string, std::string>> hyperparameters;  // name -> value as text, file order
  std::optional<double> validation_average;
  ScoreByTask test, normalized;
  std::optional<double> test_average, normalized_average;  // as written; see average_of below
};

// One point of the number-of-tasks sweep: the normalized average over `subset_count` subsets of k tasks.
struct SweepPoint {
  std::string method, mode, space;
  int64_t k = 0;
  size_t subset_count = 0;
  double normalized_average = 0;
  std::optional<double> normalized_std;
  std::optional<double> absolute_average;                // over every task of the subsets
  std::optional<std::vector<std::string>> normalized_over;  // when only some tasks are normalized
};

// Cosine similarity of the task vectors of one mode; matrices are tasks x tasks in the suite's task order.
struct CosineSimilarity {
  Matrix matrix, layer_averaged_matrix;  // empty when absent
  std::optional<double> mean_off_diagonal, layer_averaged_mean_off_diagonal;
};

// Weight-disentanglement error of merging two task vectors with coefficients (a, b):
// error[i][j] at (a, b) = (coefficients[i], coefficients[j]); coefficients are increasing.
struct DisentanglementGrid {
  std::string mode, task_a, task_b;
  std::vector<double> coefficients;
  Matrix error;
};

// vision: how alike the pretrained model finds the tasks (cosines of their mean pretrained image features,
// tasks x tasks) and, per mode, Spearman's correlation of the cross-task damage with it
// (experiments/domain_similarity.h).
struct DomainSimilarity {
  Matrix matrix;
  std::map<std::string, double> damage_correlation;   // mode -> rho
};

// Each task vector alone, scaled, on its own task (merge_study.h, task_vector_scaling): matrix[t][i] = test score
// on task t of theta0 + lambdas[i] tau_t (tasks x lambdas).
struct ScalingCurve {
  std::vector<double> lambdas;
  Matrix matrix;
};

struct SuiteResults {
  std::string name, model;
  std::string scoring;   // how answers become decisions (text suite; empty when results.json does not say)
  std::vector<std::string> tasks;                // never empty
  std::vector<std::string> modes;                // "modes", then any mode met elsewhere, in order met
  std::map<std::string, std::string> metric;     // task -> "accuracy" | "spearman" | ...
  std::optional<ScoreByTask> zero_shot;
  // text: the word-feature baseline (experiments/text_baseline.h) and its features per task
  std::optional<ScoreByTask> baseline;
  std::map<std::string, std::string> baseline_features;
  std::optional<PretrainSummary> pretrain;
  std::optional<PretrainSummary> instruct;   // text: the Flan-style stage (text_instruct.cpp), when it ran
  std::optional<std::map<std::string, int64_t>> trainable_parameters;  // mode -> count
  std::optional<std::map<std::string, ScoreByTask>> single_task;       // mode -> task -> score
  std::optional<std::map<std::string, ScoreByTask>> finetune_seconds;  // mode -> task -> seconds
  std::optional<std::vector<MergedResult>> merged;
  std::optional<std::vector<SweepPoint>> num_tasks_sweep;
  std::optional<std::map<std::string, CosineSimilarity>> cosine_similarity;  // mode -> similarity
  // mode -> m[i][j]: test score on task j of the model fine-tuned on task i alone (tasks x tasks)
  std::optional<std::map<std::string, Matrix>> cross_task;
  std::optional<std::vector<DisentanglementGrid>> disentanglement;
  // mode -> L[t][s]: first-order leakage of task t's task vector onto task s's outputs, relative to its own
  // task's (experiments/leakage.h; tasks x tasks, diagonal 1)
  std::optional<std::map<std::string, Matrix>> leakage;
  // mode -> the same with each input's common move of its logits taken out (leakage.h's "centered"; modes whose
  // results.json has it)
  std::map<std::string, Matrix> leakage_centered;
  std::optional<std::map<std::string, ScalingCurve>> task_vector_scaling;   // mode -> curve
  // vision: test accuracy of a linear probe on the pretrained features, and its L2 penalty (linear_probe.h)
  std::optional<ScoreByTask> linear_probe, linear_probe_l2;
  std::optional<DomainSimilarity> domain_similarity;
  // The tasks that count in normalized scores (every mode's single-task score above its learned threshold,
  // experiments/suite_common.h) and the thresholds; absent in results written before they existed.
  std::optional<std::vector<std::string>> normalized_tasks;
  std::optional<ScoreByTask> learned_thresholds;
  // Per task, the number of test examples every test score was measured on (standard errors,
  // report_uncertainty.h); absent in results written before it existed.
  std::optional<std::map<std::string, int64_t>> test_examples;
};

struct ReportResults {
  Manifest manifest;
  std::vector<SuiteResults> suites;  // in manifest order, then file order
};

// Parses and checks a results document. `source` names it in error messages (the file path).
// Throws std::runtime_error("<source>: <json path>: <problem> ...") on anything outside the schema.
ReportResults parse_results(const nlohmann::ordered_json& document, const std::string& source);

// Reads and parses `path`; the errors name the file (missing, not JSON, outside the schema).
ReportResults read_results_file(const std::string& path);

// --- derived numbers, shared by tables, plots and claims ---

// Mean of `scores` over `tasks`; empty if a task has no score (a partial average would mislead).
std::optional<double> mean_over_tasks(const ScoreByTask& scores, const std::vector<std::string>& tasks);
// The written test / normalized average, else the mean over the suite's tasks.
std::optional<double> test_average_of(const MergedResult& merged, const std::vector<std::string>& tasks);
std::optional<double> normalized_average_of(const MergedResult& merged, const std::vector<std::string>& tasks);
// The tasks normalized averages are over: normalized_tasks when written, else all of the suite's tasks.
const std::vector<std::string>& normalization_tasks(const SuiteResults& suite);
// The tasks a sweep's normalized scores are over when they are not all of the suite's (SweepPoint::
// normalized_over of its first point that names them), else empty.
std::optional<std::vector<std::string>> sweep_normalized_over(const std::vector<SweepPoint>& sweep);
// A cross-task matrix (SuiteResults::cross_task) minus the zero-shot score of each column's task, in points
// (x100); empty when the suite has no zero-shot score for every task.
std::optional<Matrix> cross_task_change(const SuiteResults& suite, const Matrix& cross_task);
// Mean of m[i][j] (of |m[i][j]|) over i != j; empty for a matrix smaller than 2 x 2.
std::optional<double> mean_off_diagonal(const Matrix& matrix);
std::optional<double> mean_abs_off_diagonal(const Matrix& matrix);
// Mean error over the grid points with |a| <= limit and |b| <= limit (limit < 0: the whole grid).
std::optional<double> mean_disentanglement_error(const DisentanglementGrid& grid, double limit);

// Fixed orders (the paper's), unknown names after the known ones in the order met.
std::vector<std::string> ordered_methods(const std::vector<MergedResult>& merged);
std::vector<std::string> ordered_sweep_methods(const std::vector<SweepPoint>& sweep);
std::vector<std::string> ordered_spaces(const std::vector<std::string>& spaces);  // "parameter", "weight", ...

// The merged result of (method, mode, space), or nullptr.
const MergedResult* find_merged(const SuiteResults& suite, const std::string& method, const std::string& mode,
                                const std::string& space);

}  // namespace linfuse::experiments::report
