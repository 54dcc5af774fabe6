#pragma once
// What the vision and text MergeTargets share: a suite's model prepared for one fine-tuning mode, the mode's
// initial state and LoRA scaling, the task list, and the model used for weight-space merges of LoRA modes
// (the plain network for lora and l-lora-local, W0 + Delta W exactly; the network linearized in all its
// weights for l-lora, f(W0) + J_W Delta W).
//
// Suite needs tasks() (each with .task.name), finetuned_state(mode, t) and finetune_config_for(mode);
// Prepared needs a constructor (Suite&, const peft::FinetuneConfig&) and a member `prepared`
// (std::unique_ptr<peft::PreparedModel>).
#include <memory>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/merge_target.h"

namespace linfuse::experiments {

template <class Suite, class Prepared>
class PreparedMergeTarget : public MergeTarget {
 public:
  PreparedMergeTarget(Suite& suite, peft::FinetuneMode mode)
      : suite_(suite), mode_(mode), model_(suite, suite.finetune_config_for(mode)) {
    initial_ = model_.prepared->initial_state();
    if (peft::is_lora_mode(mode)) scaling_ = suite.finetune_config_for(mode).lora.scaling();
  }

  peft::FinetuneMode mode() const override { return mode_; }
  int num_tasks() const override { return int(suite_.tasks().size()); }
  std::string task_name(int t) const override { return suite_.tasks()[size_t(t)].task.name; }
  const StateDict& initial_state() const override { return initial_; }
  const StateDict& finetuned_state(int t) const override { return suite_.finetuned_state(mode_, t); }
  double lora_scaling() const override { return scaling_; }

 protected:
  // The weight-space model holding W0 + delta ("<module>.weight" -> Delta W; other weights stay W0).
  Prepared& weight_space_model_with(const StateDict& delta) {
    if (!weight_space_) {
      peft::FinetuneConfig c = suite_.finetune_config_for(mode_);
      c.mode = mode_ == peft::FinetuneMode::LLora ? peft::FinetuneMode::LinearFull : peft::FinetuneMode::Full;
      weight_space_ = std::make_unique<Prepared>(suite_, c);
      weight_space_initial_ = weight_space_->prepared->initial_state();
    }
    StateDict state;
    for (auto& [name, w0] : weight_space_initial_) {
      if (delta.contains(name)) {
        NoGradGuard no_grad;
        state.insert(name, add(w0, cast(delta.at(name), w0.dtype())));
      } else {
        state.insert(name, w0);
      }
    }
    weight_space_->prepared->load_trainable_state(state);
    return *weight_space_;
  }

  Suite& suite_;
  peft::FinetuneMode mode_;
  Prepared model_;
  StateDict initial_;
  double scaling_ = 0;

 private:
  std::unique_ptr<Prepared> weight_space_;
  StateDict weight_space_initial_;
};

}  // namespace linfuse::experiments
