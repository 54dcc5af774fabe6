// The report's headline number, the retained gain G = (merged - zero-shot) / (single-task - zero-shot)
// (experiments/report_gain.h), and the standard errors of its scores (experiments/report_uncertainty.h), on
// synthetic results whose numbers are chosen so that every expected value is known in closed form.
// Run with: ./build/test_experiments "[report_gain]".
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/report.h"
#include "experiments/report_gain.h"
#include "experiments/report_results.h"
#include "experiments/report_uncertainty.h"
#include "tests/experiments/report_checks.h"

using namespace linfuse;
using namespace linfuse::experiments;
using nlohmann::json;
using testing::read_text;
using testing::report_without_plots;
using testing::table_row;
using testing::TempDir;

namespace {

// One merged entry: test scores per task, normalized = test / single-task over the learned tasks.
json merged_entry(const std::string& method, const std::string& mode, double lambda, const std::map<std::string, double>& test,
                  const json& single_task, const std::vector<std::string>& learned) {
  json entry = {{"method", method}, {"mode", mode}, {"space", "parameter"}, {"validation_average", 0.5}};
  entry["hyperparameters"] = method == "simple_average" ? json::object() : json{{"lambda", lambda}};
  if (method == "ties") entry["hyperparameters"]["keep"] = 0.2;
  double normalized_sum = 0;
  for (const auto& [task, score] : test) entry["test"][task] = score;
  for (const auto& task : learned) {
    double normalized = test.at(task) / single_task[mode][task].get<double>();
    entry["normalized"][task] = normalized;
    normalized_sum += normalized;
  }
  if (!learned.empty()) entry["normalized_average"] = normalized_sum / double(learned.size());
  return entry;
}

// Tasks a, b (learned by every mode) and c (not learned), scored on 400, 144 and 400 test examples.
// Zero-shot averages 40 over a and b; single-task 80 (lora) and 70 (l-lora). Merged:
//   task arithmetic, lora, lambda 0.3:  a 50, b 70 -> 60: G = (60 - 40) / (80 - 40) = 0.5
//   task arithmetic, l-lora, lambda 0:  the pretrained model (zero-shot scores): G = 0
//   simple averaging: lora 40, 60 -> 50: G = 0.25; l-lora 45, 65 -> 55: G = 0.5
//   TIES, lambda 0 in both modes: the pretrained model twice (a degenerate comparison)
// The text suite has the same numbers, with c scored by Spearman's rho.
json gain_results(bool any_task_learned = true) {
  json results = {{"manifest", {{"preset", "tiny"}, {"suites", {"vision", "text"}}}}, {"suites", json::object()}};
  const std::vector<std::string> learned = any_task_learned ? std::vector<std::string>{"a", "b"} : std::vector<std::string>{};
  for (const std::string name : {"vision", "text"}) {
    json suite = {{"tasks", {"a", "b", "c"}}, {"modes", {"lora", "l-lora"}}};
    suite["metric"] = {{"a", "accuracy"}, {"b", "accuracy"}, {"c", name == "text" ? "spearman" : "accuracy"}};
    suite["test_examples"] = {{"a", 400}, {"b", 144}, {"c", 400}};
    suite["zero_shot"] = {{"a", 0.30}, {"b", 0.50}, {"c", 0.10}};
    suite["single_task"]["lora"] = {{"a", 0.70}, {"b", 0.90}, {"c", 0.12}};
    suite["single_task"]["l-lora"] = {{"a", 0.60}, {"b", 0.80}, {"c", 0.11}};
    suite["normalized_tasks"] = learned;
    suite["learned_thresholds"] = {{"a", 0.2}, {"b", 0.2}, {"c", 0.2}};
    const json& single = suite["single_task"];
    const std::map<std::string, double> pretrained = {{"a", 0.30}, {"b", 0.50}, {"c", 0.10}};
    suite["merged"] = {
        merged_entry("simple_average", "lora", 0, {{"a", 0.40}, {"b", 0.60}, {"c", 0.10}}, single, learned),
        merged_entry("simple_average", "l-lora", 0, {{"a", 0.45}, {"b", 0.65}, {"c", 0.10}}, single, learned),
        merged_entry("task_arithmetic", "lora", 0.3, {{"a", 0.50}, {"b", 0.70}, {"c", 0.10}}, single, learned),
        merged_entry("task_arithmetic", "l-lora", 0.0, pretrained, single, learned),
        merged_entry("ties", "lora", 0.0, pretrained, single, learned),
        merged_entry("ties", "l-lora", 0.0, pretrained, single, learned),
    };
    results["suites"][name] = suite;
  }
  return results;
}

// Closed forms, written out here apart from the report's code.
double accuracy_se(double p, double n) { return std::sqrt(p * (1 - p) / n); }
// The standard error of the mean of (a on 400, b on 144) examples.
double pair_average_se(double a, double b) { return std::sqrt(a * (1 - a) / 400 + b * (1 - b) / 144) / 2; }
// "60.0 ± 2.3" from (60.0, 2.3) and a printf pattern of two numbers.
std::string format(const char* pattern, double x, double y) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, x, y);
  return buffer;
}
std::string decimals(double x, int count) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", count, x);
  return buffer;
}
std::string csv_text(double x) {  // as merged.csv writes a number
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", x);
  return buffer;
}

const report::SuiteResults& vision_of(const report::ReportResults& results) { return results.suites.at(0); }

}  // namespace

TEST_CASE("standard errors in closed form: binomial accuracy, Spearman's rho, the mean over tasks", "[report][report_writer][report_gain]") {
  using report::score_standard_error;
  CHECK(*score_standard_error(0.5, "accuracy", 400) == Approx(0.025));
  CHECK(*score_standard_error(0.9, "accuracy", 100) == Approx(0.03));
  CHECK(*score_standard_error(1.0, "accuracy", 100) == 0.0);  // the formula's: no sampling spread seen
  CHECK(*score_standard_error(0.6, "spearman", 66) == Approx(0.08));  // (1 - 0.36) / sqrt(64)
  CHECK(*score_standard_error(-0.6, "spearman", 66) == Approx(0.08));
  CHECK_FALSE(score_standard_error(0.5, "exact_match", 100));  // a metric without a formula here
  CHECK_FALSE(score_standard_error(0.5, "accuracy", 0));
  CHECK_FALSE(score_standard_error(0.5, "spearman", 2));

  report::SuiteResults suite;
  suite.tasks = {"a", "b", "c"};
  suite.metric = {{"a", "accuracy"}, {"b", "accuracy"}, {"c", "accuracy"}};
  suite.test_examples = std::map<std::string, int64_t>{{"a", 100}, {"b", 100}, {"c", 100}};
  report::ScoreByTask scores = {{"a", 0.9}, {"b", 0.8}};
  auto average = report::average_estimate(suite, scores, {"a", "b"});
  REQUIRE(average);
  CHECK(average->value == Approx(0.85));
  CHECK(*average->standard_error == Approx(0.025));  // sqrt(0.03^2 + 0.04^2) / 2
  CHECK_FALSE(report::average_estimate(suite, scores, {"a", "c"}));  // c has no score: no partial average
  suite.test_examples.reset();
  average = report::average_estimate(suite, scores, {"a", "b"});
  REQUIRE(average);
  CHECK_FALSE(average->standard_error);  // results.json without test_examples: the value, no error
  CHECK(report::percent_with_error(average) == "85.0");
}

TEST_CASE("G and its delta-method standard error in closed form", "[report][report_writer][report_gain]") {
  using report::Estimate;
  auto exact = [](double value) { return Estimate{value, std::nullopt}; };  // a value without a standard error
  auto gain = report::gain_from_averages(Estimate{0.6, 0.02}, Estimate{0.4, 0.01}, Estimate{0.8, 0.03});
  REQUIRE(gain);
  CHECK(gain->value == Approx(0.5));
  // sqrt(0.02^2 + 0.5^2 0.03^2 + 0.5^2 0.01^2) / 0.4
  CHECK(*gain->standard_error == Approx(std::sqrt(0.0004 + 0.25 * 0.0009 + 0.25 * 0.0001) / 0.4));
  CHECK(report::gain_text(gain) == "0.50 ± 0.06");
  // the merged model at zero-shot keeps nothing; at single-task all; below zero-shot a negative share
  CHECK(report::gain_from_averages(exact(0.4), exact(0.4), exact(0.8))->value == Approx(0.0));
  CHECK(report::gain_from_averages(exact(0.8), exact(0.4), exact(0.8))->value == Approx(1.0));
  CHECK(report::gain_from_averages(exact(0.3), exact(0.4), exact(0.8))->value == Approx(-0.25));
  // no fine-tuning gain: nothing to retain
  CHECK_FALSE(report::gain_from_averages(exact(0.5), exact(0.4), exact(0.4)));
  CHECK_FALSE(report::gain_from_averages(exact(0.5), exact(0.4), exact(0.3)));
  CHECK(report::gain_text(std::nullopt) == "not defined");
}

TEST_CASE("G of a merged model: over the learned tasks, 0 for the pretrained model (lambda 0), flagged", "[report][report_writer][report_gain]") {
  auto results = report::parse_results(nlohmann::ordered_json::parse(gain_results().dump()), "synthetic");
  const report::SuiteResults& vision = vision_of(results);
  const report::MergedResult* lora = report::find_merged(vision, "task_arithmetic", "lora", "parameter");
  const report::MergedResult* l_lora = report::find_merged(vision, "task_arithmetic", "l-lora", "parameter");
  REQUIRE(lora);
  REQUIRE(l_lora);
  report::RetainedGain gain = report::retained_gain(vision, *lora);
  CHECK(gain.tasks == std::vector<std::string>{"a", "b"});  // c, not learned, is left out
  CHECK(gain.merged->value == Approx(0.6));
  CHECK(gain.zero_shot->value == Approx(0.4));
  CHECK(gain.single_task->value == Approx(0.8));
  CHECK(gain.gain->value == Approx(0.5));
  CHECK_FALSE(gain.pretrained_model);
  CHECK_FALSE(gain.gain_within_noise);
  double m = pair_average_se(0.5, 0.7), z = pair_average_se(0.3, 0.5), s = pair_average_se(0.7, 0.9);
  CHECK(*gain.merged->standard_error == Approx(m));
  CHECK(*gain.gain->standard_error == Approx(std::sqrt(m * m + 0.25 * s * s + 0.25 * z * z) / 0.4));

  report::RetainedGain pretrained = report::retained_gain(vision, *l_lora);
  CHECK(pretrained.pretrained_model);
  CHECK(pretrained.gain->value == Approx(0.0).margin(1e-12));
  CHECK(pretrained.single_task->value == Approx(0.7));
  CHECK_FALSE(report::merged_is_pretrained(*report::find_merged(vision, "simple_average", "lora", "parameter")));

  // a single-task average within two standard errors of zero-shot: G divides by noise, and says so
  report::SuiteResults noisy = vision;
  (*noisy.single_task)["lora"] = {{"a", 0.32}, {"b", 0.53}, {"c", 0.1}};
  CHECK(report::retained_gain(noisy, *lora).gain_within_noise);
}

TEST_CASE("the headline table: merged, zero-shot and single-task with their errors, G, normalized, the lambda-0 flag", "[report][report_writer][report_gain]") {
  TempDir dir("gain_headline");
  std::string report = report_without_plots(dir, gain_results());
  const std::string heading = "#### Headline: retained gain G";
  REQUIRE(report.find(heading) != std::string::npos);
  CHECK(report.find(heading) < report.find("#### Normalized average (%)"));  // at the top of the merging section
  CHECK(report.find("Averages over the 2 of 3 tasks the normalized scores use, those every mode learned (a, b)") !=
        std::string::npos);

  // header: method, mode, merged, merged all tasks, zero-shot, single-task, G, normalized, chosen on validation
  auto lora = table_row(report, heading, "Task arithmetic", "lora");
  REQUIRE(lora.size() == 9);
  CHECK(lora[2] == format("%.1f ± %.1f", 60.0, 100 * pair_average_se(0.5, 0.7)));
  CHECK(lora[2] == "60.0 ± 2.3");
  double all_tasks_se = std::sqrt(accuracy_se(0.5, 400) * accuracy_se(0.5, 400) + accuracy_se(0.7, 144) * accuracy_se(0.7, 144) +
                                  accuracy_se(0.1, 400) * accuracy_se(0.1, 400)) / 3;
  CHECK(lora[3] == format("%.1f ± %.1f", 100 * (0.5 + 0.7 + 0.1) / 3, 100 * all_tasks_se));
  CHECK(lora[4] == format("%.1f ± %.1f", 40.0, 100 * pair_average_se(0.3, 0.5)));
  CHECK(lora[5] == format("%.1f ± %.1f", 80.0, 100 * pair_average_se(0.7, 0.9)));
  double m = pair_average_se(0.5, 0.7), z = pair_average_se(0.3, 0.5), s = pair_average_se(0.7, 0.9);
  CHECK(lora[6] == format("%.2f ± %.2f", 0.5, std::sqrt(m * m + 0.25 * s * s + 0.25 * z * z) / 0.4));
  CHECK(lora[6] == "0.50 ± 0.07");
  CHECK(lora[7] == decimals(100 * (0.5 / 0.7 + 0.7 / 0.9) / 2, 1));
  CHECK(lora[8] == "lambda = 0.3");

  auto pretrained = table_row(report, heading, "Task arithmetic", "l-lora");
  CHECK(pretrained[2] == pretrained[4]);  // the merged model scores as the pretrained one
  CHECK(pretrained[5].rfind("70.0 ± ", 0) == 0);
  CHECK(pretrained[6] == "0.00");  // 0 by construction: no standard error
  CHECK(pretrained[8] == "lambda 0: the pretrained model");
  // the normalized score of the same model is far from 0: zero-shot / single-task
  CHECK(pretrained[7] == decimals(100 * (0.3 / 0.6 + 0.5 / 0.8) / 2, 1));
  CHECK(table_row(report, heading, "TIES-merging", "lora")[8] == "keep = 0.2; lambda 0: the pretrained model");
  CHECK(table_row(report, heading, "Simple averaging", "l-lora")[6].rfind("0.50 ± ", 0) == 0);
  CHECK(table_row(report, heading, "Simple averaging", "lora")[6].rfind("0.25 ± ", 0) == 0);
  CHECK(table_row(report, heading, "Simple averaging", "lora")[8] == "–");  // nothing searched
}

TEST_CASE("the vision headline has the paper's values and their G; the text suite has none and says why", "[report][report_writer][report_gain]") {
  TempDir dir("gain_paper");
  std::string report = report_without_plots(dir, gain_results());
  const size_t text_part = report.find("## Text suite");
  REQUIRE(text_part != std::string::npos);
  const std::string paper = "#### The paper's values for comparison";
  REQUIRE(report.find(paper) != std::string::npos);
  CHECK(report.find(paper) < text_part);
  CHECK(report.find(paper, text_part) == std::string::npos);
  CHECK(report.find("No paper values for the text suite", text_part) != std::string::npos);
  CHECK(report.find("No paper values for the text suite") > text_part);

  // task arithmetic: zero-shot 36.7; single-task 91.0 / 78.9 / 66.9; merged 72.0 / 51.6 / 55.3
  auto full = table_row(report, paper, "Task arithmetic", "FFT");
  CHECK(full == std::vector<std::string>{"Task arithmetic", "FFT", "72.0", "36.7", "91.0", "0.65", "78.8"});
  CHECK(table_row(report, paper, "Task arithmetic", "LoRA")[5] == "0.35");
  CHECK(table_row(report, paper, "Task arithmetic", "L-LoRA")[5] == "0.62");
  // the other methods of the paper's 7-task merge, G from the same zero-shot and single-task averages
  CHECK(table_row(report, paper, "Simple averaging", "LoRA")[5] == decimals((43.2 - 36.7) / (78.9 - 36.7), 2));
  CHECK(table_row(report, paper, "TIES-merging", "FFT")[5] == decimals((74.2 - 36.7) / (91.0 - 36.7), 2));
  CHECK(table_row(report, paper, "LoraHub", "L-LoRA")[5] == decimals((56.5 - 36.7) / (66.9 - 36.7), 2));
}

TEST_CASE("no task learned by every mode: G is not defined and the report says so instead of a number", "[report][report_writer][report_gain]") {
  TempDir dir("gain_none");
  json results = gain_results(false);
  std::string report = report_without_plots(dir, results);
  const std::string heading = "#### Headline: retained gain G";
  CHECK(report.find("**G is not defined here: no task was learned by every mode**") != std::string::npos);
  auto row = table_row(report, heading, "Task arithmetic", "lora");
  REQUIRE(row.size() == 8);  // no "merged, all tasks" column: every average is over all tasks already
  CHECK(row[2].rfind(decimals(100 * (0.5 + 0.7 + 0.1) / 3, 1) + " ± ", 0) == 0);
  CHECK(row[5] == "not defined");
  CHECK(row[6] == "–");  // no normalized score either
  for (const auto& verdict : evaluate_claims(results))
    if (verdict.claim.rfind("(a)", 0) == 0) {
      INFO(verdict.evidence);
      CHECK(verdict.verdict == "not measured");
      CHECK(verdict.gain_verdict == "not measured");
      // l-lora was merged but nothing can be compared; l-lora-local was not run at all
      bool local = verdict.claim.find("`l-lora-local`") != std::string::npos;
      CHECK(verdict.evidence.find(local ? "No suite has both lora and l-lora-local"
                                        : "without normalized scores: no task was learned by every mode") != std::string::npos);
    }
}

TEST_CASE("claim (a) is judged on G too; both merged models at lambda 0 make a degenerate comparison, not counted", "[report][report_writer][report_gain]") {
  json results = gain_results();
  results["suites"].erase("text");
  ClaimVerdict network;
  for (const auto& verdict : evaluate_claims(results))
    if (verdict.claim.rfind("(a) Network-level", 0) == 0) network = verdict;
  INFO(network.evidence);
  // normalized: simple averaging and TIES agree (TIES only because l-lora's lower single-task scores make
  // zero-shot / single-task higher), task arithmetic does not
  CHECK(network.verdict == "mixed");
  CHECK(network.evidence.rfind("2 of 3 comparisons agree with the paper.", 0) == 0);
  // G: simple averaging 0.50 vs 0.25 agrees, task arithmetic 0.00 vs 0.50 does not, TIES is not counted
  CHECK(network.gain_verdict == "mixed");
  CHECK(network.evidence.find("On the retained gain G: 1 of 2 agree (1 not counted: degenerate or G not defined).") !=
        std::string::npos);
  CHECK(network.evidence.find("[G 0.50 ± ") != std::string::npos);
  CHECK(network.evidence.find(
            "degenerate, both merged models are the pretrained model (lambda 0); not counted]") != std::string::npos);
  CHECK(network.evidence.find("l-lora chose lambda 0, the pretrained model: the normalized comparison is degenerate") !=
        std::string::npos);

  // the same in report.md: both readings on the verdict's line
  TempDir dir("gain_claims");
  std::string report = report_without_plots(dir, results);
  CHECK(report.find("- **mixed** (normalized score), **mixed** (retained gain G): (a) Network-level") != std::string::npos);
  CHECK(report.find("By G, this partly disagrees with the paper.") != std::string::npos);
}

TEST_CASE("merged.csv carries each task's standard error and the merged model's G", "[report][report_writer][report_gain]") {
  TempDir dir("gain_csv");
  report_without_plots(dir, gain_results());
  std::string csv = read_text(dir.path / "merged.csv");
  auto row_of = [&](const std::string& prefix) {
    size_t at = csv.find("\n" + prefix);
    REQUIRE(at != std::string::npos);
    return csv.substr(at + 1, csv.find('\n', at + 1) - at - 1);
  };
  // ...,hyperparameters,test_se,gain,gain_se,pretrained_model
  std::string lora = row_of("vision,task_arithmetic,lora,parameter,b,accuracy,");
  std::string lora_tail = "lambda=0.3,";
  lora_tail += csv_text(accuracy_se(0.7, 144)) + ",0.5,";
  CHECK(lora.find(lora_tail) != std::string::npos);
  CHECK(lora.ends_with(",false"));
  std::string pretrained = row_of("vision,task_arithmetic,l-lora,parameter,a,accuracy,");
  CHECK(pretrained.ends_with(",true"));
  std::string text_c = row_of("text,task_arithmetic,lora,parameter,c,spearman,");
  std::string spearman_error = csv_text((1 - 0.01) / std::sqrt(398.0));
  CHECK(text_c.find(spearman_error) != std::string::npos);
}

TEST_CASE("results without test_examples: scores without errors and a note; bad test_examples are an error", "[report][report_writer][report_gain]") {
  TempDir dir("gain_no_examples");
  json results = gain_results();
  results["suites"]["vision"].erase("test_examples");
  std::string report = report_without_plots(dir, results);
  auto zero_shot = table_row(report, "## Vision suite", "zero-shot (pretrained)");
  CHECK(zero_shot[1] == "30.0");
  CHECK(report.find("No standard errors: this results.json predates the per-task test_examples") != std::string::npos);
  CHECK(table_row(report, "#### Headline: retained gain G", "Task arithmetic", "lora")[6] == "0.50");

  results = gain_results();
  results["suites"]["vision"]["test_examples"]["a"] = 0;
  testing::write_text(dir.path / "results.json", results.dump());
  CHECK_THROWS_WITH(write_report(dir.str()), Catch::Contains("suites.vision.test_examples.a") &&
                                                 Catch::Contains("should be at least 1"));
}
