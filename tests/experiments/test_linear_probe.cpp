// The linear probe (experiments/linear_probe.h) and the domain similarity of tasks (domain_similarity.h) on
// features whose answers are known.
#include <catch2/catch.hpp>

#include <cmath>

#include "experiments/domain_similarity.h"
#include "experiments/linear_probe.h"
#include "tensor/kernels.h"
#include "tensor/random.h"

using namespace linfuse;
using namespace linfuse::experiments;

namespace {

// n points in R^2: class c around (6c, -6c) with unit Gaussian noise; `share_of_class_0` of the rows
// are class 0 (the rest class 1).
void clusters(int64_t n, double share_of_class_0, uint64_t seed, Tensor& features, Tensor& labels) {
  std::vector<float> noise = Generator(seed).normal({n, 2}).to_vector<float>();
  std::vector<float> z;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = double(i) < share_of_class_0 * double(n) ? 0 : 1;
    z.push_back(float(6.0 * double(c)) + noise[size_t(2 * i)]);
    z.push_back(float(-6.0 * double(c)) + noise[size_t(2 * i + 1)]);
    y.push_back(c);
  }
  features = Tensor::from_vector(z, {n, 2});
  labels = Tensor::from_vector(y, {n});
}

ProbeData separable(double share_of_class_0) {
  ProbeData data;
  data.classes = 2;
  clusters(200, share_of_class_0, 1, data.train_features, data.train_labels);
  clusters(100, share_of_class_0, 2, data.validation_features, data.validation_labels);
  clusters(100, share_of_class_0, 3, data.test_features, data.test_labels);
  return data;
}

}  // namespace

TEST_CASE("a linear probe classifies well-separated classes almost perfectly", "[experiment][linear_probe]") {
  LinearProbeResult r = fit_linear_probe(separable(0.5), LinearProbeConfig{});
  // the clusters are 8.5 standard deviations apart: the Bayes error P(N(0, 1) > 4.24) is about 1 in 10^5
  CHECK(r.test_accuracy >= 0.99);
  CHECK(r.validation_accuracy >= 0.99);
  CHECK(std::isfinite(r.final_loss));
}

TEST_CASE("a linear probe is deterministic and does not depend on the order of the training examples", "[experiment][linear_probe]") {
  ProbeData data = separable(0.5);
  LinearProbeResult first = fit_linear_probe(data, LinearProbeConfig{}), again = fit_linear_probe(data, LinearProbeConfig{});
  CHECK(first.final_loss == again.final_loss);   // bit for bit
  // the same examples reversed: full-batch sums in another order, so equal up to rounding
  std::vector<int64_t> reversed;
  for (int64_t i = data.train_labels.size(0) - 1; i >= 0; --i) reversed.push_back(i);
  Tensor order = Tensor::from_vector(reversed, {int64_t(reversed.size())});
  ProbeData shuffled = data;
  shuffled.train_features = kernels::index_select(data.train_features, 0, order);
  shuffled.train_labels = kernels::index_select(data.train_labels, 0, order);
  LinearProbeResult other = fit_linear_probe(shuffled, LinearProbeConfig{});
  CHECK(other.final_loss == Approx(first.final_loss).epsilon(1e-4));
  CHECK(other.test_accuracy == first.test_accuracy);
}

TEST_CASE("a linear probe chooses its L2 penalty on validation", "[experiment][linear_probe]") {
  // 70% of class 0: a penalty of 100 leaves W near 0, and the unpenalised bias then predicts class 0 for every
  // example (70% accuracy); a small penalty separates the classes.
  LinearProbeConfig config;
  config.l2_grid = {100.0, 1e-4};
  LinearProbeResult r = fit_linear_probe(separable(0.7), config);
  CHECK(r.l2 == 1e-4);
  CHECK(r.test_accuracy >= 0.99);
  config.l2_grid = {100.0};
  CHECK(fit_linear_probe(separable(0.7), config).test_accuracy == Approx(0.7).margin(0.011));
}

TEST_CASE("a linear probe refuses labels outside its classes, naming the split", "[experiment][linear_probe]") {
  ProbeData data = separable(0.5);
  data.classes = 1;
  CHECK_THROWS_WITH(fit_linear_probe(data, LinearProbeConfig{}), Catch::Contains("at least 2 classes"));
  data = separable(0.5);
  data.test_labels = Tensor::full({100}, 5.0, DType::I64);
  CHECK_THROWS_WITH(fit_linear_probe(data, LinearProbeConfig{}), Catch::Contains("test label 5"));
}

TEST_CASE("domain similarity is the cosine of the tasks' mean features", "[experiment][domain_similarity]") {
  // task 0's features average to (1, 0), task 1's to (2, 0) (same direction), task 2's to (0, 1)
  Tensor a = Tensor::from_vector(std::vector<float>{1, 1, 1, -1}, {2, 2});
  Tensor b = Tensor::from_vector(std::vector<float>{2, 0, 2, 0}, {2, 2});
  Tensor c = Tensor::from_vector(std::vector<float>{0, 1, 0, 1}, {2, 2});
  SimilarityRows s = mean_feature_cosines({a, b, c});
  CHECK(s[0][0] == Approx(1.0));
  CHECK(s[0][1] == Approx(1.0));
  CHECK(s[0][2] == Approx(0.0).margin(1e-12));
  CHECK(s[2][1] == Approx(0.0).margin(1e-12));
}

TEST_CASE("the damage correlation is +1 when damage rises with similarity and -1 when it falls", "[experiment][domain_similarity]") {
  // three tasks with three distinct similarities; zero-shot 0.5 everywhere
  const SimilarityRows similarity = {{1.0, 0.9, 0.1}, {0.9, 1.0, 0.5}, {0.1, 0.5, 1.0}};
  const std::vector<double> zero_shot = {0.5, 0.5, 0.5};
  // cross_task[t][s] = 0.5 - damage with damage = similarity / 10: the more alike, the more damage
  SimilarityRows rises(3, std::vector<double>(3, 0.9)), falls(3, std::vector<double>(3, 0.9));
  for (size_t t = 0; t < 3; ++t)
    for (size_t s = 0; s < 3; ++s)
      if (s != t) rises[t][s] = 0.5 - similarity[t][s] / 10, falls[t][s] = 0.5 + similarity[t][s] / 10;
  CHECK(damage_similarity_correlation(similarity, rises, zero_shot) == Approx(1.0));
  CHECK(damage_similarity_correlation(similarity, falls, zero_shot) == Approx(-1.0));
  nlohmann::json suite = {{"tasks", {"a", "b", "c"}},
                          {"zero_shot", {{"a", 0.5}, {"b", 0.5}, {"c", 0.5}}},
                          {"domain_similarity", {{"matrix", similarity}}},
                          {"cross_task", {{"full", {{"matrix", rises}}}, {"lora", {{"matrix", falls}}}}}};
  nlohmann::json rho = damage_correlations(suite);
  CHECK(rho["full"].get<double>() == Approx(1.0));
  CHECK(rho["lora"].get<double>() == Approx(-1.0));
}
