#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "merge/ties.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;
using linfuse::testing::task_vector_of;
using linfuse::testing::values_of;

namespace {

int64_t count_nonzero(const TaskVector& task_vector) {
  int64_t count = 0;
  for (const auto& entry : task_vector)
    for (double v : entry.second.to_vector<double>()) count += v != 0.0;
  return count;
}

// A straightforward TIES on flat vectors, written from the paper: full sort for the trim, explicit loops for the
// election and the disjoint mean. `segments` are the tensor boundaries for per-tensor trimming.
std::vector<double> reference_ties(std::vector<std::vector<double>> taus, const std::vector<size_t>& segments,
                                   const TiesOptions& options) {
  size_t n = taus[0].size();
  for (auto& tau : taus) {
    std::vector<std::pair<size_t, size_t>> ranges;
    if (options.trim_scope == TrimScope::global) ranges.push_back({0, n});
    else
      for (size_t s = 0; s + 1 < segments.size(); ++s) ranges.push_back({segments[s], segments[s + 1]});
    for (auto [begin, end] : ranges) {
      std::vector<size_t> order(end - begin);
      std::iota(order.begin(), order.end(), begin);
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t i, size_t j) { return std::abs(tau[i]) > std::abs(tau[j]); });
      size_t keep = size_t(std::floor(options.keep_fraction * double(end - begin) + 1e-9));
      for (size_t r = keep; r < order.size(); ++r) tau[order[r]] = 0.0;
    }
  }
  auto sign = [](double x) { return double((x > 0) - (x < 0)); };
  std::vector<double> elected(n);
  double elected_sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (auto& tau : taus) total += options.sign_election == SignElection::mass ? tau[i] : sign(tau[i]);
    elected[i] = sign(total);
    elected_sum += elected[i];
  }
  for (double& e : elected)
    if (e == 0.0) e = elected_sum < 0 ? -1.0 : 1.0;
  std::vector<double> merged(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double sum = 0.0;
    int count = 0;
    for (auto& tau : taus)
      if (tau[i] != 0.0 && sign(tau[i]) == elected[i]) sum += tau[i], ++count;
    merged[i] = options.scaling * (options.aggregation == DisjointAggregation::sum ? sum : count ? sum / count : 0.0);
  }
  return merged;
}

std::vector<double> flat(const TaskVector& task_vector) {
  std::vector<double> out;
  for (const auto& entry : task_vector) {
    auto values = entry.second.to_vector<double>();
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}

// Three task vectors whose trims, elections and means are worked out by hand below.
std::vector<TaskVector> hand_example() {
  return {task_vector_of({{"w", {4, -1}, {2}}, {"b", {0.5, 2}, {2}}}),
          task_vector_of({{"w", {3, 2}, {2}}, {"b", {-6, 1}, {2}}}),
          task_vector_of({{"w", {-9, 0.1}, {2}}, {"b", {1, 1.5}, {2}}})};
}

}  // namespace

TEST_CASE("TIES matches hand-computed values for mass and count elections", "[merge][ties]") {
  // Keep 2 of 4 per task: tau1 -> w=[4,0] b=[0,2]; tau2 -> w=[3,0] b=[-6,0]; tau3 -> w=[-9,0] b=[0,1.5].
  // Mass: w0 sums to -2 -> only -9 agrees; count: two + against one - -> mean(4, 3) = 3.5.
  // b0: only -6; b1: mean(2, 1.5) = 1.75; w1 kept by nobody -> 0.
  TiesOptions options;
  options.keep_fraction = 0.5;
  TaskVector mass = ties_merging(hand_example(), options);
  CHECK(values_of(mass, "w") == std::vector<double>{-9, 0});
  CHECK(values_of(mass, "b") == std::vector<double>{-6, 1.75});

  options.sign_election = SignElection::count;
  TaskVector count = ties_merging(hand_example(), options);
  CHECK(values_of(count, "w") == std::vector<double>{3.5, 0});
  CHECK(values_of(count, "b") == std::vector<double>{-6, 1.75});

  options.sign_election = SignElection::mass;
  options.aggregation = DisjointAggregation::sum;
  options.scaling = 0.5;
  TaskVector summed = ties_merging(hand_example(), options);
  CHECK(values_of(summed, "w") == std::vector<double>{-4.5, 0});
  CHECK(values_of(summed, "b") == std::vector<double>{-3, 1.75});
}

TEST_CASE("TIES trim keeps exactly the top-k count, ties in magnitude included", "[merge][ties]") {
  // Four entries tie at magnitude 1; keeping 2 of 5 takes the 2 and the earliest 1. The reference's ">= threshold"
  // would keep all five.
  TaskVector tied = task_vector_of({{"w", {1, -1, 1, -1, 2}, {5}}});
  TaskVector trimmed = ties_trim(tied, 0.4);
  CHECK(values_of(trimmed, "w") == std::vector<double>{1, 0, 0, 0, 2});

  TaskVector all_equal = task_vector_of({{"a", std::vector<double>(7, -3.0), {7}}, {"b", std::vector<double>(3, 3.0), {3}}});
  for (double fraction : {0.0, 0.1, 0.3, 0.5, 0.7, 1.0}) {
    CAPTURE(fraction);
    CHECK(count_nonzero(ties_trim(all_equal, fraction)) == int64_t(std::floor(fraction * 10 + 1e-9)));
    // per tensor: floor(k * 7) + floor(k * 3)
    int64_t per_tensor = int64_t(std::floor(fraction * 7 + 1e-9)) + int64_t(std::floor(fraction * 3 + 1e-9));
    CHECK(count_nonzero(ties_trim(all_equal, fraction, TrimScope::per_tensor)) == per_tensor);
  }

  Generator generator(11);
  TaskVector random(linfuse::testing::random_state_dict(generator, {{"w", {13, 17}}, {"b", {29}}}, DType::F32));
  TaskVector kept = ties_trim(random, 0.2);
  CHECK(count_nonzero(kept) == int64_t(std::floor(0.2 * double(random.numel()))));
  // The kept entries are the largest: the smallest kept magnitude is >= the largest dropped one.
  std::vector<double> original = flat(random), after = flat(kept);
  double smallest_kept = INFINITY, largest_dropped = 0.0;
  for (size_t i = 0; i < original.size(); ++i) {
    if (after[i] != 0.0) {
      CHECK(after[i] == original[i]);
      smallest_kept = std::min(smallest_kept, std::abs(original[i]));
    } else {
      largest_dropped = std::max(largest_dropped, std::abs(original[i]));
    }
  }
  CHECK(smallest_kept >= largest_dropped);

  CHECK_THROWS_WITH(ties_trim(random, 20), Catch::Contains("keep_fraction must be in [0, 1]"));
  CHECK_THROWS_WITH(ties_trim(task_vector_of({{"w", {1, NAN}, {2}}}), 0.5), Catch::Contains("non-finite"));
}

TEST_CASE("TIES keeps only entries that agree with the elected sign", "[merge][ties]") {
  Generator generator(5);
  std::vector<TaskVector> taus;
  for (int t = 0; t < 4; ++t)
    taus.emplace_back(linfuse::testing::random_state_dict(generator, {{"w", {9, 11}}, {"b", {9}}}));
  TiesOptions options;
  options.keep_fraction = 0.3;
  std::vector<double> merged = flat(ties_merging(taus, options));
  std::vector<std::vector<double>> trimmed;
  for (const auto& tau : taus) trimmed.push_back(flat(ties_trim(tau, options.keep_fraction)));
  int nonzero = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    double mass = 0.0, largest_agreeing = 0.0;
    for (const auto& values : trimmed) mass += values[i];
    for (const auto& values : trimmed)
      if (values[i] * mass > 0) largest_agreeing = std::max(largest_agreeing, std::abs(values[i]));
    if (merged[i] == 0.0) continue;
    ++nonzero;
    CHECK(merged[i] * mass > 0);                            // same sign as the elected one
    CHECK(std::abs(merged[i]) <= largest_agreeing + 1e-12);   // a mean of agreeing entries only
  }
  CHECK(nonzero > 0);
}

TEST_CASE("TIES agrees with a straightforward implementation for every option", "[merge][ties]") {
  Generator generator(21);
  std::vector<TaskVector> taus;
  for (int t = 0; t < 3; ++t)
    taus.emplace_back(linfuse::testing::random_state_dict(generator, {{"w", {6, 5}}, {"b", {6}}, {"c", {3, 3}}}));
  std::vector<std::vector<double>> flat_taus;
  for (const auto& tau : taus) flat_taus.push_back(flat(tau));
  std::vector<size_t> segments{0, 30, 36, 45};
  for (TrimScope scope : {TrimScope::global, TrimScope::per_tensor})
    for (SignElection election : {SignElection::mass, SignElection::count})
      for (DisjointAggregation aggregation : {DisjointAggregation::mean, DisjointAggregation::sum}) {
        TiesOptions options;
        options.keep_fraction = 0.35;
        options.trim_scope = scope;
        options.sign_election = election;
        options.aggregation = aggregation;
        options.scaling = 0.7;
        std::vector<double> expected = reference_ties(flat_taus, segments, options);
        std::vector<double> actual = flat(ties_merging(taus, options));
        double worst = 0.0;
        for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(expected[i] - actual[i]));
        CAPTURE(int(scope), int(election), int(aggregation));
        CHECK(worst < 1e-12);
      }
}

TEST_CASE("TIES of one task vector keeping everything at lambda 1 is the identity", "[merge][ties]") {
  Generator generator(8);
  TaskVector tau(linfuse::testing::random_state_dict(generator, {{"w", {4, 4}}, {"b", {4}}}, DType::F32));
  TiesOptions options;
  options.keep_fraction = 1.0;
  CHECK(max_abs_diff(ties_merging({tau}, options), tau) == 0.0);
}
