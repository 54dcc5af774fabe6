#pragma once
// What the vision suite's pretrained CLIP already knows about each task, read from its L2-normalised image
// features (the input of every zero-shot head), before any fine-tuning:
//   "linear_probe":      {task: test accuracy of a linear probe on those features} (linear_probe.h),
//   "linear_probe_l2":   {task: the probe's L2 penalty, chosen on validation},
//   "domain_similarity": {"matrix": cosines of the tasks' mean features} (domain_similarity.h).
// The probe trains on every training image of a task and is scored on the validation and test examples every
// other score uses (evaluation.validation_examples / test_examples). Settings: the suite config's
// diagnostics.linear_probe (LinearProbeConfig). Cached as the stage "vision/pretrained_features".
#include <nlohmann/json.hpp>

#include "experiments/suite_common.h"
#include "experiments/vision_suite.h"

namespace linfuse::experiments {

// After suite.prepare(). Returns the three entries above, to be added to the suite's results.
nlohmann::json pretrained_feature_diagnostics(VisionSuite& suite, SuiteContext& ctx);

}  // namespace linfuse::experiments
