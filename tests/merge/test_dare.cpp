#include <catch2/catch.hpp>

#include <cmath>

#include "../helpers.h"
#include "merge/averaging.h"
#include "merge/dare.h"
#include "merge/ties.h"
#include "merge_helpers.h"
#include "tensor/threading.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;

namespace {

bool bit_equal(const TaskVector& a, const TaskVector& b) {
  if (a.names() != b.names()) return false;
  for (const auto& [name, tensor] : a)
    if (!linfuse::testing::bit_equal(tensor, b.at(name))) return false;
  return true;
}

// Large enough (> 2^14 entries) that the Philox fill really runs in parallel chunks.
std::vector<TaskVector> large_task_vectors(int count) {
  Generator generator(99);
  std::vector<TaskVector> taus;
  for (int t = 0; t < count; ++t)
    taus.emplace_back(linfuse::testing::random_state_dict(generator, {{"w", {160, 256}}, {"b", {256}}}, DType::F32));
  return taus;
}

}  // namespace

TEST_CASE("DARE drops entries and rescales the survivors by 1/(1-p)", "[merge][dare]") {
  TaskVector tau = large_task_vectors(1)[0];
  DareOptions options;
  options.drop_probability = 0.3;
  Generator generator(5);
  TaskVector dropped = dare(tau, options, generator);
  int64_t zeros = 0, total = 0;
  double worst_relative_error = 0.0;
  for (const auto& [name, tensor] : tau) {
    auto before = tensor.to_vector<double>(), after = dropped.at(name).to_vector<double>();
    for (size_t i = 0; i < before.size(); ++i, ++total) {
      if (after[i] == 0.0) ++zeros;
      else worst_relative_error = std::max(worst_relative_error, std::abs(after[i] * 0.7 / before[i] - 1.0));
    }
  }
  CHECK(worst_relative_error < 1e-6);   // survivors are x / 0.7 (rounded once to float32)
  // Binomial(n, 0.3): the dropped fraction is 0.3 within 5 standard deviations.
  double fraction = double(zeros) / double(total);
  CHECK(std::abs(fraction - 0.3) < 5.0 * std::sqrt(0.3 * 0.7 / double(total)));

  options.rescale = false;
  Generator same(5);
  TaskVector unscaled = dare(tau, options, same);
  int64_t mismatches = 0;   // same mask, survivors unscaled
  for (const auto& [name, tensor] : unscaled) {
    auto after = tensor.to_vector<double>(), before = tau.at(name).to_vector<double>(),
         scaled = dropped.at(name).to_vector<double>();
    for (size_t i = 0; i < after.size(); ++i) mismatches += after[i] != (scaled[i] == 0.0 ? 0.0 : before[i]);
  }
  CHECK(mismatches == 0);
  options.drop_probability = 1.0;
  CHECK_THROWS_WITH(dare(tau, options, generator), Catch::Contains("must be in [0, 1)"));
}

TEST_CASE("DARE preserves the expected value over many seeds", "[merge][dare]") {
  TaskVector tau = linfuse::testing::task_vector_of({{"w", {1, -2, 0.5, 4, -0.25, 3, 0, 10}, {2, 4}}});
  std::vector<double> values = tau.at("w").to_vector<double>();
  const int seeds = 2000;
  const double p = 0.6;
  std::vector<double> mean(values.size(), 0.0);
  for (int seed = 0; seed < seeds; ++seed) {
    DareOptions options;
    options.drop_probability = p;
    auto draws = dare(std::vector<TaskVector>{tau}, options, uint64_t(seed))[0].at("w").to_vector<double>();
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += draws[i] / seeds;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    // One draw is x / (1-p) with probability 1-p, else 0: variance x^2 p / (1-p). Five standard errors.
    double standard_error = std::abs(values[i]) * std::sqrt(p / (1 - p) / seeds);
    CAPTURE(i, values[i], mean[i]);
    CHECK(std::abs(mean[i] - values[i]) <= 5.0 * standard_error + 1e-12);
  }
}

TEST_CASE("DARE is seed-deterministic and independent of the thread count", "[merge][dare]") {
  std::vector<TaskVector> taus = large_task_vectors(2);
  DareOptions options;
  set_num_threads(1);
  std::vector<TaskVector> one_thread = dare(taus, options, 42);
  set_num_threads(2);
  std::vector<TaskVector> two_threads = dare(taus, options, 42);
  std::vector<TaskVector> again = dare(taus, options, 42);
  std::vector<TaskVector> other_seed = dare(taus, options, 43);
  for (size_t t = 0; t < taus.size(); ++t) {
    CHECK(bit_equal(one_thread[t], two_threads[t]));
    CHECK(bit_equal(two_threads[t], again[t]));
    CHECK_FALSE(bit_equal(two_threads[t], other_seed[t]));
  }
  // Two tasks with the same values still get their own masks.
  std::vector<TaskVector> twins = dare(std::vector<TaskVector>{taus[0], taus[0]}, options, 42);
  CHECK_FALSE(bit_equal(twins[0], twins[1]));
}

TEST_CASE("a task's DARE mask does not depend on the other tasks", "[merge][dare]") {
  std::vector<TaskVector> taus = large_task_vectors(3);
  DareOptions options;
  options.drop_probability = 0.9;
  TaskVector alone = dare(std::vector<TaskVector>{taus[0]}, options, 7)[0];
  TaskVector with_one = dare(std::vector<TaskVector>{taus[0], taus[1]}, options, 7)[0];
  TaskVector with_two = dare(std::vector<TaskVector>{taus[0], taus[2], taus[1]}, options, 7)[0];
  CHECK(bit_equal(alone, with_one));
  CHECK(bit_equal(alone, with_two));
}

TEST_CASE("DARE composes with task arithmetic and TIES", "[merge][dare]") {
  std::vector<TaskVector> taus = large_task_vectors(2);
  DareOptions options;
  options.drop_probability = 0.0;   // nothing dropped: the composition must equal the plain method
  std::vector<TaskVector> kept = dare(taus, options, 1);
  CHECK(max_abs_diff(task_arithmetic(kept, 0.4), task_arithmetic(taus, 0.4)) == 0.0);
  CHECK(max_abs_diff(ties_merging(kept), ties_merging(taus)) == 0.0);
}
