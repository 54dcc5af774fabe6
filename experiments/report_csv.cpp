// The report's CSV files (see report_sections.h). Scores keep results.json's units (fractions of 1), so a
// spreadsheet or script reads the same numbers as results.json; an absent value is an empty field.
#include "experiments/report_format.h"
#include "experiments/report_gain.h"
#include "experiments/report_sections.h"
#include "experiments/report_uncertainty.h"

namespace linfuse::experiments::report {
namespace {

std::optional<double> lookup(const std::optional<std::map<std::string, ScoreByTask>>& table, const std::string& mode,
                             const std::string& task) {
  if (!table) return std::nullopt;
  auto by_mode = table->find(mode);
  if (by_mode == table->end()) return std::nullopt;
  auto found = by_mode->second.find(task);
  return found == by_mode->second.end() ? std::nullopt : std::optional<double>(found->second);
}

std::optional<double> lookup(const ScoreByTask& scores, const std::string& task) {
  auto found = scores.find(task);
  return found == scores.end() ? std::nullopt : std::optional<double>(found->second);
}

// The standard error of `task`'s score in `scores` (report_uncertainty.h); empty when unknown.
std::optional<double> error_of(const SuiteResults& suite, const ScoreByTask& scores, const std::string& task) {
  auto estimate = task_estimate(suite, scores, task);
  return estimate ? estimate->standard_error : std::nullopt;
}

std::string metric_of(const SuiteResults& suite, const std::string& task) {
  auto found = suite.metric.find(task);
  return found == suite.metric.end() ? "" : found->second;
}

}  // namespace

std::string single_task_csv(const ReportResults& results) {
  std::string csv = csv_line({"suite", "mode", "task", "metric", "zero_shot", "single_task", "finetune_seconds",
                              "test_examples", "zero_shot_se", "single_task_se"});
  for (const auto& suite : results.suites) {
    if (!suite.single_task) continue;
    for (const auto& mode : suite.modes) {
      if (!suite.single_task->count(mode)) continue;
      for (const auto& task : suite.tasks) {
        std::string examples;
        if (suite.test_examples && suite.test_examples->count(task)) examples = std::to_string(suite.test_examples->at(task));
        csv += csv_line({suite.name, mode, task, metric_of(suite, task),
                         csv_number(suite.zero_shot ? lookup(*suite.zero_shot, task) : std::nullopt),
                         csv_number(lookup(suite.single_task, mode, task)),
                         csv_number(lookup(suite.finetune_seconds, mode, task)), examples,
                         csv_number(suite.zero_shot ? error_of(suite, *suite.zero_shot, task) : std::nullopt),
                         csv_number(error_of(suite, suite.single_task->at(mode), task))});
      }
    }
  }
  return csv;
}

std::string merged_csv(const ReportResults& results) {
  // gain, gain_se and pretrained_model belong to the merged model (the same on each of its task rows): the
  // retained gain G over the tasks the normalized scores use (report_gain.h), empty when not defined.
  std::string csv = csv_line({"suite", "method", "mode", "space", "task", "metric", "test", "normalized",
                              "validation_average", "hyperparameters", "test_se", "gain", "gain_se", "pretrained_model"});
  for (const auto& suite : results.suites) {
    if (!suite.merged) continue;
    for (const auto& merged : *suite.merged) {
      std::string hyperparameters;
      for (const auto& [name, value] : merged.hyperparameters)
        hyperparameters += (hyperparameters.empty() ? "" : "; ") + name + "=" + value;
      RetainedGain gain = retained_gain(suite, merged);
      for (const auto& task : suite.tasks)
        csv += csv_line({suite.name, merged.method, merged.mode, merged.space, task, metric_of(suite, task),
                         csv_number(lookup(merged.test, task)), csv_number(lookup(merged.normalized, task)),
                         csv_number(merged.validation_average), hyperparameters,
                         csv_number(error_of(suite, merged.test, task)),
                         csv_number(gain.gain ? std::optional<double>(gain.gain->value) : std::nullopt),
                         csv_number(gain.gain ? gain.gain->standard_error : std::nullopt),
                         gain.pretrained_model ? "true" : "false"});
    }
  }
  return csv;
}

std::string num_tasks_csv(const ReportResults& results) {
  std::string csv = csv_line({"suite", "method", "mode", "space", "k", "subsets", "normalized_average", "normalized_std",
                              "absolute_average"});
  for (const auto& suite : results.suites) {
    if (!suite.num_tasks_sweep) continue;
    for (const auto& point : *suite.num_tasks_sweep)
      csv += csv_line({suite.name, point.method, point.mode, point.space, std::to_string(point.k),
                       std::to_string(point.subset_count), csv_number(point.normalized_average),
                       csv_number(point.normalized_std), csv_number(point.absolute_average)});
  }
  return csv;
}

std::string cross_task_csv(const ReportResults& results) {
  std::string csv = csv_line({"suite", "mode", "finetuned_on", "evaluated_on", "score", "zero_shot"});
  for (const auto& suite : results.suites) {
    if (!suite.cross_task) continue;
    for (const auto& mode : suite.modes) {
      auto found = suite.cross_task->find(mode);
      if (found == suite.cross_task->end()) continue;
      for (size_t i = 0; i < suite.tasks.size(); ++i)
        for (size_t j = 0; j < suite.tasks.size(); ++j) {
          std::optional<double> zero_shot;
          if (suite.zero_shot)
            if (auto z = suite.zero_shot->find(suite.tasks[j]); z != suite.zero_shot->end()) zero_shot = z->second;
          csv += csv_line({suite.name, mode, suite.tasks[i], suite.tasks[j], csv_number(found->second[i][j]),
                           csv_number(zero_shot)});
        }
    }
  }
  return csv;
}

std::string cosine_csv(const ReportResults& results) {
  std::string csv = csv_line({"suite", "mode", "matrix", "task_a", "task_b", "cosine"});
  for (const auto& suite : results.suites) {
    if (!suite.cosine_similarity) continue;
    for (const auto& mode : suite.modes) {
      auto found = suite.cosine_similarity->find(mode);
      if (found == suite.cosine_similarity->end()) continue;
      for (const auto& [kind, matrix] : {std::pair<std::string, const Matrix*>("flattened", &found->second.matrix),
                                         {"layer_averaged", &found->second.layer_averaged_matrix}})
        for (size_t i = 0; i < matrix->size(); ++i)
          for (size_t j = 0; j < matrix->size(); ++j)
            csv += csv_line({suite.name, mode, kind, suite.tasks[i], suite.tasks[j], csv_number((*matrix)[i][j])});
    }
  }
  return csv;
}

std::string disentanglement_csv(const ReportResults& results) {
  std::string csv = csv_line({"suite", "mode", "task_a", "task_b", "grid_points", "mean_error", "mean_error_within_1"});
  for (const auto& suite : results.suites) {
    if (!suite.disentanglement) continue;
    for (const auto& grid : *suite.disentanglement)
      csv += csv_line({suite.name, grid.mode, grid.task_a, grid.task_b,
                       std::to_string(grid.coefficients.size() * grid.coefficients.size()),
                       csv_number(mean_disentanglement_error(grid, -1)), csv_number(mean_disentanglement_error(grid, 1.0))});
  }
  return csv;
}

}  // namespace linfuse::experiments::report
