#include "merge/merge_spec.h"

#include <cmath>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "merge/named_tensors.h"

namespace linfuse::merge {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// The hyperparameters a method reads; any other given one is an error (a typo or a wrong method, not a no-op).
std::set<std::string> applicable_hyperparameters(ToolMethod method, DareCombine combine) {
  switch (method) {
    case ToolMethod::simple_average:
    case ToolMethod::weighted_average: return {};
    case ToolMethod::task_arithmetic: return {"lambda"};
    case ToolMethod::ties: return {"lambda", "keep", "sign", "trim", "aggregation"};
    case ToolMethod::dare: {
      std::set<std::string> keys = {"drop", "seed", "rescale", "combine"};
      if (combine == DareCombine::task_arithmetic) keys.insert("lambda");
      if (combine == DareCombine::ties) keys.insert({"lambda", "keep", "sign", "trim", "aggregation"});
      return keys;
    }
    case ToolMethod::fisher: return {"fisher_floor", "normalize_fishers"};
    case ToolMethod::regmean: return {"alpha", "ridge"};
  }
  return {};
}

// Collects every problem of a config, so one error lists them all.
struct Problems {
  std::vector<std::string> items;
  void add(const std::string& problem) { items.push_back(problem); }
};

std::string resolve(const std::string& path, const std::string& relative_to) {
  if (path.empty() || relative_to.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(relative_to) / path).lexically_normal().string();
}

void check_keys(const json& object, const std::set<std::string>& known, const std::string& where, Problems& problems) {
  for (const auto& item : object.items())
    if (!known.count(item.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      problems.add("unknown key '" + item.key() + "' in " + where + " (known: " + list + ")");
    }
}

std::optional<std::string> string_field(const json& object, const std::string& key, const std::string& where,
                                        Problems& problems) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    problems.add(where + "." + key + " must be a string, got " + it->dump());
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<double> number_field(const json& object, const std::string& key, const std::string& where,
                                   Problems& problems) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) {
    problems.add(where + "." + key + " must be a number, got " + it->dump());
    return std::nullopt;
  }
  double value = it->get<double>();
  if (!std::isfinite(value)) {
    problems.add(where + "." + key + " must be finite, got " + it->dump());
    return std::nullopt;
  }
  return value;
}

std::optional<bool> bool_field(const json& object, const std::string& key, const std::string& where, Problems& problems) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) {
    problems.add(where + "." + key + " must be true or false, got " + it->dump());
    return std::nullopt;
  }
  return it->get<bool>();
}

// A choice among `names`; returns the index or nullopt (with a problem) when unknown.
std::optional<size_t> choice_field(const json& object, const std::string& key, const std::vector<std::string>& names,
                                   const std::string& where, Problems& problems) {
  auto value = string_field(object, key, where, problems);
  if (!value) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i)
    if (*value == names[i]) return i;
  problems.add(where + "." + key + " must be one of " + join_names(names) + ", got '" + *value + "'");
  return std::nullopt;
}

std::string format_number(double value) {
  json j = value;
  return j.dump();
}

}  // namespace

const char* tool_method_name(ToolMethod method) {
  switch (method) {
    case ToolMethod::simple_average: return "simple_average";
    case ToolMethod::weighted_average: return "weighted_average";
    case ToolMethod::task_arithmetic: return "task_arithmetic";
    case ToolMethod::ties: return "ties";
    case ToolMethod::dare: return "dare";
    case ToolMethod::fisher: return "fisher";
    case ToolMethod::regmean: return "regmean";
  }
  return "?";
}

const char* dare_combine_name(DareCombine combine) {
  switch (combine) {
    case DareCombine::average: return "average";
    case DareCombine::task_arithmetic: return "task_arithmetic";
    case DareCombine::ties: return "ties";
  }
  return "?";
}

const char* output_dtype_name(OutputDType dtype) {
  switch (dtype) {
    case OutputDType::input: return "input";
    case OutputDType::float32: return "float32";
    case OutputDType::float16: return "float16";
    case OutputDType::bfloat16: return "bfloat16";
    case OutputDType::float64: return "float64";
  }
  return "?";
}

bool MergeSpec::uses_model_weights() const {
  return method == ToolMethod::weighted_average || method == ToolMethod::fisher || method == ToolMethod::regmean;
}

ordered_json MergeSpec::hyperparameters() const {
  ordered_json h = ordered_json::object();
  std::set<std::string> keys = applicable_hyperparameters(method, combine);
  // Fixed order: the reading order of a merge recipe.
  if (keys.count("combine")) h["combine"] = dare_combine_name(combine);
  if (keys.count("drop")) h["drop"] = drop;
  if (keys.count("seed")) h["seed"] = seed;
  if (keys.count("rescale")) h["rescale"] = rescale;
  if (keys.count("lambda")) h["lambda"] = lambda;
  if (keys.count("keep")) h["keep"] = ties.keep_fraction;
  if (keys.count("sign")) h["sign"] = ties.sign_election == SignElection::mass ? "mass" : "count";
  if (keys.count("trim")) h["trim"] = ties.trim_scope == TrimScope::global ? "global" : "per-tensor";
  if (keys.count("aggregation")) h["aggregation"] = ties.aggregation == DisjointAggregation::mean ? "mean" : "sum";
  if (keys.count("fisher_floor")) h["fisher_floor"] = fisher_floor;
  if (keys.count("normalize_fishers")) h["normalize_fishers"] = normalize_fishers;
  if (keys.count("alpha")) h["alpha"] = regmean_alpha;
  if (keys.count("ridge")) h["ridge"] = regmean_ridge;
  return h;
}

ordered_json MergeSpec::to_json() const {
  ordered_json j;
  j["method"] = tool_method_name(method);
  j["base"] = base.empty() ? ordered_json(nullptr) : ordered_json(base);
  ordered_json list = ordered_json::array();
  for (const auto& model : models) {
    ordered_json m;
    m["path"] = model.path;
    if (model.weight) m["weight"] = *model.weight;
    if (!model.fisher.empty()) m["fisher"] = model.fisher;
    if (!model.gram.empty()) m["gram"] = model.gram;
    list.push_back(m);
  }
  j["models"] = list;
  j["hyperparameters"] = hyperparameters();
  j["space"] = space == AdapterSpace::parameter ? "parameter" : "weight";
  j["delta_form"] = delta_form ? lora_delta_form_name(*delta_form) : "auto";
  j["refactorize_rank"] = refactorize_rank < 0 ? ordered_json(nullptr) : ordered_json(refactorize_rank);
  j["dtype"] = output_dtype_name(dtype);
  j["output"] = output;
  return j;
}

json resolve_config_paths(json config, const std::string& folder) {
  if (!config.is_object() || folder.empty()) return config;
  auto fix = [&](json& object, const char* key) {
    auto it = object.find(key);
    if (it != object.end() && it->is_string()) *it = resolve(it->get<std::string>(), folder);
  };
  fix(config, "base");
  fix(config, "output");
  if (auto models = config.find("models"); models != config.end() && models->is_array())
    for (json& model : *models) {
      if (model.is_string()) model = resolve(model.get<std::string>(), folder);
      else if (model.is_object())
        for (const char* key : {"path", "fisher", "gram"}) fix(model, key);
    }
  return config;
}

MergeSpec parse_merge_spec(const json& config) {
  if (!config.is_object())
    throw std::invalid_argument("[linfuse merge] invalid config: the config must be a JSON object, got " + config.dump());
  Problems problems;
  MergeSpec spec;
  check_keys(config,
             {"method", "base", "models", "hyperparameters", "space", "delta_form", "refactorize_rank", "dtype", "output",
              "dry_run"},
             "the config", problems);

  // Method (with the DARE spellings of fusion_bench: dare_ties, dare_task_arithmetic, dare_average).
  std::optional<DareCombine> combine_from_method;
  bool method_known = false;
  if (auto name = string_field(config, "method", "config", problems)) {
    const std::vector<std::pair<std::string, ToolMethod>> methods = {
        {"simple_average", ToolMethod::simple_average}, {"weighted_average", ToolMethod::weighted_average},
        {"task_arithmetic", ToolMethod::task_arithmetic}, {"ties", ToolMethod::ties}, {"dare", ToolMethod::dare},
        {"fisher", ToolMethod::fisher}, {"regmean", ToolMethod::regmean}};
    for (const auto& [method_name, method] : methods)
      if (*name == method_name) spec.method = method, method_known = true;
    if (*name == "dare_average") spec.method = ToolMethod::dare, combine_from_method = DareCombine::average, method_known = true;
    if (*name == "dare_task_arithmetic")
      spec.method = ToolMethod::dare, combine_from_method = DareCombine::task_arithmetic, method_known = true;
    if (*name == "dare_ties") spec.method = ToolMethod::dare, combine_from_method = DareCombine::ties, method_known = true;
    if (!method_known)
      problems.add("unknown method '" + *name +
                   "' (known: simple_average, weighted_average, task_arithmetic, ties, dare, dare_average, "
                   "dare_task_arithmetic, dare_ties, fisher, regmean)");
  } else if (!config.contains("method") || config["method"].is_null()) {
    problems.add("no method: set \"method\" (or --method)");
  }

  if (auto base = string_field(config, "base", "config", problems)) spec.base = *base;
  if (auto output = string_field(config, "output", "config", problems)) spec.output = *output;
  if (spec.output.empty()) problems.add("no output: set \"output\" (or --out)");
  if (auto dry = bool_field(config, "dry_run", "config", problems)) spec.dry_run = *dry;

  // Models.
  auto models = config.find("models");
  if (models == config.end() || models->is_null() || (models->is_array() && models->empty())) {
    problems.add("no models: list the fine-tuned checkpoints or adapters in \"models\" (or --models)");
  } else if (!models->is_array()) {
    problems.add("models must be an array of paths or {\"path\": ..., \"weight\": ...} objects, got " + models->dump());
  } else {
    for (size_t i = 0; i < models->size(); ++i) {
      const json& item = (*models)[i];
      std::string where = "models[" + std::to_string(i) + "]";
      ModelInput input;
      if (item.is_string()) {
        input.path = item.get<std::string>();
      } else if (item.is_object()) {
        check_keys(item, {"path", "weight", "fisher", "gram"}, where, problems);
        if (auto path = string_field(item, "path", where, problems)) input.path = *path;
        else if (!item.contains("path")) problems.add(where + " has no \"path\"");
        input.weight = number_field(item, "weight", where, problems);
        if (auto fisher = string_field(item, "fisher", where, problems)) input.fisher = *fisher;
        if (auto gram = string_field(item, "gram", where, problems)) input.gram = *gram;
      } else {
        problems.add(where + " must be a path or an object with \"path\", got " + item.dump());
      }
      if (item.is_string() && input.path.empty()) problems.add(where + " is an empty path");
      spec.models.push_back(input);
    }
  }

  // Hyperparameters.
  json hyper = json::object();
  if (auto it = config.find("hyperparameters"); it != config.end() && !it->is_null()) {
    if (it->is_object()) hyper = *it;
    else problems.add("hyperparameters must be an object, got " + it->dump());
  }
  check_keys(hyper,
             {"lambda", "keep", "sign", "trim", "aggregation", "drop", "seed", "rescale", "combine", "fisher_floor",
              "normalize_fishers", "alpha", "ridge"},
             "hyperparameters", problems);
  const std::string h = "hyperparameters";
  if (auto combine = choice_field(hyper, "combine", {"average", "task_arithmetic", "ties"}, h, problems)) {
    spec.combine = DareCombine(*combine);
    if (combine_from_method && *combine_from_method != spec.combine)
      problems.add(std::string("method ") + config["method"].get<std::string>() + " contradicts hyperparameters.combine '" +
                   dare_combine_name(spec.combine) + "'");
  } else if (combine_from_method) {
    spec.combine = *combine_from_method;
  }
  // Defaults of merge/*.h: task arithmetic's 0.3 (Ilharco et al.'s starting point), TIES's 1.0.
  bool ties_like = spec.method == ToolMethod::ties || (spec.method == ToolMethod::dare && spec.combine == DareCombine::ties);
  spec.lambda = ties_like ? 1.0 : 0.3;
  if (method_known) {
    std::set<std::string> allowed = applicable_hyperparameters(spec.method, spec.combine);
    for (const auto& item : hyper.items())
      if (!allowed.count(item.key()) && item.key() != "combine")
        problems.add("hyperparameter '" + item.key() + "' does not apply to " + tool_method_name(spec.method) +
                     (spec.method == ToolMethod::dare ? std::string(" combined with ") + dare_combine_name(spec.combine) : ""));
    if (hyper.contains("combine") && spec.method != ToolMethod::dare)
      problems.add("hyperparameter 'combine' applies to dare only");
  }
  if (auto lambda = number_field(hyper, "lambda", h, problems)) spec.lambda = *lambda;
  spec.ties.scaling = spec.lambda;
  if (auto keep = number_field(hyper, "keep", h, problems)) {
    if (!(*keep >= 0.0 && *keep <= 1.0))
      problems.add("hyperparameters.keep must be a fraction in [0, 1] (0.2 keeps the top 20%), got " + format_number(*keep));
    spec.ties.keep_fraction = *keep;
  }
  if (auto sign = choice_field(hyper, "sign", {"mass", "count"}, h, problems)) spec.ties.sign_election = SignElection(*sign);
  if (auto trim = choice_field(hyper, "trim", {"global", "per-tensor"}, h, problems)) spec.ties.trim_scope = TrimScope(*trim);
  if (auto aggregation = choice_field(hyper, "aggregation", {"mean", "sum"}, h, problems))
    spec.ties.aggregation = DisjointAggregation(*aggregation);
  if (auto drop = number_field(hyper, "drop", h, problems)) {
    if (!(*drop >= 0.0 && *drop < 1.0))
      problems.add("hyperparameters.drop must be in [0, 1) (1 would drop everything and rescale by 1/0), got " +
                   format_number(*drop));
    spec.drop = *drop;
  }
  if (auto it = hyper.find("seed"); it != hyper.end() && !it->is_null()) {
    // is_number_integer: parsed JSON stores 11 as unsigned, a C++ json literal as signed.
    if (it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0)) spec.seed = it->get<uint64_t>();
    else problems.add("hyperparameters.seed must be a non-negative integer, got " + it->dump());
  }
  if (auto rescale = bool_field(hyper, "rescale", h, problems)) spec.rescale = *rescale;
  if (auto floor = number_field(hyper, "fisher_floor", h, problems)) {
    if (!(*floor > 0.0)) problems.add("hyperparameters.fisher_floor must be > 0, got " + format_number(*floor));
    spec.fisher_floor = *floor;
  }
  if (auto normalize = bool_field(hyper, "normalize_fishers", h, problems)) spec.normalize_fishers = *normalize;
  if (auto alpha = number_field(hyper, "alpha", h, problems)) {
    if (!(*alpha >= 0.0 && *alpha <= 1.0))
      problems.add("hyperparameters.alpha (RegMean's off-diagonal scale) must be in [0, 1], got " + format_number(*alpha));
    spec.regmean_alpha = *alpha;
  }
  if (auto ridge = number_field(hyper, "ridge", h, problems)) {
    if (!(*ridge > 0.0)) problems.add("hyperparameters.ridge must be > 0, got " + format_number(*ridge));
    spec.regmean_ridge = *ridge;
  }

  // Per-model weights and statistics.
  if (method_known) {
    size_t weighted = 0;
    for (size_t i = 0; i < spec.models.size(); ++i) {
      const ModelInput& m = spec.models[i];
      std::string where = "models[" + std::to_string(i) + "] (" + m.path + ")";
      if (m.weight) ++weighted;
      // A weight of 1 is neutral for every method (configs may spell it out); any other value would be ignored.
      if (m.weight && !spec.uses_model_weights() && *m.weight != 1.0)
        problems.add(where + " has weight " + format_number(*m.weight) + ", but " + tool_method_name(spec.method) +
                     " takes no per-model weights (weighted_average, fisher and regmean do; scale with lambda)");
      if (!m.fisher.empty() && spec.method != ToolMethod::fisher)
        problems.add(where + " has Fisher statistics, used by the fisher method only");
      if (!m.gram.empty() && spec.method != ToolMethod::regmean)
        problems.add(where + " has Gram statistics, used by the regmean method only");
      if (spec.method == ToolMethod::fisher && m.fisher.empty())
        problems.add(where + " needs \"fisher\": the fisher method reads each model's diagonal Fisher (--fishers)");
      if (spec.method == ToolMethod::regmean && m.gram.empty())
        problems.add(where + " needs \"gram\": the regmean method reads each model's Grams X^T X (--grams)");
      if (m.weight && spec.uses_model_weights() && *m.weight < 0.0 && spec.method != ToolMethod::weighted_average)
        problems.add(where + " has weight " + format_number(*m.weight) + "; model coefficients must be >= 0");
    }
    if (spec.method == ToolMethod::weighted_average && weighted != spec.models.size())
      problems.add("weighted_average needs a weight for every model (" + std::to_string(weighted) + " of " +
                   std::to_string(spec.models.size()) + " given)");
    if ((spec.method == ToolMethod::fisher || spec.method == ToolMethod::regmean) && weighted != 0 &&
        weighted != spec.models.size())
      problems.add(std::string(tool_method_name(spec.method)) + " takes a weight for every model or for none (" +
                   std::to_string(weighted) + " of " + std::to_string(spec.models.size()) + " given)");
  }

  // Space, delta form, re-factorization, dtype.
  if (auto space = choice_field(config, "space", {"parameter", "weight"}, "config", problems)) spec.space = AdapterSpace(*space);
  if (auto form = choice_field(config, "delta_form", {"auto", "product", "linearized"}, "config", problems))
    if (*form > 0) spec.delta_form = *form == 1 ? LoraDeltaForm::product : LoraDeltaForm::linearized;
  if (auto it = config.find("refactorize_rank"); it != config.end() && !it->is_null()) {
    if (it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0))
      spec.refactorize_rank = it->get<int64_t>();
    else problems.add("refactorize_rank must be an integer >= 0 (0: the adapters' own rank), got " + it->dump());
    if (spec.space != AdapterSpace::weight)
      problems.add("refactorize_rank re-factorizes a weight-space merge: it needs \"space\": \"weight\" (--space weight)");
  }
  if (auto dtype = choice_field(config, "dtype", {"input", "float32", "float16", "bfloat16", "float64"}, "config", problems))
    spec.dtype = OutputDType(*dtype);

  if (!problems.items.empty()) {
    std::string text;
    for (const auto& p : problems.items) text += (text.empty() ? "" : "; ") + p;
    throw std::invalid_argument("[linfuse merge] invalid config: " + text);
  }
  return spec;
}

std::string merge_config_help() {
  return R"(Config file (--config FILE; flags given on the command line override its fields):
  {
    "method": "ties",
    "base": "base.safetensors",
    "models": ["a.safetensors",
               {"path": "b.safetensors", "weight": 1.0, "fisher": "b.fisher.safetensors", "gram": "b.grams.safetensors"}],
    "hyperparameters": {"keep": 0.2, "lambda": 1.0, "sign": "mass", "trim": "global", "aggregation": "mean"},
    "space": "parameter",           adapters only: "parameter" (A, B separately) or "weight" (Delta W = s B A)
    "delta_form": "auto",           weight space: "product" s(BA - B0A0), "linearized" (L-LoRA), "auto" (adapter_config)
    "refactorize_rank": null,       weight space: re-factorize to rank r as a PEFT adapter (0: the adapters' rank)
    "dtype": "input",               "input", "float32", "float16", "bfloat16" or "float64"
    "output": "merged.safetensors"  a file, or a PEFT adapter folder when the result is an adapter
  }
  Relative paths are resolved against the config file's folder. Unknown keys, and hyperparameters the method does
  not use, are errors. "weight" is read by weighted_average, fisher and regmean only (1.0 is accepted anywhere).

Methods (theta0 = base, tau_t = theta_t - theta0; defaults in brackets):
  simple_average     mean of the models (with a base: theta0 + mean_t tau_t)
  weighted_average   sum_t w_t theta_t (with a base: theta0 + sum_t w_t tau_t); weights used as given, not normalized
  task_arithmetic    theta0 + lambda sum_t tau_t                                              lambda [0.3]
  ties               theta0 + lambda * disjoint merge of the trimmed, sign-elected tau_t      lambda [1.0]
                       keep [0.2] fraction kept per task vector (exactly floor(keep * n) entries, ties to the earlier)
                       trim [global] | per-tensor   sign [mass] | count   aggregation [mean] | sum
  dare               drop entries with probability drop [0.5] (seed [0]), rescale [true] survivors by 1/(1-drop),
                       then combine [task_arithmetic] | average | ties with that method's hyperparameters
                       (also spelled dare_task_arithmetic, dare_average, dare_ties)
  fisher             sum_t c_t F_t theta_t / sum_t c_t F_t per entry, F_t = max(Fisher, fisher_floor [1e-6]);
                       c_t = weight (default 1/T), normalize_fishers [false] divides c_t by |F_t|; needs a Fisher
                       file per model (same names and shapes as the parameters; parameters without one are averaged)
  regmean            per Linear weight: (sum_t G~_t)^-1 sum_t G~_t W_t^T, G~ = Gram with off-diagonals * alpha [0.9],
                       ridge [1e-6] if singular; needs a Gram file per model (key: module name, shape (in, in));
                       other parameters averaged
)";
}

}  // namespace linfuse::merge
