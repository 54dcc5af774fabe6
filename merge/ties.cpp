#include "merge/ties.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "merge/named_tensors.h"

namespace linfuse::merge {
namespace {

// A task vector flattened in its name order, with where each tensor starts.
struct FlatVector {
  std::vector<double> values;
  std::vector<size_t> offsets;   // offsets[i] = start of tensor i; offsets.back() = values.size()
};

FlatVector flatten(const TaskVector& task_vector) {
  FlatVector flat;
  flat.offsets.push_back(0);
  for (const auto& entry : task_vector) {
    std::vector<double> values = to_float64(entry.second);
    flat.values.insert(flat.values.end(), values.begin(), values.end());
    flat.offsets.push_back(flat.values.size());
  }
  return flat;
}

// Splits `values` back into tensors shaped (and typed) like `like`.
TaskVector unflatten(const std::vector<double>& values, const TaskVector& like) {
  StateDict out;
  size_t offset = 0;
  for (const auto& [name, tensor] : like) {
    size_t count = size_t(tensor.numel());
    std::vector<double> part(values.begin() + long(offset), values.begin() + long(offset + count));
    out.insert(name, from_float64(part, tensor.shape(), tensor.dtype()));
    offset += count;
  }
  return TaskVector(std::move(out));
}

// Zeroes all but the `keep` largest magnitudes in values[begin, end); ties go to the lower index.
void keep_largest(std::vector<double>& values, size_t begin, size_t end, size_t keep) {
  size_t count = end - begin;
  if (keep >= count) return;
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), begin);
  auto larger = [&](size_t i, size_t j) {
    double a = std::abs(values[i]), b = std::abs(values[j]);
    return a > b || (a == b && i < j);   // a strict total order: the kept set is unique
  };
  if (keep > 0) std::nth_element(order.begin(), order.begin() + long(keep - 1), order.end(), larger);
  for (size_t r = keep; r < count; ++r) values[order[r]] = 0.0;
}

// floor(fraction * n), guarded against binary rounding (0.7 * 10 must give 7, not 6).
size_t keep_count(double fraction, size_t n) { return size_t(std::floor(fraction * double(n) + 1e-9)); }

double sign_of(double x) { return double((x > 0) - (x < 0)); }

// The task vector flattened and trimmed (validated: fraction in [0, 1], finite entries).
FlatVector trimmed_flat(const TaskVector& task_vector, double keep_fraction, TrimScope scope) {
  if (!(keep_fraction >= 0.0 && keep_fraction <= 1.0))
    throw std::invalid_argument("[ties_trim] keep_fraction must be in [0, 1] (a fraction, 0.2 keeps 20%), got " +
                                std::to_string(keep_fraction));
  FlatVector flat = flatten(task_vector);
  for (size_t i = 0; i + 1 < flat.offsets.size(); ++i)
    for (size_t j = flat.offsets[i]; j < flat.offsets[i + 1]; ++j)
      if (!std::isfinite(flat.values[j]))
        throw std::invalid_argument("[ties_trim] tensor '" + task_vector.names()[i] +
                                    "' holds a non-finite entry; magnitudes cannot be ranked. Fix the fine-tuning run.");
  if (scope == TrimScope::global) {
    keep_largest(flat.values, 0, flat.values.size(), keep_count(keep_fraction, flat.values.size()));
  } else {
    for (size_t i = 0; i + 1 < flat.offsets.size(); ++i) {
      size_t begin = flat.offsets[i], end = flat.offsets[i + 1];
      keep_largest(flat.values, begin, end, keep_count(keep_fraction, end - begin));
    }
  }
  return flat;
}

}  // namespace

TaskVector ties_trim(const TaskVector& task_vector, double keep_fraction, TrimScope scope) {
  return unflatten(trimmed_flat(task_vector, keep_fraction, scope).values, task_vector);
}

TaskVector ties_merging(const std::vector<TaskVector>& task_vectors, const TiesOptions& options) {
  require_matching("ties_merging", task_vectors);
  // 1. Trim: each task keeps its top-k entries by magnitude.
  std::vector<std::vector<double>> trimmed;
  for (const auto& task_vector : task_vectors)
    trimmed.push_back(trimmed_flat(task_vector, options.keep_fraction, options.trim_scope).values);
  size_t n = trimmed[0].size();

  // 2. Elect a sign per entry.
  std::vector<double> elected(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (const auto& values : trimmed)
      total += options.sign_election == SignElection::mass ? values[i] : sign_of(values[i]);
    elected[i] = sign_of(total);
  }
  double majority = sign_of(std::accumulate(elected.begin(), elected.end(), 0.0));
  if (majority == 0.0) majority = 1.0;
  for (double& sign : elected)
    if (sign == 0.0) sign = majority;

  // 3. Disjoint merge: only the non-zero entries that agree with the elected sign.
  std::vector<double> merged(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double sum = 0.0;
    int agreeing = 0;
    for (const auto& values : trimmed)
      if (values[i] != 0.0 && sign_of(values[i]) == elected[i]) {
        sum += values[i];
        ++agreeing;
      }
    double aggregate = options.aggregation == DisjointAggregation::mean ? (agreeing ? sum / agreeing : 0.0) : sum;
    merged[i] = options.scaling * aggregate;
  }
  return unflatten(merged, task_vectors[0]);
}

}  // namespace linfuse::merge
