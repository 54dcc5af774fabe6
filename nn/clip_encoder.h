#pragma once
// The transformer encoder shared by CLIP's two towers, as Hugging Face's modeling_clip.py builds it:
// pre-norm layers  x + attn(layer_norm1(x)),  x + mlp(layer_norm2(x)),  with multi-head self-attention
// (k_proj, v_proj, q_proj, out_proj, all with bias) and a two-layer MLP (fc1, activation, fc2).
// Every projection is an nn::Linear, so PEFT can attach adapters to them by name
// ("vision_model.encoder.layers.0.self_attn.q_proj").
#include <memory>

#include "nn/clip_config.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace linfuse::nn {

// What the encoder needs from either tower's config.
struct CLIPEncoderSettings {
  int64_t hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
  Activation activation;
  double layer_norm_eps, attention_dropout, initializer_factor;
  static CLIPEncoderSettings of(const CLIPVisionConfig& config);
  static CLIPEncoderSettings of(const CLIPTextConfig& config);
};

// Multi-head self-attention (HF CLIPAttention). Weights initialised as HF's _init_weights:
// q, k, v ~ N(0, (D^-0.5 (2L)^-0.5 factor)^2), out ~ N(0, (D^-0.5 factor)^2), biases 0.
class CLIPAttention : public Module {
 public:
  CLIPAttention(const CLIPEncoderSettings& settings, Generator& init, DType dtype);
  // x (B, T, D); bias (may be undefined) broadcasts to (B, H, T, T) and is added to the scores (-inf masks).
  // With a residual (B, T, D), returns residual + attention(x), the add fused into out_proj's product.
  Tensor forward(const Tensor& x, const Tensor& bias, const Tensor& residual = Tensor());
  // The same with the queries from other rows than the keys and values: queries_from (B, Tq, D), x (B, T, D),
  // bias broadcasting to (B, H, Tq, T), residual (B, Tq, D) or undefined -> (B, Tq, D). forward(x, ...) is
  // attend(x, x, ...).
  Tensor attend(const Tensor& queries_from, const Tensor& x, const Tensor& bias, const Tensor& residual = Tensor());
  std::string type_name() const override { return "CLIPAttention"; }

  int64_t num_heads, head_dim;
  double scale;   // head_dim^-0.5
  std::shared_ptr<Linear> k_proj, v_proj, q_proj, out_proj;

 private:
  std::shared_ptr<Dropout> dropout_;   // on the attention probabilities (attention_dropout; identity in eval)
};

// fc2(act(fc1(x))) (HF CLIPMLP). fc1 ~ N(0, ((2D)^-0.5 factor)^2), fc2 ~ N(0, (D^-0.5 (2L)^-0.5 factor)^2), biases 0.
class CLIPMLP : public Module {
 public:
  CLIPMLP(const CLIPEncoderSettings& settings, Generator& init, DType dtype);
  // (..., D) -> (..., D); with a residual (..., D), residual + mlp(x), the add fused into fc2's product.
  Tensor forward(const Tensor& x, const Tensor& residual = Tensor());
  std::string type_name() const override { return "CLIPMLP"; }
  Activation activation;
  std::shared_ptr<Linear> fc1, fc2;
};

// One pre-norm layer (HF CLIPEncoderLayer).
class CLIPEncoderLayer : public Module {
 public:
  CLIPEncoderLayer(const CLIPEncoderSettings& settings, Generator& init, DType dtype);
  Tensor forward(const Tensor& x, const Tensor& attention_bias);   // (B, T, D) -> (B, T, D)
  // forward(x, bias)[:, :1] (B, 1, D) without the other rows: keys and values from every token, the rest
  // for the first token only (bias broadcasting to (B, H, 1, T)).
  Tensor forward_first_token(const Tensor& x, const Tensor& attention_bias);
  std::string type_name() const override { return "CLIPEncoderLayer"; }
  std::shared_ptr<CLIPAttention> self_attn;
  std::shared_ptr<LayerNorm> layer_norm1;
  std::shared_ptr<CLIPMLP> mlp;
  std::shared_ptr<LayerNorm> layer_norm2;
};

// The stack of layers, named "layers.0", "layers.1", ... (HF CLIPEncoder).
class CLIPEncoder : public Module {
 public:
  CLIPEncoder(const CLIPEncoderSettings& settings, Generator& init, DType dtype);
  Tensor forward(const Tensor& x, const Tensor& attention_bias);   // (B, T, D) -> (B, T, D)
  std::string type_name() const override { return "CLIPEncoder"; }
  std::shared_ptr<ModuleList<CLIPEncoderLayer>> layers;
};

// Helpers for HF-style initialisation of an existing tensor, in place (keeps the registered handle).
void init_normal_(Tensor& tensor, Generator& init, double std);
void init_constant_(Tensor& tensor, double value);

}  // namespace linfuse::nn
