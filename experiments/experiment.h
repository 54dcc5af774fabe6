#pragma once
// `linfuse experiment`: the whole study end to end (pretrain, fine-tune in five modes, merge, analyse, report)
// for a preset, with every stage cached so that an interrupted run resumes where it stopped.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace linfuse::experiments {

// The full configuration of a preset: "smoke" (about a minute; used by a test), "small" (the default of
// `make run`, at most 20 minutes on 2 cores), "paper" (the full study, hours).
nlohmann::json preset_config(const std::string& preset);
std::vector<std::string> preset_names();
// Merges `overrides` into `config` object by object (a non-object value replaces the field). Throws
// std::invalid_argument naming the field when a value is of another kind than the one it replaces (a string
// for an integer, a real number for an integer, an array for a string, ...), when a field is not in `config` (the
// preset: naming the closest valid path; a short list of optional fields is known, experiment_config.cpp), or when
// it would change "preset".
void apply_overrides(nlohmann::json& config, const nlohmann::json& overrides);
// One --set assignment "path=value": a dotted path of field names and list indexes ("vision.finetune.steps",
// "vision.tasks.1"), the value in JSON (a bare word is a string). The same checks as apply_overrides, plus a malformed
// path and a list index out of range, each refused with a message saying what to write.
void apply_setting(nlohmann::json& config, const std::string& assignment);

struct ExperimentOptions {
  std::string preset = "small";
  std::vector<std::string> suites = {"vision", "text"};
  int threads = 0;                 // 0: keep the current setting
  std::string out_dir;             // results folder; empty: results/<preset>-<suites>-seed<seed>
  std::string cache_dir;           // stage cache; empty: runs/cache
  uint64_t seed = 0;
  bool report = true;              // write report.md and plots
  bool quiet = false;              // no status lines on stdout
  nlohmann::json overrides;        // merged into the preset (for tests and experiments with the config)
  // Non-empty: run only the suite's pretraining stages (one suite), write its base model there as a base
  // checkpoint (base_checkpoint.h) and stop; `command` is recorded in its manifest.
  std::string write_base;
  std::string command;
  std::vector<std::string> settings;   // --set "path=value" assignments, applied in order after `overrides`
};

// The preset of `options` with its overrides and settings applied (apply_overrides, apply_setting).
nlohmann::json experiment_config(const ExperimentOptions& options);

// Checks what would otherwise fail (or silently mislead) only when its stage runs: the fine-tuning settings
// of every mode of each suite (FinetuneConfig::validate), steps / batch sizes >= 1, and the lists that name things
// (tasks, modes, merge and sweep methods, LoRA spaces, disentanglement modes and pairs): every name known (else the
// closest is named) and listed once. Throws std::invalid_argument naming the field. run_experiment calls it before
// its first stage.
void validate_config(const nlohmann::json& config, const std::vector<std::string>& suites, uint64_t seed);

// Runs the study and returns the results folder (results.json, manifest.json, report.md, CSVs, plots), or
// with options.write_base the base checkpoint's folder.
std::string run_experiment(const ExperimentOptions& options);

}  // namespace linfuse::experiments
