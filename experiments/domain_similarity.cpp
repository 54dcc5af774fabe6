// Domain similarity of the tasks under the pretrained model, and its rank correlation with cross-task damage
// (see domain_similarity.h).
#include "experiments/domain_similarity.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/text_scoring.h"

namespace linfuse::experiments {

SimilarityRows mean_feature_cosines(const std::vector<Tensor>& features) {
  NoGradGuard no_grad;
  std::vector<std::vector<double>> means;   // per task, the mean feature (P)
  for (const Tensor& z : features) means.push_back(mean(cast(z, DType::F64), {0}).to_vector<double>());
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  const size_t n = means.size();
  SimilarityRows similarity(n, std::vector<double>(n, 0.0));
  for (size_t t = 0; t < n; ++t)
    for (size_t s = 0; s < n; ++s) {
      double norms = std::sqrt(dot(means[t], means[t]) * dot(means[s], means[s]));
      similarity[t][s] = norms > 0 ? dot(means[t], means[s]) / norms : 0.0;
    }
  return similarity;
}

double damage_similarity_correlation(const SimilarityRows& similarity, const SimilarityRows& cross_task,
                                     const std::vector<double>& zero_shot) {
  const size_t n = zero_shot.size();
  if (similarity.size() != n || cross_task.size() != n)
    throw std::invalid_argument("[domain similarity] " + std::to_string(similarity.size()) + " similarity rows, " +
                                std::to_string(cross_task.size()) + " cross-task rows for " + std::to_string(n) + " tasks");
  std::vector<double> damage, alike;
  for (size_t t = 0; t < n; ++t)
    for (size_t s = 0; s < n; ++s)
      if (s != t) {
        damage.push_back(zero_shot[s] - cross_task[t][s]);
        alike.push_back(similarity[t][s]);
      }
  return spearman_correlation(damage, alike);
}

nlohmann::json damage_correlations(const nlohmann::json& suite_results) {
  const SimilarityRows similarity = suite_results.at("domain_similarity").at("matrix").get<SimilarityRows>();
  std::vector<double> zero_shot;
  for (const auto& task : suite_results.at("tasks")) zero_shot.push_back(suite_results.at("zero_shot").at(task.get<std::string>()).get<double>());
  nlohmann::json out = nlohmann::json::object();
  if (!suite_results.contains("cross_task")) return out;
  for (const auto& [mode, entry] : suite_results["cross_task"].items())
    out[mode] = damage_similarity_correlation(similarity, entry.at("matrix").get<SimilarityRows>(), zero_shot);
  return out;
}

}  // namespace linfuse::experiments
