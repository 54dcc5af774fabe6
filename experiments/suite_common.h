#pragma once
// Small pieces shared by the vision and text suites: the suite context (cache, log, seed, timing), JSON
// files written atomically, and fine-tuning configs read from a preset.
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "experiments/merge_study.h"
#include "experiments/stage_cache.h"
#include "peft/finetune.h"
#include "tensor/random.h"

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

// The rows of fine-tuning batches: the n training examples in a fresh permutation every epoch, drawn from a
// generator of the task, so that every mode sees the same data in the same order.
class EpochOrder {
 public:
  EpochOrder(Generator generator, int64_t n) : generator_(generator), n_(n) {}
  std::vector<int64_t> batch_rows(int64_t step, int64_t batch);

 private:
  Generator generator_;
  int64_t n_;
  std::vector<int64_t> order_;
};

// One fine-tuning run in its cache folder: trainable.safetensors and metrics.json (scores, time, losses).
void save_finetuned_run(const std::filesystem::path& dir, const peft::PreparedModel& prepared,
                        const peft::FinetuneResult& result, const std::string& mode_name, const std::string& task_name,
                        double validation, double test);
// Reads a run saved by save_finetuned_run: appends its state and test score, and fills the suite's results
// (single_task, finetune_seconds (moved to manifest.json later), trainable_parameters).
void load_finetuned_run(const std::filesystem::path& dir, const std::string& mode_name, const std::string& task_name,
                        std::vector<StateDict>& states, std::vector<double>& scores, nlohmann::json& results);

// One fine-tuning mode of a suite over its tasks: the stage "<suite>/finetune/<mode>/<task>" of every task
// whose run is not cached under key_of(task) is run by train(task, dir, show_progress), which writes the run
// into `dir` (save_finetuned_run) and returns its log line; the runs go side by side, one thread each
// (run_concurrently, tensor/threading.h: the same bits as one after the other), with a progress line only when
// one runs at a time. Then every task's run is loaded in task order (load_finetuned_run).
using FinetuneTask = std::function<std::string(size_t task, const std::filesystem::path& dir, bool show_progress)>;
void finetune_tasks(SuiteContext& ctx, const std::string& suite, const std::string& mode_name,
                    const std::vector<std::string>& task_names, const std::function<nlohmann::json(size_t)>& key_of,
                    const FinetuneTask& train, std::vector<StateDict>& states, std::vector<double>& scores,
                    nlohmann::json& results);

// The score a fine-tuned model must beat for its task to count in normalized scores: the chance score plus
// `margin_se` (config merge.learned_margin_se, default 2) standard errors of a chance-level score on
// `test_examples` examples. Accuracy over `classes` classes:
// chance 1/C, standard error sqrt(p (1 - p) / n); Spearman's rho (classes 0): chance 0, standard error
// 1 / sqrt(n - 1). Why: the paper's normalized score divides by the single-task score; a task the fine-tuned
// model did not learn (a score within noise of chance, as some tasks of the tiny text suite) makes that
// ratio meaningless (measured: an STS-B Spearman of 0.08 turned a merged 0.11 into 131.9% of the average).
double learned_threshold(int64_t classes, int64_t test_examples, double margin_se = 2.0);

// The mean of the last tenth (at least one) of a run's per-step losses: one minibatch's loss is noisy, so a
// stage reports this as its "final_loss". 0 for no losses.
double final_loss_of(const std::vector<double>& losses);

// Accuracy of argmax(logits (N, C)) against labels (N).
int64_t count_correct(const Tensor& logits, const Tensor& labels);
std::vector<int64_t> argmax_rows(const Tensor& logits);

}  // namespace linfuse::experiments
