#include "merge/dare.h"

#include <stdexcept>
#include <string>

#include "merge/named_tensors.h"

namespace linfuse::merge {

TaskVector dare(const TaskVector& task_vector, const DareOptions& options, Generator& generator) {
  double p = options.drop_probability;
  if (!(p >= 0.0 && p < 1.0))
    throw std::invalid_argument("[dare] drop_probability must be in [0, 1) (1 would drop everything and rescale by "
                                "1/0), got " + std::to_string(p));
  double survivor_scale = options.rescale ? 1.0 / (1.0 - p) : 1.0;
  StateDict out;
  for (const auto& [name, tensor] : task_vector) {
    std::vector<double> values = to_float64(tensor);
    std::vector<double> uniforms = generator.uniform({tensor.numel()}, 0.0, 1.0, DType::F64).to_vector<double>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = uniforms[i] < p ? 0.0 : values[i] * survivor_scale;
    out.insert(name, from_float64(values, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(out));
}

std::vector<TaskVector> dare(const std::vector<TaskVector>& task_vectors, const DareOptions& options, uint64_t seed) {
  Generator root(seed);
  std::vector<TaskVector> out;
  for (size_t t = 0; t < task_vectors.size(); ++t) {
    Generator task_generator = root.fork(uint64_t(t));
    out.push_back(dare(task_vectors[t], options, task_generator));
  }
  return out;
}

}  // namespace linfuse::merge
