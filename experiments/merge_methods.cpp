// The merging methods of the study, each with its hyperparameters chosen on the validation split.
#include <cmath>
#include <nlopt.hpp>
#include <sstream>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/merge_study.h"
#include "merge/methods.h"
#include "nn/optim.h"

namespace linfuse::experiments {

using merge::TaskVector;

namespace {

std::vector<double> default_grid(double from, double to, double step) {
  std::vector<double> g;
  for (int i = 0; from + i * step <= to + 1e-9; ++i) g.push_back(std::round((from + i * step) * 1e6) / 1e6);
  return g;
}

std::string percent(double x) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << 100 * x;
  return s.str();
}

// Mean of the scores of `state` over every task on `split`.
double average_score(const std::function<double(int, Split)>& score, int tasks, Split split, std::vector<double>* per_task = nullptr) {
  double total = 0;
  for (int t = 0; t < tasks; ++t) {
    double s = score(t, split);
    if (per_task) per_task->push_back(s);
    total += s;
  }
  return total / tasks;
}

// One candidate of a hyperparameter search: its hyperparameters and how to score a task with it.
struct Candidate {
  nlohmann::json hyperparameters;
  std::function<double(int, Split)> score;
};

class MethodRunner {
 public:
  MethodRunner(MergeTarget& target, const MergeStudyConfig& config, const std::vector<double>& single_task, const StudyLog& log)
      : target_(target), config_(config), single_task_(single_task), log_(log) {
    for (int t = 0; t < target.num_tasks(); ++t)
      task_vectors_.push_back(TaskVector::between(target.finetuned_state(t), target.initial_state()));
    for (int t = 0; t < target.num_tasks(); ++t) finetuned_.push_back(target.finetuned_state(t));
  }

  // The task vectors of a space: parameter space (the trained tensors) or, for the LoRA modes, weight space
  // (per module Delta W_t = s B_t A_t - s B0 A0, or its linearization for the L-LoRA modes), computed once.
  const std::vector<TaskVector>& vectors(const std::string& space) {
    if (space != "weight") return task_vectors_;
    if (weight_vectors_.empty()) {
      merge::LoraDeltaForm form = target_.mode() == peft::FinetuneMode::Lora ? merge::LoraDeltaForm::product
                                                                              : merge::LoraDeltaForm::linearized;
      for (const StateDict& adapter : finetuned_)
        weight_vectors_.push_back(merge::lora_weight_delta(adapter, target_.initial_state(), target_.lora_scaling(), form));
    }
    return weight_vectors_;
  }

  // How to score a merged vector of a space on a task.
  std::function<double(int, Split)> scorer(const std::string& space, const TaskVector& merged) {
    if (space == "weight") {
      StateDict delta = merged.tensors();
      return [this, delta](int t, Split s) { return target_.score_weight_space(delta, t, s); };
    }
    StateDict state = merge::apply(target_.initial_state(), merged);
    return [this, state](int t, Split s) { return target_.score(state, t, s); };
  }

  // Picks the candidate with the best validation average and scores it on the test split.
  nlohmann::json search(const std::string& method, const std::string& space, const std::vector<Candidate>& candidates) {
    double best = -1e300;
    size_t best_index = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      double v = average_score(candidates[i].score, target_.num_tasks(), Split::Validation);
      if (v > best) {
        best = v;
        best_index = i;
      }
    }
    return finish(method, space, candidates[best_index].hyperparameters, best, candidates[best_index].score);
  }

  // Scores a chosen configuration on the test split and builds the result entry.
  nlohmann::json finish(const std::string& method, const std::string& space, const nlohmann::json& hyperparameters,
                        double validation_average, const std::function<double(int, Split)>& score) {
    std::vector<double> test;
    double test_average = average_score(score, target_.num_tasks(), Split::Test, &test);
    nlohmann::json e;
    e["method"] = method;
    e["mode"] = peft::mode_name(target_.mode());
    e["space"] = space;
    e["hyperparameters"] = hyperparameters;
    e["validation_average"] = validation_average;
    // A task without a normalized score (has_normalized_score) is left out of "normalized" and of its
    // average, which is absent when no task is left.
    double normalized_total = 0;
    int normalized_count = 0;
    for (int t = 0; t < target_.num_tasks(); ++t) {
      e["test"][target_.task_name(t)] = test[t];
      if (!has_normalized_score(single_task_[t])) continue;
      double n = merge::normalized_accuracy(test[t], single_task_[t]);
      e["normalized"][target_.task_name(t)] = n;
      normalized_total += n;
      ++normalized_count;
    }
    e["test_average"] = test_average;
    if (normalized_count) e["normalized_average"] = normalized_total / normalized_count;
    log_(peft::mode_name(target_.mode()) + " " + method + " (" + space + " space) " + hyperparameters.dump() +
         ": validation " + percent(validation_average) + ", test " + percent(test_average) + ", normalized " +
         (normalized_count ? percent(normalized_total / normalized_count) : std::string("- (no learned task)")));
    return e;
  }

  nlohmann::json simple_average(const std::string& space) {
    auto score = scorer(space, merge::simple_average(vectors(space)));
    return finish("simple_average", space, nlohmann::json::object(),
                  average_score(score, target_.num_tasks(), Split::Validation), score);
  }

  nlohmann::json task_arithmetic(const std::string& space) {
    std::vector<Candidate> c;
    TaskVector sum = merge::task_arithmetic(vectors(space), 1.0);
    for (double lambda : lambdas(config_.task_arithmetic_lambdas, 0.0, 1.0, 0.05))
      c.push_back({{{"lambda", lambda}}, scorer(space, merge::scale(sum, lambda))});
    return search("task_arithmetic", space, c);
  }

  nlohmann::json ties(const std::string& space) {
    std::vector<Candidate> c;
    for (double keep : config_.ties_keep) {
      merge::TiesOptions o;
      o.keep_fraction = keep;
      TaskVector merged = merge::ties_merging(vectors(space), o);   // lambda = 1; lambda only scales the result
      for (double lambda : lambdas(config_.ties_lambdas, 0.1, 1.5, 0.1))
        c.push_back({{{"keep", keep}, {"lambda", lambda}}, scorer(space, merge::scale(merged, lambda))});
    }
    return search("ties", space, c);
  }

  nlohmann::json dare(const std::string& space, bool with_ties) {
    std::vector<Candidate> c;
    merge::TiesOptions o;
    o.keep_fraction = config_.ties_keep.empty() ? 0.2 : config_.ties_keep[config_.ties_keep.size() / 2];
    for (double p : config_.dare_drop) {
      merge::DareOptions d;
      d.drop_probability = p;
      std::vector<TaskVector> dropped = merge::dare(vectors(space), d, config_.dare_seed);
      TaskVector merged = with_ties ? merge::ties_merging(dropped, o) : merge::task_arithmetic(dropped, 1.0);
      for (double lambda : lambdas(config_.dare_lambdas, 0.0, 1.0, 0.05)) {
        nlohmann::json hp{{"drop", p}, {"lambda", lambda}};
        if (with_ties) hp["keep"] = o.keep_fraction;
        c.push_back({hp, scorer(space, merge::scale(merged, lambda))});
      }
    }
    return search(with_ties ? "dare_ties" : "dare_task_arithmetic", space, c);
  }

  nlohmann::json fisher() {
    std::vector<StateDict> fishers;
    std::vector<TaskVector> models;
    for (int t = 0; t < target_.num_tasks(); ++t) {
      fishers.push_back(target_.fisher(t, config_.fisher_examples));
      models.emplace_back(finetuned_[t]);
    }
    StateDict merged = merge::fisher_merging(models, fishers).tensors();
    auto score = [this, merged](int t, Split s) { return target_.score(merged, t, s); };
    return finish("fisher", "parameter", {{"examples", config_.fisher_examples}},
                  average_score(score, target_.num_tasks(), Split::Validation), score);
  }

  nlohmann::json regmean() {
    std::vector<StateDict> grams;
    std::vector<TaskVector> models;
    for (int t = 0; t < target_.num_tasks(); ++t) {
      grams.push_back(target_.grams(t, config_.regmean_examples));
      models.emplace_back(finetuned_[t]);
    }
    merge::RegMeanOptions o;
    o.non_diagonal_scale = config_.regmean_alpha;
    StateDict merged = merge::regmean_merging(models, grams, o).merged.tensors();
    auto score = [this, merged](int t, Split s) { return target_.score(merged, t, s); };
    return finish("regmean", "parameter", {{"alpha", config_.regmean_alpha}, {"examples", config_.regmean_examples}},
                  average_score(score, target_.num_tasks(), Split::Validation), score);
  }

  // AdaMerging (Yang et al. 2024): coefficients of theta0 + sum_t lambda_t tau_t learned by minimising the
  // entropy of the merged model's predictions on unlabelled validation inputs; task-wise (one lambda per
  // task) or layer-wise (one per task and parameter tensor).
  nlohmann::json adamerging(bool layer_wise) {
    int tasks = target_.num_tasks();
    std::vector<std::string> names = target_.initial_state().names();
    int64_t layers = layer_wise ? int64_t(names.size()) : 1;
    Tensor lambda = Tensor::full({tasks, layers}, config_.adamerging_init, DType::F32).set_requires_grad(true);
    nn::Adam optimizer({lambda}, config_.adamerging_learning_rate);
    auto merged_state = [&](const Tensor& coefficients) {
      StateDict state;
      for (size_t l = 0; l < names.size(); ++l) {
        const Tensor& base = target_.initial_state().at(names[l]);
        Tensor sum = base;
        for (int t = 0; t < tasks; ++t) {
          Tensor c = reshape(select(select(coefficients, 0, t), 0, layer_wise ? int64_t(l) : 0), {});
          sum = add(sum, mul(cast(task_vectors_[t].at(names[l]), base.dtype()), cast(c, base.dtype())));
        }
        state.insert(names[l], sum);
      }
      return state;
    };
    for (int64_t step = 0; step < config_.adamerging_steps; ++step) {
      optimizer.zero_grad();
      StateDict state = merged_state(lambda);
      Tensor loss;
      for (int t = 0; t < tasks; ++t) {
        Tensor e = target_.entropy(state, t, step, config_.adamerging_batch);
        loss = loss.defined() ? add(loss, e) : e;
      }
      backward(loss);
      optimizer.step();
    }
    StateDict final_state;
    {
      NoGradGuard no_grad;
      for (auto& [name, t] : merged_state(lambda)) final_state.insert(name, t.detach());
    }
    auto score = [this, final_state](int t, Split s) { return target_.score(final_state, t, s); };
    std::vector<double> coefficients = lambda.to_vector<double>();
    nlohmann::json hp{{"steps", config_.adamerging_steps}, {"learning_rate", config_.adamerging_learning_rate}};
    if (!layer_wise) hp["coefficients"] = coefficients;
    else {
      double mean = 0;
      for (double c : coefficients) mean += c / coefficients.size();
      hp["mean_coefficient"] = mean;
    }
    return finish(layer_wise ? "adamerging_layer" : "adamerging_task", "parameter", hp,
                  average_score(score, tasks, Split::Validation), score);
  }

  // LoraHub (Huang et al. 2023): weights w over the task adapters, merged = sum_t w_t phi_t, found by a
  // derivative-free optimiser on the mean few-shot loss over the tasks plus l1 * mean |w|, w in [-1.5, 1.5],
  // starting from w = 0 (as LoraHub's code; BOBYQA from NLopt instead of Nevergrad's NGOpt).
  nlohmann::json lorahub() {
    int tasks = target_.num_tasks();
    std::vector<TaskVector> adapters;
    for (int t = 0; t < tasks; ++t) adapters.emplace_back(finetuned_[t]);
    auto compose = [&](const std::vector<double>& w) { return merge::linear_combination(adapters, w).tensors(); };
    int64_t evaluations = 0;
    auto objective = [&](const std::vector<double>& w) {
      ++evaluations;
      StateDict state = compose(w);
      double loss = 0, l1 = 0;
      for (int t = 0; t < tasks; ++t) loss += target_.few_shot_loss(state, t, config_.lorahub_examples) / tasks;
      for (double x : w) l1 += std::abs(x) / w.size();
      double value = loss + config_.lorahub_l1 * l1;
      return std::isfinite(value) ? value : 1e30;
    };
    nlopt::opt opt(nlopt::LN_BOBYQA, unsigned(tasks));
    opt.set_lower_bounds(std::vector<double>(tasks, -config_.lorahub_bound));
    opt.set_upper_bounds(std::vector<double>(tasks, config_.lorahub_bound));
    opt.set_maxeval(int(config_.lorahub_budget));
    opt.set_initial_step(std::vector<double>(tasks, 0.5));
    using Objective = decltype(objective);
    opt.set_min_objective(
        [](const std::vector<double>& w, std::vector<double>&, void* data) { return (*static_cast<Objective*>(data))(w); },
        &objective);
    std::vector<double> w(tasks, 0.0);
    double best = 0;
    try {
      opt.optimize(w, best);
    } catch (const nlopt::roundoff_limited&) {
      // BOBYQA stops on round-off with its best point in w: keep it.
    }
    StateDict state = compose(w);
    auto score = [this, state](int t, Split s) { return target_.score(state, t, s); };
    return finish("lorahub", "parameter", {{"weights", w}, {"objective", best}, {"evaluations", evaluations}},
                  average_score(score, tasks, Split::Validation), score);
  }

 private:
  static std::vector<double> lambdas(const std::vector<double>& configured, double from, double to, double step) {
    return configured.empty() ? default_grid(from, to, step) : configured;
  }
  MergeTarget& target_;
  const MergeStudyConfig& config_;
  const std::vector<double>& single_task_;
  const StudyLog& log_;
  std::vector<TaskVector> task_vectors_, weight_vectors_;
  std::vector<StateDict> finetuned_;
};

}  // namespace

std::vector<std::string> merge_method_names() { return MergeStudyConfig{}.methods; }
std::vector<std::string> lora_space_names() { return {"parameter", "weight"}; }

MergeStudyConfig MergeStudyConfig::from_json(const nlohmann::json& j) {
  MergeStudyConfig c;
  auto get = [&](const char* key, auto& field) {
    if (j.contains(key)) field = j.at(key).get<std::decay_t<decltype(field)>>();
  };
  get("methods", c.methods);
  get("lora_spaces", c.lora_spaces);
  get("task_arithmetic_lambdas", c.task_arithmetic_lambdas);
  get("ties_keep", c.ties_keep);
  get("ties_lambdas", c.ties_lambdas);
  get("dare_drop", c.dare_drop);
  get("dare_lambdas", c.dare_lambdas);
  get("dare_seed", c.dare_seed);
  get("fisher_examples", c.fisher_examples);
  get("regmean_examples", c.regmean_examples);
  get("regmean_alpha", c.regmean_alpha);
  get("adamerging_steps", c.adamerging_steps);
  get("adamerging_batch", c.adamerging_batch);
  get("adamerging_learning_rate", c.adamerging_learning_rate);
  get("adamerging_init", c.adamerging_init);
  get("lorahub_budget", c.lorahub_budget);
  get("lorahub_examples", c.lorahub_examples);
  get("lorahub_l1", c.lorahub_l1);
  get("lorahub_bound", c.lorahub_bound);
  return c;
}

nlohmann::json run_merging_methods(MergeTarget& target, const MergeStudyConfig& config,
                                   const std::vector<double>& single_task_test, const StudyLog& log) {
  MethodRunner runner(target, config, single_task_test, log);
  bool lora = peft::is_lora_mode(target.mode());
  std::vector<std::string> spaces{"parameter"};
  if (lora)
    for (const auto& s : config.lora_spaces)
      if (s == "weight") spaces.push_back("weight");
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& method : config.methods) {
    if (method == "simple_average") for (const auto& s : spaces) entries.push_back(runner.simple_average(s));
    else if (method == "task_arithmetic") for (const auto& s : spaces) entries.push_back(runner.task_arithmetic(s));
    else if (method == "ties") for (const auto& s : spaces) entries.push_back(runner.ties(s));
    else if (method == "dare_task_arithmetic") for (const auto& s : spaces) entries.push_back(runner.dare(s, false));
    else if (method == "dare_ties") for (const auto& s : spaces) entries.push_back(runner.dare(s, true));
    else if (method == "fisher") entries.push_back(runner.fisher());
    else if (method == "regmean") entries.push_back(runner.regmean());
    else if (method == "adamerging_task") entries.push_back(runner.adamerging(false));
    else if (method == "adamerging_layer") entries.push_back(runner.adamerging(true));
    else if (method == "lorahub") {
      if (lora) entries.push_back(runner.lorahub());
    } else {
      throw std::invalid_argument("[merge study] unknown method '" + method +
                                  "' (known: simple_average, task_arithmetic, ties, dare_task_arithmetic, dare_ties, "
                                  "fisher, regmean, adamerging_task, adamerging_layer, lorahub)");
    }
  }
  return entries;
}

}  // namespace linfuse::experiments
