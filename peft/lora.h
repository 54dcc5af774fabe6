#pragma once
// LoRA (Hu et al. 2021) as Hugging Face PEFT implements it, attached to nn::Linear layers through their
// adapter hook:  y = W0 x + b + s * B A dropout(x),  A (r, in), B (out, r), s = alpha / r (rsLoRA:
// alpha / sqrt(r)). Parameter names follow PEFT: "<module>.lora_A.weight", "<module>.lora_B.weight".
//
// Two forward modes:
//   Standard      the LoRA above.
//   LocalLinear   layer-level L-LoRA, what the paper's published code computes: the layer linearized in its
//                 own (A, B) around (A0, B0):  y = W0 x + b + s (B A0 + B0 A - B0 A0) x.
//                 With B0 = 0 this is LoRA with A frozen at A0 (the gradient with respect to A is zero).
// The network-level L-LoRA of the paper's equation is not a layer mode: it linearizes the whole network in
// the adapter parameters (peft/linearized_model.h).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/module.h"

namespace linfuse::peft {

enum class LoraInit {
  PeftDefault,   // A kaiming-uniform (a = sqrt 5, i.e. U(-1/sqrt(in), 1/sqrt(in))), B = 0  (PEFT's default)
  Gaussian,      // A ~ N(0, 1/r), B = 0                                                   (PEFT's "gaussian")
  BothRandom,    // A as PeftDefault, B ~ U(-1/sqrt(r), 1/sqrt(r)): B0 != 0 makes the linearization non-trivial
};
std::string lora_init_name(LoraInit init);
LoraInit lora_init_from_name(const std::string& name);   // "peft", "gaussian", "both-random"

enum class LoraMode { Standard, LocalLinear };

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16;
  bool use_rslora = false;   // s = alpha / sqrt(r) instead of alpha / r
  double dropout = 0.0;      // on the adapter input
  // Module names to wrap: globs ("*.q_proj"), regexes ("re:..."), or "all-linear"; a module is wrapped when
  // it is an nn::Linear, matches a target and matches no exclusion.
  std::vector<std::string> target_modules = {"all-linear"};
  std::vector<std::string> exclude_modules;
  LoraInit init = LoraInit::PeftDefault;
  uint64_t init_seed = 0;    // separate from the training seed: every task starts from the same phi0
  // BothRandom only: subtract s B0 A0 from W0 so that the adapted model starts exactly at the base model.
  bool compensate_base = true;
  LoraMode mode = LoraMode::Standard;
  uint64_t dropout_seed = 0;

  double scaling() const;
};

class LoraAdapter : public nn::LinearAdapter {
 public:
  // Draws A0, B0 for a layer of the given sizes from `init` (a generator forked per module by apply_lora).
  LoraAdapter(int64_t in_features, int64_t out_features, const LoraConfig& config, Generator& init, DType dtype);
  Tensor adapt(const Tensor& x, const Tensor& base_output) override;
  // Standard LoRA without active dropout: x W^T + b + s B A x as one primitive (lora_linear); else adapt().
  Tensor forward_adapted(nn::Linear& base, const Tensor& x) override;
  // The same, with the activation fused into lora_linear where forward_adapted uses it.
  Tensor forward_adapted_activated(nn::Linear& base, const Tensor& x, nn::Activation activation) override;
  // The same, with the residual add fused into lora_linear where forward_adapted uses it.
  Tensor forward_adapted_residual(nn::Linear& base, const Tensor& x, const Tensor& residual) override;
  std::string type_name() const override { return "LoraAdapter"; }

  Tensor delta_weight();   // s B A, (out, in)
  void set_mode(LoraMode mode);   // LocalLinear freezes the current (A, B) as the expansion point (A0, B0)
  LoraMode mode() const { return mode_; }
  bool merged() const { return merged_; }
  // Merging keeps the exact base weight so that unmerging restores it bit for bit.
  void mark_merged(const Tensor& base_weight_before) {
    base_backup_ = base_weight_before;
    merged_ = true;
  }
  Tensor take_base_backup() {
    merged_ = false;
    return std::move(base_backup_);
  }

  double scaling;
  std::shared_ptr<nn::Linear> lora_A, lora_B;   // weights (r, in) and (out, r)
  Tensor A0, B0;   // the expansion point of LocalLinear (copies, not parameters)

 private:
  bool fusable() const;   // whether the adapted layer can be the one primitive lora_linear
  // lora_linear on x (..., in), with the activation or the residual (..., out) fused when given
  Tensor fused_forward(nn::Linear& base, const Tensor& x, std::optional<nn::Activation> activation, const Tensor& residual);
  std::shared_ptr<nn::Dropout> dropout_;
  LoraMode mode_ = LoraMode::Standard;
  bool merged_ = false;
  Tensor base_backup_;
};

// Wraps every targeted Linear of `model` and freezes everything else; returns the wrapped module names in
// model order. Throws if no module matches (listing a few Linear names to help fix the pattern).
std::vector<std::string> apply_lora(nn::Module& model, const LoraConfig& config);
// The adapters of a model by module name.
std::vector<std::pair<std::string, std::shared_ptr<LoraAdapter>>> lora_adapters(nn::Module& model);
// W0 += s B A for every adapter (the adapter then adds nothing); unmerge restores W0 exactly.
void merge_lora(nn::Module& model);
void unmerge_lora(nn::Module& model);
// Removes the adapters (after merge_lora this leaves a plain model with the merged weights).
void remove_lora(nn::Module& model);
void set_lora_mode(nn::Module& model, LoraMode mode);

}  // namespace linfuse::peft
