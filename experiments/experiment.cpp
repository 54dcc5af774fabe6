#include "experiments/experiment.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>
#include <filesystem>
#include <iostream>
#include <memory>

#include "experiments/domain_similarity.h"
#include "experiments/leakage.h"
#include "experiments/report.h"
#include "experiments/suite_common.h"
#include "experiments/text_suite.h"
#include "experiments/vision_pretrained_features.h"
#include "experiments/vision_suite.h"
#include "tensor/blas_kernel.h"
#include "tensor/kernel_isa.h"
#include "tensor/build_info.h"
#include "tensor/threading.h"

namespace linfuse::experiments {

namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The scaling curve's lambdas for one mode: the configured grid plus task arithmetic's chosen lambda (parameter
// space), sorted, so that the report reads r there exactly. An empty grid stays empty (the curve is skipped).
std::vector<double> with_chosen_lambda(std::vector<double> grid, const nlohmann::json& merged) {
  if (grid.empty()) return grid;
  for (const auto& e : merged)
    if (e["method"] == "task_arithmetic" && e["space"] == "parameter" && e["hyperparameters"].contains("lambda")) {
      const double chosen = e["hyperparameters"]["lambda"].get<double>();
      if (std::find(grid.begin(), grid.end(), chosen) == grid.end()) grid.push_back(chosen);
    }
  std::sort(grid.begin(), grid.end());
  return grid;
}

// Runs the merging study of one suite over its modes and adds the entries to `results`.
template <class Suite>
void merging_study(Suite& suite, const nlohmann::json& config, nlohmann::json& results, SuiteContext& ctx,
                   const std::string& name) {
  MergeStudyConfig merge_config = MergeStudyConfig::from_json(config.value("merge", nlohmann::json::object()));
  SweepConfig sweep_config = SweepConfig::from_json(config.value("sweep", nlohmann::json::object()));
  DisentanglementConfig dis_config = DisentanglementConfig::from_json(config.value("disentanglement", nlohmann::json::object()));
  std::vector<std::string> dis_modes = config.value("disentanglement", nlohmann::json::object())
                                           .value("modes", std::vector<std::string>{"lora", "l-lora", "l-lora-local"});
  // First-order cross-task leakage of the task vectors (leakage.h) on this many validation inputs a task; 0 skips it.
  const int64_t leakage_examples =
      config.value("diagnostics", nlohmann::json::object()).value("leakage_examples", int64_t(32));
  // The own-task scaling curve of every task vector (task_vector_scaling) at these lambdas; empty skips it.
  const std::vector<double> scaling_lambdas =
      config.value("diagnostics", nlohmann::json::object()).value("scaling_lambdas", std::vector<double>{});
  results["merged"] = nlohmann::json::array();
  results["num_tasks_sweep"] = nlohmann::json::array();
  results["disentanglement"] = nlohmann::json::array();
  // Normalized scores count only the tasks every mode learned (single-task test score above the task's
  // learned_threshold): one task set for all modes, so their normalized averages compare like with like.
  // A left-out task gets a NaN normalizer, which the merge study skips.
  const std::vector<double> thresholds =
      suite.learned_thresholds(config.value("merge", nlohmann::json::object()).value("learned_margin_se", 2.0));
  std::vector<bool> learned(thresholds.size(), true);
  for (peft::FinetuneMode mode : suite.modes())
    for (size_t t = 0; t < thresholds.size(); ++t)
      if (!(suite.single_task_test(mode)[t] > thresholds[t])) learned[t] = false;
  results["normalized_tasks"] = nlohmann::json::array();
  results["learned_thresholds"] = nlohmann::json::object();
  for (size_t t = 0; t < thresholds.size(); ++t) {
    const std::string task = config["tasks"][t].template get<std::string>();
    results["learned_thresholds"][task] = thresholds[t];
    if (learned[t]) results["normalized_tasks"].push_back(task);
  }
  for (peft::FinetuneMode mode : suite.modes()) {
    std::string mode_name = peft::mode_name(mode);
    std::unique_ptr<MergeTarget> target = suite.merge_target(mode);
    std::vector<double> single = suite.single_task_test(mode);
    for (size_t t = 0; t < single.size(); ++t)
      if (!learned[t]) single[t] = std::numeric_limits<double>::quiet_NaN();
    nlohmann::json merged;
    {
      StageTimer timer(ctx, name + "/merge/" + mode_name);
      merged = run_merging_methods(*target, merge_config, single, ctx.log);
      for (auto& e : merged) results["merged"].push_back(e);
    }
    const std::vector<double> mode_scaling_lambdas = with_chosen_lambda(scaling_lambdas, merged);
    {
      StageTimer timer(ctx, name + "/similarity");
      results["cosine_similarity"][mode_name] = task_vector_similarity(*target);
    }
    {
      StageTimer timer(ctx, name + "/cross_task");
      results["cross_task"][mode_name] = cross_task_scores(*target);
    }
    if (!mode_scaling_lambdas.empty()) {
      StageTimer timer(ctx, name + "/scaling");
      results["task_vector_scaling"][mode_name] = task_vector_scaling(*target, mode_scaling_lambdas);
    }
    if (leakage_examples > 0) {
      StageTimer timer(ctx, name + "/leakage");
      nlohmann::json leakage = leakage_matrix(*target, leakage_examples, ctx.log);
      if (!leakage.empty()) results["leakage"][mode_name] = leakage;
    }
    if (!sweep_config.methods.empty()) {
      StageTimer timer(ctx, name + "/sweep");
      for (auto& e : run_num_tasks_sweep(*target, sweep_config, single, ctx.log)) results["num_tasks_sweep"].push_back(e);
    }
    if (std::find(dis_modes.begin(), dis_modes.end(), mode_name) != dis_modes.end() && !dis_config.pairs.empty()) {
      StageTimer timer(ctx, name + "/disentanglement");
      for (auto& e : run_disentanglement(*target, dis_config, ctx.log)) results["disentanglement"].push_back(e);
    }
  }
}

// Wall-clock times differ between runs, so a suite's timing entries move from its results (results.json must
// be identical for two runs with the same seed) to manifest.json; the report reads them back from there.
void move_times(nlohmann::json& suite_results, nlohmann::json& times) {
  for (const char* key : {"finetune_seconds"})
    if (suite_results.contains(key)) {
      times[key] = suite_results[key];
      suite_results.erase(key);
    }
}

}  // namespace

std::string run_experiment(const ExperimentOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const std::string started = utc_now();   // the manifest's start time (written at the end)
  if (options.threads > 0) set_num_threads(options.threads);
  nlohmann::json config = experiment_config(options);
  validate_config(config, options.suites, options.seed);
  StageCache cache(options.cache_dir.empty() ? std::filesystem::path("runs/cache") : std::filesystem::path(options.cache_dir));
  std::map<std::string, double> stage_seconds;
  bool quiet = options.quiet;
  SuiteContext ctx{cache, [quiet](const std::string& line) { if (!quiet) std::cout << line << std::endl; }, stage_seconds};
  if (!options.write_base.empty()) {
    if (options.suites.size() != 1)
      throw std::invalid_argument("[experiment] --write-base writes one suite's base model: pass --suite vision or --suite text");
    if (options.suites[0] == "text") {
      TextSuite suite(config["text"], options.seed, ctx);
      suite.write_base(options.write_base, options.preset, options.command);
    } else {
      VisionSuite suite(config["vision"], options.seed, ctx);
      suite.write_base(options.write_base, options.preset, options.command);
    }
    return options.write_base;
  }
  std::string suites_label;
  for (const auto& s : options.suites) suites_label += (suites_label.empty() ? "" : "+") + s;
  std::filesystem::path out = options.out_dir.empty()
                                  ? std::filesystem::path("results") /
                                        (options.preset + "-" + suites_label + "-seed" + std::to_string(options.seed))
                                  : std::filesystem::path(options.out_dir);
  std::filesystem::create_directories(out);

  nlohmann::json results;
  nlohmann::json suite_times;  // suite -> {"finetune_seconds": ...}: measured, so kept out of results.json
  for (const auto& suite_name : options.suites) {
    if (!config.contains(suite_name))
      throw std::invalid_argument("[experiment] unknown suite '" + suite_name + "' (known: vision, text)");
    if (suite_name == "vision") {
      VisionSuite suite(config["vision"], options.seed, ctx);
      nlohmann::json r = suite.prepare();
      r.update(pretrained_feature_diagnostics(suite, ctx));
      merging_study(suite, config["vision"], r, ctx, "vision");
      // Whether the cross-task damage of fine-tuning follows the domains' similarity (domain_similarity.h).
      r["domain_similarity"]["damage_correlation"] = damage_correlations(r);
      move_times(r, suite_times["vision"]);
      results["suites"]["vision"] = r;
    } else {
      TextSuite suite(config["text"], options.seed, ctx);
      nlohmann::json r = suite.prepare();
      merging_study(suite, config["text"], r, ctx, "text");
      move_times(r, suite_times["text"]);
      results["suites"]["text"] = r;
    }
  }
  const BuildInfo& build = build_info();
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // results.json holds only what the computation determines (so two runs can be compared byte for byte);
  // times, dates and the machine go to manifest.json.
  results["manifest"] = {{"preset", options.preset}, {"suites", options.suites}, {"seed", options.seed},
                         {"threads", num_threads()}, {"commit", build.commit}, {"dirty", build.dirty}, {"config", config}};
  write_json(out / "results.json", results);
  nlohmann::json manifest = results["manifest"];
  manifest["started"] = started;
  // How the binary was built and which BLAS kernel it ran on: the same results.json is expected from every
  // build of one commit for the default instruction set (docs/design.md), and these say which build this was.
  manifest["build"] = {{"compiler", build.compiler}, {"target_isa", build.target_isa}, {"build_type", build.build_type},
                       {"blas", blas_version()}, {"blas_core", blas_core_name()},
                       {"kernel_isa", kernels::kernel_paths_description()}};
  manifest["stage_seconds"] = stage_seconds;
  manifest["total_seconds"] = total;
  manifest["suite_seconds"] = suite_times;
  write_json(out / "manifest.json", manifest);
  if (options.report) {
    std::string report = write_report(out.string());
    ctx.log("report: " + report);
  }
  return out.string();
}

}  // namespace linfuse::experiments
