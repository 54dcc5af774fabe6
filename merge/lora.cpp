#include "merge/lora.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include "merge/dense_linalg.h"
#include "merge/named_tensors.h"
#include "tensor/kernels.h"

namespace linfuse::merge {
namespace {

constexpr std::string_view kLoraA = ".lora_A.weight";
constexpr std::string_view kLoraB = ".lora_B.weight";

bool is_lora_factor(const std::string& name) { return name.ends_with(kLoraA) || name.ends_with(kLoraB); }

Tensor as_float64(const Tensor& t) { return t.dtype() == DType::F64 ? t : kernels::cast(t, DType::F64); }

// The entries of an adapter (or of a delta over its names) that are not LoRA factors.
StateDict other_entries(const StateDict& adapter) {
  StateDict out;
  for (const auto& [name, tensor] : adapter)
    if (!is_lora_factor(name)) out.insert(name, tensor);
  return out;
}

void require_scaling(const char* op, double scaling) {
  if (!(scaling > 0.0) || !std::isfinite(scaling))
    throw std::invalid_argument(std::string("[") + op + "] scaling s = alpha / r must be a positive number, got " +
                                std::to_string(scaling));
}

void require_adapters(const char* op, const std::vector<StateDict>& adapters, const StateDict& initial_adapter) {
  if (adapters.empty()) throw std::invalid_argument(std::string("[") + op + "] needs at least one adapter, got none");
  for (size_t t = 0; t < adapters.size(); ++t)
    require_same_entries(op, initial_adapter, adapters[t], "initial adapter", "adapter " + std::to_string(t),
                         "every task's adapter must come from the same initial adapter (same modules, rank, dtype)");
  // A module's weight delta is stored as "<module>.weight"; the adapter must not hold that name itself.
  std::vector<std::string> collisions;
  for (const LoraModule& module : find_lora_modules(initial_adapter))
    if (initial_adapter.contains(module.weight_name())) collisions.push_back(module.weight_name());
  if (!collisions.empty())
    throw std::invalid_argument(std::string("[") + op + "] the adapter holds " + join_names(collisions) +
                                ", the name its LoRA weight delta would take. Fix: pass only the adapter's own "
                                "parameters (lora_A, lora_B and trained extras such as a head).");
}

// Entries of `a` followed by those of `b` (names must not collide).
TaskVector concatenate(const TaskVector& a, const TaskVector& b) {
  StateDict out = a.tensors();
  for (const auto& [name, tensor] : b) out.insert(name, tensor);
  return TaskVector(std::move(out));
}

}  // namespace

const char* lora_merge_space_name(LoraMergeSpace space) {
  return space == LoraMergeSpace::adapter_parameters ? "adapter-parameter space" : "weight space";
}

const char* lora_delta_form_name(LoraDeltaForm form) {
  return form == LoraDeltaForm::product ? "product" : "linearized";
}

double lora_scaling(double alpha, int64_t rank, bool rank_stabilized) {
  if (rank < 1) throw std::invalid_argument("[lora_scaling] rank must be >= 1, got " + std::to_string(rank));
  return rank_stabilized ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

std::vector<LoraModule> find_lora_modules(const StateDict& adapter) {
  std::vector<LoraModule> modules;
  std::vector<std::string> problems;
  for (const auto& [name, tensor] : adapter) {
    if (!name.ends_with(kLoraA)) {
      if (name.ends_with(kLoraB) && !adapter.contains(name.substr(0, name.size() - kLoraB.size()) + std::string(kLoraA)))
        problems.push_back(name + " has no lora_A");
      continue;
    }
    LoraModule module;
    module.module = name.substr(0, name.size() - kLoraA.size());
    if (!adapter.contains(module.b_name())) {
      problems.push_back(name + " has no lora_B");
      continue;
    }
    const Tensor& a = tensor;
    const Tensor& b = adapter.at(module.b_name());
    if (a.dim() != 2 || b.dim() != 2 || a.size(0) != b.size(1)) {
      problems.push_back(module.module + ": lora_A " + shape_str(a.shape()) + " and lora_B " + shape_str(b.shape()) +
                         " do not chain as A (r, in), B (out, r)");
      continue;
    }
    module.rank = a.size(0);
    module.in_features = a.size(1);
    module.out_features = b.size(0);
    modules.push_back(module);
  }
  if (!problems.empty())
    throw std::invalid_argument("[find_lora_modules] malformed LoRA adapter: " + join_names(problems) +
                                ". Fix: every module needs <module>.lora_A.weight (r, in) and <module>.lora_B.weight "
                                "(out, r) (HF PEFT names of a saved adapter).");
  return modules;
}

TaskVector lora_weight_delta(const StateDict& adapter, const StateDict& initial_adapter, double scaling,
                             LoraDeltaForm form) {
  require_same_entries("lora_weight_delta", initial_adapter, adapter, "initial adapter", "adapter",
                       "compute the delta against the adapter's own initialization");
  StateDict out;
  for (const LoraModule& module : find_lora_modules(adapter)) {
    Tensor a = as_float64(adapter.at(module.a_name())), b = as_float64(adapter.at(module.b_name()));
    Tensor a0 = as_float64(initial_adapter.at(module.a_name())), b0 = as_float64(initial_adapter.at(module.b_name()));
    std::vector<double> delta;
    if (form == LoraDeltaForm::product) {
      // s (B A - B0 A0)
      std::vector<double> current = kernels::matmul(b, a).to_vector<double>();
      std::vector<double> initial = kernels::matmul(b0, a0).to_vector<double>();
      delta.resize(current.size());
      for (size_t i = 0; i < delta.size(); ++i) delta[i] = scaling * (current[i] - initial[i]);
    } else {
      // s ((B - B0) A0 + B0 (A - A0))
      auto difference = [](const Tensor& x, const Tensor& y) {
        std::vector<double> d = x.to_vector<double>(), z = y.to_vector<double>();
        for (size_t i = 0; i < d.size(); ++i) d[i] -= z[i];
        return Tensor::from_vector(d, x.shape());
      };
      std::vector<double> first = kernels::matmul(difference(b, b0), a0).to_vector<double>();
      std::vector<double> second = kernels::matmul(b0, difference(a, a0)).to_vector<double>();
      delta.resize(first.size());
      for (size_t i = 0; i < delta.size(); ++i) delta[i] = scaling * (first[i] + second[i]);
    }
    out.insert(module.weight_name(),
               from_float64(delta, {module.out_features, module.in_features}, adapter.at(module.a_name()).dtype()));
  }
  return TaskVector(std::move(out));
}

LoraFactors refactorize_lora(const Tensor& product, int64_t rank, double scaling) {
  require_scaling("refactorize_lora", scaling);
  if (product.dim() != 2)
    throw std::invalid_argument("[refactorize_lora] needs a (out, in) matrix, got shape " + shape_str(product.shape()));
  if (rank < 1) throw std::invalid_argument("[refactorize_lora] rank must be >= 1, got " + std::to_string(rank));
  int64_t out_features = product.size(0), in_features = product.size(1);
  std::vector<double> values = to_float64(product);
  ThinSvd svd = thin_svd(values, out_features, in_features);
  int64_t kept = std::min(rank, svd.k);

  // s B A = U_r S_r V_r^T with B = U_r sqrt(S_r / s), A = sqrt(S_r / s) V_r^T.
  std::vector<double> a(size_t(rank * in_features), 0.0), b(size_t(out_features * rank), 0.0);
  for (int64_t j = 0; j < kept; ++j) {
    double root = std::sqrt(svd.singular_values[j] / scaling);
    for (int64_t i = 0; i < in_features; ++i) a[j * in_features + i] = root * svd.vt[j * in_features + i];
    for (int64_t o = 0; o < out_features; ++o) b[o * rank + j] = root * svd.u[o * svd.k + j];
  }
  double total = 0.0, dropped = 0.0;
  for (int64_t j = 0; j < svd.k; ++j) {
    double squared = svd.singular_values[j] * svd.singular_values[j];
    total += squared;
    if (j >= kept) dropped += squared;
  }
  LoraFactors factors;
  factors.lora_A = from_float64(a, {rank, in_features}, product.dtype());
  factors.lora_B = from_float64(b, {out_features, rank}, product.dtype());
  factors.residual = total > 0.0 ? std::sqrt(dropped / total) : 0.0;
  return factors;
}

LoraMergeResult merge_lora_adapter_space(const std::vector<StateDict>& adapters, const StateDict& initial_adapter,
                                         const TaskVectorMerge& merge, double scaling, LoraDeltaForm delta_form) {
  require_scaling("merge_lora_adapter_space", scaling);
  require_adapters("merge_lora_adapter_space", adapters, initial_adapter);
  std::vector<TaskVector> task_vectors;
  for (const auto& adapter : adapters) task_vectors.push_back(TaskVector::between(adapter, initial_adapter));
  TaskVector merged = merge(task_vectors);
  require_same_entries("merge_lora_adapter_space", task_vectors[0].tensors(), merged.tensors(), "task vectors",
                       "merged task vector", "the merge function must return a vector over the same names");

  LoraMergeResult result;
  result.space = LoraMergeSpace::adapter_parameters;
  result.space_name = lora_merge_space_name(result.space);
  result.delta_form = delta_form;
  result.adapter = apply(initial_adapter, merged);
  result.has_adapter = true;
  StateDict merged_others = other_entries(merged.tensors());
  result.weight_delta = concatenate(lora_weight_delta(result.adapter, initial_adapter, scaling, delta_form),
                                    TaskVector(std::move(merged_others)));
  return result;
}

LoraMergeResult merge_lora_weight_space(const std::vector<StateDict>& adapters, const StateDict& initial_adapter,
                                        const TaskVectorMerge& merge, double scaling,
                                        const WeightSpaceOptions& options) {
  require_scaling("merge_lora_weight_space", scaling);
  require_adapters("merge_lora_weight_space", adapters, initial_adapter);
  if (options.refactorize_rank < -1)
    throw std::invalid_argument("[merge_lora_weight_space] refactorize_rank must be -1 (keep Delta W), 0 (the "
                                "adapters' rank) or a rank r > 0, got " + std::to_string(options.refactorize_rank));
  StateDict initial_others = other_entries(initial_adapter);
  std::vector<TaskVector> deltas;
  for (const auto& adapter : adapters)
    deltas.push_back(concatenate(lora_weight_delta(adapter, initial_adapter, scaling, options.delta_form),
                                 TaskVector::between(other_entries(adapter), initial_others)));
  TaskVector merged = merge(deltas);
  require_same_entries("merge_lora_weight_space", deltas[0].tensors(), merged.tensors(), "weight deltas",
                       "merged delta", "the merge function must return a vector over the same names");

  LoraMergeResult result;
  result.space = LoraMergeSpace::weight;
  result.space_name = lora_merge_space_name(result.space);
  result.delta_form = options.delta_form;
  result.weight_delta = merged;
  if (options.refactorize_rank == -1) return result;

  // Re-factorize each module's full low-rank part s B0 A0 + Delta W into a plain LoRA adapter; the other entries
  // become initial + merged delta. The adapter keeps the initial adapter's name order.
  StateDict merged_other_deltas;
  for (const auto& entry : initial_others) merged_other_deltas.insert(entry.first, merged.at(entry.first));
  StateDict merged_others = apply(initial_others, TaskVector(std::move(merged_other_deltas)));
  StateDict factors_by_name;
  for (const LoraModule& module : find_lora_modules(initial_adapter)) {
    std::vector<double> target = to_float64(merged.at(module.weight_name()));
    std::vector<double> initial_product =
        kernels::matmul(as_float64(initial_adapter.at(module.b_name())), as_float64(initial_adapter.at(module.a_name())))
            .to_vector<double>();
    for (size_t i = 0; i < target.size(); ++i) target[i] += scaling * initial_product[i];
    int64_t rank = options.refactorize_rank == 0 ? module.rank : options.refactorize_rank;
    LoraFactors factors = refactorize_lora(
        from_float64(target, {module.out_features, module.in_features}, DType::F64), rank, scaling);
    DType dtype = initial_adapter.at(module.a_name()).dtype();
    factors_by_name.insert(module.a_name(), kernels::cast(factors.lora_A, dtype));
    factors_by_name.insert(module.b_name(), kernels::cast(factors.lora_B, dtype));
    result.refactorization_residual.entries.emplace_back(module.module, factors.residual);
  }
  StateDict adapter;
  for (const auto& entry : initial_adapter)
    adapter.insert(entry.first, is_lora_factor(entry.first) ? factors_by_name.at(entry.first)
                                                            : merged_others.at(entry.first));
  result.adapter = std::move(adapter);
  result.has_adapter = true;
  return result;
}

LoraMergeResult merge_lora(LoraMergeSpace space, const std::vector<StateDict>& adapters,
                           const StateDict& initial_adapter, const TaskVectorMerge& merge, double scaling,
                           const WeightSpaceOptions& options) {
  if (space == LoraMergeSpace::weight)
    return merge_lora_weight_space(adapters, initial_adapter, merge, scaling, options);
  if (options.refactorize_rank != -1)
    throw std::invalid_argument("[merge_lora] refactorize_rank applies to weight space only; adapter-space merging "
                                "already returns an adapter");
  return merge_lora_adapter_space(adapters, initial_adapter, merge, scaling, options.delta_form);
}

}  // namespace linfuse::merge
