// The experiment's configuration: a preset, then the caller's overrides and the command line's --set assignments,
// checked before any stage runs (experiment.h). A field exists if the preset has it: the valid paths come from the
// preset's own JSON, so a field added to the presets needs no registration here; a typo is refused, naming the
// closest valid path, instead of running the study with the preset's value.
#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "experiments/experiment.h"
#include "experiments/linear_probe.h"
#include "experiments/merge_study.h"
#include "experiments/suite_common.h"
#include "experiments/text_suite.h"
#include "experiments/text_tasks.h"
#include "experiments/vision_tasks.h"

namespace linfuse::experiments {

namespace {

using json = nlohmann::json;

// Fields the study reads with a default (`.value(...)`) that the presets leave out on purpose, with a value of the
// kind they take. Every other field is in the presets.
const std::vector<std::pair<std::string, json>>& optional_fields() {
  static const std::vector<std::pair<std::string, json>> fields = {
      // rsLoRA scaling (alpha / sqrt(r)); part of every fine-tuning run's cache key (the whole finetune section), so
      // writing its default into the presets would make every cached fine-tuning run be recomputed
      {"vision.finetune.lora.use_rslora", false},
      {"text.finetune.lora.use_rslora", false},
      // the fine-tuning loss (text_suite.h); absent means "sequence", and the cache keys of runs without it stay
      {"text.finetune.objective", "sequence"},
      // where this machine keeps the text sources; the defaults (Debian's paths) live in data::TextOptions
      {"text.fortunes_dir", ""},
      {"text.words_file", ""},
  };
  return fields;
}

const json* optional_field(const std::string& path) {
  for (const auto& [name, example] : optional_fields())
    if (name == path) return &example;
  return nullptr;
}

// The JSON kind a config value must keep: an integer setting takes only integers, a real one any number.
std::string kind_of(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "true or false";
  if (v.is_array()) return "a JSON array";
  if (v.is_object()) return "a JSON object";
  return "null";
}

bool same_kind(const json& preset, const json& value) {
  if (preset.is_null()) return true;
  if (preset.is_string() && value.is_null()) return true;   // null turns an optional path off (base_checkpoint)
  if (preset.is_number_integer()) return value.is_number_integer();
  if (preset.is_number()) return value.is_number();
  return preset.type() == value.type();
}

// Levenshtein distance: the number of one-character insertions, deletions and substitutions from a to b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `name` by edit distance (the first of equals); "" when there is none.
std::string closest(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& c : candidates)
    if (size_t d = edit_distance(name, c); d < best_distance) best = c, best_distance = d;
  return best;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Every field path of `config` ("vision", "vision.finetune", "vision.finetune.steps", ...; list entries not
// included), plus the optional fields.
void collect_paths(const json& config, const std::string& prefix, std::vector<std::string>& out) {
  if (!config.is_object()) return;
  for (const auto& [key, value] : config.items()) {
    std::string path = prefix.empty() ? key : prefix + "." + key;
    out.push_back(path);
    collect_paths(value, path, out);
  }
}

[[noreturn]] void unknown_field(const json& config, const std::string& path) {
  std::vector<std::string> paths;
  collect_paths(config, "", paths);
  for (const auto& [name, _] : optional_fields()) paths.push_back(name);
  throw std::invalid_argument("[config] unknown field " + path + " (the closest is " + closest(path, paths) +
                              "): --set and overrides can change only the fields the preset has ('linfuse experiment "
                              "--print-config' lists them)");
}

[[noreturn]] void refuse_preset_field() {
  throw std::invalid_argument("[config] preset cannot be changed with --set or overrides: it selects every default of "
                              "the config; choose it with --preset");
}

// Puts `value` at `target` (the field `path` of the config, whose current value is `target`): an object is merged
// field by field, anything else replaces the field and must be of its kind.
void assign(const json& config, json& target, const json& value, const std::string& path);

void merge_object(const json& config, json& base, const json& overrides, const std::string& path) {
  for (const auto& [key, value] : overrides.items()) {
    const std::string here = path.empty() ? key : path + "." + key;
    if (here == "preset") refuse_preset_field();
    if (!base.contains(key)) {
      const json* example = optional_field(here);
      if (!example) unknown_field(config, here);
      if (!same_kind(*example, value))
        throw std::invalid_argument("[config] " + here + " must be " + kind_of(*example) + ", got " + value.dump());
      base[key] = value;
      continue;
    }
    assign(config, base[key], value, here);
  }
}

void assign(const json& config, json& target, const json& value, const std::string& path) {
  if (value.is_object() && target.is_object()) {
    merge_object(config, target, value, path);
    return;
  }
  // A value of another kind than the preset's would only fail (or be misread) when its stage runs, possibly after
  // minutes of pretraining; refuse it now.
  if (!same_kind(target, value))
    throw std::invalid_argument("[config] " + path + " must be " + kind_of(target) + " (the preset has " + target.dump() +
                                "), got " + value.dump());
  target = value;
}

// The names of the list `path` (strings), each one of `known` and each once. `what` names an entry ("task").
std::vector<std::string> check_names(const json& list, const std::string& path, const std::vector<std::string>& known,
                                     const std::string& what) {
  std::vector<std::string> names;
  if (!list.is_array()) throw std::invalid_argument("[config] " + path + " must be a JSON array of " + what + " names");
  for (const json& entry : list) {
    if (!entry.is_string())
      throw std::invalid_argument("[config] " + path + " must list " + what + " names (strings), got " + entry.dump());
    const std::string name = entry.get<std::string>();
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw std::invalid_argument("[config] " + path + ": unknown " + what + " '" + name + "' (the closest is '" +
                                  closest(name, known) + "'; known: " + join(known) + ")");
    if (std::find(names.begin(), names.end(), name) != names.end())
      throw std::invalid_argument("[config] " + path + " lists the " + what + " '" + name + "' twice: list each once");
    names.push_back(name);
  }
  return names;
}

}  // namespace

void apply_overrides(json& base, const json& overrides) {
  if (overrides.is_object()) merge_object(base, base, overrides, "");
}

void apply_setting(json& config, const std::string& assignment) {
  const std::string usage = "write --set section.field=value, e.g. --set vision.finetune.steps=300";
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos)
    throw std::invalid_argument("[config] --set needs path=value, got '" + assignment + "': " + usage);
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  std::vector<std::string> names;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    names.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& name : names)
    if (name.empty())
      throw std::invalid_argument("[config] --set '" + assignment + "': the path '" + path + "' " +
                                  (path.empty() ? std::string("is empty") : "has an empty field name") + ": " + usage);
  if (names[0] == "preset") refuse_preset_field();
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;   // a bare word is a string
  }

  // Walk to the field: objects by name, lists by index.
  json* target = &config;
  std::string here;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string parent = here;
    here = here.empty() ? name : here + "." + name;
    if (target->is_object()) {
      if (!target->contains(name)) {
        const json* example = i + 1 == names.size() ? optional_field(here) : nullptr;
        if (!example) unknown_field(config, path);
        (*target)[name] = *example;   // then replaced by the value, after the kind check
      }
      target = &(*target)[name];
    } else if (target->is_array()) {
      const size_t length = target->size();
      const std::string range = length == 0 ? "it is empty" : "indexes 0 to " + std::to_string(length - 1);
      if (name.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument("[config] " + parent + " is a list: address an entry by its index (" + range +
                                    "), or set the whole list: --set " + parent + "='[...]'");
      if (name.size() > 18 || std::stoull(name) >= length)
        throw std::invalid_argument("[config] index " + name + " is out of range: " + parent + " has " +
                                    std::to_string(length) + " entries (" + range + "); to change its length set the "
                                    "whole list: --set " + parent + "='[...]'");
      target = &(*target)[std::stoull(name)];
    } else {
      unknown_field(config, path);   // a field inside a number, string, ...
    }
  }
  assign(config, *target, value, here);
}

nlohmann::json experiment_config(const ExperimentOptions& options) {
  json config = preset_config(options.preset);
  apply_overrides(config, options.overrides);
  for (const auto& setting : options.settings) apply_setting(config, setting);
  return config;
}

void validate_config(const json& config, const std::vector<std::string>& suites, uint64_t seed) {
  // Checked before any stage runs, not after minutes of pretraining.
  std::vector<std::string> mode_names;
  for (peft::FinetuneMode mode : peft::all_modes()) mode_names.push_back(peft::mode_name(mode));
  for (const auto& suite_name : suites) {
    if (!config.contains(suite_name)) continue;
    const json& suite = config[suite_name];
    // Sizes that must be positive (a batch or split of 0 examples divides by zero or "trains" on nothing);
    // instruct.steps = 0 skips instruction tuning (documented in --help), diagnostics.leakage_examples = 0 the leakage.
    struct Positive {
      const char *section, *field;
      int64_t least;
    };
    const Positive sizes[] = {{"pretrain", "steps", 1},           {"pretrain", "batch_size", 1},
                              {"instruct", "steps", 0},           {"instruct", "batch_size", 1},
                              {"finetune", "steps", 1},           {"finetune", "batch_size", 1},
                              {"evaluation", "batch_size", 1},    {"evaluation", "validation_examples", 1},
                              {"evaluation", "test_examples", 1}, {"data", "train", 1},
                              {"data", "validation", 1},          {"data", "test", 1},
                              {"data", "pretrain", 1},           {"data", "instruct", 0},
                              {"diagnostics", "leakage_examples", 0}};
    for (const Positive& p : sizes) {
      if (!suite.contains(p.section) || !suite[p.section].contains(p.field)) continue;
      const json& v = suite[p.section][p.field];
      if (!v.is_number_integer() || v.get<int64_t>() < p.least)
        throw std::invalid_argument("[config] " + suite_name + "." + p.section + "." + p.field + " must be an integer >= " +
                                    std::to_string(p.least) + ", got " + v.dump());
    }
    if (suite_name == "text" && suite.contains("finetune")) finetune_objective(suite["finetune"]);
    if (suite_name == "text" && suite.contains("evaluation")) evaluation_calibration(suite["evaluation"]);
    if (suite.contains("instruct") && suite["instruct"].contains("source")) {
      const json& source = suite["instruct"]["source"];
      if (source != "instruct" && source != "train")
        throw std::invalid_argument("[config] " + suite_name + ".instruct.source must be \"instruct\" (the instruct split, " +
                                    "data.instruct examples a task) or \"train\" (the training examples), got " + source.dump());
    }
    // Lists that name things: every name known, each once. Merging needs two tasks and the study one mode at least.
    const std::vector<std::string> task_names = suite_name == "vision" ? data::vision_task_names() : data::text_task_names();
    if (!suite.contains("tasks") || !suite["tasks"].is_array() || suite["tasks"].size() < 2)
      throw std::invalid_argument("[config] " + suite_name + ".tasks must list at least 2 tasks to merge, got " +
                                  (suite.contains("tasks") ? suite["tasks"].dump() : std::string("nothing")));
    const std::vector<std::string> tasks = check_names(suite["tasks"], suite_name + ".tasks", task_names, "task");
    if (!suite.contains("modes") || !suite["modes"].is_array() || suite["modes"].empty())
      throw std::invalid_argument("[config] " + suite_name + ".modes must list at least one fine-tuning mode (" +
                                  join(mode_names) + ")");
    for (const auto& mode : check_names(suite["modes"], suite_name + ".modes", mode_names, "mode"))
      finetune_config(suite["finetune"], peft::mode_from_name(mode), seed);
    if (suite.contains("diagnostics") && suite["diagnostics"].contains("linear_probe"))
      LinearProbeConfig::from_json(suite["diagnostics"]["linear_probe"]).validate();
    if (suite.contains("data") && suite["data"].contains("pretrain_style_strength_per_task") &&
        !suite["data"]["pretrain_style_strength_per_task"].is_null()) {
      const json& per_task = suite["data"]["pretrain_style_strength_per_task"];
      const std::string path = suite_name + ".data.pretrain_style_strength_per_task";
      if (!per_task.is_object())
        throw std::invalid_argument("[config] " + path + " must be an object {task: strength}, got " + per_task.dump());
      for (const auto& [task, strength] : per_task.items()) {
        check_names(json::array({task}), path, task_names, "task");
        if (!strength.is_number() || strength.get<double>() < 0 || strength.get<double>() > 1)
          throw std::invalid_argument("[config] " + path + "." + task + " must be a style strength in [0, 1], got " + strength.dump());
      }
    }
    if (suite.contains("diagnostics") && suite["diagnostics"].contains("scaling_lambdas")) {
      const json& lambdas = suite["diagnostics"]["scaling_lambdas"];
      bool numbers = lambdas.is_array();
      for (const json& l : lambdas) numbers = numbers && l.is_number() && std::isfinite(l.get<double>());
      if (!numbers)
        throw std::invalid_argument("[config] " + suite_name + ".diagnostics.scaling_lambdas must be a list of finite numbers " +
                                    "(an empty list skips the scaling curve), got " + lambdas.dump());
    }
    if (suite.contains("merge")) {
      const json& merge = suite["merge"];
      if (merge.contains("methods")) check_names(merge["methods"], suite_name + ".merge.methods", merge_method_names(), "method");
      if (merge.contains("lora_spaces"))
        check_names(merge["lora_spaces"], suite_name + ".merge.lora_spaces", lora_space_names(), "space");
    }
    if (suite.contains("sweep") && suite["sweep"].contains("methods"))
      check_names(suite["sweep"]["methods"], suite_name + ".sweep.methods", sweep_method_names(), "method");
    if (suite.contains("disentanglement")) {
      const json& dis = suite["disentanglement"];
      if (dis.contains("modes")) check_names(dis["modes"], suite_name + ".disentanglement.modes", mode_names, "mode");
      // Each pair names two of the suite's tasks (a task left out by --set ...tasks would fail only after fine-tuning).
      if (dis.contains("pairs")) {
        const std::string path = suite_name + ".disentanglement.pairs";
        if (!dis["pairs"].is_array()) throw std::invalid_argument("[config] " + path + " must be a JSON array of task pairs");
        for (const json& pair : dis["pairs"]) {
          if (!pair.is_array() || pair.size() != 2)
            throw std::invalid_argument("[config] " + path + " must hold pairs of task names, [\"a\", \"b\"], got " + pair.dump());
          check_names(pair, path + " (its tasks are " + suite_name + ".tasks)", tasks, "task");
        }
      }
    }
  }
}

}  // namespace linfuse::experiments
