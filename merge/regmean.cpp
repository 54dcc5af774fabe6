#include "merge/regmean.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include "merge/dense_linalg.h"
#include "merge/named_tensors.h"

namespace linfuse::merge {
namespace {

constexpr std::string_view kWeightSuffix = ".weight";

// "encoder.fc1.weight" -> "encoder.fc1"; empty for names that are not "<module>.weight".
std::string module_of_weight(const std::string& name) {
  if (name.size() <= kWeightSuffix.size() || !name.ends_with(kWeightSuffix)) return "";
  return name.substr(0, name.size() - kWeightSuffix.size());
}

// Checks names, shapes and symmetry of every Gram; lists all problems in one error.
void require_grams_fit(const std::vector<TaskVector>& models, const std::vector<StateDict>& grams) {
  std::vector<std::string> problems;
  for (size_t t = 1; t < grams.size(); ++t) {
    std::string mismatch = describe_mismatch(grams[0], grams[t], "Grams of model 0", "Grams of model " + std::to_string(t));
    if (!mismatch.empty()) problems.push_back(mismatch);
  }
  for (size_t t = 0; t < grams.size(); ++t) {
    for (const auto& [module, gram] : grams[t]) {
      std::string weight_name = module + std::string(kWeightSuffix);
      std::string where = "model " + std::to_string(t) + " module " + module;
      if (!models[0].contains(weight_name)) {
        problems.push_back(where + ": no parameter " + weight_name);
        continue;
      }
      const Tensor& weight = models[0].at(weight_name);
      if (weight.dim() != 2) {
        problems.push_back(where + ": " + weight_name + " has shape " + shape_str(weight.shape()) +
                           ", not a Linear weight (out, in)");
        continue;
      }
      Shape expected{weight.size(1), weight.size(1)};
      if (gram.shape() != expected) {
        problems.push_back(where + ": Gram shape " + shape_str(gram.shape()) + ", expected (in, in) = " +
                           shape_str(expected) + " for weight " + shape_str(weight.shape()));
        continue;
      }
      std::vector<double> g = to_float64(gram);
      int64_t n = expected[0];
      double largest = 0.0, asymmetry = 0.0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          largest = std::max(largest, std::abs(g[i * n + j]));
          asymmetry = std::max(asymmetry, std::abs(g[i * n + j] - g[j * n + i]));
        }
      if (asymmetry > 1e-4 * largest) problems.push_back(where + ": Gram is not symmetric");
    }
  }
  if (!problems.empty())
    throw std::invalid_argument("[regmean_merging] Grams do not fit the models: " + join_names(problems) +
                                ". Fix: pass, per model, X^T X of each Linear layer's inputs keyed by the module name "
                                "(the weight's name without '.weight').");
}

// The merged (out, in) weight `name` of `module`: solves (sum_t G~_t) W^T = sum_t G~_t W_t^T, falling back to the
// ridge toward `average` (the coefficient-weighted average weight) when the Gram sum is singular.
std::vector<double> regress_linear_weight(const std::vector<TaskVector>& models, const std::vector<StateDict>& grams,
                                          const std::string& name, const std::string& module,
                                          const std::vector<double>& gram_scales, const RegMeanOptions& options,
                                          const std::vector<double>& average, bool& used_ridge) {
  const Tensor& tensor = models[0].at(name);
  size_t count = models.size();
  int64_t out_features = tensor.size(0), in_features = tensor.size(1);
  // S = sum_t G~_t (in x in), B = sum_t G~_t W_t^T (in x out).
  std::vector<double> gram_sum(size_t(in_features * in_features), 0.0);
  std::vector<double> rhs(size_t(in_features * out_features), 0.0);
  for (size_t t = 0; t < count; ++t) {
    std::vector<double> raw = to_float64(grams[t].at(module));
    std::vector<double> weight = to_float64(models[t].at(name));   // (out, in) row-major
    // G~_t: symmetrized (float32 Grams may differ in the last bits across the diagonal), off-diagonals * alpha.
    std::vector<double> gram(raw.size());
    for (int64_t i = 0; i < in_features; ++i)
      for (int64_t j = 0; j < in_features; ++j) {
        double symmetric = 0.5 * (raw[i * in_features + j] + raw[j * in_features + i]);
        gram[i * in_features + j] = gram_scales[t] * (i == j ? symmetric : options.non_diagonal_scale * symmetric);
      }
    for (int64_t i = 0; i < in_features; ++i)
      for (int64_t k = 0; k < in_features; ++k) {
        double g = gram[i * in_features + k];
        gram_sum[i * in_features + k] += g;
        if (g == 0.0) continue;
        for (int64_t o = 0; o < out_features; ++o) rhs[i * out_features + o] += g * weight[o * in_features + k];
      }
  }
  std::vector<double> solution;   // W^T, (in x out)
  if (!solve_positive_definite(gram_sum, rhs, in_features, out_features, solution)) {
    double mean_diagonal = 0.0;
    for (int64_t i = 0; i < in_features; ++i) mean_diagonal += gram_sum[i * in_features + i];
    mean_diagonal /= double(in_features);
    double eps = options.ridge * (mean_diagonal > 0.0 ? mean_diagonal : 1.0);
    for (int64_t i = 0; i < in_features; ++i) {
      gram_sum[i * in_features + i] += eps;
      for (int64_t o = 0; o < out_features; ++o) rhs[i * out_features + o] += eps * average[o * in_features + i];
    }
    if (!solve_positive_definite(gram_sum, rhs, in_features, out_features, solution, 0.0))
      throw std::runtime_error("[regmean_merging] the Gram sum of " + module +
                               " is not positive definite even with a ridge; check the Grams for NaN or negative "
                               "eigenvalues (X^T X is positive semi-definite)");
    used_ridge = true;
  }
  std::vector<double> merged(size_t(out_features * in_features));
  for (int64_t o = 0; o < out_features; ++o)
    for (int64_t i = 0; i < in_features; ++i) merged[o * in_features + i] = solution[i * out_features + o];
  return merged;
}

}  // namespace

RegMeanResult regmean_merging(const std::vector<TaskVector>& models, const std::vector<StateDict>& grams,
                              const RegMeanOptions& options) {
  require_matching("regmean_merging", models);
  size_t count = models.size();
  if (grams.size() != count)
    throw std::invalid_argument("[regmean_merging] " + std::to_string(grams.size()) + " Gram sets for " +
                                std::to_string(count) + " models; give one (module name -> X^T X) per model");
  if (!(options.non_diagonal_scale >= 0.0 && options.non_diagonal_scale <= 1.0))
    throw std::invalid_argument("[regmean_merging] non_diagonal_scale (alpha) must be in [0, 1], got " +
                                std::to_string(options.non_diagonal_scale));
  if (!(options.ridge > 0.0))
    throw std::invalid_argument("[regmean_merging] ridge must be > 0, got " + std::to_string(options.ridge));
  require_grams_fit(models, grams);

  // Reference: with coefficients, Grams are scaled by c_t * T and the other parameters are sum_t c_t theta_t.
  bool weighted = !options.model_coefficients.empty();
  if (weighted && options.model_coefficients.size() != count)
    throw std::invalid_argument("[regmean_merging] " + std::to_string(options.model_coefficients.size()) +
                                " model coefficients for " + std::to_string(count) + " models");
  std::vector<double> average_coefficients =
      weighted ? options.model_coefficients : std::vector<double>(count, 1.0 / double(count));
  std::vector<double> gram_scales(count, 1.0);
  if (weighted)
    for (size_t t = 0; t < count; ++t) gram_scales[t] = options.model_coefficients[t] * double(count);

  RegMeanResult result;
  StateDict out;
  for (const auto& [name, tensor] : models[0]) {
    // The coefficient-weighted average: the answer for non-linear parameters and the ridge's anchor for the others.
    std::vector<double> average(size_t(tensor.numel()), 0.0);
    for (size_t t = 0; t < count; ++t) {
      std::vector<double> theta = to_float64(models[t].at(name));
      for (size_t i = 0; i < theta.size(); ++i) average[i] += average_coefficients[t] * theta[i];
    }
    std::string module = module_of_weight(name);
    if (module.empty() || !grams[0].contains(module)) {
      out.insert(name, from_float64(average, tensor.shape(), tensor.dtype()));
      continue;
    }
    bool used_ridge = false;
    std::vector<double> merged = regress_linear_weight(models, grams, name, module, gram_scales, options, average,
                                                       used_ridge);
    if (used_ridge) result.ridge_parameters.push_back(name);
    out.insert(name, from_float64(merged, tensor.shape(), tensor.dtype()));
    result.regression_parameters.push_back(name);
  }
  result.merged = TaskVector(std::move(out));
  return result;
}

}  // namespace linfuse::merge
