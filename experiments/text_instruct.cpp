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
// What: multitask training of the whole T5 on a mixture of every task's training examples (the first
// `examples_per_task` of a seeded permutation of each task's train split, as Flan samples from its tasks'
// training sets), in the tasks' own text-to-text format, before any per-task fine-tuning. Validation and test
// examples are never seen. The result replaces the pretrained model for zero-shot scoring, fine-tuning and
// merging: "zero-shot" then means what it means for Flan-T5 in the paper (no task-specific fine-tuning).
//
// Config section "instruct": {"steps", "batch_size", "learning_rate", "examples_per_task", "weight_decay",
// "warmup_fraction", "max_grad_norm"}; absent or steps 0: the stage is skipped.
//
// Folder: model.safetensors (Hugging Face's T5 layout), instruct_metrics.json.
#include "autodiff/tape.h"
#include "experiments/text_suite.h"
#include "nn/safetensors.h"
#include "peft/finetune.h"

namespace linfuse::experiments {

nlohmann::json TextSuite::instruct_key() const {
  return {{"pretrain", pretrain_key()}, {"instruct", config_.value("instruct", nlohmann::json::object())},
          {"tasks", config_["tasks"]}, {"data", config_["data"]}, {"max_input_tokens", max_input_tokens()}};
}

nlohmann::json TextSuite::base_model_key() const {
  return instruction_steps() > 0 ? instruct_key() : pretrain_key();
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
    // The mixture: per task, the first examples_per_task training examples of a seeded permutation.
    const int64_t per_task = s.value("examples_per_task", int64_t(300));
    TokenizedSplit mixture;
    for (size_t t = 0; t < tasks_.size(); ++t) {
      const TokenizedSplit& train = tasks_[t].train;
      std::vector<int64_t> order = Generator(seed_ + 29).fork(uint64_t(t)).permutation(int64_t(train.inputs.size()));
      for (int64_t i = 0; i < std::min<int64_t>(per_task, int64_t(order.size())); ++i) {
        mixture.inputs.push_back(train.inputs[size_t(order[size_t(i)])]);
        mixture.targets.push_back(train.targets[size_t(order[size_t(i)])]);
      }
    }
    if (mixture.inputs.empty())
      throw std::invalid_argument("[text instruct] the mixture is empty: set text.instruct.examples_per_task > 0");
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
      return teacher_forced_loss(logits, input_batch(mixture, rows), target_batch(mixture, rows), model_config_.decoder_start_token_id);
    });
    model->eval();
    save_safetensors((dir / "model.safetensors").string(), model->state_dict());
    const double final_loss = final_loss_of(r.losses);
    write_json(dir / "instruct_metrics.json", {{"steps", config.steps}, {"examples", mixture.inputs.size()},
                                               {"examples_per_task", per_task}, {"first_loss", r.losses.front()},
                                               {"final_loss", final_loss}, {"seconds", r.seconds}});
    ctx_.cache.mark_done("text/instruct", key);
    ctx_.log("text: instruction-tuned T5 on " + std::to_string(mixture.inputs.size()) + " training examples, loss " +
             std::to_string(r.losses.front()).substr(0, 5) + " -> " + std::to_string(final_loss).substr(0, 5) + " (" +
             std::to_string(int(r.seconds)) + " s)");
  }
  pretrained_ = load_safetensors((dir / "model.safetensors").string());
  results["instruct"] = read_json(dir / "instruct_metrics.json");
  results["instruct"].erase("seconds");   // times belong to manifest.json, not to results.json
}

}  // namespace linfuse::experiments
