// The number-of-tasks sweep on a synthetic MergeTarget whose scores are known in closed form: which subsets
// it merges, over which tasks it normalizes, and its absolute averages.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>

#include "experiments/merge_study.h"
#include "tests/experiments/stub_merge_target.h"

using namespace linfuse;
using namespace linfuse::experiments;

namespace {

// n tasks; a state is one tensor "w" of n entries. Task t's fine-tuned state is the unit vector e_t, and the
// score of a state on task t is 0.5 + 0.4 w[t] - 0.1 sum_{j != t} |w[j]|: its own direction helps, every
// other task's hurts (interference), the same on both splits.
class SyntheticTarget : public testing::StubMergeTarget {
 public:
  explicit SyntheticTarget(int n) : n_(n) {
    initial_.insert("w", Tensor::zeros({n}));
    for (int t = 0; t < n; ++t) {
      Tensor unit = Tensor::zeros({n});
      unit.data<float>()[t] = 1.0f;
      StateDict s;
      s.insert("w", unit);
      finetuned_.push_back(s);
    }
  }
  peft::FinetuneMode mode() const override { return peft::FinetuneMode::Full; }
  int num_tasks() const override { return n_; }
  std::string task_name(int task) const override {
    std::string name = "t";   // not "t" + to_string(): GCC 12 warns a false -Wrestrict on that
    name += std::to_string(task);
    return name;
  }
  const StateDict& initial_state() const override { return initial_; }
  const StateDict& finetuned_state(int task) const override { return finetuned_[size_t(task)]; }
  double score(const StateDict& state, int task, Split) override {
    const std::vector<float> w = state.at("w").to_vector<float>();
    double s = 0.5 + 0.4 * w[task];
    for (int j = 0; j < n_; ++j)
      if (j != task) s -= 0.1 * std::fabs(w[j]);
    return s;
  }

 private:
  int n_;
  StateDict initial_;
  std::vector<StateDict> finetuned_;
};

const StudyLog kQuiet = [](const std::string&) {};

// Task arithmetic of k unit vectors at lambda: own score 0.5 + 0.4 lambda, minus 0.1 lambda per other task.
double merged_score(int k, double lambda) { return 0.5 + 0.4 * lambda - 0.1 * lambda * (k - 1); }

}  // namespace

TEST_CASE("the number-of-tasks sweep normalizes over the learned tasks and merges the others in", "[experiment][sweep]") {
  const int n = 4;
  SyntheticTarget target(n);
  SweepConfig config;
  config.methods = {"task_arithmetic"};
  config.lambdas = {0.5, 1.0};
  config.max_subsets = 100;   // every subset
  const double nan = std::numeric_limits<double>::quiet_NaN();

  SECTION("every task learned: all subsets of every size, normalized over all their tasks") {
    const std::vector<double> single = {0.9, 0.9, 0.9, 0.9};
    nlohmann::json sweep = run_num_tasks_sweep(target, config, single, kQuiet);
    REQUIRE(sweep.size() == 3);   // k = 2, 3, 4
    const size_t expected_subsets[] = {6, 4, 1};
    for (size_t i = 0; i < sweep.size(); ++i) {
      const auto& point = sweep[i];
      const int k = int(i) + 2;
      CHECK(point["k"] == k);
      CHECK(point["subsets"].size() == expected_subsets[i]);
      CHECK_FALSE(point.contains("normalized_over"));
      // Validation picks the better lambda of the grid for the subset's average, the same for every subset.
      const double best = std::max(merged_score(k, 0.5), merged_score(k, 1.0));
      CHECK(point["normalized_average"].get<double>() == Approx(best / 0.9));
      CHECK(point["normalized_std"].get<double>() == Approx(0).margin(1e-12));
      CHECK(point["absolute_average"].get<double>() == Approx(best));
    }
  }

  SECTION("one task learned: the subsets that hold it, normalized over it alone") {
    const std::vector<double> single = {nan, 0.8, nan, nan};
    nlohmann::json sweep = run_num_tasks_sweep(target, config, single, kQuiet);
    REQUIRE(sweep.size() == 3);
    const size_t expected_subsets[] = {3, 3, 1};   // C(3, k - 1): t1 and k - 1 of the other three
    for (size_t i = 0; i < sweep.size(); ++i) {
      const auto& point = sweep[i];
      const int k = int(i) + 2;
      CHECK(point["subsets"].size() == expected_subsets[i]);
      for (const auto& subset : point["subsets"]) {
        std::set<std::string> names;
        for (const auto& task : subset) names.insert(task.get<std::string>());
        CHECK(names.size() == size_t(k));
        CHECK(names.count("t1") == 1);
      }
      CHECK(point["normalized_over"] == nlohmann::json::array({"t1"}));
      const double best = std::max(merged_score(k, 0.5), merged_score(k, 1.0));
      CHECK(point["normalized_average"].get<double>() == Approx(best / 0.8));
      CHECK(point["absolute_average"].get<double>() == Approx(best));
    }
  }

  SECTION("a sample of the subsets when there are more than max_subsets, the same for every call") {
    config.max_subsets = 2;
    const std::vector<double> single = {0.9, nan, 0.9, nan};
    nlohmann::json first = run_num_tasks_sweep(target, config, single, kQuiet);
    nlohmann::json second = run_num_tasks_sweep(target, config, single, kQuiet);
    CHECK(first == second);
    for (const auto& point : first) {
      CHECK(point["subsets"].size() <= 2);
      for (const auto& subset : point["subsets"]) {
        bool holds_learned = false;
        for (const auto& task : subset) holds_learned |= task == "t0" || task == "t2";
        CHECK(holds_learned);
      }
    }
  }

  SECTION("no task learned: no sweep") {
    CHECK(run_num_tasks_sweep(target, config, {nan, nan, nan, nan}, kQuiet).empty());
  }
}

TEST_CASE("the scaling curve scores each task vector alone, scaled, on its own task", "[experiment][scaling]") {
  // Own score 0.5 + 0.4 lambda: no other vector is added, so no interference term.
  SyntheticTarget target(3);
  const std::vector<double> lambdas = {0.0, 0.25, 1.0, 2.0};
  nlohmann::json curve = task_vector_scaling(target, lambdas);
  CHECK(curve["lambdas"].get<std::vector<double>>() == lambdas);
  REQUIRE(curve["matrix"].size() == 3);
  for (int t = 0; t < 3; ++t) {
    REQUIRE(curve["matrix"][size_t(t)].size() == lambdas.size());
    for (size_t i = 0; i < lambdas.size(); ++i)
      CHECK(curve["matrix"][size_t(t)][i].get<double>() == Approx(0.5 + 0.4 * lambdas[i]));
  }
}
