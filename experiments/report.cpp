// write_report: results.json -> report.md, CSV files and plots (see report.h). The pieces are built in
// report_tables.cpp (suite sections), report_csv.cpp, report_plots.cpp / report_gnuplot.cpp and
// report_claims.cpp; this file reads the results, writes the header and the claims, and writes the files.
#include "experiments/report.h"

#include <algorithm>
#include <filesystem>

#include "experiments/report_format.h"
#include "experiments/report_gain.h"
#include "experiments/report_sections.h"
#include "nn/atomic_file.h"

namespace linfuse::experiments {
namespace {

using namespace report;

std::string header_section(const ReportResults& results) {
  std::string text = "# linfuse experiment report\n\n";
  text += "Reproduction at CPU scale of \"Parameter Efficient Multi-task Model Fusion with Partial Linearization\" "
          "(Tang et al., ICLR 2024): models fine-tuned in five modes (full, linear-full, lora, l-lora = "
          "network-level linearized LoRA, l-lora-local = layer-level) are merged, and the merged models compared.\n\n";
  const Manifest& m = results.manifest;
  double total = 0;
  for (const auto& [stage, seconds] : m.stage_seconds) total += seconds;
  if (!m.present) {
    text += "_No manifest in results.json: preset, seed, commit and stage times are unknown._\n\n";
  } else {
    std::vector<std::string> facts;
    if (!m.preset.empty()) facts.push_back("preset `" + m.preset + "`");
    if (!m.suites.empty()) {
      std::string suites;
      for (const auto& suite : m.suites) suites += (suites.empty() ? "" : ", ") + suite;
      facts.push_back("suites " + suites);
    }
    if (m.seed) facts.push_back("seed " + std::to_string(*m.seed));
    if (m.threads) facts.push_back(std::to_string(*m.threads) + (*m.threads == 1 ? " thread" : " threads"));
    if (!m.commit.empty())
      facts.push_back("commit `" + m.commit + "`" + (m.dirty.value_or(false) ? " (dirty: with uncommitted changes)" : ""));
    if (!m.compiler.empty()) facts.push_back("built by " + m.compiler + " for -march=" + m.target_isa);
    if (!m.blas.empty()) facts.push_back(m.blas + " on its " + m.blas_core + " kernel");
    if (!m.kernel_isa.empty()) facts.push_back("linfuse's own kernels on " + m.kernel_isa);
    if (!m.started.empty()) facts.push_back("started " + m.started);
    if (!m.stage_seconds.empty()) facts.push_back("total time " + duration_text(total) + ", the sum of the stages");
    for (size_t i = 0; i < facts.size(); ++i) text += (i ? "; " : "") + (i ? facts[i] : capitalized(facts[i]));
    text += ".\n\n";
  }
  text += "Every score is measured on the test split, which played no part in choosing hyperparameters. "
          "Scores are in %: accuracy, or Spearman's rho x100 for a regression task. The CSV files next to this "
          "report (single_task.csv, merged.csv, num_tasks.csv, cosine.csv, cross_task.csv, disentanglement.csv) hold the same "
          "numbers in results.json's units (fractions of 1).\n\n";
  text += "The headline number of a merged model is its **retained gain G = (merged - zero-shot) / (single-task - "
          "zero-shot)**, on test averages over the tasks every mode learned (those the normalized scores use): the "
          "share of the mode's own fine-tuning gain that survives the merge (1: all of it; 0: no better than the "
          "pretrained model). The paper's normalized score (merged / single-task) is shown too, but it rewards a mode "
          "whose fine-tuning moved little: its merged model stays near the pretrained one and near its own "
          "single-task score.\n\n";
  text += "Standard errors (±) count the sampling of the test examples only, not the randomness of training or "
          "merging. A task's accuracy p on n test examples: sqrt(p (1 - p) / n); Spearman's rho on n pairs: "
          "(1 - rho^2) / sqrt(n - 2) (a large-sample approximation); an average over T tasks: sqrt(sum of the tasks' "
          "SE^2) / T. n is results.json's `test_examples` (evaluation.test_examples, capped by the task's test "
          "split). G's SE is by the delta method, taking merged (m), zero-shot (z) and single-task (s) averages as "
          "independent: sqrt(SE_m^2 + G^2 SE_s^2 + (1 - G)^2 SE_z^2) / (s - z); they are scored on the same test "
          "examples, so for G between 0 and 1 this is mostly an overestimate. \"gain within noise\": s - z is less "
          "than two standard errors of s - z, so G divides by noise. The number-of-tasks sweep and the cross-task "
          "tables (means over subsets of tasks or pairs of tasks) show no standard errors; one score on n examples "
          "has one of at most 50 / sqrt(n) points there.\n\n";
  if (m.present) {
    text += "### Time per stage\n\n";
    if (m.stage_seconds.empty()) return text + "_No stage times in the manifest._\n\n";
    MarkdownTable table({"stage", "time", "share"});
    for (const auto& [stage, seconds] : m.stage_seconds)
      table.add_row({stage, duration_text(seconds), total > 0 ? fixed(100 * seconds / total, 1) + " %" : kMissing});
    table.add_row({"total", duration_text(total), total > 0 ? "100.0 %" : kMissing});
    text += table.str() + "\n";
  }
  return text;
}

std::string plots_note(const PlotSet& plots) {
  switch (plots.status) {
    case PlotSet::Status::disabled:
      return "_Plots were not drawn (disabled in the report options)._\n\n";
    case PlotSet::Status::gnuplot_missing:
      return "**Plots were skipped: `" + plots.gnuplot +
             "` could not be run.** Install gnuplot with `apt-get install gnuplot-nox`, then either write the "
             "report again (`linfuse report RESULTS_DIR`) or run `gnuplot NAME.gp` in plots/, where the scripts and "
             "their data are ready.\n\n";
    case PlotSet::Status::rendered:
      break;
  }
  return "";
}

// Normalized scores divide by single-task scores: where fine-tuning barely beat the pretrained model, they say
// little, and the reader must know it before reading the verdicts (printed per suite and mode).
std::string fine_tuning_caveats(const ReportResults& results) {
  constexpr double kMeaningfulGain = 0.05;  // 5 points of the metric, averaged over the tasks
  std::string text;
  for (const auto& suite : results.suites) {
    if (!suite.zero_shot || !suite.single_task) continue;
    auto zero_shot = mean_over_tasks(*suite.zero_shot, suite.tasks);
    if (!zero_shot) continue;
    std::string weak;
    for (const auto& [mode, scores] : *suite.single_task) {
      auto tuned = mean_over_tasks(scores, suite.tasks);
      if (tuned && *tuned - *zero_shot < kMeaningfulGain)
        weak += (weak.empty() ? "" : ", ") + mode + " " + percent(*tuned);
    }
    if (!weak.empty())
      text += "- **Caveat (" + suite.name + ")**: fine-tuning gained less than 5 points over the pretrained model (zero-shot " +
              percent(*zero_shot) + "; single-task average " + weak +
              "), so this suite's normalized scores divide by near-zero-shot scores and the comparisons built on them "
              "are weak evidence either way.\n";
    // A simple word-feature model far above every fine-tuned one: the model, not the tasks, is the limit.
    if (auto baseline = suite.baseline ? mean_over_tasks(*suite.baseline, suite.tasks) : std::nullopt) {
      double best_tuned = -1e9;
      for (const auto& [mode, scores] : *suite.single_task)
        if (auto tuned = mean_over_tasks(scores, suite.tasks)) best_tuned = std::max(best_tuned, *tuned);
      if (best_tuned > -1e9 && *baseline - best_tuned > 0.1)
        text += "- **Caveat (" + suite.name + ")**: the word-feature baseline averages " + percent(*baseline) +
                ", more than 10 points above the best fine-tuned model (" + percent(best_tuned) +
                "): the tasks can be learned from their training splits, the model did not learn them at this scale.\n";
    }
    double best_merged = -1e9;
    if (suite.merged)
      for (const auto& m : *suite.merged)
        if (auto avg = mean_over_tasks(m.test, suite.tasks)) best_merged = std::max(best_merged, *avg);
    if (suite.merged && best_merged <= *zero_shot + 0.005)
      text += "- **Caveat (" + suite.name + ")**: no merged model beat the pretrained model by more than half a point (best merged "
              "test average " + percent(best_merged) + " vs zero-shot " + percent(*zero_shot) +
              "); at this scale merging mostly preserved the pretrained model, and the normalized scores compare how much "
              "of each mode's own fine-tuning gain survived, not merged models that improve on the pretrained one.\n";
    // The cross-task scores: when one task's fine-tuning alone lowers the other tasks in every mode, the task
    // vectors interfere before any merge, which bounds what a merge can keep.
    std::vector<double> other_task_change;
    if (suite.cross_task)
      for (const auto& [mode, matrix] : *suite.cross_task)
        if (auto change = cross_task_change(suite, matrix))
          if (auto others = mean_off_diagonal(*change)) other_task_change.push_back(*others);
    if (!other_task_change.empty()) {
      auto [low, high] = std::minmax_element(other_task_change.begin(), other_task_change.end());
      if (*high < 0)
        text += "- **Caveat (" + suite.name + ")**: fine-tuning one task alone lowers the other tasks' scores below the "
                "pretrained model's, by " + fixed(-*high, 1) + " to " + fixed(-*low, 1) + " points on average depending "
                "on the mode (Cross-task scores): the task vectors interfere before any merge, which bounds what merging "
                "can keep of every task's gain.\n";
    }
    // Task arithmetic at lambda 0 is the pretrained model: its normalized score is then zero-shot / single-task,
    // which ranks the modes by their single-task scores (lower is "better"), not by how well they merge.
    std::vector<std::string> at_zero;
    if (suite.merged)
      for (const auto& m : *suite.merged)
        if (m.method == "task_arithmetic" && merged_is_pretrained(m)) at_zero.push_back(m.mode + " (" + m.space + ")");
    if (!at_zero.empty()) {
      text += "- **Caveat (" + suite.name + ")**: task arithmetic chose lambda = 0, i.e. the pretrained model, on validation for";
      text += " " + comma_list(at_zero);
      text += ": there its normalized score is the zero-shot score over the single-task score, so it ranks the modes by "
              "their single-task scores (a lower one scores higher), not by how well their task vectors merge; its retained "
              "gain G is 0.\n";
    }
  }
  return text;
}

// How a verdict departs from the paper, for the sentence after its evidence ("" when it does not).
std::string disagreement(const std::string& verdict) {
  if (verdict == "did not hold") return "disagrees with the paper.";
  if (verdict == "mixed") return "partly disagrees with the paper.";
  return "";
}

std::string claims_section(const std::vector<ClaimVerdict>& verdicts, const std::string& caveats) {
  std::string text = "## Claims of the paper, checked on these results\n\n";
  text += "Each claim is judged separately for network-level L-LoRA (`l-lora`: the whole network linearized in the "
          "LoRA parameters) and layer-level L-LoRA (`l-lora-local`: each LoRA layer linearized on its own). "
          "held: every comparison agrees with the paper; did not hold: none does; mixed: some do. Claim (a) is "
          "judged twice: on the paper's normalized score and on the retained gain G (brackets: G of each side ± "
          "one SE); a comparison where both merged models are the pretrained model (lambda 0) is degenerate and "
          "does not count for G.\n\n";
  for (const auto& verdict : verdicts) {
    text += "- **" + verdict.verdict + "**";
    if (!verdict.gain_verdict.empty()) text += " (normalized score), **" + verdict.gain_verdict + "** (retained gain G)";
    text += ": " + verdict.claim + ". " + verdict.evidence;
    if (std::string d = disagreement(verdict.verdict); !d.empty()) text += " This " + d;
    if (std::string d = disagreement(verdict.gain_verdict); !d.empty()) text += " By G, this " + d;
    text += "\n";
  }
  return text + caveats + "\n";
}

}  // namespace

std::string write_report(const std::string& results_dir, const ReportOptions& options) {
  const std::string results_path = (std::filesystem::path(results_dir) / "results.json").string();
  ReportResults results = read_results_file(results_path);

  PlotSet plots;
  if (options.plots) {
    std::string plots_dir = (std::filesystem::path(results_dir) / "plots").string();
    std::filesystem::create_directories(plots_dir);
    plots = render_plots(plan_plots(results), plots_dir, options.gnuplot);
  }

  std::string markdown = header_section(results) + plots_note(plots);
  if (results.suites.empty()) markdown += "_No suite in results.json: nothing was run._\n\n";
  for (const auto& suite : results.suites)
    markdown += suite_overview_section(suite) + merged_section(suite) + num_tasks_section(suite, plots) +
                cosine_section(suite, plots) + cross_task_section(suite, plots) + scaling_section(suite) + leakage_section(suite) +
                linear_probe_section(suite) + domain_similarity_section(suite) + disentanglement_section(suite, plots);
  markdown += claims_section(report::evaluate_claims(results), fine_tuning_caveats(results));

  auto path_of = [&](const std::string& name) { return (std::filesystem::path(results_dir) / name).string(); };
  write_file_atomic(path_of("single_task.csv"), single_task_csv(results));
  write_file_atomic(path_of("merged.csv"), merged_csv(results));
  write_file_atomic(path_of("num_tasks.csv"), num_tasks_csv(results));
  write_file_atomic(path_of("cosine.csv"), cosine_csv(results));
  write_file_atomic(path_of("cross_task.csv"), cross_task_csv(results));
  write_file_atomic(path_of("disentanglement.csv"), disentanglement_csv(results));
  // report.md last: when it is there, everything it refers to is there too.
  const std::string report_path = path_of("report.md");
  write_file_atomic(report_path, markdown);
  return report_path;
}

}  // namespace linfuse::experiments
