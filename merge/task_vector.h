#pragma once
// Task vectors (Ilharco et al. 2023, "Editing Models with Task Arithmetic"): tau = theta_finetuned -
// theta_pretrained over a set of parameter names, and the vector-space operations merging is built from.
//
// Every binary operation checks that both operands hold the same names with the same shapes and dtypes and
// otherwise throws std::invalid_argument listing all mismatches ("missing in A: ...; missing in B: ...; shape
// differs: name (2,3) vs (3,2)"). Results follow the name order of the first operand. Arithmetic is done in
// float64 and stored in the operands' dtype; dot products and norms accumulate in float64.
#include <string>
#include <utility>
#include <vector>

#include "tensor/state_dict.h"

namespace linfuse::merge {

// A named set of floating tensors: the difference of two state dicts, or any set of named deltas (a merged task
// vector, the weight-space delta of LoRA adapters). A model's own parameters can be wrapped too: Fisher and
// RegMean merging are translation-equivariant, so they accept either.
class TaskVector {
 public:
  TaskVector() = default;
  // Wraps `tensors` as they are; every tensor must be float32 or float64.
  explicit TaskVector(StateDict tensors);

  // finetuned - pretrained over every name; both must hold the same names, shapes and dtypes.
  static TaskVector between(const StateDict& finetuned, const StateDict& pretrained);
  // finetuned - pretrained over `names` only (for example the trainable parameters); each must be in both.
  static TaskVector between(const StateDict& finetuned, const StateDict& pretrained,
                            const std::vector<std::string>& names);

  const StateDict& tensors() const { return tensors_; }
  std::vector<std::string> names() const { return tensors_.names(); }
  bool contains(const std::string& name) const { return tensors_.contains(name); }
  const Tensor& at(const std::string& name) const { return tensors_.at(name); }
  size_t size() const { return tensors_.size(); }
  bool empty() const { return tensors_.empty(); }
  int64_t numel() const { return tensors_.numel(); }   // entries of the flattened vector

  auto begin() const { return tensors_.begin(); }
  auto end() const { return tensors_.end(); }

 private:
  StateDict tensors_;
};

// ---- arithmetic (new vectors; the operands are untouched) ----
TaskVector add(const TaskVector& a, const TaskVector& b);
TaskVector subtract(const TaskVector& a, const TaskVector& b);
TaskVector scale(const TaskVector& a, double factor);
TaskVector negate(const TaskVector& a);
TaskVector operator+(const TaskVector& a, const TaskVector& b);
TaskVector operator-(const TaskVector& a, const TaskVector& b);
TaskVector operator-(const TaskVector& a);
TaskVector operator*(double factor, const TaskVector& a);
TaskVector operator*(const TaskVector& a, double factor);

// sum_t coefficients[t] * vectors[t], entry by entry in float64 (the kernel of averaging and task arithmetic).
TaskVector linear_combination(const std::vector<TaskVector>& vectors, const std::vector<double>& coefficients);

// ---- inner products over the whole flattened vector ----
double dot(const TaskVector& a, const TaskVector& b);
double norm(const TaskVector& a);   // Euclidean
// dot / (|a| |b|); 0 when either vector is zero (a zero task vector points nowhere, so it agrees with nothing).
double cosine_similarity(const TaskVector& a, const TaskVector& b);

// ---- the same per tensor: one value per name, in the first operand's order ----
struct PerTensorValues {
  std::vector<std::pair<std::string, double>> entries;
  double at(const std::string& name) const;   // throws std::out_of_range naming the missing tensor
  size_t size() const { return entries.size(); }
};
PerTensorValues dot_per_tensor(const TaskVector& a, const TaskVector& b);
PerTensorValues norm_per_tensor(const TaskVector& a);
PerTensorValues cosine_similarity_per_tensor(const TaskVector& a, const TaskVector& b);

// base + task_vector: every name of the task vector must be in `base` with the same shape and dtype; names of
// `base` that the task vector does not hold are copied unchanged (shared tensors, not deep copies).
StateDict apply(const StateDict& base, const TaskVector& task_vector);

// Throws std::invalid_argument naming `op` when the task vectors do not all hold the same names, shapes and dtypes,
// or when there are none.
void require_matching(const std::string& op, const std::vector<TaskVector>& vectors);

}  // namespace linfuse::merge
