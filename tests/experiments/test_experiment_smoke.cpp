// The whole study on the smoke preset: every stage runs, the report has its sections, the numbers are finite
// and in range, and a second run from scratch with the same seed writes the same results.json.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "experiments/experiment.h"
#include "tensor/threading.h"

using namespace linfuse;
namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void check_score(const nlohmann::json& v, const std::string& what) {
  INFO(what << " = " << v.dump());
  REQUIRE(v.is_number());
  double x = v.get<double>();
  CHECK(std::isfinite(x));
  CHECK(x >= -1.0);
  CHECK(x <= 1.0);
}

// Every mode has a tasks x tasks cross-task matrix of valid scores whose diagonal is the single-task score:
// the fine-tuned model of task i, scored again on task i through the merge target, gives the same number.
void check_cross_task(const nlohmann::json& suite) {
  const size_t tasks = suite["tasks"].size();
  REQUIRE(suite["cross_task"].size() == suite["modes"].size());
  for (const auto& mode : suite["modes"]) {
    const auto& matrix = suite["cross_task"][mode.get<std::string>()]["matrix"];
    REQUIRE(matrix.size() == tasks);
    for (size_t i = 0; i < tasks; ++i) {
      REQUIRE(matrix[i].size() == tasks);
      for (size_t j = 0; j < tasks; ++j) check_score(matrix[i][j], "cross_task." + mode.get<std::string>());
      const std::string task = suite["tasks"][i];
      CHECK(matrix[i][i].get<double>() == suite["single_task"][mode.get<std::string>()][task].get<double>());
    }
  }
}

// Every mode has a tasks x tasks first-order leakage matrix (experiments/leakage.h): finite ratios of norms,
// so at least 0, with 1 on the diagonal (each task vector against its own task).
void check_leakage(const nlohmann::json& suite) {
  const size_t tasks = suite["tasks"].size();
  REQUIRE(suite["leakage"].size() == suite["modes"].size());
  for (const auto& mode : suite["modes"]) {
    INFO("leakage of " << mode.get<std::string>());
    const auto& matrix = suite["leakage"][mode.get<std::string>()]["matrix"];
    REQUIRE(matrix.size() == tasks);
    for (size_t t = 0; t < tasks; ++t) {
      REQUIRE(matrix[t].size() == tasks);
      for (size_t s = 0; s < tasks; ++s) {
        const double value = matrix[t][s].get<double>();
        CHECK(std::isfinite(value));
        CHECK(value >= 0);
      }
      CHECK(matrix[t][t].get<double>() == Approx(1.0));
    }
    // the centered form (each input's common move taken out): a fine-tuned task vector moves its own task's
    // logits apart, not only all alike, so it is there: finite ratios, at least 0, 1 on the diagonal
    const auto& centered = suite["leakage"][mode.get<std::string>()]["centered"];
    REQUIRE(centered.size() == tasks);
    for (size_t t = 0; t < tasks; ++t) {
      for (size_t s = 0; s < tasks; ++s) CHECK((std::isfinite(centered[t][s].get<double>()) && centered[t][s].get<double>() >= 0));
      CHECK(centered[t][t].get<double>() == Approx(1.0));
    }
  }
}

// Every mode has a scaling curve (task_vector_scaling) on the preset's grid plus task arithmetic's chosen lambda
// (parameter space), sorted; its scores are scores, and at lambda 1 it would be the single-task score.
void check_scaling(const nlohmann::json& suite, const std::vector<double>& grid) {
  REQUIRE(suite["task_vector_scaling"].size() == suite["modes"].size());
  for (const auto& mode : suite["modes"]) {
    INFO("scaling curve of " << mode.get<std::string>());
    const auto& curve = suite["task_vector_scaling"][mode.get<std::string>()];
    const std::vector<double> lambdas = curve["lambdas"];
    CHECK(std::is_sorted(lambdas.begin(), lambdas.end()));
    for (double l : grid) CHECK(std::count(lambdas.begin(), lambdas.end(), l) == 1);
    for (const auto& merged : suite["merged"])
      if (merged["method"] == "task_arithmetic" && merged["mode"] == mode && merged["space"] == "parameter")
        CHECK(std::count(lambdas.begin(), lambdas.end(), merged["hyperparameters"]["lambda"].get<double>()) == 1);
    REQUIRE(curve["matrix"].size() == suite["tasks"].size());
    for (const auto& row : curve["matrix"]) {
      REQUIRE(row.size() == lambdas.size());
      for (const auto& score : row) check_score(score, "task_vector_scaling." + mode.get<std::string>());
    }
  }
}

// Normalized scores exist exactly for the tasks every mode learned (single-task score above the task's
// learned threshold), their averages are finite, and every subset of the sweep holds one of them.
void check_normalization(const nlohmann::json& suite) {
  std::set<std::string> learned;
  for (const auto& task : suite["tasks"]) {
    const std::string name = task.get<std::string>();
    const double threshold = suite["learned_thresholds"][name].get<double>();
    CHECK(threshold > 0);
    bool every_mode = true;
    for (const auto& [mode, scores] : suite["single_task"].items())
      if (!(scores[name].get<double>() > threshold)) every_mode = false;
    if (every_mode) learned.insert(name);
  }
  std::set<std::string> written;
  for (const auto& task : suite["normalized_tasks"]) written.insert(task.get<std::string>());
  CHECK(written == learned);
  for (const auto& e : suite["merged"]) {
    std::set<std::string> normalized;
    const nlohmann::json scores = e.value("normalized", nlohmann::json::object());   // a copy: items() must not outlive it
    for (const auto& [task, value] : scores.items()) {
      normalized.insert(task);
      CHECK(std::isfinite(value.get<double>()));
    }
    CHECK(normalized == learned);
    CHECK(e.contains("normalized_average") == !learned.empty());
    if (!learned.empty()) CHECK(std::isfinite(e["normalized_average"].get<double>()));
  }
  // Sweep subsets hold at least one learned task and are normalized over those (named when not all tasks).
  for (const auto& point : suite["num_tasks_sweep"]) {
    for (const auto& subset : point["subsets"]) {
      size_t learned_in_subset = 0;
      for (const auto& task : subset) learned_in_subset += learned.count(task.get<std::string>());
      CHECK(learned_in_subset >= 1);
    }
    CHECK(point.contains("normalized_over") == (learned.size() < suite["tasks"].size()));
    CHECK(std::isfinite(point["absolute_average"].get<double>()));
  }
}
}  // namespace

TEST_CASE("the smoke preset runs the study end to end and writes a complete report", "[experiment][smoke]") {
  fs::path root = fs::temp_directory_path() / "linfuse_smoke_test";
  fs::remove_all(root);
  experiments::ExperimentOptions o;
  o.preset = "smoke";
  o.suites = {"vision"};
  o.threads = 2;
  o.quiet = true;
  // The smoke models stay near chance, so the default threshold (chance + 2 standard errors) would leave no
  // task to normalize; a margin of -3 lets every task through and the normalized scores and the sweep run.
  o.overrides = {{"vision", {{"merge", {{"learned_margin_se", -3.0}}}}}};
  o.cache_dir = (root / "cache1").string();
  o.out_dir = (root / "out1").string();
  auto utc = [](std::time_t t) {
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return std::string(buf);
  };
  const std::string before = utc(std::time(nullptr)), one_second_later = utc(std::time(nullptr) + 1);
  std::string dir = experiments::run_experiment(o);
  nlohmann::json r = nlohmann::json::parse(slurp(fs::path(dir) / "results.json"));
  const auto& v = r["suites"]["vision"];
  REQUIRE(v["tasks"].size() == 3);
  // every test score is measured on evaluation.test_examples = 128 examples, the size of the test split
  for (const auto& task : v["tasks"]) CHECK(v["test_examples"][task.get<std::string>()] == 128);
  for (const auto& [task, score] : v["zero_shot"].items()) check_score(score, "zero_shot." + task);
  for (const auto& mode : {"full", "linear-full", "lora", "l-lora", "l-lora-local"})
    for (const auto& [task, score] : v["single_task"][mode].items()) check_score(score, std::string(mode) + "." + task);
  // every method ran in every mode it applies to (the LoRA modes in both spaces)
  std::set<std::string> seen;
  for (const auto& e : v["merged"]) {
    seen.insert(e["method"].get<std::string>() + "/" + e["mode"].get<std::string>() + "/" + e["space"].get<std::string>());
    for (const auto& [task, score] : e["test"].items()) check_score(score, e["method"].get<std::string>() + ".test." + task);
  }
  check_normalization(v);
  REQUIRE(v["normalized_tasks"].size() == 3);
  CHECK(seen.count("ties/l-lora/weight") == 1);
  CHECK(seen.count("lorahub/lora/parameter") == 1);
  CHECK(seen.count("lorahub/full/parameter") == 0);
  CHECK(seen.count("adamerging_layer/linear-full/parameter") == 1);
  CHECK(seen.count("regmean/l-lora-local/parameter") == 1);
  CHECK(seen.count("fisher/l-lora/parameter") == 1);
  CHECK(v["num_tasks_sweep"].size() == 5 * 2);   // k = 2, 3 for each mode
  CHECK(v["disentanglement"].size() == 2);       // lora and l-lora
  for (const auto& [mode, sim] : v["cosine_similarity"].items()) CHECK(sim["matrix"].size() == 3);
  check_cross_task(v);
  check_leakage(v);
  check_scaling(v, {0.5});
  // the pretrained features' diagnostics: a linear probe per task, the tasks' domain similarity (cosines, 1 on
  // the diagonal) and per mode its rank correlation with the cross-task damage
  REQUIRE(v["linear_probe"].size() == 3);
  for (const auto& [task, score] : v["linear_probe"].items()) check_score(score, "linear_probe." + task);
  const auto& similarity = v["domain_similarity"]["matrix"];
  REQUIRE(similarity.size() == 3);
  for (size_t t = 0; t < 3; ++t) {
    REQUIRE(similarity[t].size() == 3);
    for (size_t s = 0; s < 3; ++s) check_score(similarity[t][s], "domain_similarity.matrix");
    CHECK(similarity[t][t].get<double>() == Approx(1.0));
  }
  REQUIRE(v["domain_similarity"]["damage_correlation"].size() == 5);
  for (const auto& [mode, rho] : v["domain_similarity"]["damage_correlation"].items())
    check_score(rho, "domain_similarity.damage_correlation." + mode);
  // manifest and report
  nlohmann::json manifest = nlohmann::json::parse(slurp(fs::path(dir) / "manifest.json"));
  CHECK(manifest["seed"] == 0);
  CHECK(manifest["threads"] == 2);
  // "started" is when the study began, not when its manifest was written
  CHECK(manifest["started"].get<std::string>() >= before);
  CHECK(manifest["started"].get<std::string>() <= one_second_later);
  CHECK(manifest["stage_seconds"].contains("vision/pretrain"));
  std::string report = slurp(fs::path(dir) / "report.md");
  for (const char* section : {"single-task scores", "Merged models", "number of merged tasks", "Cosine similarity",
                              "Weight disentanglement", "Claims of the paper", "Time per stage", "Cross-task leakage",
                              "Linear probe of the pretrained features", "Domain similarity and cross-task damage"}) {
    INFO("report section containing '" << section << "'");
    CHECK(report.find(section) != std::string::npos);
  }
  // the same seed and thread count from scratch: the same results.json, byte for byte
  o.cache_dir = (root / "cache2").string();
  o.out_dir = (root / "out2").string();
  std::string dir2 = experiments::run_experiment(o);
  CHECK(slurp(fs::path(dir) / "results.json") == slurp(fs::path(dir2) / "results.json"));
  fs::remove_all(root);
}

TEST_CASE("the text suite runs end to end on a tiny config, in range and deterministic", "[experiment][smoke][text_suite]") {
  fs::path root = fs::temp_directory_path() / "linfuse_text_smoke_test";
  fs::remove_all(root);
  experiments::ExperimentOptions o;
  o.preset = "smoke";
  o.suites = {"text"};
  o.threads = 2;
  o.quiet = true;
  o.report = false;
  // smaller than the smoke preset: two tasks (one of them the regression one), a few steps
  o.overrides = {{"text",
                  {{"tasks", {"sst2", "stsb"}},
                   {"data", {{"train", 64}, {"validation", 16}, {"test", 16}}},
                   {"pretrain", {{"steps", 5}}},
                   {"finetune", {{"steps", 5}}},
                   // test_examples above the test split's 16: scores use the 16 there are
                   {"evaluation", {{"validation_examples", 16}, {"test_examples", 24}, {"batch_size", 16}}},
                   {"merge", {{"regmean_examples", 8}, {"fisher_examples", 2}}},
                   {"disentanglement", {{"pairs", nlohmann::json::array({nlohmann::json::array({"sst2", "stsb"})})}, {"examples", 8}}}}}};
  o.cache_dir = (root / "cache1").string();
  o.out_dir = (root / "out1").string();
  std::string dir = experiments::run_experiment(o);
  nlohmann::json r = nlohmann::json::parse(slurp(fs::path(dir) / "results.json"));
  const auto& t = r["suites"]["text"];
  REQUIRE(t["tasks"].size() == 2);
  CHECK(t["metric"]["stsb"] == "spearman");
  CHECK(t["test_examples"] == nlohmann::json({{"sst2", 16}, {"stsb", 16}}));
  CHECK(std::isfinite(t["pretrain"]["final_loss"].get<double>()));
  // the instruction-tuning stage ran on the tasks' instruct splits and lowered its loss
  REQUIRE(t.contains("instruct"));
  CHECK(t["instruct"]["source"] == "instruct");
  CHECK(t["instruct"]["examples"].get<int64_t>() == 2 * 32);
  CHECK(t["instruct"]["final_loss"].get<double>() < t["instruct"]["first_loss"].get<double>());
  for (const auto& [task, score] : t["zero_shot"].items()) check_score(score, "zero_shot." + task);
  REQUIRE(t["baseline"].size() == 2);   // the word-feature baseline of each task
  for (const auto& [task, score] : t["baseline"].items()) check_score(score, "baseline." + task);
  CHECK(t["baseline_features"]["stsb"] == "word overlap");
  CHECK(t["baseline_features"]["sst2"] == "bag of words");
  for (const auto& mode : {"full", "linear-full", "lora", "l-lora", "l-lora-local"}) {
    REQUIRE(t["single_task"][mode].size() == 2);
    for (const auto& [task, score] : t["single_task"][mode].items()) check_score(score, std::string(mode) + "." + task);
  }
  std::set<std::string> seen;
  for (const auto& e : t["merged"]) {
    seen.insert(e["method"].get<std::string>() + "/" + e["mode"].get<std::string>() + "/" + e["space"].get<std::string>());
    for (const auto& [task, score] : e["test"].items()) check_score(score, e["method"].get<std::string>() + ".test." + task);
  }
  check_normalization(t);
  CHECK(seen.count("ties/l-lora/weight") == 1);
  CHECK(seen.count("lorahub/l-lora-local/parameter") == 1);
  CHECK(seen.count("regmean/full/parameter") == 1);
  CHECK(seen.count("fisher/lora/parameter") == 1);
  CHECK(seen.count("adamerging_task/linear-full/parameter") == 1);
  // k = 2 for each mode when at least one task was learned; no sweep otherwise (5 steps rarely learn them)
  CHECK(t["num_tasks_sweep"].size() == (t["normalized_tasks"].empty() ? 0u : 5u));
  CHECK(t["disentanglement"].size() == 1);
  for (const auto& [mode, sim] : t["cosine_similarity"].items()) CHECK(sim["matrix"].size() == 2);
  check_cross_task(t);
  check_leakage(t);
  CHECK_FALSE(t.contains("linear_probe"));   // a diagnostic of image features: vision only
  // the same seed and thread count from scratch: the same results.json, byte for byte
  o.cache_dir = (root / "cache2").string();
  o.out_dir = (root / "out2").string();
  std::string dir2 = experiments::run_experiment(o);
  CHECK(slurp(fs::path(dir) / "results.json") == slurp(fs::path(dir2) / "results.json"));
  fs::remove_all(root);
}
