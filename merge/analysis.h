#pragma once
// Analyses of task vectors and merged models used in the paper's figures: cosine-similarity matrices (Tang et al.
// 2024, Fig. 4/5), normalized accuracy (Tables 1-2), and the weight-disentanglement error (Ortiz-Jimenez et al. 2023,
// "Task Arithmetic in the Tangent Space"; Tang et al. 2024, Sec. 5, Fig. 6).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

using SimilarityMatrix = std::vector<std::vector<double>>;   // [i][j], symmetric, 1 on the diagonal (0 for zero vectors)

// cos(tau_i, tau_j) over the whole flattened vectors.
SimilarityMatrix cosine_similarity_matrix(const std::vector<TaskVector>& task_vectors);

// The mean of the entries off the diagonal of a square matrix (how alike, or how entangled, different tasks
// are); 0 for a matrix of fewer than two rows.
double mean_off_diagonal(const SimilarityMatrix& matrix);

// How parameter names are grouped into "layers" for per-layer similarities.
enum class LayerGrouping {
  per_tensor,   // every tensor is its own layer
  per_module,   // the name without its last component ("enc.layers.0.fc1.weight" -> "enc.layers.0.fc1"); a LoRA
                // module's lora_A and lora_B go together ("q_proj.lora_A.weight" -> "q_proj")
  per_block,    // the name up to and including its first numeric component ("enc.layers.3.attn.q.weight" ->
                // "enc.layers.3"); names without one fall back to per_module
};
std::string layer_of(const std::string& name, LayerGrouping grouping);

// The mean over layers of the per-layer cosine-similarity matrix: each layer's tensors are flattened together and
// compared, then every layer counts once whatever its size (a layer where a task vector is zero contributes 0).
SimilarityMatrix layer_averaged_cosine_similarity(const std::vector<TaskVector>& task_vectors,
                                                  LayerGrouping grouping = LayerGrouping::per_module);

// merged / single-task accuracy of the same fine-tuning mode (both in the same unit). Throws when the single-task
// accuracy is not positive.
double normalized_accuracy(double merged_accuracy, double single_task_accuracy);
// The same per task, element by element.
std::vector<double> normalized_accuracy(const std::vector<double>& merged_accuracy,
                                        const std::vector<double>& single_task_accuracy);

// Predictions of a model with parameters `params` on the evaluation examples of task `task` (0 or 1), in a fixed
// example order; any model, any data.
using PredictFunction = std::function<std::vector<int64_t>(const StateDict& params, int task)>;

struct DisentanglementOptions {
  double coefficient_min = -2.0, coefficient_max = 2.0;   // a in [min, max] for both tasks
  int64_t steps = 21;                                     // grid points per axis, ends included (21 x 21)
};

struct DisentanglementGrid {
  std::vector<double> coefficients;        // the grid values of a1 (rows) and a2 (columns)
  std::vector<std::vector<double>> error;  // error[i][j] = xi(coefficients[i], coefficients[j])
};

// Weight-disentanglement error with prediction disagreement as the distance:
//   xi(a1, a2) = sum_{t=1,2} E_{x ~ task t} [ f(x; theta0 + a1 tau1 + a2 tau2) != f(x; theta0 + a_t tau_t) ]
// (each term is a fraction of task t's examples, so xi is in [0, 2]; xi(0, 0) = 0). The predict function is called
// twice per grid point and twice per coefficient for the single-task references.
DisentanglementGrid weight_disentanglement_error(const StateDict& pretrained, const TaskVector& task_vector_1,
                                                 const TaskVector& task_vector_2, const PredictFunction& predict,
                                                 const DisentanglementOptions& options = {});

}  // namespace linfuse::merge
