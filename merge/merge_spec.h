#pragma once
// What `linfuse merge` is asked to do: the method and every hyperparameter, the inputs (safetensors checkpoints or
// PEFT adapter directories), the space of an adapter merge, the output and its dtype. One parser serves the JSON
// config and the command line (the CLI turns its flags into the same JSON), so both validate the same way.
//
// Config format (merge_config_help() prints it for --help):
//   {"method": "ties",
//    "base": "base.safetensors",
//    "models": ["a.safetensors", {"path": "b.safetensors", "weight": 1.0, "fisher": "b.fisher.safetensors",
//                                 "gram": "b.grams.safetensors"}],
//    "hyperparameters": {"keep": 0.2, "lambda": 1.0, "sign": "mass", "trim": "global", "aggregation": "mean"},
//    "space": "parameter", "delta_form": "auto", "refactorize_rank": 8,
//    "dtype": "input", "output": "merged.safetensors"}
// Relative paths in a config file are resolved against the config file's folder (resolve_config_paths), so a config
// kept next to its checkpoints works from any working directory.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "merge/lora.h"
#include "merge/ties.h"

namespace linfuse::merge {

enum class ToolMethod { simple_average, weighted_average, task_arithmetic, ties, dare, fisher, regmean };
const char* tool_method_name(ToolMethod method);

// What DARE's sparsified task vectors are merged with.
enum class DareCombine { average, task_arithmetic, ties };
const char* dare_combine_name(DareCombine combine);

// Adapter merges: adapter-parameter space (A and B merged separately) or weight space (Delta W = s B A).
// Checkpoints are always merged in parameter space.
enum class AdapterSpace { parameter, weight };

// Storage of merged floating tensors: the inputs' dtype, or one for all.
enum class OutputDType { input, float32, float16, bfloat16, float64 };
const char* output_dtype_name(OutputDType dtype);

struct ModelInput {
  std::string path;             // a .safetensors file or a PEFT adapter directory
  std::optional<double> weight; // weighted_average's weight; fisher/regmean's model coefficient
  std::string fisher;           // fisher: diagonal Fishers of this model (safetensors, keyed and shaped like the parameters)
  std::string gram;             // regmean: X^T X per Linear module (safetensors keyed by module name, (in, in))
};

struct MergeSpec {
  ToolMethod method = ToolMethod::task_arithmetic;
  std::string base;             // theta0 (checkpoints) or the full model an adapter's Delta W is added to; "" = none
  std::vector<ModelInput> models;

  // Hyperparameters; parse_merge_spec fills the defaults of the method (those of merge/*.h).
  double lambda = 0.3;          // task_arithmetic 0.3, ties 1.0; dare: as its combine
  TiesOptions ties;             // keep_fraction, trim_scope, sign_election, aggregation (scaling = lambda)
  double drop = 0.5;            // dare: drop probability p
  uint64_t seed = 0;            // dare: mask seed
  bool rescale = true;          // dare: survivors / (1 - p)
  DareCombine combine = DareCombine::task_arithmetic;
  double fisher_floor = 1e-6;
  bool normalize_fishers = false;
  double regmean_alpha = 0.9;   // off-diagonal scale of the Grams
  double regmean_ridge = 1e-6;

  AdapterSpace space = AdapterSpace::parameter;
  std::optional<LoraDeltaForm> delta_form;   // nullopt: from adapter_config.json (linfuse mode local-linear -> linearized)
  int64_t refactorize_rank = -1;             // weight space: -1 full weights (needs base), 0 the adapters' rank, r > 0
  OutputDType dtype = OutputDType::input;
  std::string output;
  bool dry_run = false;                      // validate and describe the merge, write nothing

  bool uses_model_weights() const;   // weighted_average, fisher, regmean
  // Every hyperparameter the method uses, with its value in effect (recorded in the output's metadata).
  nlohmann::ordered_json hyperparameters() const;
  // The whole normalized config (parse_merge_spec(to_json()) gives the same spec).
  nlohmann::ordered_json to_json() const;
};

// Parses and validates a config. Throws std::invalid_argument "[linfuse merge] invalid config: <every problem>":
// unknown keys, wrong types, unknown method or choice, out-of-range values, hyperparameters the method does not use,
// a missing output or models. Paths are taken as they are (see resolve_config_paths).
MergeSpec parse_merge_spec(const nlohmann::json& config);

// The config with its relative paths (base, output, models' path/fisher/gram) resolved against `folder` -- for a config
// read from a file, its folder. Anything that is not a string path is left for parse_merge_spec to report.
nlohmann::json resolve_config_paths(nlohmann::json config, const std::string& folder);

// The config format and the methods with their defaults, for `linfuse merge --help`.
std::string merge_config_help();

}  // namespace linfuse::merge
