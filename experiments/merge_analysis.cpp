// The analyses of the merging study: normalized score against the number of tasks, cosine similarity of the
// task vectors, cross-task scores of the fine-tuned models, and weight-disentanglement error maps.
#include <algorithm>
#include <cmath>

#include "experiments/merge_study.h"
#include "merge/methods.h"
#include "tensor/random.h"

namespace linfuse::experiments {

using merge::TaskVector;

namespace {

// Every k-subset of {0..n-1} in lexicographic order.
std::vector<std::vector<int>> all_subsets(int n, int k) {
  std::vector<std::vector<int>> out;
  std::vector<int> pick(k);
  for (int i = 0; i < k; ++i) pick[i] = i;
  while (true) {
    out.push_back(pick);
    int i = k - 1;
    while (i >= 0 && pick[i] == n - k + i) --i;
    if (i < 0) break;
    ++pick[i];
    for (int j = i + 1; j < k; ++j) pick[j] = pick[j - 1] + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> sweep_method_names() { return {"task_arithmetic", "ties", "simple_average"}; }

SweepConfig SweepConfig::from_json(const nlohmann::json& j) {
  SweepConfig c;
  if (j.contains("methods")) c.methods = j["methods"].get<std::vector<std::string>>();
  if (j.contains("max_subsets")) c.max_subsets = j["max_subsets"].get<int64_t>();
  if (j.contains("lambdas")) c.lambdas = j["lambdas"].get<std::vector<double>>();
  if (j.contains("seed")) c.seed = j["seed"].get<uint64_t>();
  return c;
}

nlohmann::json run_num_tasks_sweep(MergeTarget& target, const SweepConfig& config,
                                   const std::vector<double>& single_task_test, const StudyLog& log) {
  int n = target.num_tasks();
  std::vector<TaskVector> tvs;
  for (int t = 0; t < n; ++t) tvs.push_back(TaskVector::between(target.finetuned_state(t), target.initial_state()));
  nlohmann::json entries = nlohmann::json::array();
  // Subsets are drawn from every task, but a subset counts only when it holds a task with a normalized score
  // (a learned one), and its normalized average is over those tasks alone: the others are merged in and
  // interfere, but a ratio to a chance-level single-task score would be noise. When every task is learned
  // (the vision suite) this is the paper's sweep; when few are (the small text suite) it measures how much of
  // the learned tasks' gains survives k - 1 other task vectors.
  std::vector<bool> scored(size_t(n), false);
  int scored_count = 0;
  for (int t = 0; t < n; ++t)
    if (has_normalized_score(single_task_test[t])) scored[size_t(t)] = true, ++scored_count;
  if (scored_count < 1) {
    log(peft::mode_name(target.mode()) + " number-of-tasks sweep skipped: no task has a normalized score");
    return entries;
  }
  nlohmann::json normalized_over = nlohmann::json::array();   // written only when not every task is scored
  for (int t = 0; t < n; ++t)
    if (scored[size_t(t)]) normalized_over.push_back(target.task_name(t));
  Generator gen(config.seed);
  const std::vector<std::string> known = sweep_method_names();
  for (const auto& method : config.methods) {
    if (std::find(known.begin(), known.end(), method) == known.end())
      throw std::invalid_argument("[num tasks sweep] method '" + method +
                                  "' is not supported here (task_arithmetic, ties, simple_average)");
    for (int k = 2; k <= n; ++k) {
      std::vector<std::vector<int>> subsets;
      for (auto& subset : all_subsets(n, k))
        if (std::any_of(subset.begin(), subset.end(), [&](int t) { return scored[size_t(t)]; }))
          subsets.push_back(subset);
      if ((int64_t)subsets.size() > config.max_subsets) {
        // A seeded sample of the subsets, the same for every mode (the generator depends only on k).
        Generator pick = gen.fork(uint64_t(k));
        std::vector<int64_t> order = pick.permutation(int64_t(subsets.size()));
        std::vector<std::vector<int>> chosen;
        for (int64_t i = 0; i < config.max_subsets; ++i) chosen.push_back(subsets[order[i]]);
        subsets = chosen;
      }
      std::vector<double> normalized, absolute;
      for (const auto& subset : subsets) {
        std::vector<TaskVector> chosen;
        for (int t : subset) chosen.push_back(tvs[t]);
        auto merged_for = [&](double lambda) {
          if (method == "simple_average") return merge::simple_average(chosen);
          if (method == "ties") {
            merge::TiesOptions o;
            o.scaling = lambda;
            return merge::ties_merging(chosen, o);
          }
          return merge::task_arithmetic(chosen, lambda);
        };
        std::vector<double> grid = method == "simple_average" ? std::vector<double>{1.0} : config.lambdas;
        double best_val = -1e300;
        StateDict best_state;
        for (double lambda : grid) {
          StateDict state = merge::apply(target.initial_state(), merged_for(lambda));
          double val = 0;
          for (int t : subset) val += target.score(state, t, Split::Validation) / subset.size();
          if (val > best_val) {
            best_val = val;
            best_state = state;
          }
        }
        double norm = 0, score_sum = 0;
        int scored_in_subset = 0;
        for (int t : subset) {
          const double test = target.score(best_state, t, Split::Test);
          score_sum += test;
          if (!scored[size_t(t)]) continue;
          norm += merge::normalized_accuracy(test, single_task_test[t]);
          ++scored_in_subset;
        }
        normalized.push_back(norm / double(scored_in_subset));
        absolute.push_back(score_sum / double(subset.size()));
      }
      double mean = 0, var = 0, absolute_mean = 0;
      for (double v : normalized) mean += v / normalized.size();
      for (double v : normalized) var += (v - mean) * (v - mean) / normalized.size();
      for (double v : absolute) absolute_mean += v / absolute.size();
      nlohmann::json e;
      e["method"] = method;
      e["mode"] = peft::mode_name(target.mode());
      e["space"] = "parameter";
      e["k"] = k;
      nlohmann::json names = nlohmann::json::array();
      for (const auto& subset : subsets) {
        nlohmann::json row = nlohmann::json::array();
        for (int t : subset) row.push_back(target.task_name(t));
        names.push_back(row);
      }
      e["subsets"] = names;
      e["normalized_average"] = mean;
      e["normalized_std"] = std::sqrt(var);
      e["absolute_average"] = absolute_mean;   // test score over every task of the subsets, learned or not
      if (scored_count < n) e["normalized_over"] = normalized_over;
      entries.push_back(e);
      log(peft::mode_name(target.mode()) + " " + method + " k=" + std::to_string(k) + ": normalized " +
          std::to_string(100 * mean).substr(0, 5) + " over " + std::to_string(subsets.size()) + " subsets");
    }
  }
  return entries;
}

nlohmann::json task_vector_similarity(MergeTarget& target) {
  std::vector<TaskVector> tvs;
  for (int t = 0; t < target.num_tasks(); ++t)
    tvs.push_back(TaskVector::between(target.finetuned_state(t), target.initial_state()));
  merge::SimilarityMatrix flat = merge::cosine_similarity_matrix(tvs);
  merge::SimilarityMatrix layered = merge::layer_averaged_cosine_similarity(tvs, merge::LayerGrouping::per_module);
  return {{"matrix", flat},
          {"mean_off_diagonal", merge::mean_off_diagonal(flat)},
          {"layer_averaged_matrix", layered},
          {"layer_averaged_mean_off_diagonal", merge::mean_off_diagonal(layered)}};
}

nlohmann::json cross_task_scores(MergeTarget& target) {
  const int n = target.num_tasks();
  std::vector<std::vector<double>> matrix(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(n)));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) matrix[size_t(i)][size_t(j)] = target.score(target.finetuned_state(i), j, Split::Test);
  return {{"matrix", matrix}};
}

nlohmann::json task_vector_scaling(MergeTarget& target, const std::vector<double>& lambdas) {
  const int n = target.num_tasks();
  std::vector<std::vector<double>> matrix(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    const TaskVector tau = TaskVector::between(target.finetuned_state(t), target.initial_state());
    for (double lambda : lambdas)
      matrix[size_t(t)].push_back(target.score(merge::apply(target.initial_state(), lambda * tau), t, Split::Test));
  }
  return {{"lambdas", lambdas}, {"matrix", matrix}};
}

DisentanglementConfig DisentanglementConfig::from_json(const nlohmann::json& j) {
  DisentanglementConfig c;
  if (j.contains("pairs"))
    for (const auto& p : j["pairs"]) c.pairs.emplace_back(p.at(0).get<std::string>(), p.at(1).get<std::string>());
  if (j.contains("coefficient_range")) c.coefficient_range = j["coefficient_range"].get<double>();
  if (j.contains("steps")) c.steps = j["steps"].get<int64_t>();
  if (j.contains("examples")) c.examples = j["examples"].get<int64_t>();
  return c;
}

nlohmann::json run_disentanglement(MergeTarget& target, const DisentanglementConfig& config, const StudyLog& log) {
  nlohmann::json entries = nlohmann::json::array();
  auto index_of = [&](const std::string& name) {
    for (int t = 0; t < target.num_tasks(); ++t)
      if (target.task_name(t) == name) return t;
    throw std::invalid_argument("[disentanglement] unknown task '" + name + "'");
  };
  for (const auto& [first, second] : config.pairs) {
    int t1 = index_of(first), t2 = index_of(second);
    TaskVector tau1 = TaskVector::between(target.finetuned_state(t1), target.initial_state());
    TaskVector tau2 = TaskVector::between(target.finetuned_state(t2), target.initial_state());
    merge::PredictFunction predict = [&](const StateDict& params, int which) {
      return target.predict(params, which == 0 ? t1 : t2, config.examples);
    };
    merge::DisentanglementOptions o;
    o.coefficient_min = -config.coefficient_range;
    o.coefficient_max = config.coefficient_range;
    o.steps = config.steps;
    merge::DisentanglementGrid grid = merge::weight_disentanglement_error(target.initial_state(), tau1, tau2, predict, o);
    entries.push_back({{"mode", peft::mode_name(target.mode())},
                       {"tasks", {first, second}},
                       {"coefficients", grid.coefficients},
                       {"error", grid.error}});
    log(peft::mode_name(target.mode()) + " disentanglement " + first + " x " + second + " done");
  }
  return entries;
}

}  // namespace linfuse::experiments
