#pragma once
// DARE, "Drop And REscale" (Yu et al. 2023, "Language Models are Super Mario: Absorbing Abilities from Homologous
// Models as a Free Lunch"): every entry of a task vector is dropped with probability p and the survivors are
// rescaled by 1 / (1 - p), so E[dare(tau)] = tau. It returns task vectors, so it composes with simple average, task
// arithmetic, TIES, ... (fusion_bench's dare/simple_average, dare/task_arithmetic, dare/ties_merging).
//
// Randomness: entry i of tensor j of a task is dropped when the Philox uniform u < p, drawn from that task's own
// generator (tensors in the task vector's order). Philox draws depend only on (seed, stream, counter), never on the
// thread count; a task's generator is Generator(seed).fork(task index), so its mask does not depend on the other
// tasks either (not even on how many there are).
#include <cstdint>
#include <vector>

#include "merge/task_vector.h"
#include "tensor/random.h"

namespace linfuse::merge {

struct DareOptions {
  double drop_probability = 0.5;   // p in [0, 1); fusion_bench's dare configs use sparsity_ratio 0.5
  bool rescale = true;             // divide survivors by (1 - p), as the paper; false gives plain random pruning
};

// One task vector, drawing from `generator` (which advances).
TaskVector dare(const TaskVector& task_vector, const DareOptions& options, Generator& generator);

// Every task vector, task t from Generator(seed).fork(t).
std::vector<TaskVector> dare(const std::vector<TaskVector>& task_vectors, const DareOptions& options, uint64_t seed);

}  // namespace linfuse::merge
