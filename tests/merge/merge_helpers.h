#pragma once
// Small builders shared by the merge tests.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "merge/task_vector.h"
#include "tensor/kernels.h"
#include "tensor/random.h"

namespace linfuse::testing {

struct NamedValues {
  std::string name;
  std::vector<double> values;
  Shape shape;
};

inline StateDict state_dict_of(const std::vector<NamedValues>& entries, DType dtype = DType::F64) {
  StateDict out;
  for (const auto& entry : entries) {
    Tensor t = Tensor::from_vector(entry.values, entry.shape);
    out.insert(entry.name, dtype == DType::F64 ? t : kernels::cast(t, dtype));
  }
  return out;
}

inline merge::TaskVector task_vector_of(const std::vector<NamedValues>& entries, DType dtype = DType::F64) {
  return merge::TaskVector(state_dict_of(entries, dtype));
}

// A random state dict with the given names and shapes (standard normal entries).
inline StateDict random_state_dict(Generator& generator, const std::vector<std::pair<std::string, Shape>>& layout,
                                   DType dtype = DType::F64) {
  StateDict out;
  for (const auto& [name, shape] : layout) out.insert(name, generator.normal(shape, 0.0, 1.0, dtype));
  return out;
}

// Largest |a - b| over every entry of two sets with the same names (infinity when the names differ).
inline double max_abs_diff(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0.0;
  for (const auto& [name, tensor] : a) {
    if (!b.contains(name)) return INFINITY;
    auto x = tensor.to_vector<double>(), y = b.at(name).to_vector<double>();
    if (x.size() != y.size()) return INFINITY;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  }
  return worst;
}
inline double max_abs_diff(const merge::TaskVector& a, const merge::TaskVector& b) {
  return max_abs_diff(a.tensors(), b.tensors());
}

inline std::vector<double> values_of(const merge::TaskVector& task_vector, const std::string& name) {
  return task_vector.at(name).to_vector<double>();
}

}  // namespace linfuse::testing
