// The vision suite's diagnostics of its pretrained features: linear probes and domain similarity (see
// vision_pretrained_features.h).
#include "experiments/vision_pretrained_features.h"

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/domain_similarity.h"
#include "experiments/linear_probe.h"
#include "nn/clip.h"

namespace linfuse::experiments {

namespace {

// The pretrained CLIP's L2-normalised image features of the first n images (N, C, 28, 28) -> (n, P).
Tensor pretrained_features(VisionSuite& suite, const Tensor& images, int64_t n) {
  n = std::min(n, images.size(0));
  NoGradGuard no_grad;
  std::vector<Tensor> batches;
  for (int64_t b = 0; b < n; b += suite.eval_batch())
    batches.push_back(nn::l2_normalize(suite.clip().get_image_features(select_range(images, b, std::min(n, b + suite.eval_batch())))));
  return concat(batches, 0);
}

}  // namespace

nlohmann::json pretrained_feature_diagnostics(VisionSuite& suite, SuiteContext& ctx) {
  StageTimer timer(ctx, "vision/pretrained_features");
  const nlohmann::json probe_settings = suite.config().value("diagnostics", nlohmann::json::object()).value("linear_probe", nlohmann::json::object());
  const nlohmann::json key = {{"pretrain", suite.pretrain_key()}, {"evaluation", suite.config()["evaluation"]},
                              {"linear_probe", probe_settings}};
  auto dir = ctx.cache.folder("vision/pretrained_features", key);
  if (ctx.cache.done("vision/pretrained_features", key)) {
    ctx.log("vision: linear probes and domain similarity loaded from " + dir.string());
    return read_json(dir / "pretrained_features.json");
  }
  const LinearProbeConfig config = LinearProbeConfig::from_json(probe_settings);
  nlohmann::json out;
  std::vector<Tensor> train_features;
  double total = 0;
  for (const VisionTaskTensors& task : suite.tasks()) {
    ProbeData data;
    data.classes = task.head.size(0);
    data.train_features = pretrained_features(suite, task.train_images, task.train_images.size(0));
    data.train_labels = task.train_labels;
    const int64_t validation = std::min(suite.eval_examples(Split::Validation), task.validation_images.size(0));
    const int64_t test = std::min(suite.eval_examples(Split::Test), task.test_images.size(0));
    data.validation_features = pretrained_features(suite, task.validation_images, validation);
    data.validation_labels = select_range(task.validation_labels, 0, validation);
    data.test_features = pretrained_features(suite, task.test_images, test);
    data.test_labels = select_range(task.test_labels, 0, test);
    LinearProbeResult probe = fit_linear_probe(data, config);
    out["linear_probe"][task.task.name] = probe.test_accuracy;
    out["linear_probe_l2"][task.task.name] = probe.l2;
    total += probe.test_accuracy;
    train_features.push_back(data.train_features);
  }
  out["domain_similarity"]["matrix"] = mean_feature_cosines(train_features);
  write_json(dir / "pretrained_features.json", out);
  ctx.cache.mark_done("vision/pretrained_features", key);
  ctx.log("vision: linear probe of the pretrained features, test average " +
          std::to_string(100 * total / double(suite.tasks().size())).substr(0, 4));
  return out;
}

}  // namespace linfuse::experiments
