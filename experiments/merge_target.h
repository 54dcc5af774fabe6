#pragma once
// What the merging study needs from a suite (vision or text) in one fine-tuning mode: the task vectors'
// endpoints, a way to score a merged state on a task, and the statistics of the data-driven methods.
// A "state" is always the trainable part of the model in that mode, by parameter name: the fine-tuned
// weights (full), phi (linear-full, l-lora) or the LoRA factors (lora, l-lora, l-lora-local).
#include <cstdint>
#include <string>
#include <vector>

#include "peft/finetune.h"
#include "tensor/state_dict.h"

namespace linfuse::experiments {

enum class Split { Validation, Test };

class MergeTarget {
 public:
  virtual ~MergeTarget() = default;
  virtual peft::FinetuneMode mode() const = 0;
  virtual int num_tasks() const = 0;
  virtual std::string task_name(int task) const = 0;

  virtual const StateDict& initial_state() const = 0;         // theta0 / phi0
  virtual const StateDict& finetuned_state(int task) const = 0;

  // The score (accuracy, or Spearman for regression tasks) of the model holding `state` on `task`'s split.
  virtual double score(const StateDict& state, int task, Split split) = 0;
  // LoRA modes: the score with the base weights replaced by W0 + delta ("<module>.weight" -> Delta W), i.e. a
  // weight-space merge. For l-lora (network level) the delta enters linearly: f(W0) + J_W Delta W.
  virtual double score_weight_space(const StateDict& weight_delta, int task, Split split) = 0;
  virtual double lora_scaling() const = 0;   // s of the adapters (0 outside the LoRA modes)

  // Predictions on the first `examples` validation inputs of `task` (weight disentanglement).
  virtual std::vector<int64_t> predict(const StateDict& state, int task, int64_t examples) = 0;

  // LoraHub's objective: mean cross-entropy on `examples` labelled validation examples of `task`.
  virtual double few_shot_loss(const StateDict& state, int task, int64_t examples) = 0;
  // AdaMerging's objective: mean prediction entropy on a batch of unlabelled validation inputs of `task`,
  // differentiable with respect to the tensors of `state` (which may carry gradients).
  virtual Tensor entropy(const StateDict& state, int task, int64_t batch_index, int64_t batch_size) = 0;
  // Fisher merging: the diagonal empirical Fisher of the fine-tuned model of `task` over the trainable state,
  // from per-example gradients of log p(y|x) with y sampled from the model's own prediction.
  virtual StateDict fisher(int task, int64_t examples) = 0;
  // The outputs the first-order diagnostics (leakage.h) read, on the first `examples` validation inputs of `task`,
  // one row per input: (N, K). Vision: the logits of the task's head (K = its classes). Text: the decoder
  // logits of the steps the task's scoring reads, flattened per input (text_scoring.h, scored_logits).
  virtual Tensor outputs(const StateDict& state, int task, int64_t examples) = 0;
  // Their directional derivative at the initial state: J f(x; state0) direction, (N, K), by forward mode
  // through the mode's forward (for the linearized modes f_lin is linear in phi, so this is f_lin's change).
  // `direction` is state-shaped (a task vector).
  virtual Tensor output_jvp(const StateDict& direction, int task, int64_t examples) = 0;
  // The numbers a prediction is the arg max (or a softmax expectation) of, (N, C), for the centered leakage
  // (leakage.h): the outputs above by default, as a vision head's class logits are; text, the candidates' scores
  // (text_scoring.h, candidate_scores: C = the task's answers) rather than the vocabulary's logits.
  virtual Tensor scores(const StateDict& state, int task, int64_t examples) { return outputs(state, task, examples); }
  // The derivatives the leakage reads, of the outputs (N, K) and of the scores (N, C), at the initial state as
  // output_jvp, from one forward-mode pass where the scores are read off the same model outputs (text: one JVP
  // through the T5, not two). `scores` is undefined (the default) when the scores are the outputs.
  struct OutputJvps {
    Tensor outputs;   // (N, K)
    Tensor scores;    // (N, C), or undefined: the scores are the outputs
  };
  virtual OutputJvps output_and_score_jvp(const StateDict& direction, int task, int64_t examples) {
    return {output_jvp(direction, task, examples), Tensor()};
  }
  // RegMean: the Gram matrices X^T X of the inputs of every Linear layer whose weight is in the state
  // (module name -> (in, in)), on `examples` training inputs of `task` with the fine-tuned model of `task`.
  virtual StateDict grams(int task, int64_t examples) = 0;
};

}  // namespace linfuse::experiments
