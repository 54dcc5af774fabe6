// The per-suite sections of report.md: overview, merged models, number-of-tasks sweep, cosine similarity,
// cross-task scores, weight disentanglement (see report_sections.h).
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "experiments/report_format.h"
#include "experiments/report_sections.h"
#include "experiments/report_uncertainty.h"

namespace linfuse::experiments::report {
namespace {

std::string note(const std::string& text) { return "_" + text + "_\n\n"; }

// "accuracy in %" or "accuracy in % (stsb: Spearman's rho x100)".
std::string metric_description(const SuiteResults& suite) {
  std::vector<std::string> regression;
  for (const auto& task : suite.tasks) {
    auto found = suite.metric.find(task);
    if (found == suite.metric.end() || found->second == "accuracy") continue;
    regression.push_back(task + ": " + (found->second == "spearman" ? std::string("Spearman's rho") : found->second));
  }
  std::string text = "accuracy in %";
  if (!regression.empty()) {
    text += " (";
    text += comma_list(regression);
    text += " x100)";
  }
  return text;
}

std::vector<std::string> task_header(const SuiteResults& suite, std::vector<std::string> labels) {
  labels.insert(labels.end(), suite.tasks.begin(), suite.tasks.end());
  labels.push_back("average");
  return labels;
}

std::vector<std::string> score_cells(const SuiteResults& suite, const ScoreByTask& scores, std::vector<std::string> labels,
                                     const std::optional<double>& average) {
  for (const auto& task : suite.tasks) {
    auto found = scores.find(task);
    labels.push_back(found == scores.end() ? kMissing : percent(found->second));
  }
  labels.push_back(percent(average));
  return labels;
}

// Like score_cells, each score with its standard error ("71.2 ± 1.4"); the average over all of the suite's tasks.
std::vector<std::string> score_cells_with_error(const SuiteResults& suite, const ScoreByTask& scores,
                                                std::vector<std::string> labels) {
  for (const auto& task : suite.tasks) labels.push_back(percent_with_error(task_estimate(suite, scores, task)));
  labels.push_back(percent_with_error(average_estimate(suite, scores, suite.tasks)));
  return labels;
}

std::vector<std::string> merged_spaces(const std::vector<MergedResult>& merged) {
  std::vector<std::string> spaces;
  for (const auto& result : merged) spaces.push_back(result.space);
  return ordered_spaces(spaces);
}

std::string hyperparameter_text(const MergedResult& merged) {
  if (merged.hyperparameters.empty()) return "none";
  std::string text;
  for (const auto& [name, value] : merged.hyperparameters) text += (text.empty() ? "" : ", ") + name + " = " + value;
  return text;
}

// Method (rows) x mode (columns) of one average, best cell of each row in bold; absolute averages with their
// standard error.
std::string method_by_mode_table(const SuiteResults& suite, const std::string& space, bool normalized) {
  const auto& merged = *suite.merged;
  std::vector<std::string> modes;
  for (const auto& mode : suite.modes)
    for (const auto& result : merged)
      if (result.mode == mode && result.space == space) {
        modes.push_back(mode);
        break;
      }
  std::vector<std::string> header = {"method"};
  header.insert(header.end(), modes.begin(), modes.end());
  MarkdownTable table(header);
  for (const auto& method : ordered_methods(merged)) {
    std::vector<std::string> cells = {method_title(method)}, values, errors;
    std::string best;
    double best_value = -INFINITY;
    bool any = false;
    for (const auto& mode : modes) {
      const MergedResult* result = find_merged(suite, method, mode, space);
      std::optional<double> value;
      std::string error;  // " ± 1.4" when known
      if (result) value = normalized ? normalized_average_of(*result, normalization_tasks(suite)) : test_average_of(*result, suite.tasks);
      if (result && !normalized)
        if (auto estimate = average_estimate(suite, result->test, suite.tasks); estimate && estimate->standard_error)
          error = " ± " + percent(*estimate->standard_error);
      values.push_back(percent(value));
      errors.push_back(error);
      if (value && *value > best_value) best_value = *value, best = percent(*value);
      any = any || value.has_value();
    }
    if (!any) continue;
    // Bold every cell that reads as the best value, so equal-looking cells are treated alike.
    for (size_t c = 0; c < values.size(); ++c)
      cells.push_back(values[c] == best ? "**" + values[c] + errors[c] + "**" : values[c] + errors[c]);
    table.add_row(cells);
  }
  return table.str();
}

std::string method_part(const SuiteResults& suite, const std::string& method) {
  std::string text = "#### " + method_title(method) + " (`" + method + "`)\n\n";
  std::vector<const MergedResult*> rows;
  for (const auto& space : merged_spaces(*suite.merged))
    for (const auto& mode : suite.modes)
      if (const MergedResult* result = find_merged(suite, method, mode, space)) rows.push_back(result);
  std::vector<std::string> absolute_header = task_header(suite, {"mode", "space"});
  absolute_header.push_back("validation average");
  absolute_header.push_back("hyperparameters");
  MarkdownTable absolute(absolute_header, 2);
  MarkdownTable normalized(task_header(suite, {"mode", "space"}), 2);
  for (const MergedResult* result : rows) {
    auto cells = score_cells_with_error(suite, result->test, {result->mode, result->space});
    // A merge with a failed task has no average over its scores; show the written one, if any.
    if (cells.back() == kMissing) cells.back() = percent(test_average_of(*result, suite.tasks));
    cells.push_back(percent(result->validation_average));
    cells.push_back(hyperparameter_text(*result));
    absolute.add_row(cells);
    normalized.add_row(
        score_cells(suite, result->normalized, {result->mode, result->space}, normalized_average_of(*result, normalization_tasks(suite))));
  }
  text += "Absolute score (%) ± one standard error, test split; hyperparameters chosen on the validation split:\n\n" +
          absolute.str() + "\n";
  text += "Normalized score (%), test split:\n\n" + normalized.str() + "\n";
  return text;
}

// How many test examples each score is measured on, which sets its standard error.
std::string test_examples_note(const SuiteResults& suite) {
  if (!suite.test_examples)
    return note("No standard errors: this results.json predates the per-task test_examples they are computed from.");
  std::map<int64_t, std::vector<std::string>> by_count;
  for (const auto& task : suite.tasks)
    if (auto found = suite.test_examples->find(task); found != suite.test_examples->end()) by_count[found->second].push_back(task);
  std::string text = "± is one standard error of the test score (formulas at the top of the report), from the test "
                     "examples scored per task: ";
  if (by_count.size() == 1 && by_count.begin()->second.size() == suite.tasks.size())
    return text + std::to_string(by_count.begin()->first) + " for every task.\n\n";
  std::string sep;
  for (const auto& [count, tasks] : by_count) text += sep + std::to_string(count) + " (" + comma_list(tasks) + ")", sep = "; ";
  return text + ".\n\n";
}

// The regime the scores put the study in, the two conditions a merging study needs (issue 17's targets, checked on
// any run): a pretrained model that knows something of the tasks (zero-shot above its learned threshold, chance
// plus merge.learned_margin_se standard errors) and fine-tuning that still adds to it (5 points or more).
std::string regime_note(const SuiteResults& suite) {
  constexpr double kClearGain = 0.05;   // 5 points of the metric
  if (!suite.zero_shot) return "";
  std::string text = "Regime: ";
  if (suite.learned_thresholds) {
    std::vector<std::string> above;
    for (const auto& task : suite.tasks) {
      auto score = suite.zero_shot->find(task);
      auto threshold = suite.learned_thresholds->find(task);
      if (score != suite.zero_shot->end() && threshold != suite.learned_thresholds->end() && score->second > threshold->second)
        above.push_back(task);
    }
    text += "zero-shot is above chance plus merge.learned_margin_se standard errors (the learned threshold) on " +
            std::to_string(above.size()) + " of " + std::to_string(suite.tasks.size()) + " tasks" +
            (above.empty() ? "" : " (" + comma_list(above) + ")") + "; ";
  }
  if (!suite.single_task) return text + "no single-task scores.\n\n";
  std::string joined_counts, joined_modes;   // "6 / 5 / 4", "full / lora / l-lora"
  for (const auto& mode : suite.modes) {
    auto scores = suite.single_task->find(mode);
    if (scores == suite.single_task->end()) continue;
    int gained = 0;
    for (const auto& task : suite.tasks) {
      auto tuned = scores->second.find(task);
      auto zero = suite.zero_shot->find(task);
      if (tuned != scores->second.end() && zero != suite.zero_shot->end() && tuned->second - zero->second >= kClearGain - 1e-12)
        ++gained;
    }
    const char* separator = joined_modes.empty() ? "" : " / ";
    joined_counts += separator + std::to_string(gained);
    joined_modes += separator + mode;
  }
  return text + "fine-tuning adds 5 points or more to zero-shot on " + joined_counts + " of " +
         std::to_string(suite.tasks.size()) + " tasks (" + joined_modes + ").\n\n";
}

std::string cosine_cell(const std::optional<double>& value) { return value ? fixed(*value, 3) : kMissing; }

}  // namespace

std::string suite_overview_section(const SuiteResults& suite) {
  std::string text = "## " + capitalized(suite.name) + " suite\n\n";
  if (!suite.model.empty()) text += "Model: " + suite.model + ".  \n";
  text += std::to_string(suite.tasks.size()) + " tasks: ";
  text += comma_list(suite.tasks);
  text += ".  \nScores: " + metric_description(suite) + ", on the test split.  \n";
  if (!suite.scoring.empty()) text += "Answers: " + suite.scoring + ".  \n";
  auto stage_line = [&](const std::optional<PretrainSummary>& stage, const std::string& label) {
    if (!stage) return;
    text += label + ":";
    if (stage->steps) text += " " + with_thousands(*stage->steps) + " steps";
    if (stage->examples) text += " on " + with_thousands(*stage->examples) + " training examples of the tasks";
    if (stage->final_loss) text += ", final loss " + fixed(*stage->final_loss, 3);
    if (stage->seconds) text += ", " + duration_text(*stage->seconds);
    text += ".  \n";
  };
  stage_line(suite.pretrain, "Pretraining");
  stage_line(suite.instruct, "Instruction tuning (as Flan-T5: a multitask mixture, before any per-task fine-tuning)");
  if (suite.pretrain || suite.instruct) text += "\n";
  text += "\n### Zero-shot and single-task scores (test split)\n\n";
  MarkdownTable scores(task_header(suite, {"model"}));
  if (suite.zero_shot)
    scores.add_row(score_cells_with_error(suite, *suite.zero_shot, {suite.instruct ? "zero-shot (instruction-tuned)" : "zero-shot (pretrained)"}));
  if (suite.baseline) scores.add_row(score_cells_with_error(suite, *suite.baseline, {"word-feature baseline"}));
  if (suite.single_task)
    for (const auto& mode : suite.modes) {
      auto found = suite.single_task->find(mode);
      if (found == suite.single_task->end()) continue;
      scores.add_row(score_cells_with_error(suite, found->second, {mode}));
    }
  if (scores.rows() > 0) text += scores.str() + "\n" + test_examples_note(suite) + regime_note(suite);
  if (suite.baseline) {
    std::map<std::string, std::vector<std::string>> by_features;
    for (const auto& task : suite.tasks)
      if (auto f = suite.baseline_features.find(task); f != suite.baseline_features.end()) by_features[f->second].push_back(task);
    text += "Word-feature baseline: a logistic regression (least squares for a regression task) trained on the same "
            "training split, on features of the words only (experiments/text_baseline.h), as GLUE's CBOW baseline: "
            "it shows how far each task can be solved without any grasp of language";
    std::string sep = " (";
    for (const auto& [features, tasks] : by_features) {
      text += sep + features + ": " + comma_list(tasks);
      sep = "; ";
    }
    text += by_features.empty() ? ".\n\n" : ").\n\n";
  }
  if (!suite.zero_shot) text += note("No zero-shot scores in results.json.");
  if (!suite.single_task) text += note("No single-task scores in results.json: the fine-tuning stage did not run.");

  text += "### Fine-tuning modes\n\n";
  if (!suite.trainable_parameters && !suite.finetune_seconds) return text + note("No parameter counts or fine-tuning times in results.json.");
  std::optional<int64_t> full_count;
  if (suite.trainable_parameters && suite.trainable_parameters->count("full")) full_count = suite.trainable_parameters->at("full");
  std::vector<std::string> header = {"mode", "trainable parameters"};
  if (full_count) header.push_back("% of full");
  header.push_back("fine-tuning time (all tasks)");
  MarkdownTable modes(header);
  for (const auto& mode : suite.modes) {
    std::optional<int64_t> count;
    if (suite.trainable_parameters && suite.trainable_parameters->count(mode)) count = suite.trainable_parameters->at(mode);
    std::optional<double> seconds;
    size_t timed_tasks = 0;
    if (suite.finetune_seconds && suite.finetune_seconds->count(mode))
      for (const auto& [task, s] : suite.finetune_seconds->at(mode)) seconds = seconds.value_or(0) + s, ++timed_tasks;
    if (!count && !seconds) continue;
    std::vector<std::string> cells = {mode, count ? with_thousands(*count) : kMissing};
    if (full_count) cells.push_back(count && *full_count > 0 ? fixed(100.0 * double(*count) / double(*full_count), 2) : kMissing);
    std::string time = seconds ? duration_text(*seconds) : kMissing;
    if (seconds && timed_tasks < suite.tasks.size())
      time += " (" + std::to_string(timed_tasks) + " of " + std::to_string(suite.tasks.size()) + " tasks)";
    cells.push_back(time);
    modes.add_row(cells);
  }
  return text + modes.str() + "\n";
}

// Which tasks the normalized scores count, and why the others are left out (suite_common.h, learned_threshold).
std::string learned_tasks_note(const SuiteResults& suite) {
  if (!suite.normalized_tasks || !suite.learned_thresholds) return "";
  const auto& kept = *suite.normalized_tasks;
  std::string text = "Normalized scores and the retained gain G count only the tasks that every mode learned: a single-task test score above "
                     "chance by merge.learned_margin_se (2 in every preset) standard errors of a chance-level score on "
                     "the test split (a ratio to a score within noise of chance means nothing). ";
  if (kept.size() == suite.tasks.size()) return text + "Every task passed.\n\n";
  if (kept.empty()) {
    text += "No task passed, so there are no normalized scores and G is not defined.";
  } else {
    text += std::to_string(kept.size()) + " of " + std::to_string(suite.tasks.size()) + " tasks passed: " + comma_list(kept) + ".";
  }
  text += " Left out (threshold; the lowest single-task score and its mode):";
  std::string sep = " ";
  for (const auto& task : suite.tasks) {
    if (std::find(kept.begin(), kept.end(), task) != kept.end()) continue;
    auto threshold = suite.learned_thresholds->find(task);
    std::string lowest;
    double low = 1e300;
    if (suite.single_task)
      for (const auto& [mode, scores] : *suite.single_task)
        if (auto s = scores.find(task); s != scores.end() && s->second < low) low = s->second, lowest = mode;
    text += sep + task + " (" + (threshold != suite.learned_thresholds->end() ? percent(threshold->second) : "?") +
            (lowest.empty() ? "" : "; " + percent(low) + " " + lowest) + ")";
    sep = ", ";
  }
  return text + ".\n\n";
}

std::string merged_section(const SuiteResults& suite) {
  std::string text = "### Merged models (test split)\n\n";
  if (!suite.merged || suite.merged->empty()) return text + note("No merged models in results.json: the merging stage did not run.");
  text += learned_tasks_note(suite);
  text += merged_headline(suite);
  text +=
      "The paper's presentation follows. Normalized score = merged score / single-task score of the same mode on "
      "the same task, in % (100: nothing lost by merging). Hyperparameters were chosen on the validation split. "
      "Space `parameter`: task vectors of the trained tensors (full weights, or LoRA's A and B merged separately, "
      "as the paper's code does); `weight`: LoRA's Delta W = s B A merged exactly.\n\n";
  for (const auto& space : merged_spaces(*suite.merged)) {
    text += "#### Normalized average (%), " + space + " space: method x mode, best mode of each method in bold\n\n";
    text += method_by_mode_table(suite, space, true) + "\n";
  }
  for (const auto& space : merged_spaces(*suite.merged)) {
    text += "#### Absolute average (%), " + space + " space: method x mode, best mode of each method in bold\n\n";
    text += method_by_mode_table(suite, space, false) + "\n";
  }
  for (const auto& method : ordered_methods(*suite.merged)) text += method_part(suite, method);
  return text;
}

// One row per method x space x mode, one column per k; `cell` renders a point (empty: no value).
static std::string sweep_table(const SuiteResults& suite, const std::function<std::string(const SweepPoint&)>& cell) {
  const auto& sweep = *suite.num_tasks_sweep;
  std::set<int64_t> ks;
  for (const auto& point : sweep) ks.insert(point.k);
  std::vector<std::string> header = {"method", "mode", "space"};
  for (int64_t k : ks) header.push_back("k=" + std::to_string(k));
  MarkdownTable table(header, 3);
  for (const auto& method : ordered_sweep_methods(sweep)) {
    std::vector<std::string> spaces;
    for (const auto& point : sweep)
      if (point.method == method) spaces.push_back(point.space);
    for (const auto& space : ordered_spaces(spaces))
      for (const auto& mode : suite.modes) {
        std::map<int64_t, const SweepPoint*> by_k;
        for (const auto& point : sweep)
          if (point.method == method && point.space == space && point.mode == mode) by_k[point.k] = &point;
        if (by_k.empty()) continue;
        std::vector<std::string> cells = {method_title(method), mode, space};
        for (int64_t k : ks) {
          auto found = by_k.find(k);
          std::string value = found == by_k.end() ? "" : cell(*found->second);
          cells.push_back(value.empty() ? kMissing : value);
        }
        table.add_row(cells);
      }
  }
  return table.str();
}

std::string num_tasks_section(const SuiteResults& suite, const PlotSet& plots) {
  std::string text = "### Normalized score vs number of merged tasks (test split)\n\n";
  if (!suite.num_tasks_sweep || suite.num_tasks_sweep->empty()) {
    if (suite.normalized_tasks && suite.normalized_tasks->empty())
      return text + note("No number-of-tasks sweep: its normalized scores need a learned task, and no task was "
                         "learned by every mode (see the merged models above).");
    return text + note("No number-of-tasks sweep in results.json: the sweep did not run.");
  }
  const auto& sweep = *suite.num_tasks_sweep;
  text += "Mean normalized average (%) over the subsets of k tasks ± standard deviation across the subsets (no "
          "spread when one subset was merged).";
  if (auto normalized_over = sweep_normalized_over(sweep))
    text += " Subsets are drawn from all " + std::to_string(suite.tasks.size()) + " tasks among those holding a "
            "learned task (" + comma_list(*normalized_over) + "), and normalized over the learned tasks they hold: the other tasks' "
            "vectors are merged in, but a ratio to their near-chance single-task scores would be noise. So this "
            "measures how much of the learned tasks' gain survives k - 1 other task vectors.";
  text += "\n\n" + sweep_table(suite, [](const SweepPoint& point) {
    std::string cell = percent(point.normalized_average);
    // A spread across one subset is 0 by definition: shown only when there were several.
    if (point.normalized_std && point.subset_count != 1) cell += " ± " + percent(*point.normalized_std);
    return cell;
  }) + "\n";
  bool has_absolute = std::any_of(sweep.begin(), sweep.end(), [](const SweepPoint& p) { return p.absolute_average.has_value(); });
  if (has_absolute)
    text += "Absolute test average (" + metric_description(suite) + ") of the same merged models over every task "
            "of the subsets, mean over the subsets:\n\n" +
            sweep_table(suite, [](const SweepPoint& point) {
              return point.absolute_average ? percent(*point.absolute_average) : std::string();
            }) + "\n";
  return text + plots.markdown(suite.name, "num_tasks");
}

std::string cosine_section(const SuiteResults& suite, const PlotSet& plots) {
  std::string text = "### Cosine similarity of task vectors\n\n";
  if (!suite.cosine_similarity || suite.cosine_similarity->empty())
    return text + note("No cosine similarities in results.json: the analysis stage did not run.");
  text += "Mean over pairs of different tasks (off-diagonal entries). Flattened: one vector per task made of all "
          "trained tensors; layer-averaged: cosine per tensor, averaged over the tensors. Mean |cos| (computed "
          "here from the matrices) measures distance from orthogonality, whatever the sign.\n\n";
  MarkdownTable table({"mode", "mean cos, flattened", "mean |cos|, flattened", "mean cos, layer-averaged",
                       "mean |cos|, layer-averaged"});
  for (const auto& mode : suite.modes) {
    auto found = suite.cosine_similarity->find(mode);
    if (found == suite.cosine_similarity->end()) continue;
    const CosineSimilarity& cosine = found->second;
    table.add_row({mode, cosine_cell(cosine.mean_off_diagonal), cosine_cell(mean_abs_off_diagonal(cosine.matrix)),
                   cosine_cell(cosine.layer_averaged_mean_off_diagonal),
                   cosine_cell(mean_abs_off_diagonal(cosine.layer_averaged_matrix))});
  }
  text += table.str() + "\n";
  std::string images = plots.markdown(suite.name, "cosine");
  if (!images.empty())
    text += "Heatmaps of the flattened task vectors' cosine similarity; one colour range for every mode of the suite "
            "(the diagonal, always 1, is left blank):\n\n" + images;
  return text;
}

std::string cross_task_section(const SuiteResults& suite, const PlotSet& plots) {
  std::string text = "### Cross-task scores of the fine-tuned models\n\n";
  if (!suite.cross_task || suite.cross_task->empty())
    return text + note("No cross-task scores in results.json: the analysis stage did not run.");
  if (!suite.zero_shot) return text + note("No zero-shot scores in results.json to compare the cross-task scores with.");
  text += "Each model fine-tuned on one task, scored on every task's test split, minus the pretrained model's "
          "(zero-shot) score on that task, in points (" + metric_description(suite) + "). Own task: the mean "
          "single-task gain. Other tasks: the mean over the ordered pairs of different tasks, i.e. what one task's "
          "fine-tuning does to the rest, which a merge of the task vectors has to live with. Largest drop: "
          "fine-tuned on -> scored on.\n\n";
  MarkdownTable table({"mode", "own task", "other tasks", "pairs below zero-shot", "largest drop"});
  for (const auto& mode : suite.modes) {
    auto found = suite.cross_task->find(mode);
    if (found == suite.cross_task->end()) continue;
    auto change = cross_task_change(suite, found->second);
    if (!change) continue;
    const size_t n = change->size();   // the suite's task count, at least 1
    double own = 0, worst = 0;
    size_t below = 0;
    std::string worst_pair = kMissing;
    for (size_t i = 0; i < n; ++i) {
      own += (*change)[i][i];
      for (size_t j = 0; j < n; ++j) {
        double points = (*change)[i][j];
        if (i == j) continue;
        below += points < 0;
        if (points < worst) worst = points, worst_pair = suite.tasks[i] + " -> " + suite.tasks[j] + " " + signed_fixed(points, 1);
      }
    }
    auto others = mean_off_diagonal(*change);
    table.add_row({mode, signed_fixed(own / double(n), 1), others ? signed_fixed(*others, 1) : kMissing,
                   std::to_string(below) + " of " + std::to_string(n * (n - 1)), worst_pair});
  }
  text += table.str() + "\n";
  std::string images = plots.markdown(suite.name, "cross_task");
  if (!images.empty())
    text += "Heatmaps of fine-tuned minus zero-shot score (rows: the task fine-tuned on; columns: the task scored; "
            "one colour range for every mode of the suite):\n\n" + images;
  return text;
}

std::string disentanglement_section(const SuiteResults& suite, const PlotSet& plots) {
  std::string text = "### Weight disentanglement\n\n";
  if (!suite.disentanglement || suite.disentanglement->empty())
    return text + note("No weight-disentanglement grids in results.json for this suite.");
  text += "Disentanglement error of the model merged with coefficients (a, b) on the two tasks' vectors, as computed "
          "by the experiment (0: each task keeps its own predictions; lower is better). Mean over the whole grid and "
          "over the points with |a| <= 1 and |b| <= 1 (the region that merging uses).\n\n";
  MarkdownTable table({"mode", "tasks", "grid", "mean error, whole grid", "mean error, |a|, |b| <= 1"}, 2);
  for (const auto& grid : *suite.disentanglement) {
    auto whole = mean_disentanglement_error(grid, -1), inside = mean_disentanglement_error(grid, 1.0);
    std::string size = std::to_string(grid.coefficients.size());
    table.add_row({grid.mode, grid.task_a + " + " + grid.task_b, size + " x " + size + ", a, b in [" +
                   fixed(grid.coefficients.front(), 1) + ", " + fixed(grid.coefficients.back(), 1) + "]",
                   whole ? fixed(*whole, 3) : kMissing, inside ? fixed(*inside, 3) : kMissing});
  }
  text += table.str() + "\n";
  std::string images = plots.markdown(suite.name, "disentanglement");
  if (!images.empty())
    text += "Heatmaps (one colour range per task pair, shared by its modes; dashed box: |a|, |b| <= 1):\n\n" + images;
  return text;
}

}  // namespace linfuse::experiments::report
