// First-order cross-task leakage (experiments/leakage.h): closed-form answers on a linear model, and the
// forward-mode derivative of the real vision target against a central difference of its logits.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "../helpers.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/experiment.h"
#include "experiments/leakage.h"
#include "experiments/vision_suite.h"
#include "tests/experiments/stub_merge_target.h"
#include "merge/task_vector.h"
#include "tensor/random.h"

using namespace linfuse;
using namespace linfuse::experiments;

namespace {

// A linear model f(x) = W x (W: K x D) read on each task's inputs X_s (N x D). The state is {"w": W}; task t's
// fine-tuned state is W0 + tau_t. Its Jacobian is known in closed form: J f(x) tau = tau x, so the JVP rows
// are X_s tau^T, and change(tau, s) = mean_i || tau x_i ||.
class LinearTarget : public testing::StubMergeTarget {
 public:
  LinearTarget(std::vector<Tensor> inputs, const std::vector<Tensor>& task_vectors) : inputs_(std::move(inputs)) {
    initial_.insert("w", Tensor::full(task_vectors[0].shape(), 0.5));   // f is linear: W0 plays no part
    for (const Tensor& tau : task_vectors) {
      StateDict s;
      s.insert("w", add(initial_.at("w"), tau));
      finetuned_.push_back(s);
    }
  }
  peft::FinetuneMode mode() const override { return peft::FinetuneMode::LinearFull; }
  int num_tasks() const override { return int(inputs_.size()); }
  std::string task_name(int task) const override { return std::string(1, char('a' + task)); }
  const StateDict& initial_state() const override { return initial_; }
  const StateDict& finetuned_state(int task) const override { return finetuned_[size_t(task)]; }
  Tensor outputs(const StateDict& state, int task, int64_t examples) override {
    return matmul(first(task, examples), transpose(state.at("w"), 0, 1));   // (N, K)
  }
  Tensor output_jvp(const StateDict& direction, int task, int64_t examples) override {
    return matmul(first(task, examples), transpose(direction.at("w"), 0, 1));
  }

 private:
  Tensor first(int task, int64_t examples) const {
    return slice(inputs_[size_t(task)], 0, 0, std::min(examples, inputs_[size_t(task)].size(0)));
  }
  std::vector<Tensor> inputs_;
  StateDict initial_;
  std::vector<StateDict> finetuned_;
};

const StudyLog kQuiet = [](const std::string&) {};

std::vector<std::vector<double>> leakage_of(LinearTarget& target, int64_t examples = 100, const std::string& key = "matrix") {
  nlohmann::json j = leakage_matrix(target, examples, kQuiet);
  REQUIRE(j.contains(key));
  return j[key].get<std::vector<std::vector<double>>>();
}

// u v^T for vectors u (K) and v (D).
Tensor outer(const std::vector<float>& u, const std::vector<float>& v) {
  return matmul(Tensor::from_vector(u, {int64_t(u.size()), 1}), Tensor::from_vector(v, {1, int64_t(v.size())}));
}

}  // namespace

TEST_CASE("leakage is 0 between tasks whose inputs lie in orthogonal subspaces", "[experiment][leakage]") {
  // Three tasks in R^6, task s's inputs in span(e_2s, e_2s+1); each task vector is an update of W built from
  // its own task's inputs (what gradient descent on a linear layer produces), so it cannot move the others.
  Generator gen(3);
  std::vector<Tensor> inputs, task_vectors;
  for (int s = 0; s < 3; ++s) {
    std::vector<float> x(size_t(5 * 6), 0.0f);
    for (int i = 0; i < 5; ++i)
      for (int k = 0; k < 2; ++k) x[size_t(i * 6 + 2 * s + k)] = float(gen.next_uniform() - 0.5);
    inputs.push_back(Tensor::from_vector(x, {5, 6}));
    std::vector<float> v(6, 0.0f);
    v[size_t(2 * s)] = 1.0f, v[size_t(2 * s + 1)] = -0.5f;
    task_vectors.push_back(outer({1.0f, 2.0f, -1.0f, 0.5f}, v));
  }
  LinearTarget target(inputs, task_vectors);
  auto L = leakage_of(target);
  for (int t = 0; t < 3; ++t)
    for (int s = 0; s < 3; ++s) CHECK(L[size_t(t)][size_t(s)] == Approx(t == s ? 1.0 : 0.0).margin(1e-12));
}

TEST_CASE("leakage is 1 between tasks with identical inputs, whatever the task vectors", "[experiment][leakage]") {
  Generator gen(5);
  std::vector<float> x(size_t(8 * 4));
  for (float& value : x) value = float(gen.next_uniform() - 0.5);
  Tensor shared = Tensor::from_vector(x, {8, 4});
  std::vector<Tensor> task_vectors;
  for (int t = 0; t < 3; ++t) {
    std::vector<float> tau(size_t(3 * 4));
    for (float& value : tau) value = float(gen.next_uniform() - 0.5);
    task_vectors.push_back(Tensor::from_vector(tau, {3, 4}));
  }
  LinearTarget target({shared, shared, shared}, task_vectors);
  for (const auto& row : leakage_of(target))
    for (double value : row) CHECK(value == Approx(1.0).epsilon(1e-6));
  for (const auto& row : leakage_of(target, 100, "centered"))
    for (double value : row) CHECK(value == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("a task vector that moves another task's logits all alike leaks in L but not in the centered L", "[experiment][leakage]") {
  // Two tasks in R^2 with K = 2 logits: task 0's inputs on e_0, task 1's on e_1. tau_0 = u e_0^T + (1, 1) e_1^T
  // moves task 0's logits by u x_0 and task 1's by (1, 1) x_1, the same for both logits: a move no prediction of
  // task 1 sees. tau_1 = (1, -1) e_1^T moves only its own task's logits, apart.
  Tensor x0 = Tensor::from_vector(std::vector<float>{1, 0, 2, 0}, {2, 2});
  Tensor x1 = Tensor::from_vector(std::vector<float>{0, 1, 0, -3}, {2, 2});
  Tensor tau0 = add(outer({2.0f, -1.0f}, {1.0f, 0.0f}), outer({1.0f, 1.0f}, {0.0f, 1.0f}));
  Tensor tau1 = outer({1.0f, -1.0f}, {0.0f, 1.0f});
  LinearTarget target({x0, x1}, {tau0, tau1});
  auto L = leakage_of(target), centered = leakage_of(target, 100, "centered");
  // rms of (2, -1) a is |a| sqrt(5/2); of (1, 1) b is |b|: L[0][1] = mean(1, 3) / (mean(1, 2) sqrt(5/2))
  CHECK(L[0][1] == Approx(2.0 / (1.5 * std::sqrt(2.5))).epsilon(1e-6));
  CHECK(centered[0][1] == Approx(0.0).margin(1e-12));
  CHECK(L[1][0] == Approx(0.0).margin(1e-12));
  CHECK(centered[1][0] == Approx(0.0).margin(1e-12));
  CHECK(centered[0][0] == Approx(1.0));
}

TEST_CASE("a task vector that moves its own task's logits only all alike gives no centered matrix", "[experiment][leakage]") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 0}, {1, 2}), y = Tensor::from_vector(std::vector<float>{0, 1}, {1, 2});
  LinearTarget target({x, y}, {outer({1.0f, 1.0f}, {1.0f, 0.0f}), outer({1.0f, -1.0f}, {0.0f, 1.0f})});
  nlohmann::json j = leakage_matrix(target, 1, kQuiet);
  CHECK(j.contains("matrix"));
  CHECK_FALSE(j.contains("centered"));
}

TEST_CASE("leakage between single inputs at an angle is the cosine of the angle", "[experiment][leakage]") {
  // x_t = (cos a_t, sin a_t) and tau_t = u x_t^T: || tau_t x_s || / || tau_t x_t || = |cos(a_t - a_s)|.
  const std::vector<double> angles = {0.0, 0.4, 1.3};
  std::vector<Tensor> inputs, task_vectors;
  for (double a : angles) {
    std::vector<float> x = {float(std::cos(a)), float(std::sin(a))};
    inputs.push_back(Tensor::from_vector(x, {1, 2}));
    task_vectors.push_back(outer({0.3f, -1.2f}, x));
  }
  LinearTarget target(inputs, task_vectors);
  auto L = leakage_of(target);
  for (size_t t = 0; t < angles.size(); ++t)
    for (size_t s = 0; s < angles.size(); ++s)
      CHECK(L[t][s] == Approx(std::fabs(std::cos(angles[t] - angles[s]))).margin(1e-6));
}

TEST_CASE("a task vector that does not move its own task's outputs gives no leakage matrix", "[experiment][leakage]") {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 0}, {1, 2}), y = Tensor::from_vector(std::vector<float>{0, 1}, {1, 2});
  // tau_0 reads only the second coordinate, which task 0's input does not have
  LinearTarget target({x, y}, {outer({1.0f}, {0.0f, 1.0f}), outer({1.0f}, {0.0f, 1.0f})});
  CHECK(leakage_matrix(target, 1, kQuiet).empty());
}

TEST_CASE("the vision target's output JVP equals a central difference of its logits, in every mode", "[experiment][leakage]") {
  // The smoke preset's vision suite, shortened: the models need not be good, only fine-tuned a little.
  nlohmann::json config = preset_config("smoke")["vision"];
  config["pretrain"]["steps"] = 20;
  config["finetune"]["steps"] = 10;
  auto cache_dir = std::filesystem::temp_directory_path() / ("linfuse_leakage_" + std::to_string(::getpid()));
  std::filesystem::remove_all(cache_dir);
  {
    StageCache cache(cache_dir);
    std::map<std::string, double> seconds;
    VisionSuite suite(config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
    suite.prepare();
    const int tuned = 0, scored = 1;
    const int64_t examples = 16;
    for (peft::FinetuneMode mode : suite.modes()) {
      INFO(peft::mode_name(mode));
      std::unique_ptr<MergeTarget> target = suite.merge_target(mode);
      merge::TaskVector tau = merge::TaskVector::between(target->finetuned_state(tuned), target->initial_state());
      Tensor jvp = target->output_jvp(tau.tensors(), scored, examples);   // (16, classes)
      // (f(theta0 + eps tau) - f(theta0 - eps tau)) / (2 eps): no derivative code involved. The error is
      // O(eps^2) (exact for the linearized modes and for lora's bilinear B A at B0 = 0) plus float32 rounding.
      const double eps = 0.1;
      Tensor plus = target->outputs(merge::apply(target->initial_state(), eps * tau), scored, examples);
      Tensor minus = target->outputs(merge::apply(target->initial_state(), -eps * tau), scored, examples);
      Tensor difference = div(sub(plus, minus), 2 * eps);
      REQUIRE(jvp.shape() == difference.shape());
      CHECK(jvp.size(0) == examples);
      CHECK(testing::max_abs_diff(jvp, zeros_like(jvp)) > 1e-4);   // the check below is not 0 against 0
      INFO("largest |JVP| " << testing::max_abs_diff(jvp, zeros_like(jvp)) << ", relative error "
                            << testing::relative_error(difference, jvp));
      CHECK(testing::relative_error(difference, jvp) < 1e-2);
    }
  }
  std::filesystem::remove_all(cache_dir);
}
