// The paper's claims, checked on the results (see report.h for the claims and the verdict rule).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>

#include "experiments/report.h"
#include "experiments/report_format.h"
#include "experiments/report_gain.h"
#include "experiments/report_sections.h"

namespace linfuse::experiments::report {
namespace {

// One comparison of an L-LoRA variant with LoRA: `detail` names where and shows the numbers.
struct Comparison {
  Comparison(std::string group, std::string detail, bool agrees_with_paper)
      : group(std::move(group)), detail(std::move(detail)), agrees_with_paper(agrees_with_paper) {}
  std::string group;   // "vision/parameter": comparisons of a group are listed together in the evidence
  std::string detail;  // "task arithmetic 85.4 vs 77.6"
  bool agrees_with_paper = false;
  // Claim (a): the same comparison on the retained gain G, shown after `detail` ("G 0.62 ± 0.05 vs 0.35 ±
  // 0.06"); gain_agrees is empty when it does not count (G not defined, or a degenerate comparison).
  std::string gain_detail;
  std::optional<bool> gain_agrees;
};

// "held" when every comparison agrees with the paper, "did not hold" when none does, "mixed" otherwise.
std::string verdict_of(size_t agreeing, size_t counted) {
  return agreeing == counted ? "held" : agreeing == 0 ? "did not hold" : "mixed";
}

struct Variant {
  std::string mode, title;
};
const std::vector<Variant> kVariants = {{"l-lora", "network-level L-LoRA (`l-lora`)"},
                                        {"l-lora-local", "layer-level L-LoRA (`l-lora-local`)"}};

// `judged_on_gain`: the claim is judged on the retained gain G too (ClaimVerdict::gain_verdict), from the
// comparisons' gain readings.
ClaimVerdict judge(std::string claim, const std::vector<Comparison>& comparisons, const std::string& unmeasured,
                   bool judged_on_gain = false) {
  ClaimVerdict verdict;
  verdict.claim = std::move(claim);
  if (comparisons.empty()) {
    verdict.verdict = "not measured";
    if (judged_on_gain) verdict.gain_verdict = "not measured";
    verdict.evidence = capitalized(unmeasured) + ".";
    return verdict;
  }
  size_t agreeing = size_t(std::count_if(comparisons.begin(), comparisons.end(),
                                         [](const Comparison& c) { return c.agrees_with_paper; }));
  verdict.verdict = verdict_of(agreeing, comparisons.size());
  verdict.evidence = std::to_string(agreeing) + " of " + std::to_string(comparisons.size()) +
                     (comparisons.size() == 1 ? " comparison agrees" : " comparisons agree") + " with the paper.";
  // The G reading: over the comparisons where it counts.
  if (judged_on_gain) {
    size_t counted = 0, gain_agreeing = 0;
    for (const auto& comparison : comparisons)
      if (comparison.gain_agrees) ++counted, gain_agreeing += *comparison.gain_agrees;
    verdict.gain_verdict = counted == 0 ? "not measured" : verdict_of(gain_agreeing, counted);
    verdict.evidence += " On the retained gain G: " + std::to_string(gain_agreeing) + " of " + std::to_string(counted) +
                        " agree";
    if (counted < comparisons.size())
      verdict.evidence += " (" + std::to_string(comparisons.size() - counted) + " not counted: degenerate or G not defined)";
    verdict.evidence += ".";
  }
  std::string group;
  for (const auto& comparison : comparisons) {
    if (comparison.group != group) {
      verdict.evidence += (group.empty() ? " " : "; ") + comparison.group + ":";
      group = comparison.group;
    } else {
      verdict.evidence += ",";
    }
    verdict.evidence += " " + comparison.detail + (comparison.agrees_with_paper ? "" : " (disagrees)");
    if (!comparison.gain_detail.empty()) verdict.evidence += " [" + comparison.gain_detail + "]";
  }
  verdict.evidence += ".";
  return verdict;
}

// The G reading of one comparison of claim (a): `linearized` (the L-LoRA variant) vs `lora`.
void compare_gains(const SuiteResults& suite, const MergedResult& linearized, const MergedResult& lora, Comparison& comparison) {
  RetainedGain a = retained_gain(suite, linearized), b = retained_gain(suite, lora);
  if (!a.gain || !b.gain) {
    comparison.gain_detail = "G not defined: " + (a.gain ? b.undefined_because : a.undefined_because);
    return;
  }
  comparison.gain_detail = "G " + gain_text(a.gain) + " vs " + gain_text(b.gain);
  if (a.pretrained_model && b.pretrained_model) {
    // Both are the pretrained model: G is 0 for both by construction and the normalized scores compare
    // zero-shot / single-task, which says nothing about how the task vectors merge.
    comparison.gain_detail += ": degenerate, both merged models are the pretrained model (lambda 0); not counted";
    return;
  }
  comparison.gain_agrees = a.gain->value > b.gain->value;
  if (!*comparison.gain_agrees) comparison.gain_detail += ", disagrees";
  for (const auto& [result, gain] : {std::pair{&linearized, &a}, std::pair{&lora, &b}})
    if (gain->pretrained_model)
      comparison.gain_detail += "; " + result->mode + " chose lambda 0, the pretrained model: the normalized comparison "
                                "is degenerate (zero-shot / single-task), its G is 0 by construction";
}

// (a) normalized test average (and retained gain G) of the variant vs LoRA, for each suite, space and claimed method.
ClaimVerdict merges_better(const ReportResults& results, const Variant& variant) {
  const std::vector<std::string> methods = {"task_arithmetic", "ties", "simple_average", "lorahub"};
  std::vector<Comparison> comparisons;
  bool merged_without_scores = false;  // both merged, but no normalized score (no task learned by every mode)
  for (const auto& suite : results.suites) {
    if (!suite.merged) continue;
    // Says when the normalized averages leave tasks out (not learned by every mode), so a reader weighs them.
    const std::vector<std::string>& counted = normalization_tasks(suite);
    std::string coverage;
    if (counted.size() < suite.tasks.size()) {
      coverage = " (normalized over " + std::to_string(counted.size()) + " of " + std::to_string(suite.tasks.size()) +
                 " tasks: " + comma_list(counted) + ")";
    }
    std::vector<std::string> spaces;
    for (const auto& merged : *suite.merged) spaces.push_back(merged.space);
    for (const auto& space : ordered_spaces(spaces))
      for (const auto& method : methods) {
        const MergedResult* linearized = find_merged(suite, method, variant.mode, space);
        const MergedResult* lora = find_merged(suite, method, "lora", space);
        if (!linearized || !lora) continue;
        auto a = normalized_average_of(*linearized, normalization_tasks(suite)), b = normalized_average_of(*lora, normalization_tasks(suite));
        if (!a || !b) {
          merged_without_scores = true;
          continue;
        }
        Comparison comparison{suite.name + "/" + space + coverage,
                              method_title(method) + " " + percent(*a) + " vs " + percent(*b), *a > *b};
        compare_gains(suite, *linearized, *lora, comparison);
        comparisons.push_back(comparison);
      }
  }
  return judge("(a) " + capitalized(variant.title) +
                   " merges better than LoRA under task arithmetic, TIES, simple averaging and LoraHub "
                   "(normalized test average, and retained gain G, " + variant.mode + " vs lora)",
               comparisons,
               merged_without_scores ? "lora and " + variant.mode + " were merged, but without normalized scores: no "
                                       "task was learned by every mode, so G is not defined either"
                                     : "no suite has both lora and " + variant.mode + " merged with these methods",
               /*judged_on_gain=*/true);
}

// Mean |cosine| off the diagonal of a matrix, else |written mean| (the sign-blind reading of a signed mean).
std::optional<double> dissimilarity_measure(const Matrix& matrix, const std::optional<double>& written_mean) {
  if (auto mean = mean_abs_off_diagonal(matrix)) return mean;
  if (written_mean) return std::abs(*written_mean);
  return std::nullopt;
}

// (b) mean |cosine| of the variant's task vectors vs LoRA's, flattened and layer-averaged.
ClaimVerdict less_similar(const ReportResults& results, const Variant& variant) {
  std::vector<Comparison> comparisons;
  for (const auto& suite : results.suites) {
    if (!suite.cosine_similarity) continue;
    auto linearized = suite.cosine_similarity->find(variant.mode), lora = suite.cosine_similarity->find("lora");
    if (linearized == suite.cosine_similarity->end() || lora == suite.cosine_similarity->end()) continue;
    const CosineSimilarity &l = linearized->second, &b = lora->second;
    for (const auto& [kind, a_value, b_value] :
         {std::tuple{std::string("flattened"), dissimilarity_measure(l.matrix, l.mean_off_diagonal),
                     dissimilarity_measure(b.matrix, b.mean_off_diagonal)},
          std::tuple{std::string("layer-averaged"),
                     dissimilarity_measure(l.layer_averaged_matrix, l.layer_averaged_mean_off_diagonal),
                     dissimilarity_measure(b.layer_averaged_matrix, b.layer_averaged_mean_off_diagonal)}}) {
      if (!a_value || !b_value) continue;
      comparisons.push_back({suite.name, kind + " " + fixed(*a_value, 3) + " vs " + fixed(*b_value, 3), *a_value < *b_value});
    }
  }
  return judge("(b) " + capitalized(variant.title) + " task vectors are less similar to each other than LoRA's (mean |cosine| "
                   "between different tasks, " + variant.mode + " vs lora)",
               comparisons, "no suite has cosine similarities of both lora and " + variant.mode);
}

// (c) (variant - LoRA) normalized average at the largest k minus at the smallest k, per method and space.
ClaimVerdict advantage_grows(const ReportResults& results, const Variant& variant) {
  std::vector<Comparison> comparisons;
  for (const auto& suite : results.suites) {
    if (!suite.num_tasks_sweep) continue;
    const auto& sweep = *suite.num_tasks_sweep;
    std::vector<std::string> spaces;
    for (const auto& point : sweep) spaces.push_back(point.space);
    for (const auto& space : ordered_spaces(spaces))
      for (const auto& method : ordered_sweep_methods(sweep)) {
        std::map<int64_t, double> linearized, lora;
        for (const auto& point : sweep) {
          if (point.method != method || point.space != space) continue;
          if (point.mode == variant.mode) linearized[point.k] = point.normalized_average;
          if (point.mode == "lora") lora[point.k] = point.normalized_average;
        }
        std::map<int64_t, double> advantage;  // k -> variant minus LoRA, at the k both were measured
        for (const auto& [k, value] : linearized)
          if (lora.count(k)) advantage[k] = value - lora[k];
        if (advantage.size() < 2) continue;
        auto first = *advantage.begin(), last = *advantage.rbegin();
        comparisons.push_back({suite.name + "/" + space,
                               method_title(method) + " " + signed_fixed(100 * first.second, 1) + " at k=" +
                                   std::to_string(first.first) + " -> " + signed_fixed(100 * last.second, 1) +
                                   " at k=" + std::to_string(last.first),
                               last.second > first.second});
      }
  }
  return judge("(c) The advantage of " + variant.title +
                   " over LoRA grows with the number of merged tasks (normalized average, " + variant.mode +
                   " minus lora, smallest vs largest k)",
               comparisons, "no sweep has lora and " + variant.mode + " at two or more k");
}

// (d) average single-task score of the variant vs LoRA, over the tasks both have.
ClaimVerdict single_task_below(const ReportResults& results, const Variant& variant) {
  std::vector<Comparison> comparisons;
  for (const auto& suite : results.suites) {
    if (!suite.single_task) continue;
    auto linearized = suite.single_task->find(variant.mode), lora = suite.single_task->find("lora");
    if (linearized == suite.single_task->end() || lora == suite.single_task->end()) continue;
    double a = 0, b = 0;
    size_t common = 0;
    for (const auto& task : suite.tasks)
      if (linearized->second.count(task) && lora->second.count(task))
        a += linearized->second.at(task), b += lora->second.at(task), ++common;
    if (common == 0) continue;
    a /= double(common), b /= double(common);
    std::string detail = "average " + percent(a) + " vs " + percent(b);
    if (common < suite.tasks.size()) detail += " (" + std::to_string(common) + " tasks measured in both)";
    comparisons.push_back({suite.name, detail, a < b});
  }
  return judge("(d) The single-task score of " + variant.title + " is below LoRA's (test average over the tasks, " +
                   variant.mode + " vs lora)",
               comparisons, "no suite has single-task scores of both lora and " + variant.mode);
}

}  // namespace

std::vector<ClaimVerdict> evaluate_claims(const ReportResults& results) {
  std::vector<ClaimVerdict> verdicts;
  for (auto claim : {merges_better, less_similar, advantage_grows, single_task_below})
    for (const auto& variant : kVariants) verdicts.push_back(claim(results, variant));
  return verdicts;
}

}  // namespace linfuse::experiments::report

namespace linfuse::experiments {

std::vector<ClaimVerdict> evaluate_claims(const nlohmann::json& results) {
  // nlohmann::json keeps keys sorted; the typed reader wants file order, which only matters for display.
  return report::evaluate_claims(report::parse_results(nlohmann::ordered_json::parse(results.dump()), "results"));
}

}  // namespace linfuse::experiments
