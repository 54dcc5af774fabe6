#include <catch2/catch.hpp>

#include <lapacke.h>

#include "merge/regmean.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;
using linfuse::testing::state_dict_of;
using linfuse::testing::task_vector_of;
using linfuse::testing::values_of;

namespace {

// X^T X of a (samples, features) row-major matrix, as a (features, features) float64 tensor.
Tensor gram_of(const std::vector<double>& x, int64_t samples, int64_t features) {
  std::vector<double> gram(size_t(features * features), 0.0);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < features; ++i)
      for (int64_t j = 0; j < features; ++j) gram[i * features + j] += x[s * features + i] * x[s * features + j];
  return Tensor::from_vector(gram, {features, features});
}

StateDict grams_for(const std::string& module, const Tensor& gram) {
  StateDict grams;
  grams.insert(module, gram);
  return grams;
}

}  // namespace

TEST_CASE("RegMean with alpha = 1 solves the joint least-squares regression", "[merge][regmean]") {
  // min_W sum_t |X_t W^T - X_t W_t^T|^2, solved independently by QR (LAPACK dgels) on the stacked problem.
  const int64_t in = 4, out = 3, samples = 10, tasks = 2;
  Generator generator(31);
  std::vector<TaskVector> models;
  std::vector<StateDict> grams;
  std::vector<double> stacked_x, stacked_y;
  for (int64_t t = 0; t < tasks; ++t) {
    std::vector<double> x = generator.normal({samples, in}, 0, 1, DType::F64).to_vector<double>();
    Tensor weight = generator.normal({out, in}, 0, 1, DType::F64);
    std::vector<double> w = weight.to_vector<double>();
    StateDict model;
    model.insert("fc.weight", weight);
    model.insert("fc.bias", generator.normal({out}, 0, 1, DType::F64));
    models.emplace_back(model);
    grams.push_back(grams_for("fc", gram_of(x, samples, in)));
    for (int64_t s = 0; s < samples; ++s) {
      stacked_x.insert(stacked_x.end(), x.begin() + s * in, x.begin() + (s + 1) * in);
      for (int64_t o = 0; o < out; ++o) {
        double y = 0.0;
        for (int64_t i = 0; i < in; ++i) y += x[s * in + i] * w[o * in + i];
        stacked_y.push_back(y);
      }
    }
  }
  REQUIRE(LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', samples * tasks, in, out, stacked_x.data(), in, stacked_y.data(),
                        out) == 0);
  RegMeanOptions options;
  options.non_diagonal_scale = 1.0;
  RegMeanResult result = regmean_merging(models, grams, options);
  std::vector<double> merged = values_of(result.merged, "fc.weight");
  double worst = 0.0;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) worst = std::max(worst, std::abs(merged[o * in + i] - stacked_y[i * out + o]));
  CHECK(worst < 1e-10);
  CHECK(result.regression_parameters == std::vector<std::string>{"fc.weight"});
  CHECK(result.ridge_parameters.empty());
  // The bias is not a linear weight: averaged.
  std::vector<double> b0 = values_of(models[0], "fc.bias"), b1 = values_of(models[1], "fc.bias"),
                      bias = values_of(result.merged, "fc.bias");
  for (int64_t o = 0; o < out; ++o) CHECK(bias[o] == Approx(0.5 * (b0[o] + b1[o])));
}

TEST_CASE("RegMean scales the off-diagonal Gram entries by alpha", "[merge][regmean]") {
  // G1 = [[2,1],[1,2]], W1 = [1,0]; G2 = I, W2 = [0,1]; alpha 0.5: S = [[3,0.5],[0.5,3]], rhs = [2, 1.5],
  // W = S^-1 rhs = [0.6, 0.4].
  std::vector<TaskVector> models{task_vector_of({{"fc.weight", {1, 0}, {1, 2}}}),
                                 task_vector_of({{"fc.weight", {0, 1}, {1, 2}}})};
  std::vector<StateDict> grams{grams_for("fc", Tensor::from_list({2, 1, 1, 2}, {2, 2}, DType::F64)),
                               grams_for("fc", Tensor::from_list({1, 0, 0, 1}, {2, 2}, DType::F64))};
  RegMeanOptions options;
  options.non_diagonal_scale = 0.5;
  std::vector<double> merged = values_of(regmean_merging(models, grams, options).merged, "fc.weight");
  CHECK(merged[0] == Approx(0.6).epsilon(1e-12));
  CHECK(merged[1] == Approx(0.4).epsilon(1e-12));
}

TEST_CASE("RegMean of identical models returns that model", "[merge][regmean]") {
  Generator generator(32);
  StateDict model;
  model.insert("layer.weight", generator.normal({5, 6}, 0, 1, DType::F32));
  model.insert("layer.bias", generator.normal({5}, 0, 1, DType::F32));
  std::vector<TaskVector> models(3, TaskVector(model));
  std::vector<StateDict> grams;
  for (int t = 0; t < 3; ++t)
    grams.push_back(grams_for("layer", gram_of(generator.normal({8, 6}, 0, 1, DType::F64).to_vector<double>(), 8, 6)));
  RegMeanResult result = regmean_merging(models, grams);   // default alpha 0.9
  CHECK(max_abs_diff(result.merged.tensors(), model) < 1e-5);
  CHECK(result.merged.at("layer.weight").dtype() == DType::F32);
}

TEST_CASE("RegMean falls back to the average along input directions no model ever saw", "[merge][regmean]") {
  // Input feature 1 is dead in both models (zero Gram row and column): the Gram sum is singular. The live feature
  // gets the regression value (2*1 + 1*4) / 3 = 2, the dead one the average (5 + 7) / 2 = 6.
  std::vector<TaskVector> models{task_vector_of({{"fc.weight", {1, 5}, {1, 2}}}),
                                 task_vector_of({{"fc.weight", {4, 7}, {1, 2}}})};
  std::vector<StateDict> grams{grams_for("fc", Tensor::from_list({2, 0, 0, 0}, {2, 2}, DType::F64)),
                               grams_for("fc", Tensor::from_list({1, 0, 0, 0}, {2, 2}, DType::F64))};
  RegMeanResult result = regmean_merging(models, grams);
  std::vector<double> merged = values_of(result.merged, "fc.weight");
  CHECK(merged[0] == Approx(2.0).epsilon(1e-5));
  CHECK(merged[1] == Approx(6.0).epsilon(1e-5));
  CHECK(result.ridge_parameters == std::vector<std::string>{"fc.weight"});
}

TEST_CASE("RegMean on models equals pretrained plus RegMean on task vectors", "[merge][regmean]") {
  Generator generator(33);
  StateDict pretrained;
  pretrained.insert("fc.weight", generator.normal({3, 4}, 0, 1, DType::F64));
  pretrained.insert("fc.bias", generator.normal({3}, 0, 1, DType::F64));
  std::vector<TaskVector> taus, thetas;
  std::vector<StateDict> grams;
  for (int t = 0; t < 3; ++t) {
    StateDict tau;
    tau.insert("fc.weight", generator.normal({3, 4}, 0, 1, DType::F64));
    tau.insert("fc.bias", generator.normal({3}, 0, 1, DType::F64));
    taus.emplace_back(tau);
    thetas.emplace_back(apply(pretrained, taus.back()));
    grams.push_back(grams_for("fc", gram_of(generator.normal({6, 4}, 0, 1, DType::F64).to_vector<double>(), 6, 4)));
  }
  CHECK(max_abs_diff(regmean_merging(thetas, grams).merged.tensors(),
                     apply(pretrained, regmean_merging(taus, grams).merged)) < 1e-10);
}

TEST_CASE("RegMean lists Grams that do not fit the models", "[merge][regmean]") {
  std::vector<TaskVector> models{task_vector_of({{"fc.weight", {1, 2, 3, 4, 5, 6}, {2, 3}}, {"fc.bias", {1, 2}, {2}}}),
                                 task_vector_of({{"fc.weight", {1, 2, 3, 4, 5, 6}, {2, 3}}, {"fc.bias", {1, 2}, {2}}})};
  Tensor good = Tensor::from_list({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3}, DType::F64);
  Tensor wrong_size = Tensor::from_list({1, 0, 0, 1}, {2, 2}, DType::F64);
  CHECK_THROWS_WITH(regmean_merging(models, {grams_for("fc", good), grams_for("head", good)}),
                    Catch::Contains("missing in Grams of model 1: fc") && Catch::Contains("no parameter head.weight"));
  CHECK_THROWS_WITH(regmean_merging(models, {grams_for("fc", wrong_size), grams_for("fc", wrong_size)}),
                    Catch::Contains("Gram shape (2,2), expected (in, in) = (3,3)"));
  CHECK_THROWS_WITH(regmean_merging(models, {grams_for("fc.bias", good), grams_for("fc.bias", good)}),
                    Catch::Contains("no parameter fc.bias.weight"));
  Tensor asymmetric = Tensor::from_list({1, 5, 0, 0, 1, 0, 0, 0, 1}, {3, 3}, DType::F64);
  CHECK_THROWS_WITH(regmean_merging(models, {grams_for("fc", asymmetric), grams_for("fc", good)}),
                    Catch::Contains("not symmetric"));
}

TEST_CASE("RegMean model coefficients weight the Grams by c_t * T and average the rest with c_t", "[merge][regmean]") {
  // As the reference: G_t scaled by (0.75 * 2, 0.25 * 2) = (1.5, 0.5): W = (1.5 * 4 + 0.5 * 8) / 2 = 5;
  // bias = 0.75 * 1 + 0.25 * 3 = 1.5.
  std::vector<TaskVector> models{task_vector_of({{"fc.weight", {4}, {1, 1}}, {"fc.bias", {1}, {1}}}),
                                 task_vector_of({{"fc.weight", {8}, {1, 1}}, {"fc.bias", {3}, {1}}})};
  Tensor one = Tensor::from_list({1}, {1, 1}, DType::F64);
  RegMeanOptions options;
  options.model_coefficients = {0.75, 0.25};
  TaskVector merged = regmean_merging(models, {grams_for("fc", one), grams_for("fc", one)}, options).merged;
  CHECK(values_of(merged, "fc.weight")[0] == Approx(5.0));
  CHECK(values_of(merged, "fc.bias")[0] == Approx(1.5));
}
