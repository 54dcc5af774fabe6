#pragma once
// The passes of the streaming merge over a DeltaSource, chunk by chunk: linear merges (averages, task arithmetic) in
// one pass, TIES in two to four. Each entry's result goes to a MergeSink as one tensor (the only full-tensor buffer of
// the merge); inputs are held a chunk at a time.
//
// TIES with bounded memory, exactly as merge::ties_merging:
// - Trim. Each task keeps exactly k = floor(keep * n) entries of its flattened vector (global scope: n = all entries;
//   per-tensor: n = the tensor's). The k-th largest magnitude is found by radix selection on the magnitudes' IEEE bit
//   patterns (monotone in the magnitude for non-negative floats): one pass per 16-bit digit, a 65,536-bucket histogram
//   per task, i.e. 2 passes for float32 work precision, 4 for float64. The result is the threshold t and how many
//   entries equal to t are kept (c); a later pass keeps |x| > t and the first c entries equal to t in flattened order
//   -- the in-memory tie rule (ties go to the earlier position), so exactly k entries survive whatever the ties.
// - Elect. The sign of each entry's trimmed sum (or sign count); where it is exactly 0 and some trimmed value is not,
//   the in-memory merge uses the majority of all elected signs. That needs a pass over everything, so it runs only the
//   first time such an entry is met (never, typically, for "mass" election on real weights).
// - Disjoint merge, lambda, base: per entry, in the write pass.
#include <cstdint>
#include <vector>

#include "merge/merge_sources.h"
#include "merge/ties.h"

namespace linfuse::merge {

// Receives each merged entry once, as a contiguous tensor of the entry's shape: float64 where wants_f64 (the entry is
// stored as float64), else float32 -- the final rounding is the one of the stored precision.
class MergeSink {
 public:
  virtual ~MergeSink() = default;
  virtual bool wants_f64(size_t /*entry*/) const { return false; }
  virtual void put(size_t entry, const Tensor& values) = 0;
};

struct PassOptions {
  int64_t chunk_elements = int64_t(1) << 18;   // elements per input per read (2 MB of float64 per input)
};

struct PassStats {
  int input_reads = 0;         // full traversals of the inputs (selection digits + majority + write)
  bool majority_pass = false;  // the elected-sign majority was needed
};

// values out = base + round(sum_t coefficients[t] tau_t) (or the rounded sum alone without a base).
void run_linear_merge(DeltaSource& source, const std::vector<double>& coefficients, MergeSink& sink,
                      PassStats& stats, const PassOptions& options = {});

void run_ties_merge(DeltaSource& source, const TiesOptions& ties, MergeSink& sink, PassStats& stats,
                    const PassOptions& options = {});

// ---- the trim threshold, exposed for tests ----

// Keeps |x| with magnitude bits > threshold_bits, and the first ties_to_keep entries with bits == threshold_bits.
struct TrimRule {
  uint64_t threshold_bits = 0;
  int64_t ties_to_keep = 0;
  bool wide = false;   // magnitudes compared as float64 bit patterns (else float32)
};

// One rule per task for the entries `unit` (indices into source.entries(), in order), keeping
// floor(keep_fraction * n) entries of each task; adds the passes it read to stats.input_reads.
std::vector<TrimRule> select_trim_rules(DeltaSource& source, const std::vector<size_t>& unit, double keep_fraction,
                                        PassStats& stats, const PassOptions& options = {});

}  // namespace linfuse::merge
