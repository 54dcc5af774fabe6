#pragma once
// The vision half of the study (the paper's CLIP experiments at small scale):
//   1. pretrain a tiny CLIP contrastively on captioned images of every domain (the tasks' pretrain splits),
//      with a SentencePiece tokenizer trained on the captions;
//   2. build each task's zero-shot head from its class names and prompt templates, and score zero-shot;
//   3. fine-tune the image encoder of each task in each mode against its frozen head;
//   4. hand the merging study a MergeTarget per mode (vision_target.cpp).
// Every stage is cached under a key of its config (stage_cache.h).
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/merge_target.h"
#include "experiments/suite_common.h"
#include "experiments/vision_tasks.h"
#include "nn/clip.h"
#include "nn/clip_classifier.h"
#include "nn/tokenizer.h"

namespace linfuse::experiments {

struct VisionTaskTensors {
  data::ImageTask task;                     // metadata and raw splits
  Tensor train_images, validation_images, test_images;   // (N, C, 28, 28) float32; C = 1 gray, 3 styled
  Tensor train_labels, validation_labels, test_labels;   // (N) int64
  Tensor head;                              // (C, P) zero-shot head of the pretrained CLIP
};

// The data options of one task: `base`, with the pretraining style strength that `per_task`
// (data.pretrain_style_strength_per_task: {task: strength}, or null) names for `task`, if it names one.
data::VisionOptions vision_task_options(const data::VisionOptions& base, const nlohmann::json& per_task, const std::string& task);

class VisionSuite {
 public:
  VisionSuite(nlohmann::json config, uint64_t seed, SuiteContext context);

  // Runs stages 1-3 (cached) and returns the suite's results so far (zero_shot, single_task, ...).
  nlohmann::json prepare();
  // A merge target for `mode` (after prepare()).
  std::unique_ptr<MergeTarget> merge_target(peft::FinetuneMode mode);
  std::vector<peft::FinetuneMode> modes() const;

  const std::vector<VisionTaskTensors>& tasks() const { return tasks_; }
  nn::CLIPModel& clip() { return *clip_; }
  const nlohmann::json& config() const { return config_; }
  int64_t eval_examples(Split split) const;
  // Per task, the number of test examples every test score is measured on: min(evaluation.test_examples, the
  // task's test split); results.json's "test_examples", from which the report computes standard errors.
  std::vector<int64_t> test_examples() const;
  int64_t eval_batch() const { return config_["evaluation"].value("batch_size", int64_t(500)); }
  int64_t image_channels() const;   // 1 (gray) or 3 (styled, data.style_strength)
  // data.standardize: the per-channel mean and standard deviation of the pretraining pool (empty otherwise).
  const std::vector<double>& image_mean() const { return image_mean_; }
  const std::vector<double>& image_std() const { return image_std_; }
  peft::FinetuneConfig finetune_config_for(peft::FinetuneMode mode) const;
  const std::vector<double>& single_task_test(peft::FinetuneMode mode) const;
  // Per task, the single-task test score that counts as learned (suite_common.h, learned_threshold).
  std::vector<double> learned_thresholds(double margin_se) const;
  const StateDict& finetuned_state(peft::FinetuneMode mode, int task) const;
  // The cache key of the pretrained CLIP (seed, tasks, data, model, tokenizer, pretraining): stages that read
  // only the pretrained model key on it.
  nlohmann::json pretrain_key() const;
  // Runs the pretrain stage (cached) whatever vision.base_checkpoint says and writes its CLIP as a base
  // checkpoint to `folder` (base_checkpoint.h); `command` is the exact command line, for the manifest.
  void write_base(const std::filesystem::path& folder, const std::string& preset, const std::string& command);

 private:
  void load_data();
  void standardize();
  void pretrain();
  // Loads the folder of vision.base_checkpoint when it names one (vision_base_checkpoint.cpp).
  bool load_base_checkpoint(nlohmann::json& results);
  void zero_shot(nlohmann::json& results);
  void finetune(peft::FinetuneMode mode, nlohmann::json& results);

  nlohmann::json config_;
  uint64_t seed_;
  SuiteContext ctx_;
  std::vector<VisionTaskTensors> tasks_;
  std::vector<double> image_mean_, image_std_;
  std::shared_ptr<nn::CLIPModel> clip_;
  std::shared_ptr<Tokenizer> tokenizer_;
  std::map<std::string, std::vector<StateDict>> finetuned_;        // mode -> per task
  std::map<std::string, std::vector<double>> single_task_test_;    // mode -> per task
};

// The images of `rows` of a split tensor (N, C, 28, 28) and their labels.
Tensor select_rows(const Tensor& t, const std::vector<int64_t>& rows);
// Rows [begin, end) of a tensor along its first dim, as a view.
Tensor select_range(const Tensor& t, int64_t begin, int64_t end);

}  // namespace linfuse::experiments
