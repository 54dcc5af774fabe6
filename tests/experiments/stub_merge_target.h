#pragma once
// A MergeTarget for tests that exercise one part of the merging study on a synthetic model: every method a
// test does not need returns an empty or zero answer, so a fake overrides only what its test reads (its states
// and, as needed, score or outputs / output_jvp).
#include "experiments/merge_target.h"

namespace linfuse::testing {

class StubMergeTarget : public experiments::MergeTarget {
 public:
  double score(const StateDict&, int, experiments::Split) override { return 0; }
  double score_weight_space(const StateDict&, int, experiments::Split) override { return 0; }
  double lora_scaling() const override { return 0; }
  std::vector<int64_t> predict(const StateDict&, int, int64_t) override { return {}; }
  double few_shot_loss(const StateDict&, int, int64_t) override { return 0; }
  Tensor entropy(const StateDict&, int, int64_t, int64_t) override { return Tensor::scalar(0); }
  StateDict fisher(int, int64_t) override { return {}; }
  StateDict grams(int, int64_t) override { return {}; }
  Tensor outputs(const StateDict&, int, int64_t) override { return {}; }
  Tensor output_jvp(const StateDict&, int, int64_t) override { return {}; }
};

}  // namespace linfuse::testing
