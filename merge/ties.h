#pragma once
// TIES-Merging (Yadav et al. 2023, "TIES-Merging: Resolving Interference When Merging Models"): trim each task
// vector to its largest-magnitude entries, elect a sign per entry, and average only the entries that agree with it.
//
// Follows the paper and its reference code (github prateeky2806/ties-merging, src/utils/merge_utils.py; the same
// code is in tanganke/peta and tanganke/fusion_bench ties_merging_utils.py), with these deliberate differences:
// - Trim count. The reference keeps |x| >= kthvalue(|x|, n - int(n*k)), which keeps int(n*k) + 1 entries when the
//   magnitudes are distinct (kthvalue is 1-based) and every entry tied with the threshold on top. Here exactly
//   floor(n*k) entries are kept: ties at the threshold go to the earlier position (tensor order of the task vector,
//   then row-major index), so the count never depends on how many magnitudes happen to be equal.
// - Aggregation. The paper's disjoint merge is the mean over the agreeing tasks (the default here, and peta's default
//   merge_func); fusion_bench's configs default to merge_func "sum". Both are offered.
// - Zero elected sign (the trimmed values of an entry sum to exactly 0): as in the reference, it becomes the majority
//   of all elected signs (sign of their sum), and +1 when that is 0 too (peta's fix; the original leaves 0, which
//   then selects the negative entries). The sign is elected over the whole vector even with per-tensor trimming.
#include <vector>

#include "merge/task_vector.h"

namespace linfuse::merge {

enum class TrimScope { global, per_tensor };   // top-k over the flattened vector, or within every tensor
enum class SignElection { mass, count };       // sign of the sum of trimmed values, or of the count of signs
enum class DisjointAggregation { mean, sum };  // over the tasks agreeing with the elected sign

struct TiesOptions {
  double keep_fraction = 0.2;                      // k: fraction of each task vector's entries kept (paper: top 20%)
  TrimScope trim_scope = TrimScope::global;        // the paper flattens the whole vector
  SignElection sign_election = SignElection::mass; // the paper's "mass"
  DisjointAggregation aggregation = DisjointAggregation::mean;
  double scaling = 1.0;                            // lambda: 1 keeps the disjoint mean as is; select it on validation
};

// Keeps the floor(keep_fraction * n) entries of largest magnitude and zeroes the rest; n counts all entries (global
// scope) or each tensor's entries (per-tensor scope). Ties at the threshold go to the earlier position.
// Throws on a fraction outside [0, 1] or a non-finite entry.
TaskVector ties_trim(const TaskVector& task_vector, double keep_fraction, TrimScope scope = TrimScope::global);

// lambda * disjoint_merge(elect(trim(tau_1..tau_T))). Deterministic; no randomness involved.
TaskVector ties_merging(const std::vector<TaskVector>& task_vectors, const TiesOptions& options = {});

}  // namespace linfuse::merge
