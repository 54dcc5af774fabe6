#include <catch2/catch.hpp>

#include <cmath>

#include "merge/analysis.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::state_dict_of;
using linfuse::testing::task_vector_of;

TEST_CASE("cosine-similarity matrix of task vectors matches hand values", "[merge][analysis]") {
  std::vector<TaskVector> taus{task_vector_of({{"w", {1, 0}, {2}}}), task_vector_of({{"w", {0, 2}, {2}}}),
                               task_vector_of({{"w", {3, 3}, {2}}}), task_vector_of({{"w", {0, 0}, {2}}})};
  SimilarityMatrix cosine = cosine_similarity_matrix(taus);
  CHECK(cosine[0][0] == Approx(1.0));
  CHECK(cosine[0][1] == 0.0);
  CHECK(cosine[0][2] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(cosine[2][1] == Approx(1.0 / std::sqrt(2.0)));
  CHECK(cosine[3][3] == 0.0);   // a zero task vector agrees with nothing, itself included
  CHECK(cosine[1][3] == 0.0);
}

TEST_CASE("layer-averaged cosine counts every layer once", "[merge][analysis]") {
  // Layer 0 is identical across the tasks (cos 1), layer 1 orthogonal (cos 0): the layer average is 0.5, while the
  // flattened cosine is dominated by the large layer-1 entries.
  std::vector<TaskVector> taus{task_vector_of({{"enc.layers.0.fc.weight", {1, 0}, {2}}, {"enc.layers.1.fc.weight", {5, 0}, {2}}}),
                               task_vector_of({{"enc.layers.0.fc.weight", {1, 0}, {2}}, {"enc.layers.1.fc.weight", {0, 5}, {2}}})};
  CHECK(layer_averaged_cosine_similarity(taus)[0][1] == Approx(0.5));
  CHECK(layer_averaged_cosine_similarity(taus, LayerGrouping::per_block)[0][1] == Approx(0.5));
  CHECK(cosine_similarity_matrix(taus)[0][1] == Approx(1.0 / 26.0));
  CHECK(layer_averaged_cosine_similarity(taus)[1][1] == Approx(1.0));
}

TEST_CASE("layers are grouped by tensor, module or block", "[merge][analysis]") {
  CHECK(layer_of("enc.layers.3.attn.q.weight", LayerGrouping::per_tensor) == "enc.layers.3.attn.q.weight");
  CHECK(layer_of("enc.layers.3.attn.q.weight", LayerGrouping::per_module) == "enc.layers.3.attn.q");
  CHECK(layer_of("enc.layers.3.attn.q.lora_A.weight", LayerGrouping::per_module) == "enc.layers.3.attn.q");
  CHECK(layer_of("enc.layers.3.attn.q.lora_B.weight", LayerGrouping::per_module) == "enc.layers.3.attn.q");
  CHECK(layer_of("enc.layers.3.attn.q.weight", LayerGrouping::per_block) == "enc.layers.3");
  CHECK(layer_of("embeddings.patch.weight", LayerGrouping::per_block) == "embeddings.patch");
  CHECK(layer_of("scale", LayerGrouping::per_module) == "scale");
}

TEST_CASE("normalized accuracy divides by the single-task accuracy", "[merge][analysis]") {
  CHECK(normalized_accuracy(0.72, 0.9) == Approx(0.8));
  CHECK(normalized_accuracy({0.5, 0.9}, {1.0, 0.9}) == std::vector<double>{0.5, 1.0});
  CHECK_THROWS_WITH(normalized_accuracy(0.5, 0.0), Catch::Contains("must be > 0"));
  CHECK_THROWS_AS(normalized_accuracy({0.5}, {1.0, 0.9}), std::invalid_argument);
}

namespace {

const std::vector<double> kInputs{-2, -1, -0.5, 0.3, 1, 2.5};

// A toy classifier per task: predicts 1 when x * slope > 0.4. `slope_of(w0, w1, task)` decides how the tasks share
// parameters.
template <class Slope>
PredictFunction toy_model(Slope slope_of) {
  return [slope_of](const StateDict& params, int task) {
    std::vector<double> w = params.at("w").to_vector<double>();
    std::vector<int64_t> predictions;
    for (double x : kInputs) predictions.push_back(x * slope_of(w[0], w[1], task) > 0.4 ? 1 : 0);
    return predictions;
  };
}

}  // namespace

TEST_CASE("weight disentanglement error is zero for disentangled tasks and exact on a grid", "[merge][analysis]") {
  StateDict pretrained = state_dict_of({{"w", {1, 1}, {2}}});
  TaskVector tau_1 = task_vector_of({{"w", {1, 0}, {2}}}), tau_2 = task_vector_of({{"w", {0, 1}, {2}}});

  // Task t reads only w[t]: editing one task never changes the other.
  PredictFunction separate = toy_model([](double w0, double w1, int task) { return task == 0 ? w0 : w1; });
  DisentanglementGrid grid = weight_disentanglement_error(pretrained, tau_1, tau_2, separate);
  REQUIRE(grid.coefficients.size() == 21);
  CHECK(grid.coefficients.front() == -2.0);
  CHECK(grid.coefficients[10] == Approx(0.0).margin(1e-15));
  CHECK(grid.coefficients.back() == 2.0);
  double largest = 0.0;
  for (const auto& row : grid.error)
    for (double e : row) largest = std::max(largest, e);
  CHECK(largest == 0.0);

  // Both tasks read w0 + w1: entangled. Compare with the definition evaluated directly.
  int calls = 0;
  auto shared_slope = [](double w0, double w1, int) { return w0 + w1 - 2.0; };
  PredictFunction shared_model = toy_model(shared_slope);
  PredictFunction counted = [&](const StateDict& params, int task) {
    ++calls;
    return shared_model(params, task);
  };
  DisentanglementOptions options;
  options.steps = 5;   // a in {-2, -1, 0, 1, 2}
  DisentanglementGrid entangled = weight_disentanglement_error(pretrained, tau_1, tau_2, counted, options);
  CHECK(calls == 2 * 5 + 2 * 5 * 5);
  auto disagreement = [&](double joint_slope, double single_slope) {
    int differ = 0;
    for (double x : kInputs) differ += (x * joint_slope > 0.4) != (x * single_slope > 0.4);
    return double(differ) / double(kInputs.size());
  };
  for (size_t i = 0; i < 5; ++i)
    for (size_t j = 0; j < 5; ++j) {
      double a1 = entangled.coefficients[i], a2 = entangled.coefficients[j];
      double joint = shared_slope(1 + a1, 1 + a2, 0);
      double expected = disagreement(joint, shared_slope(1 + a1, 1, 0)) + disagreement(joint, shared_slope(1, 1 + a2, 1));
      CAPTURE(a1, a2);
      CHECK(entangled.error[i][j] == Approx(expected));
    }
  CHECK(entangled.error[2][2] == 0.0);
  CHECK(entangled.error[0][4] > 0.0);

  PredictFunction ragged = [](const StateDict& params, int task) {
    return std::vector<int64_t>(params.at("w").to_vector<double>()[0] > 1.5 ? 3 : 4, task);
  };
  CHECK_THROWS_WITH(weight_disentanglement_error(pretrained, tau_1, tau_2, ragged), Catch::Contains("same non-empty"));
}

TEST_CASE("mean_off_diagonal averages the entries between different tasks", "[merge][analysis]") {
  CHECK(mean_off_diagonal({{1.0, 0.2, 0.4}, {0.6, 1.0, 0.8}, {0.0, 1.0, 1.0}}) == Approx((0.2 + 0.4 + 0.6 + 0.8 + 0.0 + 1.0) / 6));
  CHECK(mean_off_diagonal({{1.0}}) == 0.0);   // one task: no pair
  CHECK(mean_off_diagonal({}) == 0.0);
}
