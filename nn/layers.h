#pragma once
// Basic layers: Linear (with an adapter hook used by PEFT), Embedding, LayerNorm, RMSNorm, Dropout and the
// activations named as in Hugging Face configs.
#include <memory>
#include <string>

#include "autodiff/ops.h"
#include "nn/module.h"
#include "tensor/random.h"

namespace linfuse::nn {

using Activation = linfuse::Activation;   // autodiff/ops.h: also what linear_activation fuses

// An adapter changes a Linear's output: y = adapt(x, W x + b). Its parameters live in child modules, which
// the Linear registers as its own children, so an adapter's names are "<linear>.<child>.<param>" (for LoRA:
// "q_proj.lora_A.weight", the Hugging Face PEFT layout).
class LinearAdapter : public Module {
 public:
  // x (..., in), base_output (..., out) -> (..., out)
  virtual Tensor adapt(const Tensor& x, const Tensor& base_output) = 0;
  // The adapted layer's output for x: adapt(x, base.forward_base(x)), unless the adapter computes both at once
  // (LoRA does, into one buffer).
  virtual Tensor forward_adapted(class Linear& base, const Tensor& x);
  // activate(activation, forward_adapted(base, x)), unless the adapter fuses the activation too (LoRA does).
  virtual Tensor forward_adapted_activated(class Linear& base, const Tensor& x, Activation activation);
  // add(residual, forward_adapted(base, x)), unless the adapter fuses the residual add too (LoRA does).
  virtual Tensor forward_adapted_residual(class Linear& base, const Tensor& x, const Tensor& residual);
};

// y = x W^T + b with W (out, in), b (out). Initialised like torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& init, DType dtype = DType::F32);
  Tensor forward(const Tensor& x);       // (..., in) -> (..., out)
  Tensor forward_base(const Tensor& x);  // without the adapter
  void set_adapter(std::shared_ptr<LinearAdapter> adapter);   // replaces any previous adapter
  void remove_adapter();
  const std::shared_ptr<LinearAdapter>& adapter() const { return adapter_; }
  std::string type_name() const override { return "Linear"; }

  int64_t in_features, out_features;
  Tensor weight, bias;   // bias undefined when the layer has none

 private:
  std::shared_ptr<LinearAdapter> adapter_;
};

// Rows of `weight` (num, dim) looked up by int64 ids (...) -> (..., dim). Initialised N(0, 1) like torch.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, Generator& init, DType dtype = DType::F32);
  Tensor forward(const Tensor& ids);
  std::string type_name() const override { return "Embedding"; }
  Tensor weight;
};

// Layer normalisation over the last dim with weight (ones) and bias (zeros).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "LayerNorm"; }
  double eps;
  Tensor weight, bias;
};

// T5's layer norm: x / sqrt(mean(x^2) + eps) * weight, no mean subtraction, no bias (T5LayerNorm).
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::F32);
  Tensor forward(const Tensor& x);
  std::string type_name() const override { return "RMSNorm"; }
  double eps;
  Tensor weight;
};

// Inverted dropout with its own seeded generator: in training, each element is zeroed with probability p
// and the survivors scaled by 1/(1-p); identity in eval mode. The same seed and call sequence give the
// same masks.
class Dropout : public Module {
 public:
  explicit Dropout(double p, uint64_t seed = 0);
  Tensor forward(const Tensor& x);   // x itself unless acts()
  bool acts() const { return is_training() && p > 0; }   // whether forward drops anything
  std::string type_name() const override { return "Dropout"; }
  double p;

 private:
  Generator generator_;
};

// Activations by their Hugging Face names: "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" / "gelu_fast"
// (tanh approximation), "quick_gelu", "relu".
Activation activation_from_name(const std::string& name);
std::string activation_name(Activation activation);
using linfuse::activate;   // activate(activation, x): autodiff/ops.h
// activate(activation, layer.forward(x)), as one primitive that applies the activation as the product is stored
// (linear_activation; a LoRA adapter's lora_linear): the same bits, one pass over the output fewer.
Tensor activate_linear(Activation activation, Linear& layer, const Tensor& x);
// add(residual, layer.forward(x)), residual (..., out), as one primitive that adds the residual as the product is
// stored (linear_residual; a LoRA adapter's lora_linear_residual): a transformer layer's residual connection with the
// same bits, one pass over the output fewer.
Tensor add_linear(const Tensor& residual, Linear& layer, const Tensor& x);

}  // namespace linfuse::nn
