// The text suite: data and tokens, evaluation, zero-shot scores and cached fine-tuning in every mode
// (pretraining is in text_pretrain.cpp, the merge target in text_target.cpp).
#include "experiments/text_suite.h"

#include <cmath>
#include <cstdio>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/text_baseline.h"
#include "nn/safetensors.h"

namespace linfuse::experiments {

namespace {

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100 * x);
  return b;
}

std::vector<const std::vector<int64_t>*> pick(const std::vector<std::vector<int64_t>>& sequences, const std::vector<int64_t>& rows) {
  std::vector<const std::vector<int64_t>*> out;
  for (int64_t r : rows) out.push_back(&sequences.at(size_t(r)));
  return out;
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

}  // namespace

int64_t stsb_class(double score) { return std::llround(2 * std::clamp(score, kStsbLow, kStsbHigh)); }

std::string stsb_answer(double score) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f", 0.5 * double(stsb_class(score)));
  return text;
}

std::vector<double> expected_scores(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates) {
  NoGradGuard no_grad;
  std::vector<double> p = softmax(candidate_scores(logits, inputs, candidates, true), -1).to_vector<double>();
  const int64_t count = int64_t(candidates.sequences.size()), batch = int64_t(p.size()) / count;
  std::vector<double> out(size_t(batch), 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < count; ++c) out[size_t(b)] += p[size_t(b * count + c)] * (kStsbHigh - kStsbLow) * double(c) / double(count - 1);
  return out;
}

// The data's seed and sources ("fortunes_dir" and "words_file" may override Debian's paths).
data::TextOptions TextSuite::text_options() const {
  data::TextOptions o;
  o.seed = seed_;
  o.fortunes_dir = config_.value("fortunes_dir", o.fortunes_dir);
  o.words_file = config_.value("words_file", o.words_file);
  return o;
}

FinetuneObjective finetune_objective(const nlohmann::json& finetune_section) {
  const std::string name = finetune_section.value("objective", std::string("sequence"));
  if (name == "sequence") return FinetuneObjective::sequence;
  if (name == "answers") return FinetuneObjective::answers;
  throw std::invalid_argument("[config] text.finetune.objective must be \"sequence\" (token cross-entropy of the answer) or "
                              "\"answers\" (cross-entropy over the task's own answers), got \"" + name + "\"");
}

Calibration evaluation_calibration(const nlohmann::json& evaluation_section) {
  const std::string name = evaluation_section.value("calibration", std::string("none"));
  if (name == "none") return Calibration::none;
  if (name == "validation_mean") return Calibration::validation_mean;
  throw std::invalid_argument("[config] text.evaluation.calibration must be \"none\" (the most likely answer) or "
                              "\"validation_mean\" (answer log-probabilities less their mean over validation inputs), got \"" +
                              name + "\"");
}

TextSuite::TextSuite(nlohmann::json config, uint64_t seed, SuiteContext context)
    : config_(std::move(config)), seed_(seed), ctx_(std::move(context)) {}

std::vector<peft::FinetuneMode> TextSuite::modes() const {
  std::vector<peft::FinetuneMode> out;
  for (const auto& m : config_["modes"]) out.push_back(peft::mode_from_name(m.get<std::string>()));
  return out;
}

int64_t TextSuite::eval_examples(Split split) const {
  return split == Split::Validation ? config_["evaluation"].value("validation_examples", int64_t(100))
                                    : config_["evaluation"].value("test_examples", int64_t(200));
}
int64_t TextSuite::eval_batch() const { return config_["evaluation"].value("batch_size", int64_t(100)); }
int64_t TextSuite::max_input_tokens() const { return config_.value("max_input_tokens", int64_t(64)); }
bool TextSuite::calibrated() const {
  return evaluation_calibration(config_["evaluation"]) == Calibration::validation_mean;
}

peft::FinetuneConfig TextSuite::finetune_config_for(peft::FinetuneMode mode) const {
  return finetune_config(config_["finetune"], mode, seed_);
}

const std::vector<double>& TextSuite::single_task_test(peft::FinetuneMode mode) const {
  return single_task_test_.at(peft::mode_name(mode));
}

std::vector<int64_t> TextSuite::test_examples() const {
  std::vector<int64_t> out;
  for (const auto& task : tasks_) out.push_back(std::min(eval_examples(Split::Test), int64_t(task.test.inputs.size())));
  return out;
}

std::vector<double> TextSuite::learned_thresholds(double margin_se) const {
  std::vector<double> out;
  std::vector<int64_t> examples = test_examples();
  for (size_t t = 0; t < tasks_.size(); ++t)
    out.push_back(learned_threshold(tasks_[t].regression ? 0 : int64_t(tasks_[t].task.label_words.size()), examples[t], margin_se));
  return out;
}

const StateDict& TextSuite::finetuned_state(peft::FinetuneMode mode, int task) const {
  return finetuned_.at(peft::mode_name(mode)).at(size_t(task));
}

std::unique_ptr<nn::T5ForConditionalGeneration> TextSuite::pretrained_copy() const {
  Generator unused(0);   // the weights are overwritten by the pretrained ones
  auto model = std::make_unique<nn::T5ForConditionalGeneration>(model_config_, unused);
  model->load_state_dict(pretrained_);
  model->eval();
  return model;
}

TokenBatch TextSuite::input_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows) const {
  return pad_batch(pick(split.inputs, rows), tokenizer_->pad_id(), max_input_tokens());
}
TokenBatch TextSuite::input_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows, int64_t max_tokens) const {
  return pad_batch(pick(split.inputs, rows), tokenizer_->pad_id(), max_tokens);
}
TokenBatch TextSuite::input_batch(const TokenizedSplit& split, int64_t begin, int64_t end) const {
  return input_batch(split, range(begin, end));
}
TokenBatch TextSuite::target_batch(const TokenizedSplit& split, const std::vector<int64_t>& rows) const {
  return pad_batch(pick(split.targets, rows), tokenizer_->pad_id());
}

void TextSuite::load_data() {
  StageTimer timer(ctx_, "text/data");
  data::TextOptions o = text_options();
  const auto& d = config_["data"];
  o.train = d.value("train", o.train);
  o.validation = d.value("validation", o.validation);
  o.test = d.value("test", o.test);
  o.instruct = d.value("instruct", o.instruct);
  const nlohmann::json instruct = config_.value("instruct", nlohmann::json::object());
  o.instruct_label_word_share = instruct.value("label_word_share", o.instruct_label_word_share);
  o.instruct_prefix_share = instruct.value("prefix_share", o.instruct_prefix_share);
  for (const auto& name : config_["tasks"]) {
    TextTaskData t;
    t.task = data::load_text_task(name.get<std::string>(), o);
    t.regression = t.task.metric == "spearman";
    tasks_.push_back(std::move(t));
  }
  ctx_.log("text: loaded " + std::to_string(tasks_.size()) + " tasks");
}

// Token ids of every example, and each task's candidate answers (after the tokenizer exists).
void TextSuite::tokenize_tasks() {
  auto tokenize = [&](const std::vector<data::TextExample>& examples, TokenizedSplit& out) {
    for (const auto& e : examples) {
      out.inputs.push_back(tokenizer_->encode(e.input));
      // stsb: the answer is the score rounded to the nearest 0.5 ("3.4" -> "3.5"), one of the 11 candidates,
      // as T5 rounds STS-B to 0.2 steps; the gold score for Spearman's rho stays the unrounded one.
      out.targets.push_back(tokenizer_->encode(e.label >= 0 ? e.target : stsb_answer(e.score)));
      out.labels.push_back(e.label >= 0 ? e.label : stsb_class(e.score));
      out.scores.push_back(e.score);
    }
  };
  for (auto& t : tasks_) {
    tokenize(t.task.train, t.train);
    tokenize(t.task.validation, t.validation);
    tokenize(t.task.test, t.test);
    for (const auto& e : t.task.instruct) {   // instructions: the target is the answer as written
      t.instruct.inputs.push_back(tokenizer_->encode(e.input));
      t.instruct.targets.push_back(tokenizer_->encode(e.target));
    }
    std::vector<std::vector<int64_t>> answers;
    if (t.regression) {
      for (int k = 0; k <= 10; ++k) answers.push_back(tokenizer_->encode(stsb_answer(0.5 * k)));
    } else {
      for (const auto& word : t.task.label_words) answers.push_back(tokenizer_->encode(word));
    }
    t.candidates = Candidates::from(std::move(answers), model_config_.decoder_start_token_id, tokenizer_->eos_id());
    std::string pieces;
    for (const auto& c : t.candidates.sequences) {
      pieces += pieces.empty() ? "" : " | ";
      for (int64_t id : c) pieces += tokenizer_->piece(id) + " ";
    }
    ctx_.log("text: " + t.task.name + " answers " + pieces +
             (t.candidates.first_tokens_distinct ? "(first tokens distinct: scored at the first decoder step)" : "(scored as full sequences)"));
  }
}

std::vector<double> TextSuite::answer_log_probs(const T5Logits& logits, int t, const TokenizedSplit& split, int64_t examples) const {
  const TextTaskData& task = tasks_[size_t(t)];
  const int64_t n = std::min<int64_t>(examples, int64_t(split.inputs.size()));
  NoGradGuard no_grad;
  std::vector<double> out;
  for (int64_t b = 0; b < n; b += eval_batch()) {
    // stsb's answers share first tokens: scored as whole sequences, as expected_scores and classify do
    Tensor scores = candidate_scores(logits, input_batch(split, b, std::min(n, b + eval_batch())), task.candidates, task.regression);
    std::vector<double> lp = log_softmax(scores, -1).to_vector<double>();   // (B, C) row-major
    out.insert(out.end(), lp.begin(), lp.end());
  }
  return out;
}

std::vector<double> TextSuite::calibrated_log_probs(const T5Logits& logits, int t, const TokenizedSplit& split,
                                                    int64_t examples, const StateFingerprint* model) const {
  const TextTaskData& task = tasks_[size_t(t)];
  const size_t count = task.candidates.sequences.size();
  const int64_t prior_examples = std::min<int64_t>(eval_examples(Split::Validation), int64_t(task.validation.inputs.size()));
  std::vector<double> lp = answer_log_probs(logits, t, split, examples);
  std::vector<double> prior;
  if (model) {
    std::lock_guard<std::mutex> lock(priors_mutex_);
    if (auto it = priors_.find({*model, t}); it != priors_.end()) {
      prior = it->second;
      ++prior_reads_;
    }
  }
  if (prior.empty()) {
    // the prior's inputs: the rows just scored when they are exactly the validation inputs it reads (the same pass,
    // batch for batch, so the same bits), else a pass of their own
    const bool same_rows = &split == &task.validation && int64_t(lp.size() / count) == prior_examples;
    const std::vector<double> validation = same_rows ? lp : answer_log_probs(logits, t, task.validation, prior_examples);
    prior.assign(count, 0.0);
    for (size_t i = 0; i < size_t(prior_examples) * count; ++i) prior[i % count] += validation[i] / double(prior_examples);
    if (model) {
      std::lock_guard<std::mutex> lock(priors_mutex_);
      priors_[{*model, t}] = prior;
    }
  }
  for (size_t i = 0; i < lp.size(); ++i) lp[i] -= prior[i % count];
  return lp;
}

int64_t TextSuite::remembered_prior_reads() const {
  std::lock_guard<std::mutex> lock(priors_mutex_);
  return prior_reads_;
}

std::vector<int64_t> TextSuite::predict(const T5Logits& logits, int t, const TokenizedSplit& split, int64_t examples,
                                        const StateFingerprint* model) const {
  const TextTaskData& task = tasks_[size_t(t)];
  int64_t n = std::min<int64_t>(examples, int64_t(split.inputs.size()));
  std::vector<int64_t> out;
  if (calibrated()) {
    const size_t count = task.candidates.sequences.size();
    std::vector<double> lp = calibrated_log_probs(logits, t, split, n, model);
    for (size_t row = 0; row < lp.size() / count; ++row) {
      auto first = lp.begin() + long(row * count);
      out.push_back(int64_t(std::max_element(first, first + long(count)) - first));   // the first on ties
    }
    return out;
  }
  NoGradGuard no_grad;
  for (int64_t b = 0; b < n; b += eval_batch()) {
    // the most likely answer (stsb: the class of the most likely score)
    std::vector<int64_t> p = classify(logits, input_batch(split, b, std::min(n, b + eval_batch())), task.candidates);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

double TextSuite::evaluate(const T5Logits& logits, int t, Split which, const StateFingerprint* model) const {
  const TextTaskData& task = tasks_[size_t(t)];
  const TokenizedSplit& split = task.split(which);
  int64_t n = std::min<int64_t>(eval_examples(which), int64_t(split.inputs.size()));
  NoGradGuard no_grad;
  if (task.regression) {
    std::vector<double> predicted;
    if (calibrated()) {
      // the expected score under the calibrated distribution over the answers 0.0, 0.5, ..., 5.0
      const size_t count = task.candidates.sequences.size();
      std::vector<double> lp = calibrated_log_probs(logits, t, split, n, model);
      for (size_t row = 0; row < lp.size() / count; ++row) {
        const auto first = lp.begin() + long(row * count);
        const double top = *std::max_element(first, first + long(count));
        double z = 0, e = 0;
        for (size_t c = 0; c < count; ++c) {
          const double w = std::exp(first[long(c)] - top);
          z += w;
          e += w * (kStsbHigh - kStsbLow) * double(c) / double(count - 1);
        }
        predicted.push_back(e / z);
      }
    } else {
      for (int64_t b = 0; b < n; b += eval_batch()) {
        std::vector<double> p = expected_scores(logits, input_batch(split, b, std::min(n, b + eval_batch())), task.candidates);
        predicted.insert(predicted.end(), p.begin(), p.end());
      }
    }
    return spearman_correlation(predicted, std::vector<double>(split.scores.begin(), split.scores.begin() + n));
  }
  std::vector<int64_t> predicted = predict(logits, t, split, n, model);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += predicted[size_t(i)] == split.labels[size_t(i)];
  return double(correct) / double(n);
}

void TextSuite::zero_shot(nlohmann::json& results) {
  StageTimer timer(ctx_, "text/zero_shot");
  auto model = pretrained_copy();
  T5Logits logits = t5_logits(*model);
  double total = 0;
  for (size_t t = 0; t < tasks_.size(); ++t) {
    double score = evaluate(logits, int(t), Split::Test);
    results["zero_shot"][tasks_[t].task.name] = score;
    total += score;
  }
  ctx_.log("text: zero-shot average " + pct(total / double(tasks_.size())) +
           (instruction_steps() > 0 ? " (the instruction-tuned T5, as the paper's Flan-T5)"
                                    : " (span corruption alone never asks for label words: near chance is expected)"));
}

void TextSuite::finetune(peft::FinetuneMode mode, nlohmann::json& results) {
  std::string mode_name = peft::mode_name(mode);
  StageTimer timer(ctx_, "text/finetune/" + mode_name);
  peft::FinetuneConfig fc = finetune_config_for(mode);
  int64_t batch = config_["finetune"]["batch_size"].get<int64_t>();
  const FinetuneObjective objective = finetune_objective(config_["finetune"]);
  std::vector<std::string> names;
  for (const auto& task : tasks_) names.push_back(task.task.name);
  auto key_of = [&](size_t t) -> nlohmann::json {
    return {{"pretrain", base_model_key()}, {"finetune", config_["finetune"]}, {"mode", mode_name},
            {"task", names[t]}, {"data", config_["data"]}, {"evaluation", config_["evaluation"]},
            {"max_input_tokens", max_input_tokens()}};
  };
  // Each task's run is independent (its own model copy, data order and seed), so runs go side by side.
  auto train = [&](size_t t, const std::filesystem::path& dir, bool show_progress) {
    const TextTaskData& task = tasks_[t];
    auto model = pretrained_copy();
    peft::FinetuneConfig config = fc;
    config.seed = seed_ * 1000 + t;
    if (show_progress) config.progress_label = "text: " + mode_name + " " + task.task.name;
    // The whole T5 is the fine-tuned part; its logits are what the linear modes linearize.
    peft::PreparedModel prepared(*model, {"*"}, config);
    T5Logits plain = t5_logits(*model);
    T5Logits logits = [&](const Tensor& ids, const Tensor& mask, const Tensor& decoder_ids, const Tensor& rows) {
      return prepared.forward([&] { return plain(ids, mask, decoder_ids, rows); });
    };
    // The same data order in every mode: a permutation per epoch from a generator of the task.
    EpochOrder order(Generator(seed_ + 17).fork(uint64_t(t)), int64_t(task.train.inputs.size()));
    peft::FinetuneResult r = peft::finetune(prepared, config, [&](int64_t step) {
      std::vector<int64_t> rows = order.batch_rows(step, batch);
      if (objective == FinetuneObjective::answers) {
        // -log softmax over the task's own answers of their scores: only the answers' differences count.
        std::vector<int64_t> labels;
        for (int64_t row : rows) labels.push_back(task.train.labels[size_t(row)]);
        return answers_loss(logits, input_batch(task.train, rows), task.candidates, labels);
      }
      return teacher_forced_loss(logits, input_batch(task.train, rows), target_batch(task.train, rows),
                                 model_config_.decoder_start_token_id);
    });
    model->eval();
    double val = evaluate(logits, int(t), Split::Validation);
    double test = evaluate(logits, int(t), Split::Test);
    save_finetuned_run(dir, prepared, r, mode_name, task.task.name, val, test);
    return "text: " + mode_name + " " + task.task.name + ": test " + pct(test) + " (loss " +
           std::to_string(r.losses.front()).substr(0, 5) + " -> " + std::to_string(r.losses.back()).substr(0, 5) +
           ", " + std::to_string(int(r.seconds)) + " s)";
  };
  finetune_tasks(ctx_, "text", mode_name, names, key_of, train, finetuned_[mode_name], single_task_test_[mode_name], results);
}

// The word-feature baseline (text_baseline.h) of every task: how learnable the task is from the same
// training split without any grasp of language. Under a second for the small preset; not cached.
void TextSuite::feature_baseline(nlohmann::json& results) {
  StageTimer timer(ctx_, "text/baseline");
  std::string line;
  for (const auto& t : tasks_) {
    TextBaselineResult r = text_feature_baseline(t.task, eval_examples(Split::Test));
    results["baseline"][t.task.name] = r.test;
    results["baseline_features"][t.task.name] = r.features;
    line += (line.empty() ? " " : ", ") + t.task.name + " " + pct(r.test);
  }
  ctx_.log("text: word-feature baseline (logistic regression on word overlap / bag of words):" + line);
}

nlohmann::json TextSuite::prepare() {
  nlohmann::json results;
  load_data();
  const bool shipped = load_base_checkpoint(results);   // the pretrained and instruction-tuned T5, if shipped
  if (!shipped) pretrain(results);
  tokenize_tasks();
  if (!shipped) instruction_tune(results);
  zero_shot(results);
  feature_baseline(results);
  for (peft::FinetuneMode mode : modes()) finetune(mode, results);
  results["tasks"] = config_["tasks"];
  results["modes"] = config_["modes"];
  results["scoring"] =
      calibrated()
          ? "each answer's log-probability (renormalised over the task's answers) less its mean over the task's first " +
                std::to_string(eval_examples(Split::Validation)) +
                " validation inputs, under the same model (calibration: text.evaluation.calibration); the highest wins "
                "(stsb: the expected score under the calibrated probabilities)"
          : std::string("the most likely of the task's answers under the model (stsb: the expected score under their "
                        "probabilities)");
  for (const auto& t : tasks_) results["metric"][t.task.name] = t.task.metric;
  std::vector<int64_t> examples = test_examples();
  for (size_t t = 0; t < tasks_.size(); ++t) results["test_examples"][tasks_[t].task.name] = examples[t];
  const nn::T5Config& c = model_config_;
  auto model = pretrained_copy();
  results["model"] = "tiny T5 (Flan-T5 shaped, " + c.feed_forward_proj + "): d_model " + std::to_string(c.d_model) + ", " +
                     std::to_string(c.num_heads) + " heads of " + std::to_string(c.d_kv) + ", d_ff " + std::to_string(c.d_ff) +
                     ", " + std::to_string(c.num_layers) + "+" + std::to_string(c.num_decoder_layers) +
                     " encoder+decoder blocks, vocab " + std::to_string(c.vocab_size) + ", " +
                     std::to_string(model->num_parameters()) + " parameters";
  return results;
}

}  // namespace linfuse::experiments
