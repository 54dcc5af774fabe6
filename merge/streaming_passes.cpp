#include "merge/streaming_passes.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace linfuse::merge {
namespace {

constexpr int kDigitBits = 16;
constexpr size_t kBuckets = size_t(1) << kDigitBits;

double round_to_work(double value, bool work_f64) { return work_f64 ? value : double(float(value)); }
double sign_of(double x) { return double((x > 0) - (x < 0)); }

// floor(fraction * n) as merge::ties_trim counts it (guarded against binary rounding: 0.7 * 10 gives 7).
int64_t keep_count(double fraction, int64_t n) { return int64_t(std::floor(fraction * double(n) + 1e-9)); }

// The IEEE bit pattern of |v|: for non-negative floats the pattern orders like the value, so the k-th largest
// magnitude can be found digit by digit. Narrow: v is a float32 value (work precision float32), compared as such.
uint64_t magnitude_bits(double v, bool wide) {
  if (wide) return std::bit_cast<uint64_t>(v) & 0x7fffffffffffffffull;
  return std::bit_cast<uint32_t>(float(v)) & 0x7fffffffu;
}

// Buffers for one chunk of every task (and the base), filled entry by entry.
class ChunkReader {
 public:
  ChunkReader(DeltaSource& source, const PassOptions& options)
      : source_(source), chunk_(std::max<int64_t>(1, options.chunk_elements)), deltas_(source.task_count()) {}

  // Calls f(begin, count) for every chunk of `entry` after filling delta(t) (and base() when with_base).
  template <class F>
  void for_each_chunk(size_t entry, bool with_base, F&& f) {
    const MergedEntry& e = source_.entries()[entry];
    for (int64_t begin = 0; begin < e.numel; begin += chunk_) {
      int64_t count = std::min(chunk_, e.numel - begin);
      for (size_t t = 0; t < deltas_.size(); ++t) {
        deltas_[t].resize(size_t(count));
        source_.task_delta(entry, t, begin, count, deltas_[t].data());
      }
      if (with_base) {
        base_.resize(size_t(count));
        source_.base_values(entry, begin, count, base_.data());
      }
      f(begin, count);
    }
    source_.release(entry);
  }
  double* delta(size_t task) { return deltas_[task].data(); }
  const double* base() const { return base_.data(); }

 private:
  DeltaSource& source_;
  int64_t chunk_;
  std::vector<std::vector<double>> deltas_;
  std::vector<double> base_;
};

// The merged entry's output buffer: float64 or float32 values, written in row-major order.
class EntryOutput {
 public:
  EntryOutput(const MergedEntry& e, bool f64) : tensor_(Tensor::empty(e.shape, f64 ? DType::F64 : DType::F32)) {}
  // The rounding of merge::apply's from_float64: once, from the float64 sum.
  void set(int64_t i, double value) {
    if (tensor_.dtype() == DType::F64) tensor_.data<double>()[i] = value;
    else tensor_.data<float>()[i] = float(value);
  }
  const Tensor& tensor() const { return tensor_; }

 private:
  Tensor tensor_;
};

// base + merged (merged already at work precision), or merged alone.
double finish_value(const MergedEntry& e, const double* base, int64_t i, double merged) {
  return e.has_base ? base[i] + merged : merged;
}

void require_finite(DeltaSource& source, size_t entry, size_t task, const double* values, int64_t count, int64_t begin) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      throw std::invalid_argument("[ties] tensor '" + source.entries()[entry].name + "' of " + source.task_label(task) +
                                  " has a non-finite task-vector entry (element " + std::to_string(begin + i) +
                                  "); magnitudes cannot be ranked. Fix the fine-tuning run or use another method.");
}

// Zeroes every value the rule does not keep; ties_seen counts the entries equal to the threshold met so far.
void apply_trim(const TrimRule& rule, int64_t& ties_seen, double* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint64_t bits = magnitude_bits(values[i], rule.wide);
    if (bits > rule.threshold_bits) continue;
    if (bits == rule.threshold_bits && ties_seen++ < rule.ties_to_keep) continue;
    values[i] = 0.0;
  }
}

// The trimmed task vectors of the TIES merge, entry by entry, for one traversal (each traversal counts ties afresh).
class TrimmedTraversal {
 public:
  TrimmedTraversal(DeltaSource& source, const std::vector<size_t>& unit_of, const std::vector<std::vector<TrimRule>>& rules,
                   const PassOptions& options)
      : source_(source), unit_of_(unit_of), rules_(rules), reader_(source, options), ties_seen_(source.task_count(), 0) {}

  // f(begin, count, reader) with every task's chunk trimmed.
  template <class F>
  void for_each_chunk(size_t entry, bool with_base, F&& f) {
    size_t unit = unit_of_[entry];
    if (unit != current_unit_) std::fill(ties_seen_.begin(), ties_seen_.end(), 0), current_unit_ = unit;
    reader_.for_each_chunk(entry, with_base, [&](int64_t begin, int64_t count) {
      for (size_t t = 0; t < ties_seen_.size(); ++t) {
        require_finite(source_, entry, t, reader_.delta(t), count, begin);
        apply_trim(rules_[unit][t], ties_seen_[t], reader_.delta(t), count);
      }
      f(begin, count, reader_);
    });
  }

 private:
  DeltaSource& source_;
  const std::vector<size_t>& unit_of_;
  const std::vector<std::vector<TrimRule>>& rules_;
  ChunkReader reader_;
  std::vector<int64_t> ties_seen_;
  size_t current_unit_ = SIZE_MAX;
};

double elected_total(ChunkReader& reader, size_t tasks, int64_t i, SignElection election) {
  double total = 0.0;
  for (size_t t = 0; t < tasks; ++t) {
    double v = reader.delta(t)[i];
    total += election == SignElection::mass ? v : sign_of(v);
  }
  return total;
}

}  // namespace

void run_linear_merge(DeltaSource& source, const std::vector<double>& coefficients, MergeSink& sink, PassStats& stats,
                      const PassOptions& options) {
  if (coefficients.size() != source.task_count())
    throw std::invalid_argument("[run_linear_merge] " + std::to_string(coefficients.size()) + " coefficients for " +
                                std::to_string(source.task_count()) + " task vectors");
  ChunkReader reader(source, options);
  const auto& entries = source.entries();
  for (size_t e = 0; e < entries.size(); ++e) {
    const MergedEntry& entry = entries[e];
    EntryOutput out(entry, sink.wants_f64(e));
    reader.for_each_chunk(e, entry.has_base, [&](int64_t begin, int64_t count) {
      for (int64_t i = 0; i < count; ++i) {
        // linear_combination's order: 0.0 + c_0 tau_0 + c_1 tau_1 + ..., rounded once to the work precision.
        double sum = 0.0;
        for (size_t t = 0; t < coefficients.size(); ++t) sum += coefficients[t] * reader.delta(t)[i];
        out.set(begin + i, finish_value(entry, reader.base(), i, round_to_work(sum, entry.work_f64)));
      }
    });
    sink.put(e, out.tensor());
  }
  stats.input_reads += 1;
}

std::vector<TrimRule> select_trim_rules(DeltaSource& source, const std::vector<size_t>& unit, double keep_fraction,
                                        PassStats& stats, const PassOptions& options) {
  size_t tasks = source.task_count();
  const auto& entries = source.entries();
  int64_t n = 0;
  bool wide = false;
  for (size_t e : unit) n += entries[e].numel, wide = wide || entries[e].work_f64;
  int64_t keep = keep_count(keep_fraction, n);
  if (keep <= 0) return std::vector<TrimRule>(tasks, TrimRule{std::numeric_limits<uint64_t>::max(), 0, wide});
  if (keep >= n) return std::vector<TrimRule>(tasks, TrimRule{0, std::numeric_limits<int64_t>::max(), wide});

  // Radix selection of the keep-th largest magnitude, most significant digit first. remaining[t] is the rank of the
  // wanted magnitude among the entries matching prefix[t] (1 = the largest of them).
  int width = wide ? 64 : 32;
  std::vector<uint64_t> prefix(tasks, 0);
  std::vector<int64_t> remaining(tasks, keep);
  std::vector<uint64_t> histogram(tasks * kBuckets);
  ChunkReader reader(source, options);
  for (int shift = width - kDigitBits; shift >= 0; shift -= kDigitBits) {
    std::fill(histogram.begin(), histogram.end(), 0);
    bool first_digit = shift + kDigitBits >= width;
    for (size_t e : unit)
      reader.for_each_chunk(e, false, [&](int64_t begin, int64_t count) {
        for (size_t t = 0; t < tasks; ++t) {
          const double* values = reader.delta(t);
          if (first_digit) require_finite(source, e, t, values, count, begin);
          uint64_t* bucket = histogram.data() + t * kBuckets;
          for (int64_t i = 0; i < count; ++i) {
            uint64_t bits = magnitude_bits(values[i], wide);
            if (!first_digit && (bits >> (shift + kDigitBits)) != prefix[t]) continue;
            ++bucket[(bits >> shift) & (kBuckets - 1)];
          }
        }
      });
    ++stats.input_reads;
    for (size_t t = 0; t < tasks; ++t) {
      const uint64_t* bucket = histogram.data() + t * kBuckets;
      size_t digit = kBuckets - 1;
      for (;; --digit) {   // the matching entries number >= remaining, so some bucket holds the wanted rank
        if (remaining[t] <= int64_t(bucket[digit])) break;
        remaining[t] -= int64_t(bucket[digit]);
      }
      prefix[t] = (prefix[t] << kDigitBits) | digit;
    }
  }
  std::vector<TrimRule> rules(tasks);
  for (size_t t = 0; t < tasks; ++t) rules[t] = {prefix[t], remaining[t], wide};
  return rules;
}

void run_ties_merge(DeltaSource& source, const TiesOptions& ties, MergeSink& sink, PassStats& stats,
                    const PassOptions& options) {
  if (!(ties.keep_fraction >= 0.0 && ties.keep_fraction <= 1.0))
    throw std::invalid_argument("[ties] keep fraction must be in [0, 1], got " + std::to_string(ties.keep_fraction));
  const auto& entries = source.entries();
  size_t tasks = source.task_count();

  // 1. Trim thresholds: one unit (global) or one per tensor.
  std::vector<size_t> unit_of(entries.size(), 0);
  std::vector<std::vector<TrimRule>> rules;
  if (ties.trim_scope == TrimScope::global) {
    std::vector<size_t> all(entries.size());
    for (size_t e = 0; e < all.size(); ++e) all[e] = e;
    rules.push_back(select_trim_rules(source, all, ties.keep_fraction, stats, options));
  } else {
    int most_reads = 0;
    for (size_t e = 0; e < entries.size(); ++e) {
      PassStats unit_stats;
      rules.push_back(select_trim_rules(source, {e}, ties.keep_fraction, unit_stats, options));
      unit_of[e] = e;
      most_reads = std::max(most_reads, unit_stats.input_reads);
    }
    stats.input_reads += most_reads;   // every tensor read that many times: as many reads of the whole input
  }

  // 2. The majority of the elected signs, computed the first time an entry needs it.
  double majority = 0.0;
  auto majority_sign = [&]() {
    if (majority != 0.0) return majority;
    int64_t balance = 0;
    TrimmedTraversal traversal(source, unit_of, rules, options);
    for (size_t e = 0; e < entries.size(); ++e)
      traversal.for_each_chunk(e, false, [&](int64_t, int64_t count, ChunkReader& reader) {
        for (int64_t i = 0; i < count; ++i) balance += int64_t(sign_of(elected_total(reader, tasks, i, ties.sign_election)));
      });
    majority = balance >= 0 ? 1.0 : -1.0;   // sign of the sum of elected signs, +1 when it is 0 (peta's fix)
    stats.majority_pass = true;
    ++stats.input_reads;
    return majority;
  };

  // 3. Write pass: elect, disjoint merge, scale, add the base.
  TrimmedTraversal traversal(source, unit_of, rules, options);
  for (size_t e = 0; e < entries.size(); ++e) {
    const MergedEntry& entry = entries[e];
    EntryOutput out(entry, sink.wants_f64(e));
    traversal.for_each_chunk(e, entry.has_base, [&](int64_t begin, int64_t count, ChunkReader& reader) {
      for (int64_t i = 0; i < count; ++i) {
        double elected = sign_of(elected_total(reader, tasks, i, ties.sign_election));
        double sum = 0.0;
        int agreeing = 0;
        if (elected == 0.0) {
          bool any = false;
          for (size_t t = 0; t < tasks; ++t) any = any || reader.delta(t)[i] != 0.0;
          if (any) elected = majority_sign();   // with all trimmed values 0 the entry merges to 0 whatever the sign
        }
        for (size_t t = 0; t < tasks; ++t) {
          double v = reader.delta(t)[i];
          if (v != 0.0 && sign_of(v) == elected) sum += v, ++agreeing;
        }
        double aggregate = ties.aggregation == DisjointAggregation::mean ? (agreeing ? sum / agreeing : 0.0) : sum;
        double merged = round_to_work(ties.scaling * aggregate, entry.work_f64);
        out.set(begin + i, finish_value(entry, reader.base(), i, merged));
      }
    });
    sink.put(e, out.tensor());
  }
  ++stats.input_reads;
}

}  // namespace linfuse::merge
