#include <catch2/catch.hpp>

#include "merge/averaging.h"
#include "merge/fisher.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;
using linfuse::testing::state_dict_of;
using linfuse::testing::task_vector_of;
using linfuse::testing::values_of;

TEST_CASE("Fisher merging matches hand-computed values, floor and coefficients included", "[merge][fisher]") {
  std::vector<TaskVector> models{task_vector_of({{"w", {1, 2}, {2}}, {"bias", {10}, {1}}}),
                                 task_vector_of({{"w", {3, 6}, {2}}, {"bias", {20}, {1}}})};
  // "bias" has no Fisher: it falls back to the (coefficient-weighted) average.
  std::vector<StateDict> fishers{state_dict_of({{"w", {1, 0}, {2}}}), state_dict_of({{"w", {3, 0}, {2}}})};
  // w0 = (1*1 + 3*3) / (1 + 3) = 2.5; w1: both Fishers floored to 1e-6 -> plain average 4.
  TaskVector merged = fisher_merging(models, fishers);
  CHECK(values_of(merged, "w")[0] == Approx(2.5));
  CHECK(values_of(merged, "w")[1] == Approx(4.0));
  CHECK(values_of(merged, "bias")[0] == Approx(15.0));

  // Coefficients (0.75, 0.25): w0 = (0.75*1*1 + 0.25*3*3) / (0.75 + 0.75) = 2, w1 = 0.75*2 + 0.25*6 = 3.
  FisherMergeOptions options;
  options.model_coefficients = {0.75, 0.25};
  TaskVector weighted = fisher_merging(models, fishers, options);
  CHECK(values_of(weighted, "w")[0] == Approx(2.0));
  CHECK(values_of(weighted, "w")[1] == Approx(3.0));
  CHECK(values_of(weighted, "bias")[0] == Approx(12.5));

  // A larger floor lifts the small Fisher: w0 = (1*1.5 + 3*3) / (1.5 + 3) with F1 floored to 1.5.
  options = {};
  options.fisher_floor = 1.5;
  CHECK(values_of(fisher_merging(models, fishers, options), "w")[0] == Approx((1.5 + 9.0) / 4.5));
}

TEST_CASE("Fisher merging with equal Fishers equals the average", "[merge][fisher]") {
  Generator generator(12);
  std::vector<std::pair<std::string, Shape>> layout{{"w", {6, 4}}, {"b", {6}}};
  std::vector<TaskVector> models;
  for (int t = 0; t < 3; ++t) models.emplace_back(linfuse::testing::random_state_dict(generator, layout));
  StateDict fisher;
  for (const auto& [name, shape] : layout) fisher.insert(name, generator.uniform(shape, 0.1, 2.0, DType::F64));
  TaskVector merged = fisher_merging(models, {fisher, fisher, fisher});
  CHECK(max_abs_diff(merged, simple_average(models)) < 1e-12);

  // Normalization divides each model's coefficient by its Fisher norm: Fishers equal up to a factor become equal.
  StateDict scaled = scale(TaskVector(fisher), 10.0).tensors();
  FisherMergeOptions normalized;
  normalized.normalize_fishers = true;
  CHECK(max_abs_diff(fisher_merging(models, {scaled, fisher, fisher}, normalized), simple_average(models)) < 1e-12);
  CHECK(max_abs_diff(fisher_merging(models, {scaled, fisher, fisher}), simple_average(models)) > 1e-3);
}

TEST_CASE("Fisher merging of one model is that model, and it is translation-equivariant", "[merge][fisher]") {
  Generator generator(13);
  std::vector<std::pair<std::string, Shape>> layout{{"w", {3, 5}}};
  TaskVector model(linfuse::testing::random_state_dict(generator, layout, DType::F32));
  StateDict fisher;
  fisher.insert("w", generator.uniform({3, 5}, 0.0, 1.0, DType::F32));
  CHECK(max_abs_diff(fisher_merging({model}, {fisher}), model) < 1e-6);

  // Merging models = pretrained + merging their task vectors.
  StateDict pretrained = linfuse::testing::random_state_dict(generator, layout);
  std::vector<TaskVector> taus, thetas;
  std::vector<StateDict> fishers;
  for (int t = 0; t < 3; ++t) {
    taus.emplace_back(linfuse::testing::random_state_dict(generator, layout));
    thetas.emplace_back(apply(pretrained, taus.back()));
    StateDict f;
    f.insert("w", generator.uniform({3, 5}, 0.0, 1.0, DType::F64));
    fishers.push_back(f);
  }
  CHECK(max_abs_diff(fisher_merging(thetas, fishers).tensors(), apply(pretrained, fisher_merging(taus, fishers))) <
        1e-12);
}

TEST_CASE("Fisher merging lists Fishers that do not fit", "[merge][fisher]") {
  std::vector<TaskVector> models{task_vector_of({{"w", {1, 2}, {2}}}), task_vector_of({{"w", {3, 4}, {2}}})};
  CHECK_THROWS_WITH(fisher_merging(models, {state_dict_of({{"w", {1, 1}, {2}}}), StateDict()}),
                    Catch::Contains("w (missing in Fisher 1)"));
  CHECK_THROWS_WITH(fisher_merging(models, {state_dict_of({{"v", {1}, {1}}}), state_dict_of({{"v", {1}, {1}}})}),
                    Catch::Contains("no such parameter: v"));
  CHECK_THROWS_WITH(fisher_merging(models, {state_dict_of({{"w", {1, 1, 1}, {3}}}), state_dict_of({{"w", {1, 1, 1}, {3}}})}),
                    Catch::Contains("w (3,) vs parameter (2,)"));
  CHECK_THROWS_WITH(fisher_merging(models, {StateDict()}), Catch::Contains("1 Fishers for 2 models"));
  FisherMergeOptions options;
  options.model_coefficients = {1.0};
  CHECK_THROWS_WITH(fisher_merging(models, {StateDict(), StateDict()}, options),
                    Catch::Contains("1 model coefficients for 2 models"));
}
