// Parsing and checking results.json for the report writer (see report_results.h).
#include "experiments/report_results.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "merge/analysis.h"

namespace linfuse::experiments::report {
namespace {

using Json = nlohmann::ordered_json;

// Walks the document with a JSON path in hand, so every error says where the problem is.
class Checker {
 public:
  explicit Checker(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& problem) const {
    throw std::runtime_error(source_ + ": " + path + ": " + problem +
                             " (format: experiments/RESULTS_SCHEMA.md; rerun `linfuse experiment` to rewrite it)");
  }
  void expect(bool condition, const std::string& path, const std::string& problem) const {
    if (!condition) fail(path, problem);
  }
  const Json& object(const Json& value, const std::string& path) const {
    expect(value.is_object(), path, "should be an object but is " + describe(value));
    return value;
  }
  const Json& array(const Json& value, const std::string& path) const {
    expect(value.is_array(), path, "should be an array but is " + describe(value));
    return value;
  }
  double number(const Json& value, const std::string& path) const {
    expect(value.is_number(), path, "should be a number but is " + describe(value));
    double number = value.get<double>();
    expect(std::isfinite(number), path, "should be a finite number");
    return number;
  }
  int64_t integer(const Json& value, const std::string& path) const {
    expect(value.is_number_integer(), path, "should be an integer but is " + describe(value));
    return value.get<int64_t>();
  }
  std::string string(const Json& value, const std::string& path) const {
    expect(value.is_string(), path, "should be a string but is " + describe(value));
    return value.get<std::string>();
  }
  bool boolean(const Json& value, const std::string& path) const {
    expect(value.is_boolean(), path, "should be true or false but is " + describe(value));
    return value.get<bool>();
  }
  std::vector<std::string> strings(const Json& value, const std::string& path) const {
    std::vector<std::string> out;
    for (size_t i = 0; i < array(value, path).size(); ++i) out.push_back(string(value[i], path + index(i)));
    return out;
  }
  std::vector<double> numbers(const Json& value, const std::string& path) const {
    std::vector<double> out;
    for (size_t i = 0; i < array(value, path).size(); ++i) out.push_back(number(value[i], path + index(i)));
    return out;
  }
  Matrix matrix(const Json& value, const std::string& path, size_t rows, size_t columns) const {
    Matrix out;
    expect(array(value, path).size() == rows, path, "should have " + std::to_string(rows) + " rows but has " +
                                                         std::to_string(value.size()));
    for (size_t i = 0; i < rows; ++i) {
      out.push_back(numbers(value[i], path + index(i)));
      expect(out.back().size() == columns, path + index(i),
             "should have " + std::to_string(columns) + " entries but has " + std::to_string(out.back().size()));
    }
    return out;
  }
  // Scores keyed by task; every key must be one of the suite's tasks.
  ScoreByTask scores(const Json& value, const std::string& path, const std::vector<std::string>& tasks) const {
    ScoreByTask out;
    for (const auto& [task, score] : object(value, path).items()) {
      expect(std::find(tasks.begin(), tasks.end(), task) != tasks.end(), path,
             "names task '" + task + "', which is not in the suite's \"tasks\"");
      out[task] = number(score, path + "." + task);
    }
    return out;
  }
  static std::string index(size_t i) { return std::string("[").append(std::to_string(i)).append("]"); }
  static std::string describe(const Json& value) {
    std::string type = value.type_name();
    return (type == "array" || type == "object" ? "an " : "a ") + type;
  }

 private:
  std::string source_;
};

const Json* member(const Json& object, const std::string& key) {
  auto found = object.find(key);
  return found == object.end() ? nullptr : &*found;
}

void note_mode(SuiteResults& suite, const std::string& mode) {
  if (std::find(suite.modes.begin(), suite.modes.end(), mode) == suite.modes.end()) suite.modes.push_back(mode);
}

Manifest parse_manifest(const Checker& check, const Json& value) {
  const std::string path = "manifest";
  check.object(value, path);
  Manifest manifest;
  manifest.present = true;
  if (auto* v = member(value, "preset")) manifest.preset = check.string(*v, path + ".preset");
  if (auto* v = member(value, "commit")) manifest.commit = check.string(*v, path + ".commit");
  if (auto* v = member(value, "started")) manifest.started = check.string(*v, path + ".started");
  if (auto* v = member(value, "suites")) manifest.suites = check.strings(*v, path + ".suites");
  if (auto* v = member(value, "seed")) manifest.seed = check.integer(*v, path + ".seed");
  if (auto* v = member(value, "threads")) manifest.threads = check.integer(*v, path + ".threads");
  if (auto* v = member(value, "dirty")) manifest.dirty = check.boolean(*v, path + ".dirty");
  if (auto* v = member(value, "build")) {
    const Json& build = check.object(*v, path + ".build");
    std::pair<const char*, std::string*> fields[] = {{"compiler", &manifest.compiler}, {"target_isa", &manifest.target_isa},
                                                     {"blas", &manifest.blas}, {"blas_core", &manifest.blas_core},
                                                     {"kernel_isa", &manifest.kernel_isa}};
    for (auto& [key, field] : fields)
      if (auto* f = member(build, key)) *field = check.string(*f, path + ".build." + key);
  }
  if (auto* v = member(value, "stage_seconds"))
    for (const auto& [stage, seconds] : check.object(*v, path + ".stage_seconds").items())
      manifest.stage_seconds.emplace_back(stage, check.number(seconds, path + ".stage_seconds." + stage));
  return manifest;
}

std::string hyperparameter_text(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_float()) {
    std::ostringstream out;
    out << value.get<double>();  // shortest readable form: 0.35, 20, 1e-05
    return out.str();
  }
  return value.dump();
}

MergedResult parse_merged(const Checker& check, const Json& value, const std::string& path, SuiteResults& suite) {
  check.object(value, path);
  MergedResult merged;
  for (const char* key : {"method", "mode", "space"}) {
    const Json* field = member(value, key);
    check.expect(field != nullptr, path, std::string("has no \"") + key + "\"");
  }
  merged.method = check.string(value["method"], path + ".method");
  merged.mode = check.string(value["mode"], path + ".mode");
  merged.space = check.string(value["space"], path + ".space");
  note_mode(suite, merged.mode);
  if (auto* v = member(value, "hyperparameters"))
    for (const auto& [name, setting] : check.object(*v, path + ".hyperparameters").items())
      merged.hyperparameters.emplace_back(name, hyperparameter_text(setting));
  if (auto* v = member(value, "validation_average")) merged.validation_average = check.number(*v, path + ".validation_average");
  if (auto* v = member(value, "test")) merged.test = check.scores(*v, path + ".test", suite.tasks);
  if (auto* v = member(value, "normalized")) merged.normalized = check.scores(*v, path + ".normalized", suite.tasks);
  if (auto* v = member(value, "test_average")) merged.test_average = check.number(*v, path + ".test_average");
  if (auto* v = member(value, "normalized_average"))
    merged.normalized_average = check.number(*v, path + ".normalized_average");
  return merged;
}

SweepPoint parse_sweep_point(const Checker& check, const Json& value, const std::string& path, SuiteResults& suite) {
  check.object(value, path);
  for (const char* key : {"method", "mode", "space", "k", "normalized_average"})
    check.expect(member(value, key) != nullptr, path, std::string("has no \"") + key + "\"");
  SweepPoint point;
  point.method = check.string(value["method"], path + ".method");
  point.mode = check.string(value["mode"], path + ".mode");
  point.space = check.string(value["space"], path + ".space");
  point.k = check.integer(value["k"], path + ".k");
  check.expect(point.k >= 1, path + ".k", "should be at least 1");
  point.normalized_average = check.number(value["normalized_average"], path + ".normalized_average");
  if (auto* v = member(value, "normalized_std")) point.normalized_std = check.number(*v, path + ".normalized_std");
  if (auto* v = member(value, "subsets")) point.subset_count = check.array(*v, path + ".subsets").size();
  if (auto* v = member(value, "absolute_average")) point.absolute_average = check.number(*v, path + ".absolute_average");
  if (auto* v = member(value, "normalized_over")) point.normalized_over = check.strings(*v, path + ".normalized_over");
  note_mode(suite, point.mode);
  return point;
}

CosineSimilarity parse_cosine(const Checker& check, const Json& value, const std::string& path, size_t tasks) {
  check.object(value, path);
  CosineSimilarity cosine;
  if (auto* v = member(value, "matrix")) cosine.matrix = check.matrix(*v, path + ".matrix", tasks, tasks);
  if (auto* v = member(value, "layer_averaged_matrix"))
    cosine.layer_averaged_matrix = check.matrix(*v, path + ".layer_averaged_matrix", tasks, tasks);
  if (auto* v = member(value, "mean_off_diagonal")) cosine.mean_off_diagonal = check.number(*v, path + ".mean_off_diagonal");
  if (auto* v = member(value, "layer_averaged_mean_off_diagonal"))
    cosine.layer_averaged_mean_off_diagonal = check.number(*v, path + ".layer_averaged_mean_off_diagonal");
  return cosine;
}

DisentanglementGrid parse_disentanglement(const Checker& check, const Json& value, const std::string& path,
                                          SuiteResults& suite) {
  check.object(value, path);
  for (const char* key : {"mode", "tasks", "coefficients", "error"})
    check.expect(member(value, key) != nullptr, path, std::string("has no \"") + key + "\"");
  DisentanglementGrid grid;
  grid.mode = check.string(value["mode"], path + ".mode");
  std::vector<std::string> pair = check.strings(value["tasks"], path + ".tasks");
  check.expect(pair.size() == 2, path + ".tasks", "should name 2 tasks but names " + std::to_string(pair.size()));
  grid.task_a = pair[0], grid.task_b = pair[1];
  grid.coefficients = check.numbers(value["coefficients"], path + ".coefficients");
  check.expect(grid.coefficients.size() >= 2, path + ".coefficients", "should have at least 2 entries");
  check.expect(std::is_sorted(grid.coefficients.begin(), grid.coefficients.end()) &&
                   std::adjacent_find(grid.coefficients.begin(), grid.coefficients.end()) == grid.coefficients.end(),
               path + ".coefficients", "should be strictly increasing");
  size_t n = grid.coefficients.size();
  grid.error = check.matrix(value["error"], path + ".error", n, n);
  note_mode(suite, grid.mode);
  return grid;
}

// {mode: {"matrix": tasks x tasks}} (cross_task, leakage).
std::map<std::string, Matrix> parse_mode_matrices(const Checker& check, const Json& value, const std::string& path,
                                                  SuiteResults& suite) {
  std::map<std::string, Matrix> out;
  for (const auto& [mode, entry] : check.object(value, path).items()) {
    const std::string entry_path = path + "." + mode;
    check.object(entry, entry_path);
    check.expect(member(entry, "matrix") != nullptr, entry_path, "has no \"matrix\"");
    out[mode] = check.matrix(entry["matrix"], entry_path + ".matrix", suite.tasks.size(), suite.tasks.size());
    note_mode(suite, mode);
  }
  return out;
}

SuiteResults parse_suite(const Checker& check, const std::string& name, const Json& value) {
  const std::string path = "suites." + name;
  check.object(value, path);
  SuiteResults suite;
  suite.name = name;
  const Json* tasks = member(value, "tasks");
  check.expect(tasks != nullptr, path, "has no \"tasks\" list");
  suite.tasks = check.strings(*tasks, path + ".tasks");
  check.expect(!suite.tasks.empty(), path + ".tasks", "is empty");
  if (auto* v = member(value, "model")) suite.model = check.string(*v, path + ".model");
  if (auto* v = member(value, "scoring")) suite.scoring = check.string(*v, path + ".scoring");
  if (auto* v = member(value, "modes")) suite.modes = check.strings(*v, path + ".modes");
  if (auto* v = member(value, "metric"))
    for (const auto& [task, metric] : check.object(*v, path + ".metric").items())
      suite.metric[task] = check.string(metric, path + ".metric." + task);
  if (auto* v = member(value, "zero_shot")) suite.zero_shot = check.scores(*v, path + ".zero_shot", suite.tasks);
  if (auto* v = member(value, "baseline")) suite.baseline = check.scores(*v, path + ".baseline", suite.tasks);
  if (auto* v = member(value, "baseline_features"))
    for (const auto& [task, features] : check.object(*v, path + ".baseline_features").items())
      suite.baseline_features[task] = check.string(features, path + ".baseline_features." + task);
  for (auto [stage, field] : {std::pair{"pretrain", &suite.pretrain}, std::pair{"instruct", &suite.instruct}})
    if (auto* v = member(value, stage)) {
      std::string at = path + "." + stage;
      check.object(*v, at);
      PretrainSummary summary;
      if (auto* w = member(*v, "steps")) summary.steps = check.integer(*w, at + ".steps");
      if (auto* w = member(*v, "examples")) summary.examples = check.integer(*w, at + ".examples");
      if (auto* w = member(*v, "final_loss")) summary.final_loss = check.number(*w, at + ".final_loss");
      if (auto* w = member(*v, "seconds")) summary.seconds = check.number(*w, at + ".seconds");
      *field = summary;
    }
  if (auto* v = member(value, "normalized_tasks")) {
    suite.normalized_tasks = check.strings(*v, path + ".normalized_tasks");
    for (const auto& task : *suite.normalized_tasks)
      check.expect(std::find(suite.tasks.begin(), suite.tasks.end(), task) != suite.tasks.end(), path + ".normalized_tasks",
                   "names task '" + task + "', which is not in the suite's \"tasks\"");
  }
  if (auto* v = member(value, "learned_thresholds"))
    suite.learned_thresholds = check.scores(*v, path + ".learned_thresholds", suite.tasks);
  if (auto* v = member(value, "test_examples")) {
    suite.test_examples.emplace();
    for (const auto& [task, count] : check.object(*v, path + ".test_examples").items()) {
      const std::string at = path + ".test_examples." + task;
      check.expect(std::find(suite.tasks.begin(), suite.tasks.end(), task) != suite.tasks.end(), path + ".test_examples",
                   "names task '" + task + "', which is not in the suite's \"tasks\"");
      (*suite.test_examples)[task] = check.integer(count, at);
      check.expect((*suite.test_examples)[task] >= 1, at, "should be at least 1");
    }
  }
  if (auto* v = member(value, "trainable_parameters")) {
    suite.trainable_parameters.emplace();
    for (const auto& [mode, count] : check.object(*v, path + ".trainable_parameters").items()) {
      (*suite.trainable_parameters)[mode] = check.integer(count, path + ".trainable_parameters." + mode);
      note_mode(suite, mode);
    }
  }
  for (const char* key : {"single_task", "finetune_seconds"}) {
    const Json* v = member(value, key);
    if (!v) continue;
    auto& target = std::string(key) == "single_task" ? suite.single_task : suite.finetune_seconds;
    target.emplace();
    for (const auto& [mode, scores] : check.object(*v, path + "." + key).items()) {
      (*target)[mode] = check.scores(scores, path + "." + key + "." + mode, suite.tasks);
      note_mode(suite, mode);
    }
  }
  if (auto* v = member(value, "merged")) {
    suite.merged.emplace();
    for (size_t i = 0; i < check.array(*v, path + ".merged").size(); ++i)
      suite.merged->push_back(parse_merged(check, (*v)[i], path + ".merged" + Checker::index(i), suite));
  }
  if (auto* v = member(value, "num_tasks_sweep")) {
    suite.num_tasks_sweep.emplace();
    for (size_t i = 0; i < check.array(*v, path + ".num_tasks_sweep").size(); ++i)
      suite.num_tasks_sweep->push_back(
          parse_sweep_point(check, (*v)[i], path + ".num_tasks_sweep" + Checker::index(i), suite));
  }
  if (auto* v = member(value, "cosine_similarity")) {
    suite.cosine_similarity.emplace();
    for (const auto& [mode, cosine] : check.object(*v, path + ".cosine_similarity").items()) {
      (*suite.cosine_similarity)[mode] = parse_cosine(check, cosine, path + ".cosine_similarity." + mode, suite.tasks.size());
      note_mode(suite, mode);
    }
  }
  if (auto* v = member(value, "cross_task")) suite.cross_task = parse_mode_matrices(check, *v, path + ".cross_task", suite);
  if (auto* v = member(value, "leakage")) {
    suite.leakage = parse_mode_matrices(check, *v, path + ".leakage", suite);
    for (const auto& [mode, entry] : v->items())
      if (auto* centered = member(entry, "centered"))
        suite.leakage_centered[mode] = check.matrix(*centered, path + ".leakage." + mode + ".centered", suite.tasks.size(), suite.tasks.size());
  }
  if (auto* v = member(value, "task_vector_scaling")) {
    suite.task_vector_scaling.emplace();
    for (const auto& [mode, entry] : check.object(*v, path + ".task_vector_scaling").items()) {
      const std::string at = path + ".task_vector_scaling." + mode;
      check.object(entry, at);
      check.expect(member(entry, "lambdas") != nullptr && member(entry, "matrix") != nullptr, at,
                   "needs \"lambdas\" and \"matrix\"");
      ScalingCurve curve;
      curve.lambdas = check.numbers(entry["lambdas"], at + ".lambdas");
      curve.matrix = check.matrix(entry["matrix"], at + ".matrix", suite.tasks.size(), curve.lambdas.size());
      (*suite.task_vector_scaling)[mode] = curve;
      note_mode(suite, mode);
    }
  }
  if (auto* v = member(value, "linear_probe")) suite.linear_probe = check.scores(*v, path + ".linear_probe", suite.tasks);
  if (auto* v = member(value, "linear_probe_l2")) suite.linear_probe_l2 = check.scores(*v, path + ".linear_probe_l2", suite.tasks);
  if (auto* v = member(value, "domain_similarity")) {
    const std::string at = path + ".domain_similarity";
    check.object(*v, at);
    check.expect(member(*v, "matrix") != nullptr, at, "has no \"matrix\"");
    DomainSimilarity similarity;
    similarity.matrix = check.matrix((*v)["matrix"], at + ".matrix", suite.tasks.size(), suite.tasks.size());
    if (auto* w = member(*v, "damage_correlation"))
      for (const auto& [mode, rho] : check.object(*w, at + ".damage_correlation").items())
        similarity.damage_correlation[mode] = check.number(rho, at + ".damage_correlation." + mode);
    suite.domain_similarity = similarity;
  }
  if (auto* v = member(value, "disentanglement")) {
    suite.disentanglement.emplace();
    for (size_t i = 0; i < check.array(*v, path + ".disentanglement").size(); ++i)
      suite.disentanglement->push_back(
          parse_disentanglement(check, (*v)[i], path + ".disentanglement" + Checker::index(i), suite));
  }
  return suite;
}

// Orders `names` by the position of each in `known`; unknown names keep their order after the known ones.
std::vector<std::string> order_by(const std::vector<std::string>& names, const std::vector<std::string>& known) {
  std::vector<std::string> unique;
  for (const auto& name : names)
    if (std::find(unique.begin(), unique.end(), name) == unique.end()) unique.push_back(name);
  auto rank = [&](const std::string& name) {
    return size_t(std::find(known.begin(), known.end(), name) - known.begin());
  };
  std::stable_sort(unique.begin(), unique.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return unique;
}

const std::vector<std::string> kMethodOrder = {"simple_average", "task_arithmetic", "ties", "dare_task_arithmetic",
                                               "dare_ties", "fisher", "regmean", "adamerging_task",
                                               "adamerging_layer", "lorahub"};

}  // namespace

ReportResults parse_results(const nlohmann::ordered_json& document, const std::string& source) {
  Checker check(source);
  check.expect(document.is_object(), "(top level)", "should be an object but is " + Checker::describe(document));
  ReportResults results;
  if (auto* v = member(document, "manifest")) results.manifest = parse_manifest(check, *v);
  const Json* suites = member(document, "suites");
  check.expect(suites != nullptr, "(top level)", "has no \"suites\" object: is this a results.json?");
  check.object(*suites, "suites");
  std::vector<std::string> names;
  for (const auto& name : results.manifest.suites)
    if (suites->contains(name)) names.push_back(name);
  for (const auto& [name, value] : suites->items())
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  for (const auto& name : names) results.suites.push_back(parse_suite(check, name, (*suites)[name]));
  return results;
}

ReportResults read_results_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path + ": run `linfuse experiment` to write it first");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::ordered_json document;
  try {
    document = nlohmann::ordered_json::parse(text.str());
  } catch (const nlohmann::json::parse_error& error) {
    throw std::runtime_error(path + ": not valid JSON (" + error.what() +
                             "); the experiment may have been interrupted while writing it: rerun `linfuse experiment`");
  }
  // Times and dates live in manifest.json beside results.json (so that results.json is the same for two runs
  // with the same seed); the report shows them when the file is there.
  std::filesystem::path manifest_path = std::filesystem::path(path).parent_path() / "manifest.json";
  if (document.is_object() && std::filesystem::exists(manifest_path)) {
    std::ifstream manifest_in(manifest_path);
    try {
      nlohmann::ordered_json manifest = nlohmann::ordered_json::parse(manifest_in);
      for (const char* key : {"started", "stage_seconds", "build"})
        if (manifest.contains(key)) document["manifest"][key] = manifest[key];
      // per-suite measured times (e.g. finetune_seconds) go back into their suite
      if (manifest.contains("suite_seconds") && manifest["suite_seconds"].is_object() && document.contains("suites"))
        for (const auto& [suite, times] : manifest["suite_seconds"].items())
          if (document["suites"].contains(suite) && times.is_object())
            for (const auto& [key, value] : times.items()) document["suites"][suite][key] = value;
    } catch (const nlohmann::json::parse_error& error) {
      throw std::runtime_error(manifest_path.string() + ": not valid JSON (" + error.what() + ")");
    }
  }
  return parse_results(document, path);
}

std::optional<double> mean_over_tasks(const ScoreByTask& scores, const std::vector<std::string>& tasks) {
  if (tasks.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& task : tasks) {
    auto found = scores.find(task);
    if (found == scores.end()) return std::nullopt;
    sum += found->second;
  }
  return sum / double(tasks.size());
}

std::optional<double> test_average_of(const MergedResult& merged, const std::vector<std::string>& tasks) {
  return merged.test_average ? merged.test_average : mean_over_tasks(merged.test, tasks);
}

std::optional<double> normalized_average_of(const MergedResult& merged, const std::vector<std::string>& tasks) {
  return merged.normalized_average ? merged.normalized_average : mean_over_tasks(merged.normalized, tasks);
}

const std::vector<std::string>& normalization_tasks(const SuiteResults& suite) {
  return suite.normalized_tasks ? *suite.normalized_tasks : suite.tasks;
}

std::optional<std::vector<std::string>> sweep_normalized_over(const std::vector<SweepPoint>& sweep) {
  for (const auto& point : sweep)
    if (point.normalized_over) return point.normalized_over;
  return std::nullopt;
}

std::optional<Matrix> cross_task_change(const SuiteResults& suite, const Matrix& cross_task) {
  if (!suite.zero_shot) return std::nullopt;
  std::vector<double> zero_shot;
  for (const auto& task : suite.tasks) {
    auto found = suite.zero_shot->find(task);
    if (found == suite.zero_shot->end()) return std::nullopt;
    zero_shot.push_back(found->second);
  }
  Matrix change = cross_task;
  for (auto& row : change)
    for (size_t j = 0; j < row.size(); ++j) row[j] = 100 * (row[j] - zero_shot[j]);
  return change;
}

// The mean over i != j (merge/analysis.h); empty for a matrix smaller than 2 x 2, where there is no such entry.
std::optional<double> mean_off_diagonal(const Matrix& matrix) {
  if (matrix.size() < 2) return std::nullopt;
  return merge::mean_off_diagonal(matrix);
}

std::optional<double> mean_abs_off_diagonal(const Matrix& matrix) {
  Matrix magnitudes = matrix;
  for (auto& row : magnitudes)
    for (double& v : row) v = std::abs(v);
  return mean_off_diagonal(magnitudes);
}

std::optional<double> mean_disentanglement_error(const DisentanglementGrid& grid, double limit) {
  // A tiny tolerance so that a coefficient written as 1.0000000001 still counts as |a| <= 1.
  const double tolerance = 1e-9;
  double sum = 0;
  size_t count = 0;
  for (size_t i = 0; i < grid.coefficients.size(); ++i)
    for (size_t j = 0; j < grid.coefficients.size(); ++j) {
      bool inside = limit < 0 || (std::abs(grid.coefficients[i]) <= limit + tolerance &&
                                  std::abs(grid.coefficients[j]) <= limit + tolerance);
      if (inside) sum += grid.error[i][j], ++count;
    }
  if (count == 0) return std::nullopt;
  return sum / double(count);
}

std::vector<std::string> ordered_methods(const std::vector<MergedResult>& merged) {
  std::vector<std::string> names;
  for (const auto& result : merged) names.push_back(result.method);
  return order_by(names, kMethodOrder);
}

std::vector<std::string> ordered_sweep_methods(const std::vector<SweepPoint>& sweep) {
  std::vector<std::string> names;
  for (const auto& point : sweep) names.push_back(point.method);
  return order_by(names, kMethodOrder);
}

std::vector<std::string> ordered_spaces(const std::vector<std::string>& spaces) {
  return order_by(spaces, {"parameter", "weight"});
}

const MergedResult* find_merged(const SuiteResults& suite, const std::string& method, const std::string& mode,
                                const std::string& space) {
  if (!suite.merged) return nullptr;
  for (const auto& result : *suite.merged)
    if (result.method == method && result.mode == mode && result.space == space) return &result;
  return nullptr;
}

}  // namespace linfuse::experiments::report
