// The headline of a suite's merged models: per method x mode, the merged test average beside zero-shot and the
// mode's single-task average, the retained gain G (report_gain.h) and the normalized score; for the vision
// suite, the paper's own numbers for comparison (see report_sections.h).
#include <algorithm>

#include "experiments/report_format.h"
#include "experiments/report_gain.h"
#include "experiments/report_sections.h"

namespace linfuse::experiments::report {
namespace {

// The paper's CLIP ViT-B/16 results with all 7 tasks merged (../shared/research/paper.md §3d, a reconstruction
// from the CSVs of the paper's code, peta) and its single-task and zero-shot test averages over the same 7
// tasks (§3a). Mean accuracies in %; the normalized score as a fraction (the mean of per-task ratios).
struct PaperMerge {
  const char* method;  // this project's method name
  const char* mode;    // the paper's mode name
  double merged, normalized;
};
constexpr double kPaperZeroShot = 36.7;
struct PaperMode {
  const char* mode;
  double single_task;
};
constexpr PaperMode kPaperModes[] = {{"FFT", 91.0}, {"LoRA", 78.9}, {"L-LoRA", 66.9}};
constexpr PaperMerge kPaperMerges[] = {
    {"simple_average", "FFT", 61.5, 0.681},  {"simple_average", "LoRA", 43.2, 0.574},  {"simple_average", "L-LoRA", 42.5, 0.661},
    {"task_arithmetic", "FFT", 72.0, 0.788}, {"task_arithmetic", "LoRA", 51.6, 0.672}, {"task_arithmetic", "L-LoRA", 55.3, 0.835},
    {"ties", "FFT", 74.2, 0.812},            {"ties", "LoRA", 50.8, 0.662},            {"ties", "L-LoRA", 50.4, 0.769},
    {"lorahub", "FFT", 47.6, 0.546},         {"lorahub", "LoRA", 53.6, 0.694},         {"lorahub", "L-LoRA", 56.5, 0.852},
};

// The grid-searched hyperparameters as "keep = 0.2, lambda = 0.35" (the other methods' settings are fixed or
// learned otherwise; the per-method tables list them all); a merge that chose lambda 0 is flagged, since it
// is the pretrained model.
std::string chosen_cell(const MergedResult& merged) {
  std::string text;
  for (const auto& [name, value] : merged.hyperparameters) {
    bool searched = name == "lambda" || name == "keep" || name == "drop";
    if (!searched || (name == "lambda" && merged_is_pretrained(merged))) continue;
    text += (text.empty() ? "" : ", ") + name + " = " + value;
  }
  if (merged_is_pretrained(merged)) text += (text.empty() ? "" : "; ") + std::string("lambda 0: the pretrained model");
  return text.empty() ? kMissing : text;
}

std::string gain_cell(const RetainedGain& gain) {
  if (!gain.gain) return "not defined";
  std::string text = gain_text(gain.gain);
  if (gain.gain_within_noise) text += " (gain within noise)";
  return text;
}

// One table of a space: a row per method x mode.
std::string space_table(const SuiteResults& suite, const std::string& space, bool with_all_tasks_column) {
  std::vector<std::string> header = {"method", "mode", "merged"};
  if (with_all_tasks_column) header.push_back("merged, all tasks");
  for (const char* column : {"zero-shot", "single-task", "retained gain G", "normalized", "chosen on validation"})
    header.push_back(column);
  MarkdownTable table(header, 2);
  for (const auto& method : ordered_methods(*suite.merged))
    for (const auto& mode : suite.modes) {
      const MergedResult* result = find_merged(suite, method, mode, space);
      if (!result) continue;
      RetainedGain gain = retained_gain(suite, *result);
      std::vector<std::string> cells = {method_title(method), mode, percent_with_error(gain.merged)};
      if (with_all_tasks_column) cells.push_back(percent_with_error(average_estimate(suite, result->test, suite.tasks)));
      cells.push_back(percent_with_error(gain.zero_shot));
      cells.push_back(percent_with_error(gain.single_task));
      cells.push_back(gain_cell(gain));
      cells.push_back(percent(normalized_average_of(*result, normalization_tasks(suite))));
      cells.push_back(chosen_cell(*result));
      table.add_row(cells);
    }
  return table.str();
}

std::string paper_reference() {
  std::string text =
      "#### The paper's values for comparison (CLIP ViT-B/16, all 7 tasks merged)\n\n"
      "From the CSVs of the paper's code (research notes §3d, a reconstruction: the paper's Table 1 itself was not "
      "found), test split, mean accuracy over the 7 tasks; zero-shot and single-task averages over the same tasks "
      "(§3a); G computed here from them. The paper's normalized score is the mean of per-task ratios. No standard "
      "errors: the notes do not give the test sizes. The paper's L-LoRA is what its code computes, each LoRA layer "
      "linearized on its own (this project's `l-lora-local`); its equation is `l-lora`.\n\n";
  MarkdownTable table({"method", "mode", "merged", "zero-shot", "single-task", "retained gain G", "normalized"}, 2);
  for (const PaperMerge& merge : kPaperMerges) {
    const PaperMode* mode = std::find_if(std::begin(kPaperModes), std::end(kPaperModes),
                                         [&](const PaperMode& m) { return std::string(m.mode) == merge.mode; });
    Estimate merged{merge.merged / 100, std::nullopt}, zero_shot{kPaperZeroShot / 100, std::nullopt},
        single_task{mode->single_task / 100, std::nullopt};
    table.add_row({method_title(merge.method), merge.mode, fixed(merge.merged, 1), fixed(kPaperZeroShot, 1),
                   fixed(mode->single_task, 1), gain_text(gain_from_averages(merged, zero_shot, single_task)),
                   fixed(100 * merge.normalized, 1)});
  }
  return text + table.str() + "\n";
}

}  // namespace

std::string merged_headline(const SuiteResults& suite) {
  std::string text = "#### Headline: retained gain G of the merged models\n\n";
  const std::vector<std::string>& learned = normalization_tasks(suite);
  const bool every_task = learned.size() == suite.tasks.size();
  text += "G = (merged - zero-shot) / (single-task - zero-shot), on test averages: the share of the mode's own "
          "fine-tuning gain the merged model keeps (1: all of it; 0: the pretrained model's score; below 0: worse "
          "than the pretrained model). Unlike the normalized score, it does not reward a mode whose fine-tuning "
          "moved little. ";
  if (learned.empty()) {
    text += "**G is not defined here: no task was learned by every mode**, so there is no fine-tuning gain to "
            "retain; merged, zero-shot and single-task are averages over all " + std::to_string(suite.tasks.size()) +
            " tasks. ";
  } else if (every_task) {
    text += "Averages over all " + std::to_string(suite.tasks.size()) + " tasks (every task was learned by every mode). ";
  } else {
    text += "Averages over the " + std::to_string(learned.size()) + " of " + std::to_string(suite.tasks.size()) +
            " tasks the normalized scores use, those every mode learned (" + comma_list(learned) +
            "); `merged, all tasks` is over every task. ";
  }
  text += "Scores in % ± one standard error; normalized: the mean over the same tasks of merged / single-task. "
          "Chosen on validation: the grid-searched lambda, keep (TIES) and drop (DARE); the other methods' settings "
          "are fixed or learned otherwise (the per-method tables below list them). lambda 0 means the merged model "
          "is the pretrained model, so its G is 0 by construction.\n\n";
  std::vector<std::string> spaces;
  for (const auto& result : *suite.merged) spaces.push_back(result.space);
  for (const auto& space : ordered_spaces(spaces)) {
    text += space == "parameter" ? std::string("Parameter space (task vectors of the trained tensors):\n\n")
                                 : capitalized(space) + " space" +
                                       (space == "weight" ? " (LoRA's Delta W = s B A merged exactly):\n\n" : ":\n\n");
    text += space_table(suite, space, !learned.empty() && !every_task) + "\n";
  }
  if (suite.name == "vision") return text + paper_reference();
  if (suite.name == "text")
    text += "No paper values for the text suite: with the prefixes of the paper's code the pretrained Flan-T5 "
            "scores 0 exact match on every task (research notes §3d), an artefact of its answer format rather than "
            "a measure of what it knows, so its G would only repeat its normalized score and could not be compared "
            "with this suite's G, whose zero-shot model answers in the label words; the notes give the paper's "
            "merged text models as normalized scores only.\n\n";
  return text;
}

}  // namespace linfuse::experiments::report
