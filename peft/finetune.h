#pragma once
// One fine-tuning entry point for the five modes of the study, for any model:
//   full          every selected weight trains (the paper's "full fine-tuning")
//   linear-full   the network linearized in every selected weight (tangent-space fine-tuning)
//   lora          LoRA adapters on the selected Linear layers
//   l-lora        LoRA, network-level linearization in the adapters (the paper's equation)
//   l-lora-local  LoRA, each adapter layer linearized in its own (A, B) (what the paper's code computes)
// The model is split in two by the caller: `features` (the part that is fine-tuned, and linearized in the
// linear modes: the CLIP image encoder, or the whole T5 up to its logits) and `loss` (what follows: the
// frozen zero-shot head and cross-entropy, or the token cross-entropy).
// AdamW (or SGD) with linear warm-up + cosine decay and gradient clipping; a NaN loss stops training with an error.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "peft/linearized_model.h"
#include "peft/lora.h"

namespace linfuse::peft {

enum class FinetuneMode { Full, LinearFull, Lora, LLora, LLoraLocal };
std::string mode_name(FinetuneMode mode);                  // "full", "linear-full", "lora", "l-lora", "l-lora-local"
FinetuneMode mode_from_name(const std::string& name);
std::vector<FinetuneMode> all_modes();
bool is_lora_mode(FinetuneMode mode);
bool is_linearized_mode(FinetuneMode mode);               // linear-full and l-lora (network level)

struct FinetuneConfig {
  FinetuneMode mode = FinetuneMode::Full;
  LoraConfig lora;                  // used by the LoRA modes (its mode field is set from `mode`)
  int64_t steps = 100;
  double learning_rate = 1e-4;
  double weight_decay = 0.1;
  double warmup_fraction = 0.1;
  double max_grad_norm = 1.0;
  // "adamw" (the paper's) or "sgd" (momentum 0.9, weight decay added to the gradient). Adam moves every
  // coordinate by about the learning rate whatever its gradient's size; SGD's step is the gradient itself,
  // which for a linear layer lies in the span of the inputs it saw (the task's own inputs).
  std::string optimizer = "adamw";
  uint64_t seed = 0;                // data order, dropout; the adapter init has its own lora.init_seed
  std::string progress_label;       // shown on the terminal's progress line (empty: no progress line)

  // Throws std::invalid_argument naming the setting when one is out of range: steps >= 1, a finite
  // learning rate > 0, weight decay >= 0, warmup fraction in [0, 1], a finite max grad norm > 0, a known optimizer.
  void validate() const;
};

// The model prepared for a mode: adapters attached, parameters frozen or linearized. It owns the
// linearization and knows which tensors train and how to evaluate the model in that mode.
class PreparedModel {
 public:
  // `trainable_patterns`: the parameters that train in the full modes and whose Linear layers get LoRA
  // adapters in the LoRA modes (e.g. {"vision_model.*", "visual_projection.*"}).
  PreparedModel(nn::Module& model, const std::vector<std::string>& trainable_patterns, const FinetuneConfig& config);

  // Output of the fine-tuned part for one batch: `features` run as is, or linearized (f0 + J (phi - phi0)).
  Tensor forward(const std::function<Tensor()>& features);

  // The same with the trainable part temporarily holding `state` (by name; its tensors may carry gradients,
  // e.g. AdaMerging's coefficient-weighted sums), so the output is differentiable with respect to them.
  Tensor forward_with(const StateDict& state, const std::function<Tensor()>& features);

  std::vector<Tensor> trainable_tensors() const;   // what the optimizer updates
  // The trainable state by parameter name (phi for the linearized modes), copies; and its starting point.
  StateDict trainable_state() const;
  const StateDict& initial_state() const { return initial_; }
  // Loads a trainable state (fine-tuned or merged) into the model (or into phi for the linearized modes).
  void load_trainable_state(const StateDict& state);
  int64_t num_trainable() const;
  FinetuneMode mode() const { return mode_; }
  nn::Module& module() { return model_; }

 private:
  nn::Module& model_;
  FinetuneMode mode_;
  std::unique_ptr<LinearizedModel> linearized_;
  std::vector<nn::Module::NamedTensor> trainable_;   // the non-linearized modes' trainable parameters
  StateDict initial_;
};

struct FinetuneResult {
  std::vector<double> losses;   // per step
  double seconds = 0;
  int64_t trainable_parameters = 0;
};

// Trains `prepared` for config.steps steps: each step calls batch_loss(step, forward) where `forward`
// wraps the fine-tuned part (use prepared.forward) and batch_loss returns the minibatch's scalar loss.
FinetuneResult finetune(PreparedModel& prepared, const FinetuneConfig& config,
                        const std::function<Tensor(int64_t step)>& batch_loss);

}  // namespace linfuse::peft
