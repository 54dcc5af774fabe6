#pragma once
// Small pieces shared by the vision and text suites: the suite context (cache, log, seed, timing), JSON
// files written atomically, and fine-tuning configs read from a preset.
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "experiments/merge_study.h"
#include "experiments/stage_cache.h"
#include "peft/finetune.h"

namespace linfuse::experiments {

struct SuiteContext {
  StageCache& cache;
  StudyLog log;
  std::map<std::string, double>& stage_seconds;   // "vision/pretrain" -> seconds, filled as stages run
};

// Times a stage and adds it to ctx.stage_seconds under `name` when it ends.
class StageTimer {
 public:
  StageTimer(SuiteContext& ctx, std::string name);
  ~StageTimer();

 private:
  SuiteContext& ctx_;
  std::string name_;
  std::chrono::steady_clock::time_point start_;
};

void write_json(const std::filesystem::path& path, const nlohmann::json& j);
nlohmann::json read_json(const std::filesystem::path& path);

// The fine-tuning settings of a suite's "finetune" section for one mode:
//   {"steps", "batch_size", "learning_rates": {mode: lr}, "weight_decay", "warmup_fraction", "max_grad_norm",
//    "lora": {"rank", "alpha", "dropout", "targets", "init", "init_seed"}}
peft::FinetuneConfig finetune_config(const nlohmann::json& section, peft::FinetuneMode mode, uint64_t seed);

// Accuracy of argmax(logits (N, C)) against labels (N).
int64_t count_correct(const Tensor& logits, const Tensor& labels);
std::vector<int64_t> argmax_rows(const Tensor& logits);

}  // namespace linfuse::experiments
