#pragma once
// Fisher merging (Matena & Raffel 2022, "Merging Models with Fisher-Weighted Averaging") with diagonal Fishers:
//   theta[i] = sum_t c_t F_t[i] theta_t[i] / sum_t c_t F_t[i],   F_t[i] <- max(F_t[i], fisher_floor).
// Follows the authors' code (github mmatena/model_merging, merging.py `_merge_with_coeffs`): the floor is a maximum
// (default 1e-6), c_t are per-model coefficients (default 1/T), and optional normalization divides c_t by the L2
// norm of model t's whole Fisher. Differences: their floor applies only to the "target" model 0 by default
// (favor_target_model); all models here are symmetric tasks, so every Fisher is floored. Their normalization is on
// by default; here it is off, so that the default is the paper's formula. The RegMean authors' code
// (bloomberg/dataless-model-merging) and fusion_bench add a smoothing term (1e-10, 1e-6) instead of a maximum;
// where Fishers are well above it the results agree.
//
// Inputs may be models' parameters or task vectors (wrap a model with TaskVector(state_dict)): the formula is a
// weighted mean per entry, so merging task vectors and adding theta0 equals merging the models. The Fishers are
// keyed by parameter name, shaped like the parameter; a name must have a Fisher in every model or in none, and
// names without one fall back to the coefficient-weighted average sum_t c_t theta_t / sum_t c_t (which is what a
// Fisher of all ones gives).
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

struct FisherMergeOptions {
  double fisher_floor = 1e-6;                // > 0: keeps the denominator positive where every Fisher vanishes
  std::vector<double> model_coefficients;    // c_t >= 0, not all 0; empty = 1/T each
  bool normalize_fishers = false;            // c_t <- c_t / ||F_t|| (Matena & Raffel's code defaults to true)
};

TaskVector fisher_merging(const std::vector<TaskVector>& models, const std::vector<StateDict>& fishers,
                          const FisherMergeOptions& options = {});

}  // namespace linfuse::merge
