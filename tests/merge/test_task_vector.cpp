#include <catch2/catch.hpp>

#include <cmath>

#include "merge/averaging.h"
#include "merge/task_vector.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;
using linfuse::testing::state_dict_of;
using linfuse::testing::task_vector_of;
using linfuse::testing::values_of;

TEST_CASE("a task vector is finetuned minus pretrained, over all names or the selected ones", "[merge][task_vector]") {
  StateDict pretrained = state_dict_of({{"w", {1, 2, 3, 4}, {2, 2}}, {"b", {0.5, -1}, {2}}});
  StateDict finetuned = state_dict_of({{"w", {1.5, 2, 2, 4}, {2, 2}}, {"b", {0.5, 1}, {2}}});
  TaskVector all = TaskVector::between(finetuned, pretrained);
  CHECK(all.names() == std::vector<std::string>{"w", "b"});
  CHECK(values_of(all, "w") == std::vector<double>{0.5, 0, -1, 0});
  CHECK(values_of(all, "b") == std::vector<double>{0, 2});
  CHECK(all.numel() == 6);

  TaskVector only_bias = TaskVector::between(finetuned, pretrained, {"b"});
  CHECK(only_bias.names() == std::vector<std::string>{"b"});
  CHECK_THROWS_WITH(TaskVector::between(finetuned, pretrained, {"b", "head"}),
                    Catch::Contains("head (in neither)"));
}

TEST_CASE("an int64 tensor cannot be part of a task vector", "[merge][task_vector]") {
  StateDict with_ids;
  with_ids.insert("position_ids", Tensor::arange(3, DType::I64));
  CHECK_THROWS_WITH(TaskVector(with_ids), Catch::Contains("position_ids (int64)"));
}

TEST_CASE("add, subtract, scale and negate work entry by entry", "[merge][task_vector]") {
  TaskVector a = task_vector_of({{"w", {1, 2, 3}, {3}}});
  TaskVector b = task_vector_of({{"w", {10, 20, 30}, {3}}});
  CHECK(values_of(a + b, "w") == std::vector<double>{11, 22, 33});
  CHECK(values_of(b - a, "w") == std::vector<double>{9, 18, 27});
  CHECK(values_of(2.5 * a, "w") == std::vector<double>{2.5, 5, 7.5});
  CHECK(values_of(-a, "w") == std::vector<double>{-1, -2, -3});
  CHECK(values_of(a, "w") == std::vector<double>{1, 2, 3});   // operands untouched
}

TEST_CASE("dot, norm and cosine over the flattened vector and per tensor", "[merge][task_vector]") {
  TaskVector a = task_vector_of({{"w", {1, 2, 3}, {3}}, {"b", {0, 4}, {2}}});
  TaskVector b = task_vector_of({{"w", {2, 0, 1}, {3}}, {"b", {1, 1}, {2}}});
  CHECK(dot(a, b) == 9.0);
  CHECK(norm(a) == Approx(std::sqrt(30.0)));
  CHECK(cosine_similarity(a, b) == Approx(9.0 / std::sqrt(30.0 * 7.0)));

  PerTensorValues dots = dot_per_tensor(a, b);
  CHECK(dots.size() == 2);
  CHECK(dots.entries[0].first == "w");
  CHECK(dots.at("w") == 5.0);
  CHECK(dots.at("b") == 4.0);
  CHECK(norm_per_tensor(a).at("b") == 4.0);
  CHECK(cosine_similarity_per_tensor(a, b).at("w") == Approx(5.0 / std::sqrt(14.0 * 5.0)));
  CHECK(cosine_similarity_per_tensor(a, b).at("b") == Approx(4.0 / (4.0 * std::sqrt(2.0))));
  CHECK_THROWS_AS(dots.at("missing"), std::out_of_range);

  TaskVector zero = task_vector_of({{"w", {0, 0, 0}, {3}}, {"b", {0, 0}, {2}}});
  CHECK(cosine_similarity(a, zero) == 0.0);
}

TEST_CASE("dot products of float32 task vectors accumulate in float64", "[merge][task_vector]") {
  // In float32, 1e8 + 1 rounds back to 1e8 (the spacing there is 8), so a float32 sum would give 0, not 1.
  TaskVector a = task_vector_of({{"w", {1e8, 1, -1e8}, {3}}}, DType::F32);
  TaskVector ones = task_vector_of({{"w", {1, 1, 1}, {3}}}, DType::F32);
  CHECK(dot(a, ones) == 1.0);
  CHECK(a.at("w").dtype() == DType::F32);
}

TEST_CASE("apply adds the task vector and copies the names it does not hold", "[merge][task_vector]") {
  StateDict base = state_dict_of({{"w", {1, 2}, {2}}, {"b", {3}, {1}}});
  base.insert("ids", Tensor::arange(2, DType::I64));
  TaskVector delta = task_vector_of({{"w", {0.5, -2}, {2}}});
  StateDict merged = apply(base, delta);
  CHECK(merged.names() == std::vector<std::string>{"w", "b", "ids"});
  CHECK(merged.at("w").to_vector<double>() == std::vector<double>{1.5, 0});
  CHECK(merged.at("b").same_as(base.at("b")));
  CHECK(merged.at("ids").to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK_THROWS_WITH(apply(base, task_vector_of({{"head", {1}, {1}}})), Catch::Contains("missing in base: head"));
}

TEST_CASE("mismatched names, shapes and dtypes are all listed in the error", "[merge][task_vector]") {
  TaskVector a = task_vector_of({{"w", {1, 2, 3, 4, 5, 6}, {2, 3}}, {"only_a", {1}, {1}}, {"d", {1}, {1}}});
  StateDict b_entries = state_dict_of({{"w", {1, 2, 3, 4, 5, 6}, {3, 2}}, {"only_b", {1}, {1}}});
  b_entries.insert("d", Tensor::from_list({1}, {1}, DType::F32));
  TaskVector b(b_entries);
  try {
    (void)add(a, b);
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    std::string message = e.what();
    CHECK_THAT(message, Catch::StartsWith("[task_vector add]"));
    CHECK_THAT(message, Catch::Contains("missing in A: only_b"));
    CHECK_THAT(message, Catch::Contains("missing in B: only_a"));
    CHECK_THAT(message, Catch::Contains("shape differs: w (2,3) vs (3,2)"));
    CHECK_THAT(message, Catch::Contains("dtype differs: d float64 vs float32"));
  }
  CHECK_THROWS_WITH(simple_average({a, a, b}), Catch::Contains("missing in task vector 2: only_a"));
  CHECK_THROWS_WITH(dot(a, b), Catch::Contains("missing in A: only_b"));
  CHECK_THROWS_WITH(cosine_similarity_per_tensor(a, b), Catch::Contains("shape differs: w (2,3) vs (3,2)"));
}

TEST_CASE("simple average, weighted average and task arithmetic match hand-computed values", "[merge][averaging]") {
  std::vector<TaskVector> taus{task_vector_of({{"w", {3, 0, -3}, {3}}}), task_vector_of({{"w", {0, 6, 3}, {3}}}),
                               task_vector_of({{"w", {3, 3, 3}, {3}}})};
  CHECK(values_of(simple_average(taus), "w") == std::vector<double>{2, 3, 1});
  CHECK(values_of(weighted_average(taus, {1, 0.5, -1}), "w") == std::vector<double>{0, 0, -4.5});
  std::vector<double> arithmetic = values_of(task_arithmetic(taus, 0.5), "w");
  CHECK(arithmetic == std::vector<double>{3, 4.5, 1.5});
  CHECK_THROWS_WITH(weighted_average(taus, {1, 2}), Catch::Contains("2 weights for 3 task vectors"));
  CHECK_THROWS_AS(simple_average({}), std::invalid_argument);
}

TEST_CASE("one model at weight 1 is the identity for the linear merges", "[merge][averaging]") {
  Generator generator(3);
  TaskVector tau(linfuse::testing::random_state_dict(generator, {{"w", {4, 3}}, {"b", {4}}}, DType::F32));
  CHECK(max_abs_diff(simple_average({tau}), tau) == 0.0);
  CHECK(max_abs_diff(weighted_average({tau}, {1.0}), tau) == 0.0);
  CHECK(max_abs_diff(task_arithmetic({tau}, 1.0), tau) == 0.0);
}

TEST_CASE("tau and -tau cancel under task arithmetic", "[merge][averaging]") {
  Generator generator(4);
  TaskVector tau(linfuse::testing::random_state_dict(generator, {{"w", {5, 7}}, {"b", {5}}}, DType::F32));
  TaskVector merged = task_arithmetic({tau, -tau}, 0.8);
  CHECK(norm(merged) == 0.0);
  StateDict base = linfuse::testing::random_state_dict(generator, {{"w", {5, 7}}, {"b", {5}}}, DType::F32);
  CHECK(max_abs_diff(apply(base, merged), base) == 0.0);
}
