// The diagnostics sections of report.md: why merging keeps or loses the fine-tuning gains. First-order leakage of
// the task vectors (experiments/leakage.h), the linear probe of the pretrained features (linear_probe.h) and
// the domain similarity of the tasks against their cross-task damage (domain_similarity.h).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "experiments/report_format.h"
#include "experiments/report_gain.h"
#include "experiments/report_sections.h"

namespace linfuse::experiments::report {
namespace {

std::string note(const std::string& text) { return "_" + text + "_\n\n"; }

// A grid value as written in a config: 0.3 -> "0.3", 0.05 -> "0.05".
std::string grid_value(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// "Within a few points" of fine-tuning, for the linear probe's verdict: about two standard errors of a
// difference of two accuracies near 70% on 500 test examples each (2 sqrt(2 * 0.7 * 0.3 / 500) = 5.8 points
// for one task; an average over 8 tasks has a third of that), rounded to a number a reader keeps in mind.
constexpr double kFewPoints = 3.0;

// The mode whose leakage matrix is shown in full: the one where f is linear in its state and the ratio exact.
constexpr const char* kExactMode = "linear-full";

}  // namespace

std::string leakage_section(const SuiteResults& suite) {
  std::string text = "### Cross-task leakage of the task vectors (first order)\n\n";
  if (!suite.leakage || suite.leakage->empty())
    return text + note("No leakage matrices in results.json: the diagnostic did not run (diagnostics.leakage_examples = 0), "
                       "or no task vector moved its own task's logits.");
  text += "How far task t's task vector tau_t moves the logits on task s's inputs, relative to how far it moves "
          "its own task's: L[t][s] = change(tau_t, s) / change(tau_t, t), where change(tau, s) is the mean over the "
          "first `diagnostics.leakage_examples` validation inputs x of task s of rms(J f_s(x) tau) = "
          "||J f_s(x) tau||_2 / sqrt(K_s), J the Jacobian of the K_s logits task s is scored with (" +
          std::string(suite.name == "text" ? "the decoder logits its scoring reads"
                                           : "those of its zero-shot head") +
          ") with respect to the mode's trainable state at the pretrained state, by forward mode (the root mean "
          "square compares the move per logit between tasks that read different numbers of logits). 0: the tangent "
          "kernel keeps the tasks apart and adding tau_t to a merge leaves task s alone; 1: tau_t moves task s's "
          "logits as far as its own. For linear-full (and l-lora) the model is linear in its state, so the ratio "
          "is exact; for the others it is the first-order part of the move. \"Centered\": the same ratio on the numbers "
          "the prediction compares (" +
          std::string(suite.name == "text" ? "the candidate answers' scores log p(answer | x)" : "the head's logits") +
          "), with each input's mean over them taken out first, because a prediction does not change when all of "
          "them move alike: it counts only the move that can change a decision.\n\n";
  MarkdownTable table({"mode", "mean over s != t", "centered mean", "smallest (t -> s)", "largest (t -> s)"});
  for (const auto& mode : suite.modes) {
    auto found = suite.leakage->find(mode);
    if (found == suite.leakage->end()) continue;
    const Matrix& L = found->second;
    std::string smallest = kMissing, largest = kMissing;
    double low = INFINITY, high = -INFINITY;
    for (size_t t = 0; t < L.size(); ++t)
      for (size_t s = 0; s < L.size(); ++s) {
        if (s == t) continue;
        const std::string pair = suite.tasks[t] + " -> " + suite.tasks[s] + " " + fixed(L[t][s], 2);
        if (L[t][s] < low) low = L[t][s], smallest = pair;
        if (L[t][s] > high) high = L[t][s], largest = pair;
      }
    auto mean = mean_off_diagonal(L);
    auto centered = suite.leakage_centered.find(mode);
    std::optional<double> centered_mean;
    if (centered != suite.leakage_centered.end()) centered_mean = mean_off_diagonal(centered->second);
    table.add_row({mode, mean ? fixed(*mean, 2) : kMissing, centered_mean ? fixed(*centered_mean, 2) : kMissing, smallest, largest});
  }
  text += table.str() + "\n";
  auto exact = suite.leakage->find(kExactMode);
  if (exact == suite.leakage->end()) return text;
  text += std::string("The whole matrix for ") + kExactMode + " (rows: the task whose vector moves; columns: the task "
          "whose logits are read):\n\n";
  std::vector<std::string> header = {"tau of \\ logits of"};
  header.insert(header.end(), suite.tasks.begin(), suite.tasks.end());
  MarkdownTable matrix(header);
  for (size_t t = 0; t < exact->second.size(); ++t) {
    std::vector<std::string> row = {suite.tasks[t]};
    for (double value : exact->second[t]) row.push_back(fixed(value, 2));
    matrix.add_row(row);
  }
  text += matrix.str() + "\n";
  if (auto mean = mean_off_diagonal(exact->second)) {
    text += "In " + std::string(kExactMode) + ", one task's vector moves the other tasks' logits " + fixed(*mean, 2) +
            " times as far as its own on average: ";
    if (*mean >= 1)
      text += "farther than its own, so the tasks share the pretrained model's tangent directions and each vector "
              "disturbs the others' logits more than it moves its own, a disturbance a merge of the vectors inherits.";
    else if (*mean >= 0.5)
      text += "half as far or more, so the tasks share the pretrained model's tangent directions and each vector "
              "disturbs the others' logits by a large part of what it moves its own, a disturbance a merge of the vectors inherits.";
    else
      text += "less than half as far, so the tangent kernel keeps the tasks largely apart and each vector disturbs the "
              "others' logits much less than it moves its own.";
    text += "\n\n";
  }
  return text;
}

// Task arithmetic's retained gain G at its lambda, split in two: r, what each task vector alone keeps of its own
// gain when scaled by that lambda, and r - G, what adding the other tasks' vectors costs on top.
std::string scaling_section(const SuiteResults& suite) {
  if (!suite.task_vector_scaling || suite.task_vector_scaling->empty()) return "";
  // Columns: the lambdas every mode's curve has (the config's grid; each mode adds its task arithmetic lambda).
  std::vector<double> lambdas = suite.task_vector_scaling->begin()->second.lambdas;
  for (const auto& [mode, curve] : *suite.task_vector_scaling)
    lambdas.erase(std::remove_if(lambdas.begin(), lambdas.end(),
                                 [&](double l) { return std::find(curve.lambdas.begin(), curve.lambdas.end(), l) == curve.lambdas.end(); }),
                  lambdas.end());
  std::string text = "### One task vector, scaled\n\n";
  text += "r(lambda): the retained gain G of theta0 + lambda tau_t on task t alone, over the same tasks and averages as "
          "the headline's G (each task vector scored on its own task's test split, no other vector added). A gain "
          "linear in lambda gives r(lambda) = lambda. Task arithmetic over all tasks adds every vector at one lambda, "
          "so its G is r at that lambda minus what the other vectors cost (r - G, the interference).\n\n";
  std::vector<std::string> header = {"mode"};
  for (double lambda : lambdas) header.push_back("r(" + grid_value(lambda) + ")");
  for (const char* column : {"task arithmetic lambda", "G", "r at that lambda", "interference r - G"}) header.push_back(column);
  MarkdownTable table(header);
  for (const auto& mode : suite.modes) {
    auto found = suite.task_vector_scaling->find(mode);
    if (found == suite.task_vector_scaling->end()) continue;
    const ScalingCurve& curve = found->second;
    std::vector<std::string> row = {mode};
    std::vector<std::optional<double>> r;   // at each of curve.lambdas
    for (size_t i = 0; i < curve.lambdas.size(); ++i) {
      MergedResult scaled;   // the curve's point as a "merge" of one vector, for retained_gain
      scaled.method = "scaled_task_vector", scaled.mode = mode, scaled.space = "parameter";
      for (size_t t = 0; t < suite.tasks.size(); ++t) scaled.test[suite.tasks[t]] = curve.matrix[t][i];
      RetainedGain g = retained_gain(suite, scaled);
      r.push_back(g.gain ? std::optional<double>(g.gain->value) : std::nullopt);
    }
    for (double lambda : lambdas) {
      const size_t i = size_t(std::find(curve.lambdas.begin(), curve.lambdas.end(), lambda) - curve.lambdas.begin());
      row.push_back(r[i] ? fixed(*r[i], 2) : kMissing);
    }
    const MergedResult* arithmetic = find_merged(suite, "task_arithmetic", mode, "parameter");
    std::optional<double> lambda, gain, r_at_lambda;
    if (arithmetic) {
      lambda = chosen_lambda(*arithmetic);
      RetainedGain g = retained_gain(suite, *arithmetic);
      if (g.gain) gain = g.gain->value;
    }
    if (lambda)
      for (size_t i = 0; i < curve.lambdas.size(); ++i)
        if (std::fabs(curve.lambdas[i] - *lambda) < 1e-9) r_at_lambda = r[i];
    if (lambda && *lambda == 0) r_at_lambda = 0.0;   // the pretrained model keeps nothing
    row.push_back(lambda ? grid_value(*lambda) : kMissing);
    row.push_back(gain ? fixed(*gain, 2) : kMissing);
    row.push_back(r_at_lambda ? fixed(*r_at_lambda, 2) : kMissing);
    row.push_back(r_at_lambda && gain ? fixed(*r_at_lambda - *gain, 2) : kMissing);
    table.add_row(row);
  }
  return text + table.str() + "\n" +
         note("The columns are diagnostics.scaling_lambdas; the study also scores each mode's curve at its task "
              "arithmetic lambda (parameter space). A curve written without it leaves \"r at that lambda\" empty.");
}

std::string linear_probe_section(const SuiteResults& suite) {
  if (!suite.linear_probe) return "";
  std::string text = "### Linear probe of the pretrained features\n\n";
  text += "Multinomial logistic regression on the pretrained model's L2-normalised image features (standardised per "
          "feature), trained on each task's training split by full-batch Adam, its L2 penalty chosen on the validation "
          "examples; scored on the same test examples as every other score (accuracy in %). A probe close to "
          "fine-tuning means the features fine-tuning needs were already there.\n\n";
  const ScoreByTask* full = nullptr;
  if (suite.single_task) {
    auto found = suite.single_task->find("full");
    if (found != suite.single_task->end()) full = &found->second;
  }
  MarkdownTable table({"task", "zero-shot", "linear probe", "full fine-tuning", "probe - fine-tuning", "probe L2"});
  auto cell = [](const ScoreByTask* scores, const std::string& task) -> std::optional<double> {
    if (!scores) return std::nullopt;
    auto found = scores->find(task);
    return found == scores->end() ? std::nullopt : std::optional<double>(found->second);
  };
  const ScoreByTask* zero_shot = suite.zero_shot ? &*suite.zero_shot : nullptr;
  const ScoreByTask* l2 = suite.linear_probe_l2 ? &*suite.linear_probe_l2 : nullptr;
  for (const auto& task : suite.tasks) {
    auto probe = cell(&*suite.linear_probe, task), tuned = cell(full, task), penalty = cell(l2, task);
    table.add_row({task, percent(cell(zero_shot, task)), percent(probe), percent(tuned),
                   probe && tuned ? signed_fixed(100 * (*probe - *tuned), 1) : kMissing,
                   penalty ? fixed(*penalty, 4) : kMissing});
  }
  auto probe_average = mean_over_tasks(*suite.linear_probe, suite.tasks);
  auto tuned_average = full ? mean_over_tasks(*full, suite.tasks) : std::nullopt;
  auto zero_shot_average = zero_shot ? mean_over_tasks(*zero_shot, suite.tasks) : std::nullopt;
  table.add_row({"average", percent(zero_shot_average), percent(probe_average), percent(tuned_average),
                 probe_average && tuned_average ? signed_fixed(100 * (*probe_average - *tuned_average), 1) : kMissing, ""});
  text += table.str() + "\n";
  if (!probe_average || !tuned_average)
    return text + note("No full fine-tuning average to compare the probe with.");
  const double gap = 100 * (*probe_average - *tuned_average);
  text += "The probe averages " + percent(*probe_average) + " against full fine-tuning's " + percent(*tuned_average) + " (" +
          signed_fixed(gap, 1) + " points): ";
  if (gap >= kFewPoints)
    text += "more than " + fixed(kFewPoints, 0) + " points above: a linear read-out of the pretrained features beats "
            "fine-tuning the whole tower through the frozen zero-shot head. The features were already there (CLIP's "
            "regime: fine-tuning re-uses features rather than building them), and fine-tuning did not even recover "
            "all that a linear read-out gets from them.";
  else if (gap > -kFewPoints)
    text += "within " + fixed(kFewPoints, 0) + " points, CLIP's regime: fine-tuning re-uses the pretrained features "
            "rather than building them.";
  else
    text += "more than " + fixed(kFewPoints, 0) + " points below, not CLIP's regime: fine-tuning builds features the "
            "pretrained model lacks, and its task vectors carry them.";
  return text + "\n\n";
}

std::string domain_similarity_section(const SuiteResults& suite) {
  if (!suite.domain_similarity) return "";
  std::string text = "### Domain similarity and cross-task damage\n\n";
  const DomainSimilarity& similarity = *suite.domain_similarity;
  text += "Similarity of tasks t and s: the cosine of the mean L2-normalised pretrained image features of their "
          "training images (1: the pretrained model sees the two domains alike). Damage: the zero-shot score of s minus "
          "the score on s of the model fine-tuned on t alone, in points (positive: fine-tuning on t hurt s; the "
          "cross-task scores above). Spearman's correlation of damage and similarity over the ordered pairs t != s.";
  if (auto mean = mean_off_diagonal(similarity.matrix))
    text += " The mean similarity of two different tasks is " + fixed(*mean, 2) + ".";
  text += "\n\n";
  if (similarity.damage_correlation.empty()) return text + note("No damage correlation in results.json (no cross-task scores).");
  MarkdownTable table({"mode", "Spearman rho (damage, similarity)", "mean damage (points)"});
  std::vector<std::string> follows, opposes, unrelated;
  for (const auto& mode : suite.modes) {
    auto found = similarity.damage_correlation.find(mode);
    if (found == similarity.damage_correlation.end()) continue;
    std::optional<double> damage;
    if (suite.cross_task)
      if (auto cross = suite.cross_task->find(mode); cross != suite.cross_task->end())
        if (auto change = cross_task_change(suite, cross->second))
          if (auto others = mean_off_diagonal(*change)) damage = -*others;
    table.add_row({mode, signed_fixed(found->second, 2), damage ? signed_fixed(*damage, 1) : kMissing});
    // |rho| >= 0.3: a moderate rank correlation, the usual rule of thumb
    (found->second >= 0.3 ? follows : found->second <= -0.3 ? opposes : unrelated).push_back(mode);
  }
  text += table.str() + "\n";
  if (!follows.empty() && opposes.empty() && unrelated.empty())
    text += "In every mode the damage rises with the similarity (rho >= 0.3): fine-tuning hurts most the tasks whose "
            "images the pretrained model places near its own task's.";
  else if (follows.empty() && opposes.empty())
    text += "In no mode does the damage follow the similarity (|rho| < 0.3): which tasks a fine-tuning hurts is not "
            "explained by how alike the pretrained model finds their domains.";
  else
    text += "The damage rises with the similarity (rho >= 0.3) in " + (follows.empty() ? std::string("no mode") : comma_list(follows)) +
            "; it falls with it (rho <= -0.3) in " + (opposes.empty() ? std::string("no mode") : comma_list(opposes)) +
            "; and is unrelated (|rho| < 0.3) in " + (unrelated.empty() ? std::string("no mode") : comma_list(unrelated)) + ".";
  text += " With " + std::to_string(suite.tasks.size()) + " tasks the correlation rests on " +
          std::to_string(suite.tasks.size() * (suite.tasks.size() - 1) / 2) +
          " distinct similarities (the matrix is symmetric), so it is a coarse reading.\n\n";
  return text;
}

}  // namespace linfuse::experiments::report
