// Stage "text/instruct": the "Flan" of Flan-T5, in miniature (TextSuite::instruction_tune).
//
// Why: the paper fine-tunes Flan-T5, a T5 that after span-corruption pretraining was instruction-tuned on a
// large mixture of tasks, GLUE's training sets among them; its zero-shot GLUE scores are therefore well above
// chance, and fine-tuning starts from a model that already answers with label words. A T5 pretrained by span
// corruption alone puts nearly all of its first decoder step on the sentinel <extra_id_0> (every pretraining
// target starts with it): label words start at log-probability about -12 to -16, zero-shot is at chance, and
// a linearized model (f0 + J dphi) cannot climb out of that in a short run (measured: the L-LoRA modes'
// training loss stayed at 2-7).
//
// What: multitask training of the whole T5 on a mixture of every task, before any per-task fine-tuning.
// The mixture's source (config "source"):
//   "instruct" (the default): each task's instruct split whole (text_tasks.h; data.instruct examples a task),
//     built from sentences that fine-tuning and evaluation never see, in the instruction form
//     (text_instructions.h: "Is the following sentence grammatical? ..." -> "yes"; a share label_word_share
//     of them offers the task's label words as the answers). As in the paper, where Flan-T5's mixture was not
//     the fine-tuning data and its templates were not peta's prefixes, zero-shot on the prefix form then
//     depends on transfer and fine-tuning has something left to learn.
//   "train": the first examples_per_task of a seeded permutation of each task's train split, in the prefix
//     form: the suite before the instruct split existed. Measured (README, docs/findings-text.md): a long
//     tuning on it leaves fine-tuning nothing to add, since fine-tuning then sees the same examples again.
// Validation and test examples are never seen. The result replaces the pretrained model for zero-shot
// scoring, fine-tuning and merging: "zero-shot" then means what it means for Flan-T5 in the paper (no
// task-specific fine-tuning).
//
//   A share "prefix_share" (default 0) of the instruct split stays in the task-prefix form instead, answered by
//     the label word: the model then sees the form it will be fine-tuned and evaluated in, on other sentences
//     (Flan-T5's mixture holds GLUE's own training sets; docs/findings-text.md measures what it changes).
// Config section "instruct": {"steps", "batch_size", "learning_rate", "source", "label_word_share", "prefix_share",
// "examples_per_task" (source "train" only), "max_input_tokens" (default: text.max_input_tokens; an
// instruction is 6-8 tokens longer than the prefix form of its example), "weight_decay", "warmup_fraction",
// "max_grad_norm"}; absent or steps 0: the stage is skipped.
//
// Folder: model.safetensors (Hugging Face's T5 layout), instruct_metrics.json.
#include <algorithm>
#include <limits>

#include "autodiff/tape.h"
#include "experiments/text_instructions.h"
#include "experiments/text_suite.h"
#include "nn/safetensors.h"
#include "peft/finetune.h"

namespace linfuse::experiments {

// How well the tuned T5 follows the instructions themselves: each task's validation examples (sentences the
// mixture never holds) rewritten as yes/no instructions (text_instructions.h), scored by the likelihood of
// the answers, as accuracy (stsb: "yes" iff its score is at least 2.5). Beside the zero-shot scores on the
// prefix form it tells a task the mixture did not teach from one whose skill did not transfer.
nlohmann::json TextSuite::instruction_form_accuracy(const T5Logits& logits) const {
  nlohmann::json out = nlohmann::json::object();
  NoGradGuard no_grad;
  for (size_t t = 0; t < tasks_.size(); ++t) {
    const data::TextTask& task = tasks_[t].task;
    const std::vector<std::string> answers = data::yes_no_answers(task.name);
    std::vector<std::vector<int64_t>> answer_ids;
    for (const std::string& answer : answers) answer_ids.push_back(tokenizer_->encode(answer));
    Candidates candidates = Candidates::from(answer_ids, model_config_.decoder_start_token_id, tokenizer_->eos_id());
    TokenizedSplit split;
    std::vector<int64_t> expected;
    const Generator templates = Generator(seed_ + 37).fork(uint64_t(t));
    const int64_t n = std::min<int64_t>(eval_examples(Split::Validation), int64_t(task.validation.size()));
    for (int64_t i = 0; i < n; ++i) {
      Generator gen = templates.fork(uint64_t(i));
      data::TextExample e = data::instruction_form(task.name, task.validation[size_t(i)], task.label_words, 0.0, gen);
      split.inputs.push_back(tokenizer_->encode(e.input));
      expected.push_back(int64_t(std::find(answers.begin(), answers.end(), e.target) - answers.begin()));
    }
    int64_t correct = 0;
    for (int64_t b = 0; b < n; b += eval_batch()) {
      const int64_t end = std::min(n, b + eval_batch());
      std::vector<int64_t> rows;
      for (int64_t i = b; i < end; ++i) rows.push_back(i);
      std::vector<int64_t> predicted = classify(logits, input_batch(split, rows, instruct_input_tokens()), candidates);
      for (int64_t i = b; i < end; ++i) correct += predicted[size_t(i - b)] == expected[size_t(i)];
    }
    out[task.name] = n > 0 ? double(correct) / double(n) : 0.0;
  }
  return out;
}

nlohmann::json TextSuite::instruct_key() const {
  return {{"pretrain", pretrain_key()}, {"instruct", config_.value("instruct", nlohmann::json::object())},
          {"tasks", config_["tasks"]}, {"data", config_["data"]}, {"max_input_tokens", max_input_tokens()}};
}

nlohmann::json TextSuite::base_model_key() const {
  return instruction_steps() > 0 ? instruct_key() : pretrain_key();
}

int64_t TextSuite::instruct_input_tokens() const {
  const nlohmann::json instruct = config_.value("instruct", nlohmann::json::object());
  if (!instruct.contains("max_input_tokens") || instruct["max_input_tokens"].is_null()) return max_input_tokens();
  return instruct["max_input_tokens"].get<int64_t>();
}

std::string TextSuite::instruct_source() const {
  const std::string source = config_.value("instruct", nlohmann::json::object()).value("source", std::string("instruct"));
  if (source != "instruct" && source != "train")
    throw std::invalid_argument("[text instruct] text.instruct.source must be \"instruct\" (the instruct split) or \"train\" "
                                "(the training examples), got \"" + source + "\"");
  return source;
}

int64_t TextSuite::instruction_steps() const {
  return config_.contains("instruct") ? config_["instruct"].value("steps", int64_t(0)) : 0;
}

void TextSuite::instruction_tune(nlohmann::json& results) {
  if (instruction_steps() <= 0) return;
  StageTimer timer(ctx_, "text/instruct");
  const nlohmann::json& s = config_["instruct"];
  nlohmann::json key = instruct_key();
  auto dir = ctx_.cache.folder("text/instruct", key);
  if (!ctx_.cache.done("text/instruct", key)) {
    const std::string source = instruct_source();
    const bool from_train = source == "train";
    // The mixture: per task, the whole instruct split, or the first examples_per_task training examples of a
    // seeded permutation.
    const int64_t per_task = from_train ? s.value("examples_per_task", int64_t(300)) : std::numeric_limits<int64_t>::max();
    TokenizedSplit mixture;
    for (size_t t = 0; t < tasks_.size(); ++t) {
      const TokenizedSplit& part = from_train ? tasks_[t].train : tasks_[t].instruct;
      std::vector<int64_t> order = Generator(seed_ + 29).fork(uint64_t(t)).permutation(int64_t(part.inputs.size()));
      for (int64_t i = 0; i < std::min<int64_t>(per_task, int64_t(order.size())); ++i) {
        mixture.inputs.push_back(part.inputs[size_t(order[size_t(i)])]);
        mixture.targets.push_back(part.targets[size_t(order[size_t(i)])]);
      }
    }
    if (mixture.inputs.empty())
      throw std::invalid_argument(from_train ? "[text instruct] the mixture is empty: set text.instruct.examples_per_task > 0"
                                             : "[text instruct] the instruct split is empty: set text.data.instruct > 0 (examples a "
                                               "task), or text.instruct.source=train to tune on the training examples");
    nlohmann::json section = s;
    section["learning_rates"] = {{"full", s.value("learning_rate", 1e-3)}};
    peft::FinetuneConfig config = finetune_config(section, peft::FinetuneMode::Full, seed_ * 1000 + 999);
    config.progress_label = "text: instruction tuning T5 (" + std::to_string(mixture.inputs.size()) + " examples of " +
                            std::to_string(tasks_.size()) + " tasks)";
    auto model = pretrained_copy();
    peft::PreparedModel prepared(*model, {"*"}, config);
    T5Logits logits = t5_logits(*model);
    const int64_t batch = s.value("batch_size", int64_t(32));
    EpochOrder order(Generator(seed_ + 31), int64_t(mixture.inputs.size()));
    peft::FinetuneResult r = peft::finetune(prepared, config, [&](int64_t step) {
      std::vector<int64_t> rows = order.batch_rows(step, batch);
      return teacher_forced_loss(logits, input_batch(mixture, rows, instruct_input_tokens()), target_batch(mixture, rows),
                                 model_config_.decoder_start_token_id);
    });
    model->eval();
    save_safetensors((dir / "model.safetensors").string(), model->state_dict());
    const double final_loss = final_loss_of(r.losses);
    write_json(dir / "instruct_metrics.json", {{"steps", config.steps}, {"examples", mixture.inputs.size()}, {"source", source},
                                               {"examples_per_task", mixture.inputs.size() / tasks_.size()}, {"first_loss", r.losses.front()},
                                               {"final_loss", final_loss}, {"seconds", r.seconds}});
    ctx_.cache.mark_done("text/instruct", key);
    ctx_.log("text: instruction-tuned T5 on " + std::to_string(mixture.inputs.size()) + " examples (" + source + " split), loss " +
             std::to_string(r.losses.front()).substr(0, 5) + " -> " + std::to_string(final_loss).substr(0, 5) + " (" +
             std::to_string(int(r.seconds)) + " s)");
  }
  pretrained_ = load_safetensors((dir / "model.safetensors").string());
  results["instruct"] = read_json(dir / "instruct_metrics.json");
  results["instruct"].erase("seconds");   // times belong to manifest.json, not to results.json
  auto tuned = pretrained_copy();
  results["instruct"]["instruction_form_validation"] = instruction_form_accuracy(t5_logits(*tuned));
  ctx_.log("text: the instruction-tuned T5 on validation examples written as yes/no instructions: " +
           results["instruct"]["instruction_form_validation"].dump());
}

}  // namespace linfuse::experiments
