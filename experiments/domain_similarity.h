#pragma once
// How alike the pretrained model finds the tasks' domains, and whether that predicts the cross-task damage of
// fine-tuning:
//
//   S[t][s]      = cos(mean_i z_i(t), mean_j z_j(s))      z: the pretrained model's L2-normalised image
//                                                          features of a task's training images
//   damage[t][s] = zero_shot[s] - cross_task[t][s]        what fine-tuning on t alone costs task s
//   rho          = Spearman's rank correlation of damage[t][s] and S[t][s] over the ordered pairs t != s
//
// rho > 0: fine-tuning hurts most the tasks whose images the pretrained model places near its own task's (the
// tangent kernel couples similar domains); rho near 0: the damage does not follow the domains.
#include <nlohmann/json.hpp>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse::experiments {

using SimilarityRows = std::vector<std::vector<double>>;

// S above from each task's features (N_t, P) (rows already L2-normalised); tasks x tasks, diagonal 1.
SimilarityRows mean_feature_cosines(const std::vector<Tensor>& features);

// rho above. `cross_task[t][s]`: task s's score with the model fine-tuned on t alone; `zero_shot[s]`. A
// constant side (e.g. 2 tasks, whose two ordered pairs share one similarity) gives 0, as spearman_correlation.
double damage_similarity_correlation(const SimilarityRows& similarity, const SimilarityRows& cross_task,
                                     const std::vector<double>& zero_shot);

// For a suite's results holding "domain_similarity"."matrix", "cross_task" and "zero_shot" (results.json's
// layout): {mode: rho} over the modes that have a cross-task matrix.
nlohmann::json damage_correlations(const nlohmann::json& suite_results);

}  // namespace linfuse::experiments
