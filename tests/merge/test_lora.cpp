#include <catch2/catch.hpp>

#include <cmath>

#include "merge/averaging.h"
#include "merge/lora.h"
#include "merge/ties.h"
#include "merge_helpers.h"

using namespace linfuse;
using namespace linfuse::merge;
using linfuse::testing::max_abs_diff;

namespace {

// Row-major (rows x inner) @ (inner x cols) with plain loops, in float64.
std::vector<double> matmul_loops(const std::vector<double>& a, const std::vector<double>& b, int64_t rows,
                                 int64_t inner, int64_t cols) {
  std::vector<double> c(size_t(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < inner; ++k)
      for (int64_t j = 0; j < cols; ++j) c[i * cols + j] += a[i * inner + k] * b[k * cols + j];
  return c;
}

std::vector<double> values(const StateDict& state, const std::string& name) { return state.at(name).to_vector<double>(); }

std::vector<double> minus(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return a;
}

double max_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Two LoRA modules (q: 5x4, v: 3x4, rank 2) and a trained head, in PEFT names. B0 = 0 unless `nonzero_b0`.
struct AdapterFixture {
  StateDict initial;
  std::vector<StateDict> adapters;
};

AdapterFixture make_adapters(int count, bool nonzero_b0, uint64_t seed) {
  Generator generator(seed);
  AdapterFixture fixture;
  fixture.initial.insert("enc.q.lora_A.weight", generator.normal({2, 4}, 0, 1, DType::F64));
  fixture.initial.insert("enc.q.lora_B.weight",
                         nonzero_b0 ? generator.normal({5, 2}, 0, 1, DType::F64) : Tensor::zeros({5, 2}, DType::F64));
  fixture.initial.insert("head.weight", generator.normal({2, 3}, 0, 1, DType::F64));
  fixture.initial.insert("enc.v.lora_A.weight", generator.normal({2, 4}, 0, 1, DType::F64));
  fixture.initial.insert("enc.v.lora_B.weight",
                         nonzero_b0 ? generator.normal({3, 2}, 0, 1, DType::F64) : Tensor::zeros({3, 2}, DType::F64));
  for (int t = 0; t < count; ++t) {
    StateDict step;
    for (const auto& [name, tensor] : fixture.initial) step.insert(name, generator.normal(tensor.shape(), 0, 0.5, DType::F64));
    fixture.adapters.push_back(apply(fixture.initial, TaskVector(step)));
  }
  return fixture;
}

TaskVector average_of(const std::vector<TaskVector>& task_vectors) { return simple_average(task_vectors); }

}  // namespace

TEST_CASE("LoRA scaling is alpha / r, or alpha / sqrt(r) for rsLoRA", "[merge][lora]") {
  CHECK(lora_scaling(16, 8) == 2.0);
  CHECK(lora_scaling(16, 4, true) == 8.0);
  CHECK_THROWS_AS(lora_scaling(16, 0), std::invalid_argument);
}

TEST_CASE("weight-space merging of a single adapter reproduces its Delta W exactly", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(1, false, 41);
  const double scaling = 2.0;
  LoraMergeResult result = merge_lora_weight_space(fixture.adapters, fixture.initial, average_of, scaling);
  CHECK(result.space == LoraMergeSpace::weight);
  CHECK(result.space_name == "weight space");
  CHECK_FALSE(result.has_adapter);
  CHECK(result.weight_delta.names() == std::vector<std::string>{"enc.q.weight", "enc.v.weight", "head.weight"});
  const StateDict& adapter = fixture.adapters[0];
  std::vector<double> expected_q =
      matmul_loops(values(adapter, "enc.q.lora_B.weight"), values(adapter, "enc.q.lora_A.weight"), 5, 2, 4);
  for (double& v : expected_q) v *= scaling;
  CHECK(max_difference(result.weight_delta.at("enc.q.weight").to_vector<double>(), expected_q) < 1e-12);
  CHECK(result.weight_delta.at("enc.v.weight").shape() == Shape{3, 4});
  CHECK(result.weight_delta.at("head.weight").to_vector<double>() ==
        minus(values(adapter, "head.weight"), values(fixture.initial, "head.weight")));
}

TEST_CASE("SVD re-factorization of a rank-r Delta W is exact", "[merge][lora]") {
  Generator generator(42);
  const double scaling = 0.5;
  std::vector<double> b = generator.normal({6, 3}, 0, 1, DType::F64).to_vector<double>();
  std::vector<double> a = generator.normal({3, 5}, 0, 1, DType::F64).to_vector<double>();
  std::vector<double> product = matmul_loops(b, a, 6, 3, 5);
  for (double& v : product) v *= scaling;
  Tensor delta = Tensor::from_vector(std::vector<float>(product.begin(), product.end()), {6, 5});

  LoraFactors factors = refactorize_lora(delta, 3, scaling);
  CHECK(factors.lora_A.shape() == Shape{3, 5});
  CHECK(factors.lora_B.shape() == Shape{6, 3});
  CHECK(factors.lora_A.dtype() == DType::F32);
  std::vector<double> rebuilt = matmul_loops(factors.lora_B.to_vector<double>(), factors.lora_A.to_vector<double>(), 6, 3, 5);
  for (double& v : rebuilt) v *= scaling;
  CHECK(max_difference(rebuilt, delta.to_vector<double>()) < 1e-5);
  CHECK(factors.residual < 1e-6);

  // A rank above min(out, in) pads with zeros and stays exact.
  LoraFactors padded = refactorize_lora(delta, 8, scaling);
  CHECK(padded.lora_A.shape() == Shape{8, 5});
  std::vector<double> rebuilt_padded =
      matmul_loops(padded.lora_B.to_vector<double>(), padded.lora_A.to_vector<double>(), 6, 8, 5);
  for (double& v : rebuilt_padded) v *= scaling;
  CHECK(max_difference(rebuilt_padded, delta.to_vector<double>()) < 1e-5);

  // Truncating to rank 2 loses exactly what the residual reports.
  LoraFactors truncated = refactorize_lora(delta, 2, scaling);
  std::vector<double> approx = matmul_loops(truncated.lora_B.to_vector<double>(), truncated.lora_A.to_vector<double>(), 6, 2, 5);
  double error = 0.0, total = 0.0;
  for (size_t i = 0; i < approx.size(); ++i) {
    double target = delta.to_vector<double>()[i];
    error += std::pow(scaling * approx[i] - target, 2);
    total += target * target;
  }
  CHECK(truncated.residual > 1e-3);
  CHECK(std::sqrt(error / total) == Approx(truncated.residual).epsilon(1e-4));
  CHECK_THROWS_WITH(refactorize_lora(delta, 2, 0.0), Catch::Contains("must be a positive number"));
}

TEST_CASE("weight-space merging can return a LoRA adapter again", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(1, false, 43);
  const double scaling = 1.5;
  WeightSpaceOptions options;
  options.refactorize_rank = 0;   // the adapters' own rank
  LoraMergeResult result = merge_lora_weight_space(fixture.adapters, fixture.initial, average_of, scaling, options);
  REQUIRE(result.has_adapter);
  CHECK(result.adapter.names() == fixture.initial.names());
  const StateDict& adapter = fixture.adapters[0];
  std::vector<double> original = matmul_loops(values(adapter, "enc.v.lora_B.weight"), values(adapter, "enc.v.lora_A.weight"), 3, 2, 4);
  std::vector<double> rebuilt =
      matmul_loops(values(result.adapter, "enc.v.lora_B.weight"), values(result.adapter, "enc.v.lora_A.weight"), 3, 2, 4);
  CHECK(max_difference(original, rebuilt) < 1e-10);
  CHECK(result.refactorization_residual.at("enc.q") < 1e-10);
  CHECK(max_difference(values(result.adapter, "head.weight"), values(adapter, "head.weight")) < 1e-15);
}

TEST_CASE("adapter-space task arithmetic adds the cross terms s B_i (A_j - A0)", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(2, false, 44);
  const double scaling = 2.0;
  auto sum_of = [](const std::vector<TaskVector>& tvs) { return task_arithmetic(tvs, 1.0); };
  LoraMergeResult adapter_space = merge_lora_adapter_space(fixture.adapters, fixture.initial, sum_of, scaling);
  LoraMergeResult weight_space = merge_lora_weight_space(fixture.adapters, fixture.initial, sum_of, scaling);
  CHECK(adapter_space.space_name == "adapter-parameter space");
  CHECK(adapter_space.has_adapter);

  // With B0 = 0: adapter space gives s (B_0 + B_1)(A0 + dA_0 + dA_1), weight space s (B_0 A_0 + B_1 A_1); the
  // difference is s (B_0 dA_1 + B_1 dA_0).
  std::vector<double> a0 = values(fixture.initial, "enc.q.lora_A.weight");
  std::vector<double> b_first = values(fixture.adapters[0], "enc.q.lora_B.weight");
  std::vector<double> b_second = values(fixture.adapters[1], "enc.q.lora_B.weight");
  std::vector<double> da_first = minus(values(fixture.adapters[0], "enc.q.lora_A.weight"), a0);
  std::vector<double> da_second = minus(values(fixture.adapters[1], "enc.q.lora_A.weight"), a0);
  std::vector<double> cross_1 = matmul_loops(b_first, da_second, 5, 2, 4), cross_2 = matmul_loops(b_second, da_first, 5, 2, 4);
  std::vector<double> expected(cross_1.size());
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = scaling * (cross_1[i] + cross_2[i]);
  std::vector<double> difference = minus(adapter_space.weight_delta.at("enc.q.weight").to_vector<double>(),
                                         weight_space.weight_delta.at("enc.q.weight").to_vector<double>());
  CHECK(max_difference(difference, expected) < 1e-12);
  CHECK(max_difference(expected, std::vector<double>(expected.size(), 0.0)) > 1e-2);   // the cross terms are real
  // The non-LoRA head is an ordinary task vector in both spaces.
  CHECK(max_difference(adapter_space.weight_delta.at("head.weight").to_vector<double>(),
                       weight_space.weight_delta.at("head.weight").to_vector<double>()) < 1e-15);
}

TEST_CASE("with the linearized form, both spaces agree for linear merges", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(3, true, 45);   // B0 != 0: both linear terms matter
  const double scaling = 0.75;
  auto arithmetic = [](const std::vector<TaskVector>& tvs) { return task_arithmetic(tvs, 0.7); };
  auto adapter_space = merge_lora_adapter_space(fixture.adapters, fixture.initial, arithmetic, scaling,
                                                LoraDeltaForm::linearized);
  WeightSpaceOptions options;
  options.delta_form = LoraDeltaForm::linearized;
  auto weight_space = merge_lora_weight_space(fixture.adapters, fixture.initial, arithmetic, scaling, options);
  CHECK(max_abs_diff(adapter_space.weight_delta, weight_space.weight_delta) < 1e-12);
  CHECK(weight_space.delta_form == LoraDeltaForm::linearized);

  auto product_adapter = merge_lora_adapter_space(fixture.adapters, fixture.initial, arithmetic, scaling);
  auto product_weight = merge_lora_weight_space(fixture.adapters, fixture.initial, arithmetic, scaling);
  CHECK(max_abs_diff(product_adapter.weight_delta, product_weight.weight_delta) > 1e-3);

  // The linearized delta itself: s ((B - B0) A0 + B0 (A - A0)).
  const StateDict& adapter = fixture.adapters[1];
  std::vector<double> a0 = values(fixture.initial, "enc.v.lora_A.weight"), b0 = values(fixture.initial, "enc.v.lora_B.weight");
  std::vector<double> first = matmul_loops(minus(values(adapter, "enc.v.lora_B.weight"), b0), a0, 3, 2, 4);
  std::vector<double> second = matmul_loops(b0, minus(values(adapter, "enc.v.lora_A.weight"), a0), 3, 2, 4);
  std::vector<double> expected(first.size());
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = scaling * (first[i] + second[i]);
  TaskVector delta = lora_weight_delta(adapter, fixture.initial, scaling, LoraDeltaForm::linearized);
  CHECK(max_difference(delta.at("enc.v.weight").to_vector<double>(), expected) < 1e-12);
}

TEST_CASE("LoRA merging works with TIES in weight space and names its space", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(3, false, 46);
  auto ties = [](const std::vector<TaskVector>& tvs) { return ties_merging(tvs); };
  LoraMergeResult result = merge_lora(LoraMergeSpace::weight, fixture.adapters, fixture.initial, ties, 2.0);
  CHECK(result.space_name == "weight space");
  CHECK(result.weight_delta.numel() == 5 * 4 + 3 * 4 + 2 * 3);
  LoraMergeResult adapter_result = merge_lora(LoraMergeSpace::adapter_parameters, fixture.adapters, fixture.initial, ties, 2.0);
  CHECK(adapter_result.space == LoraMergeSpace::adapter_parameters);
  WeightSpaceOptions refactorize;
  refactorize.refactorize_rank = 2;
  CHECK_THROWS_WITH(merge_lora(LoraMergeSpace::adapter_parameters, fixture.adapters, fixture.initial, ties, 2.0, refactorize),
                    Catch::Contains("weight space only"));
}

TEST_CASE("malformed or mismatched adapters are listed in the error", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(1, false, 47);
  StateDict broken = fixture.initial;
  broken.erase("enc.q.lora_B.weight");
  broken.insert("dec.k.lora_B.weight", Tensor::zeros({3, 2}, DType::F64));
  CHECK_THROWS_WITH(find_lora_modules(broken), Catch::Contains("enc.q.lora_A.weight has no lora_B") &&
                                                   Catch::Contains("dec.k.lora_B.weight has no lora_A"));
  StateDict bad_chain = fixture.initial;
  bad_chain.set("enc.q.lora_B.weight", Tensor::zeros({5, 3}, DType::F64));
  CHECK_THROWS_WITH(find_lora_modules(bad_chain), Catch::Contains("do not chain"));
  StateDict other_rank = fixture.adapters[0];
  other_rank.set("enc.v.lora_A.weight", Tensor::zeros({4, 4}, DType::F64));
  CHECK_THROWS_WITH(merge_lora_weight_space({fixture.adapters[0], other_rank}, fixture.initial, average_of, 1.0),
                    Catch::Contains("shape differs: enc.v.lora_A.weight (2,4) vs (4,4)"));
}

TEST_CASE("an adapter holding its module's base weight is rejected", "[merge][lora]") {
  AdapterFixture fixture = make_adapters(1, false, 48);
  StateDict with_base = fixture.initial;
  with_base.insert("enc.q.weight", Tensor::zeros({5, 4}, DType::F64));
  StateDict adapter_with_base = fixture.adapters[0];
  adapter_with_base.insert("enc.q.weight", Tensor::zeros({5, 4}, DType::F64));
  CHECK_THROWS_WITH(merge_lora_weight_space({adapter_with_base}, with_base, average_of, 1.0),
                    Catch::Contains("the adapter holds enc.q.weight"));
}
