#include "merge/task_vector.h"

#include <cmath>
#include <stdexcept>

#include "merge/named_tensors.h"

namespace linfuse::merge {
namespace {

void require_floating(const std::string& op, const StateDict& tensors) {
  std::vector<std::string> bad;
  for (const auto& [name, tensor] : tensors)
    if (!is_floating(tensor.dtype())) bad.push_back(name + " (" + dtype_name(tensor.dtype()) + ")");
  if (!bad.empty())
    throw std::invalid_argument("[" + op + "] a task vector holds only float32/float64 tensors; got " +
                                join_names(bad) + ". Fix: pass the floating parameter names (e.g. the trainable ones).");
}

// out[name] = f(a[name][i], b[name][i]) for every name of `a` (already checked to match `b`).
template <class F>
TaskVector zip_entries(const TaskVector& a, const TaskVector& b, F f) {
  StateDict out;
  for (const auto& [name, tensor] : a) {
    std::vector<double> x = to_float64(tensor), y = to_float64(b.at(name));
    for (size_t i = 0; i < x.size(); ++i) x[i] = f(x[i], y[i]);
    out.insert(name, from_float64(x, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(out));
}

double dot_of(const Tensor& a, const Tensor& b) {
  std::vector<double> x = to_float64(a), y = to_float64(b);
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += x[i] * y[i];
  return sum;
}

double cosine_from(double dot_product, double norm_a, double norm_b) {
  return (norm_a == 0.0 || norm_b == 0.0) ? 0.0 : dot_product / (norm_a * norm_b);
}

}  // namespace

TaskVector::TaskVector(StateDict tensors) : tensors_(std::move(tensors)) { require_floating("TaskVector", tensors_); }

TaskVector TaskVector::between(const StateDict& finetuned, const StateDict& pretrained) {
  require_same_entries("TaskVector::between", finetuned, pretrained, "finetuned", "pretrained",
                       "pass both state dicts of the same architecture, or select names with between(ft, pt, names)");
  return between(finetuned, pretrained, finetuned.names());
}

TaskVector TaskVector::between(const StateDict& finetuned, const StateDict& pretrained,
                               const std::vector<std::string>& names) {
  StateDict selected_finetuned, selected_pretrained;
  std::vector<std::string> absent;
  for (const auto& name : names) {
    bool in_finetuned = finetuned.contains(name), in_pretrained = pretrained.contains(name);
    if (!in_finetuned || !in_pretrained) {
      absent.push_back(name + (in_finetuned ? " (not in pretrained)" : in_pretrained ? " (not in finetuned)"
                                                                                     : " (in neither)"));
      continue;
    }
    selected_finetuned.insert(name, finetuned.at(name));
    selected_pretrained.insert(name, pretrained.at(name));
  }
  if (!absent.empty())
    throw std::invalid_argument("[TaskVector::between] selected names missing: " + join_names(absent) +
                                ". Fix: select names present in both state dicts.");
  require_same_entries("TaskVector::between", selected_finetuned, selected_pretrained, "finetuned", "pretrained");
  require_floating("TaskVector::between", selected_finetuned);
  StateDict difference;
  for (const auto& [name, tensor] : selected_finetuned) {
    std::vector<double> x = to_float64(tensor), y = to_float64(selected_pretrained.at(name));
    for (size_t i = 0; i < x.size(); ++i) x[i] -= y[i];
    difference.insert(name, from_float64(x, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(difference));
}

void require_matching(const std::string& op, const std::vector<TaskVector>& vectors) {
  std::vector<const StateDict*> sets;
  for (const auto& vector : vectors) sets.push_back(&vector.tensors());
  require_same_entries(op, sets, "task vector");
}

TaskVector add(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector add", a.tensors(), b.tensors());
  return zip_entries(a, b, [](double x, double y) { return x + y; });
}

TaskVector subtract(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector subtract", a.tensors(), b.tensors());
  return zip_entries(a, b, [](double x, double y) { return x - y; });
}

TaskVector scale(const TaskVector& a, double factor) {
  StateDict out;
  for (const auto& [name, tensor] : a) {
    std::vector<double> x = to_float64(tensor);
    for (double& v : x) v *= factor;
    out.insert(name, from_float64(x, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(out));
}

TaskVector negate(const TaskVector& a) { return scale(a, -1.0); }
TaskVector operator+(const TaskVector& a, const TaskVector& b) { return add(a, b); }
TaskVector operator-(const TaskVector& a, const TaskVector& b) { return subtract(a, b); }
TaskVector operator-(const TaskVector& a) { return negate(a); }
TaskVector operator*(double factor, const TaskVector& a) { return scale(a, factor); }
TaskVector operator*(const TaskVector& a, double factor) { return scale(a, factor); }

TaskVector linear_combination(const std::vector<TaskVector>& vectors, const std::vector<double>& coefficients) {
  require_matching("linear_combination", vectors);
  if (coefficients.size() != vectors.size())
    throw std::invalid_argument("[linear_combination] " + std::to_string(coefficients.size()) + " coefficients for " +
                                std::to_string(vectors.size()) + " task vectors; give one coefficient per task vector");
  StateDict out;
  for (const auto& [name, tensor] : vectors[0]) {
    std::vector<double> sum(size_t(tensor.numel()), 0.0);
    for (size_t t = 0; t < vectors.size(); ++t) {
      std::vector<double> x = to_float64(vectors[t].at(name));
      for (size_t i = 0; i < x.size(); ++i) sum[i] += coefficients[t] * x[i];
    }
    out.insert(name, from_float64(sum, tensor.shape(), tensor.dtype()));
  }
  return TaskVector(std::move(out));
}

double dot(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector dot", a.tensors(), b.tensors());
  double sum = 0.0;
  for (const auto& [name, tensor] : a) sum += dot_of(tensor, b.at(name));
  return sum;
}

double norm(const TaskVector& a) {
  double sum = 0.0;
  for (const auto& entry : a) sum += dot_of(entry.second, entry.second);
  return std::sqrt(sum);
}

double cosine_similarity(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector cosine_similarity", a.tensors(), b.tensors());
  return cosine_from(dot(a, b), norm(a), norm(b));
}

double PerTensorValues::at(const std::string& name) const {
  for (const auto& [entry_name, value] : entries)
    if (entry_name == name) return value;
  throw std::out_of_range("[PerTensorValues] no value for tensor '" + name + "'");
}

PerTensorValues dot_per_tensor(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector dot_per_tensor", a.tensors(), b.tensors());
  PerTensorValues out;
  for (const auto& [name, tensor] : a) out.entries.emplace_back(name, dot_of(tensor, b.at(name)));
  return out;
}

PerTensorValues norm_per_tensor(const TaskVector& a) {
  PerTensorValues out;
  for (const auto& [name, tensor] : a) out.entries.emplace_back(name, std::sqrt(dot_of(tensor, tensor)));
  return out;
}

PerTensorValues cosine_similarity_per_tensor(const TaskVector& a, const TaskVector& b) {
  require_same_entries("task_vector cosine_similarity_per_tensor", a.tensors(), b.tensors());
  PerTensorValues out;
  for (const auto& [name, tensor] : a) {
    const Tensor& other = b.at(name);
    out.entries.emplace_back(name, cosine_from(dot_of(tensor, other), std::sqrt(dot_of(tensor, tensor)),
                                               std::sqrt(dot_of(other, other))));
  }
  return out;
}

StateDict apply(const StateDict& base, const TaskVector& task_vector) {
  StateDict overlap;
  for (const auto& entry : task_vector)
    if (base.contains(entry.first)) overlap.insert(entry.first, base.at(entry.first));
  require_same_entries("apply", overlap, task_vector.tensors(), "base", "task vector",
                       "apply a task vector to a state dict of the architecture it was computed from");
  StateDict out;
  for (const auto& [name, tensor] : base) {
    if (!task_vector.contains(name)) {
      out.insert(name, tensor);
      continue;
    }
    std::vector<double> x = to_float64(tensor), delta = to_float64(task_vector.at(name));
    for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
    out.insert(name, from_float64(x, tensor.shape(), tensor.dtype()));
  }
  return out;
}

}  // namespace linfuse::merge
