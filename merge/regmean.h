#pragma once
// RegMean (Jin et al. 2023, "Dataless Knowledge Fusion by Merging Weights of Language Models"): each linear layer
// of the merged model solves the regression that matches every model's outputs on its own inputs,
//   min_W sum_t || X_t W^T - X_t W_t^T ||^2   =>   W^T = (sum_t G~_t)^{-1} sum_t G~_t W_t^T,
// with G_t = X_t^T X_t (in x in) the Gram matrix of layer t's inputs and G~_t = G_t with its off-diagonal entries
// multiplied by alpha ("reduce non-diagonal ratio"). A Linear weight is (out, in) with y = x W^T, hence the
// transposes. Every other parameter (biases, norms, embeddings, weights without a Gram) is averaged.
//
// Follows the authors' code (github bloomberg/dataless-model-merging, src/model_merge/avg_merger.py
// `regmean_mean_params`): Grams keyed by module name ("encoder.layers.0.fc1" for "encoder.layers.0.fc1.weight"),
// off-diagonals scaled by a (diagonal kept), optional model coefficients that scale G_t by c_t * T and average the
// other parameters as sum_t c_t theta_t. Differences:
// - the reference inverts the summed Gram with torch.inverse and fails or blows up when it is singular (a dead input
//   feature, fewer samples than inputs, alpha = 1). Here the system is solved by Cholesky (LAPACK dpotrf/dpotrs);
//   when it is not numerically positive definite (factorization fails or reciprocal condition < 1e-12), it is solved
//   with a ridge pulled toward the average, (S + eps I) W^T = sum_t G~_t W_t^T + eps W_avg^T, eps = ridge * mean
//   diagonal of S: directions no input ever excites keep the average weights, the others are (to O(eps)) the
//   regression solution. Those layers are reported in `ridge_parameters`.
// - a Gram whose name matches no 2-D weight, or whose shape is not (in, in), is an error here, not silently skipped.
// Defaults: alpha 0.9, the value this project takes from the paper's "reduce non-diagonal ratio" (the reference's
// default config applies no reduction, i.e. alpha 1, and fusion_bench's CLIP config uses 0.6).
//
// Inputs may be models or task vectors (wrap a model with TaskVector(state_dict)): the solution is
// translation-equivariant (W_t -> W_t + D gives W -> W + D, ridge fallback included), provided the coefficients
// sum to 1 as in the reference.
#include <string>
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

struct RegMeanOptions {
  double non_diagonal_scale = 0.9;          // alpha in [0, 1]: 0 = diagonal Grams only, 1 = exact Grams
  std::vector<double> model_coefficients;   // empty = equal weight (G_t as given, other parameters averaged)
  double ridge = 1e-6;                      // relative ridge, used only for singular Gram sums
};

struct RegMeanResult {
  TaskVector merged;
  std::vector<std::string> regression_parameters;   // weights merged by the regression
  std::vector<std::string> ridge_parameters;        // those whose Gram sum was singular (ridge toward the average)
};

// `grams[t]` maps module name -> G_t (in x in, symmetric) for model t; every model needs the same module names.
RegMeanResult regmean_merging(const std::vector<TaskVector>& models, const std::vector<StateDict>& grams,
                              const RegMeanOptions& options = {});

}  // namespace linfuse::merge
