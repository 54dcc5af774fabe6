#pragma once
// The text half of the study (the paper's Flan-T5 / GLUE experiments at small scale):
//   1. train a SentencePiece tokenizer (T5 ids) on the fortune corpus and pretrain a tiny T5 on it with T5's
//      span-corruption objective (span_corruption.h);
//   1b. optionally instruction-tune it on a mixture of the tasks, as Flan-T5 was (text_instruct.cpp): by
//      default on each task's instruct split, sentences no other split uses, written as natural-language
//      instructions answered yes / no (text_instructions.h), so that zero-shot on the task-prefix form
//      measures transfer and fine-tuning still has something to teach;
//   2. score the pretrained model zero-shot on the 7 GLUE-shaped tasks (text_tasks.h);
//   3. fine-tune the whole T5 (or LoRA on its attention q and v) text-to-text on each task in each mode, with
//      teacher-forced cross-entropy on the label words; the linearized part is the model's logits;
//   4. hand the merging study a MergeTarget per mode (text_target.cpp).
// Classification tasks are scored by the likelihood of their label words; STS-B (targets: the score rounded to
// 0.5 as text) by Spearman's rho of the expected score under the model's distribution over the 11 answers
// "0.0" .. "5.0" (text_scoring.h). Every stage is cached under a key of its config (stage_cache.h).
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/merge_target.h"
#include "experiments/state_fingerprint.h"
#include "experiments/suite_common.h"
#include "experiments/text_scoring.h"
#include "experiments/text_tasks.h"
#include "nn/t5.h"
#include "nn/tokenizer.h"

namespace linfuse::experiments {

// One split of a task as token ids (each sequence ends with eos).
struct TokenizedSplit {
  std::vector<std::vector<int64_t>> inputs, targets;
  std::vector<int64_t> labels;   // class index (classification), or the score rounded to 0.5 as a class (stsb)
  std::vector<double> scores;    // gold regression scores (stsb)
};

struct TextTaskData {
  data::TextTask task;                       // metadata and raw text
  TokenizedSplit train, validation, test;
  TokenizedSplit instruct;                   // the instruct split (instruction form; targets as written)
  bool regression = false;                   // stsb: answers are numbers, scored by Spearman's rho
  // The answers the model chooses between: the label words, or for stsb the 11 scores "0.0", "0.5", ...,
  // "5.0" (the training targets are rounded to them).
  Candidates candidates;

  const TokenizedSplit& split(Split s) const { return s == Split::Validation ? validation : test; }
};

// The STS-B scale and the class of a score for predictions (the score rounded to the nearest 0.5).
constexpr double kStsbLow = 0.0, kStsbHigh = 5.0;
int64_t stsb_class(double score);
// The stsb answer text of a score: rounded to the nearest 0.5, one decimal ("3.4" -> "3.5").
std::string stsb_answer(double score);
// STS-B predictions: the expected score under the model's distribution over the 11 candidate answers
// (softmax of their whole-sequence log-likelihoods), a continuous number that Spearman's rho ranks.
std::vector<double> expected_scores(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates);

// What text fine-tuning minimises (text.finetune.objective; optional, "sequence" when absent):
//   sequence: the answer's teacher-forced token cross-entropy over the whole vocabulary (the paper's T5 loss);
//   answers:  -log softmax over the task's own candidate answers of their scores (candidate_scores), the
//             rank-classification loss of T-Few and PET, the text analogue of the vision suite's loss over the
//             task's own classes. Only the differences between the task's answers are trained, so a task vector
//             is not taught to push every other word (other tasks' answers among them) down for every input.
enum class FinetuneObjective { sequence, answers };
// Throws std::invalid_argument naming the field and both values for anything else.
FinetuneObjective finetune_objective(const nlohmann::json& finetune_section);

// How a model's answer scores become a decision (text.evaluation.calibration; "none" when absent):
//   none:            the most likely answer (stsb: the expected score under the answers' probabilities);
//   validation_mean: first each answer's log-probability (renormalised over the task's answers) less its mean
//                    over the task's first evaluation.validation_examples validation inputs, scored by the same
//                    model: the label-prior correction of contextual calibration (Zhao et al., 2021), estimated
//                    on unlabeled inputs of the task ("batch calibration", Zhou et al., 2024) instead of a
//                    content-free one. It removes the input-independent part of a model's preference, and only
//                    that: a model whose scores do not depend on the input still scores chance.
enum class Calibration { none, validation_mean };
Calibration evaluation_calibration(const nlohmann::json& evaluation_section);   // throws for other values

class TextSuite {
 public:
  TextSuite(nlohmann::json config, uint64_t seed, SuiteContext context);

  // Runs stages 1-3 (cached) and returns the suite's results so far (zero_shot, single_task, ...). Stage 1
  // (pretraining and instruction tuning) is read from the base checkpoint that text.base_checkpoint names,
  // when it does (text_base_checkpoint.cpp).
  nlohmann::json prepare();
  // Runs stage 1 (cached) whatever text.base_checkpoint says and writes its T5 as a base checkpoint to
  // `folder` (base_checkpoint.h); `command` is the exact command line, for the manifest.
  void write_base(const std::filesystem::path& folder, const std::string& preset, const std::string& command);
  // A merge target for `mode` (after prepare()).
  std::unique_ptr<MergeTarget> merge_target(peft::FinetuneMode mode);
  std::vector<peft::FinetuneMode> modes() const;

  const std::vector<TextTaskData>& tasks() const { return tasks_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const nlohmann::json& config() const { return config_; }
  const nn::T5Config& model_config() const { return model_config_; }
  // A fresh copy of the pretrained T5 (eval mode), for one fine-tuning run or one merge target.
  std::unique_ptr<nn::T5ForConditionalGeneration> pretrained_copy() const;
  peft::FinetuneConfig finetune_config_for(peft::FinetuneMode mode) const;
  const std::vector<double>& single_task_test(peft::FinetuneMode mode) const;
  // Per task, the single-task test score that counts as learned (suite_common.h, learned_threshold).
  std::vector<double> learned_thresholds(double margin_se) const;
  const StateDict& finetuned_state(peft::FinetuneMode mode, int task) const;

  int64_t eval_examples(Split split) const;
  // Per task, the number of test examples every test score is measured on: min(evaluation.test_examples, the
  // task's test split); results.json's "test_examples", from which the report computes standard errors.
  std::vector<int64_t> test_examples() const;
  int64_t eval_batch() const;
  int64_t max_input_tokens() const;
  // The encoder batch of examples [begin, end) of a split's inputs.
  TokenBatch input_batch(const TokenizedSplit& split, int64_t begin, int64_t end) const;
  TokenBatch input_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows) const;
  // The same truncated to `max_tokens` instead of max_input_tokens() (the instruction mixture's own limit).
  TokenBatch input_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows, int64_t max_tokens) const;
  TokenBatch target_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows) const;

  // The task's metric on its first eval_examples(split) examples, with the model whose logits `logits`
  // computes: accuracy of the most likely label word, or Spearman's rho of the greedily decoded numbers.
  // `model`, when given, is the fingerprint of the state those logits run under: a calibrated scoring then
  // remembers the model's prior on the task, and a later scoring of the same model (a merge's test scoring of the
  // candidate its validation search chose) reads it instead of passing over the validation inputs again. The
  // prior read is the one that pass would compute, bit for bit.
  double evaluate(const T5Logits& logits, int task, Split split, const StateFingerprint* model = nullptr) const;
  // Predicted classes on the first `examples` examples of a split (stsb: the decoded score's class).
  std::vector<int64_t> predict(const T5Logits& logits, int task, const TokenizedSplit& split, int64_t examples,
                               const StateFingerprint* model = nullptr) const;
  // How many calibrated scorings read a remembered prior instead of computing it (the tests check the reuse by it).
  int64_t remembered_prior_reads() const;
  bool calibrated() const;   // text.evaluation.calibration is validation_mean

 private:
  // The log-probabilities of the task's answers, renormalised over them, on the first `examples` examples of a
  // split: row-major (B x C).
  std::vector<double> answer_log_probs(const T5Logits& logits, int task, const TokenizedSplit& split, int64_t examples) const;
  // The same less each answer's mean over the task's first eval_examples(Validation) validation inputs
  // (validation_mean calibration; the validation rows are scored once when they are the split itself).
  std::vector<double> calibrated_log_probs(const T5Logits& logits, int task, const TokenizedSplit& split, int64_t examples,
                                           const StateFingerprint* model) const;
  data::TextOptions text_options() const;
  void load_data();
  void pretrain(nlohmann::json& results);
  void instruction_tune(nlohmann::json& results);   // text_instruct.cpp
  // Loads the folder of text.base_checkpoint when it names one (text_base_checkpoint.cpp).
  bool load_base_checkpoint(nlohmann::json& results);
  void zero_shot(nlohmann::json& results);
  void feature_baseline(nlohmann::json& results);
  void finetune(peft::FinetuneMode mode, nlohmann::json& results);
  nlohmann::json pretrain_key() const;
  nlohmann::json instruct_key() const;
  // The key of the model that zero-shot scoring, fine-tuning and merging start from: the instruction-tuned
  // T5 when the config has an "instruct" stage, else the pretrained one.
  nlohmann::json base_model_key() const;
  int64_t instruction_steps() const;
  // text.instruct.max_input_tokens, else max_input_tokens(): instructions are longer than prefix-form inputs.
  int64_t instruct_input_tokens() const;
  std::string instruct_source() const;   // "instruct" or "train" (text_instruct.cpp)
  nlohmann::json instruction_form_accuracy(const T5Logits& logits) const;   // text_instruct.cpp
  void tokenize_tasks();

  nlohmann::json config_;
  uint64_t seed_;
  SuiteContext ctx_;
  std::vector<TextTaskData> tasks_;
  std::shared_ptr<Tokenizer> tokenizer_;
  nn::T5Config model_config_;
  StateDict pretrained_;                                            // the pretrained weights
  std::map<std::string, std::vector<StateDict>> finetuned_;        // mode -> per task
  std::map<std::string, std::vector<double>> single_task_test_;    // mode -> per task
  // Calibration priors by (model fingerprint, task): a few doubles each, kept for the suite's life.
  mutable std::map<std::pair<StateFingerprint, int>, std::vector<double>> priors_;
  mutable int64_t prior_reads_ = 0;
  mutable std::mutex priors_mutex_;
};

}  // namespace linfuse::experiments
