#pragma once
// Merging LoRA adapters in either of the two spaces their task vectors live in (DESIGN.md, "LoRA task vectors live
// in two spaces"). Adapters use the HF PEFT names of a saved adapter_model.safetensors:
//   <module>.lora_A.weight (r x in), <module>.lora_B.weight (out x r), effective weight W0 + s B A,
// with s = alpha / r (alpha / sqrt(r) for rsLoRA) given by the caller. Every task's adapter must start from the same
// initial adapter phi0 = (A0, B0) (B0 = 0 with PEFT's default init), or task vectors mean nothing.
//
// (a) Adapter-parameter space (what the paper's code, tanganke/peta, does): tau_t = phi_t - phi0 over A and B
//     separately, merged as ordinary task vectors. The merged layer's delta s B A then contains cross terms:
//     with task arithmetic and B0 = 0, s (sum_i B_i)(A0 + sum_j (A_j - A0)) has the terms s B_i (A_j - A0), i != j,
//     that no single task produced.
// (b) Weight space: Delta W_t = s B_t A_t - s B0 A0 per module, computed exactly and merged with any method; optionally
//     re-factorized by truncated SVD into a rank-r adapter again.
// For partially linearized adapters (L-LoRA) choose LoraDeltaForm::linearized: the linearized layer's weight delta
// s ((B - B0) A0 + B0 (A - A0)) is linear in the adapter parameters, so merging in either space agrees for linear
// merges (averages, task arithmetic), which is the point of the paper.
// Adapter entries that are not LoRA factors (for example a classification head trained with the adapter) are merged
// as ordinary task vectors under their own names in both spaces.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

enum class LoraMergeSpace { adapter_parameters, weight };
const char* lora_merge_space_name(LoraMergeSpace space);   // "adapter-parameter space" / "weight space"

// How an adapter's parameters become a weight delta.
enum class LoraDeltaForm {
  product,      // s (B A - B0 A0): plain LoRA
  linearized,   // s ((B - B0) A0 + B0 (A - A0)): a LoRA layer linearized at (A0, B0) (L-LoRA, layer or network level)
};
const char* lora_delta_form_name(LoraDeltaForm form);   // "product" / "linearized"

// s = alpha / r, or alpha / sqrt(r) for rank-stabilized LoRA (Kalajdzievski 2023).
double lora_scaling(double alpha, int64_t rank, bool rank_stabilized = false);

struct LoraModule {
  std::string module;   // "encoder.layers.0.attn.q_proj"
  int64_t rank = 0, in_features = 0, out_features = 0;
  std::string a_name() const { return module + ".lora_A.weight"; }
  std::string b_name() const { return module + ".lora_B.weight"; }
  std::string weight_name() const { return module + ".weight"; }   // where its weight delta is stored
};
// The LoRA modules of an adapter, in its order. Throws listing every lora_A without its lora_B (and vice versa)
// and every pair whose shapes do not chain (A (r, in), B (out, r)).
std::vector<LoraModule> find_lora_modules(const StateDict& adapter);

// Per module "<module>.weight" -> the (out, in) weight delta of `adapter` relative to `initial_adapter` (computed in
// float64, stored in the adapter's dtype). Both adapters must hold the same names, shapes and dtypes.
TaskVector lora_weight_delta(const StateDict& adapter, const StateDict& initial_adapter, double scaling,
                             LoraDeltaForm form = LoraDeltaForm::product);

// Factors (A (rank, in), B (out, rank)) with scaling * B A the best rank-`rank` approximation of `product` (out, in)
// (Eckart-Young, via LAPACK dgesdd), sqrt of the singular values split evenly between B and A. A rank above
// min(out, in) pads with zero rows/columns. `residual` receives |product - s B A|_F / |product|_F (0 for a zero
// product). scaling must be > 0.
struct LoraFactors {
  Tensor lora_A, lora_B;
  double residual = 0.0;
};
LoraFactors refactorize_lora(const Tensor& product, int64_t rank, double scaling);

// Any merging method as a function of task vectors, e.g.
//   [](const std::vector<TaskVector>& tvs) { return ties_merging(tvs, {.keep_fraction = 0.2}); }
using TaskVectorMerge = std::function<TaskVector(const std::vector<TaskVector>&)>;

struct LoraMergeResult {
  LoraMergeSpace space = LoraMergeSpace::weight;
  std::string space_name;        // lora_merge_space_name(space), for reports
  LoraDeltaForm delta_form = LoraDeltaForm::product;
  // The merged model's change: "<module>.weight" -> Delta W (out, in) for every LoRA module, plus the merged deltas of
  // the adapter's other entries under their own names. apply(base_model, weight_delta) gives the merged model when
  // the base model names its weights "<module>.weight".
  TaskVector weight_delta;
  // The merged adapter (PEFT names): in adapter space always; in weight space only when re-factorized (then a plain
  // LoRA adapter with W0 + s B A = W0 + s B0 A0 + Delta W, up to truncation).
  bool has_adapter = false;
  StateDict adapter;
  // Weight space with re-factorization: per module, the relative Frobenius error of the truncation.
  PerTensorValues refactorization_residual;
};

// (a) Merges phi_t - phi0 with `merge`; the result's weight_delta is the merged adapter's delta (cross terms included).
LoraMergeResult merge_lora_adapter_space(const std::vector<StateDict>& adapters, const StateDict& initial_adapter,
                                         const TaskVectorMerge& merge, double scaling,
                                         LoraDeltaForm delta_form = LoraDeltaForm::product);

struct WeightSpaceOptions {
  LoraDeltaForm delta_form = LoraDeltaForm::product;
  // -1: keep the merged Delta W only (no adapter); 0: re-factorize each module to the adapters' own rank; r > 0: to r.
  // The re-factorized adapter is read with the same scaling s (with another rank, pass the s it will be loaded with).
  int64_t refactorize_rank = -1;
};
// (b) Merges the exact weight deltas Delta W_t with `merge`.
LoraMergeResult merge_lora_weight_space(const std::vector<StateDict>& adapters, const StateDict& initial_adapter,
                                        const TaskVectorMerge& merge, double scaling,
                                        const WeightSpaceOptions& options = {});

// Either space by enum (a refactorize_rank other than -1 is an error in adapter space: the result is an adapter).
LoraMergeResult merge_lora(LoraMergeSpace space, const std::vector<StateDict>& adapters,
                           const StateDict& initial_adapter, const TaskVectorMerge& merge, double scaling,
                           const WeightSpaceOptions& options = {});

}  // namespace linfuse::merge
