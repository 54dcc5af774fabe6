#pragma once
// The report writer: turns the results.json of `linfuse experiment` (format: experiments/RESULTS_SCHEMA.md)
// into report.md, CSV tables and gnuplot plots, in the same folder. The report mirrors the paper's
// presentation (Tang et al., ICLR 2024): single-task scores, merged scores per method x fine-tuning mode
// (absolute and normalized), normalized score vs number of merged tasks, cosine similarity of task vectors,
// weight-disentanglement error, and a verdict on each of the paper's claims. Its headline number for a merged
// model is the retained gain G (report_gain.h); test scores carry standard errors (report_uncertainty.h).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace linfuse::experiments {

struct ReportOptions {
  bool plots = true;              // false: no plots/ folder at all (the report says plots were disabled)
  std::string gnuplot = "gnuplot";  // program run for the plots (searched in PATH like a shell would)
};

// Reads `results_dir`/results.json and writes, in `results_dir`: report.md, single_task.csv, merged.csv,
// num_tasks.csv, cosine.csv, disentanglement.csv, and plots/ (for each plot its .gp script, its data file,
// a .png and a .svg). Returns the path of report.md. results.json is only read.
// Sections missing from results.json are skipped with a one-line note. If gnuplot cannot be run, the plot
// scripts and data are still written and report.md says how to install gnuplot. Throws std::runtime_error
// naming the file and the problem if results.json is missing, not JSON, or does not follow the schema.
// The output depends only on results.json (no clock, no host names): two runs give identical files.
std::string write_report(const std::string& results_dir, const ReportOptions& options = {});

// One claim of the paper and what the results say about it.
struct ClaimVerdict {
  std::string claim;     // "(a) Network-level L-LoRA (`l-lora`) merges better than LoRA ..."
  std::string verdict;   // "held", "did not hold", "mixed", "not measured"
  std::string evidence;  // the numbers compared, e.g. "vision/parameter: task arithmetic 85.4 vs 77.6, ..."
  // Claim (a) only: the same comparisons judged on the retained gain G (report_gain.h), in the same words;
  // empty for the claims measured one way.
  std::string gain_verdict;
};

// Evaluates the paper's claims on a results document (the parsed results.json):
//  (a) L-LoRA merges better than LoRA under task arithmetic, TIES, simple averaging and LoraHub
//      (normalized test average, every suite and space where both were merged), and again on the retained
//      gain G (gain_verdict; a comparison where both merged models are the pretrained model, lambda 0, is
//      degenerate and not counted there);
//  (b) L-LoRA task vectors are less similar than LoRA's (mean |cosine| off the diagonal, flattened and
//      layer-averaged);
//  (c) the advantage of L-LoRA over LoRA grows with the number of merged tasks (difference of normalized
//      averages at the largest k minus at the smallest k of the sweep);
//  (d) the single-task score of L-LoRA is below LoRA's (average over the suite's tasks).
// Each claim is judged separately for the network-level (`l-lora`) and layer-level (`l-lora-local`)
// variant: 8 verdicts, in the order (a) l-lora, (a) l-lora-local, (b) l-lora, ... "held" when every
// comparison agrees with the paper, "did not hold" when none does, "mixed" otherwise, "not measured" when
// there is nothing to compare. Throws std::runtime_error if `results` does not follow the schema.
std::vector<ClaimVerdict> evaluate_claims(const nlohmann::json& results);

}  // namespace linfuse::experiments
