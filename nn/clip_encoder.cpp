#include "nn/clip_encoder.h"

#include <cmath>

#include "autodiff/ops.h"
#include "nn/attention.h"
#include "tensor/kernels.h"

namespace linfuse::nn {

CLIPEncoderSettings CLIPEncoderSettings::of(const CLIPVisionConfig& c) {
  c.validate();
  return {c.hidden_size,    c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, activation_from_name(c.hidden_act),
          c.layer_norm_eps, c.attention_dropout, c.initializer_factor};
}

CLIPEncoderSettings CLIPEncoderSettings::of(const CLIPTextConfig& c) {
  c.validate();
  return {c.hidden_size,    c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, activation_from_name(c.hidden_act),
          c.layer_norm_eps, c.attention_dropout, c.initializer_factor};
}

void init_normal_(Tensor& tensor, Generator& init, double std) {
  kernels::copy_into(tensor, init.normal(tensor.shape(), 0.0, std, tensor.dtype()));
}

void init_constant_(Tensor& tensor, double value) {
  kernels::copy_into(tensor, Tensor::full(tensor.shape(), value, tensor.dtype()));
}

namespace {
// nn::Linear draws torch's default init; CLIP overwrites it, so that draw comes from a throwaway generator
// and `init` sees only the draws of HF's scheme.
std::shared_ptr<Linear> make_linear(int64_t in, int64_t out, Generator& init, double weight_std, DType dtype) {
  Generator scratch(0);
  auto layer = std::make_shared<Linear>(in, out, /*bias=*/true, scratch, dtype);
  init_normal_(layer->weight, init, weight_std);
  init_constant_(layer->bias, 0.0);
  return layer;
}
}  // namespace

CLIPAttention::CLIPAttention(const CLIPEncoderSettings& s, Generator& init, DType dtype)
    : num_heads(s.num_attention_heads), head_dim(s.hidden_size / s.num_attention_heads) {
  scale = 1.0 / std::sqrt(double(head_dim));
  const double d = double(s.hidden_size);
  const double in_std = std::pow(d, -0.5) * std::pow(2.0 * double(s.num_hidden_layers), -0.5) * s.initializer_factor;
  const double out_std = std::pow(d, -0.5) * s.initializer_factor;
  // HF's registration order: k, v, q, out.
  k_proj = register_module("k_proj", make_linear(s.hidden_size, s.hidden_size, init, in_std, dtype));
  v_proj = register_module("v_proj", make_linear(s.hidden_size, s.hidden_size, init, in_std, dtype));
  q_proj = register_module("q_proj", make_linear(s.hidden_size, s.hidden_size, init, in_std, dtype));
  out_proj = register_module("out_proj", make_linear(s.hidden_size, s.hidden_size, init, out_std, dtype));
  // The dropout has no parameters; it is not registered, so it never shows in names or state dicts.
  if (s.attention_dropout > 0) dropout_ = std::make_shared<Dropout>(s.attention_dropout, init.next_u64());
}

Tensor CLIPAttention::forward(const Tensor& x, const Tensor& bias, const Tensor& residual) {
  return attend(x, x, bias, residual);
}

Tensor CLIPAttention::attend(const Tensor& queries_from, const Tensor& x, const Tensor& bias, const Tensor& residual) {
  const int64_t d = num_heads * head_dim;
  for (const Tensor* t : {&queries_from, &x})
    if (t->dim() != 3 || t->size(2) != d || t->size(0) != x.size(0))
      throw std::invalid_argument("[CLIPAttention] expected hidden states (B, T, " + std::to_string(d) + ") with one B, got " +
                                  queries_from.describe() + " and " + x.describe());
  Tensor q = split_heads(q_proj->forward(queries_from), num_heads);   // (B, H, Tq, Dh)
  Tensor k = split_heads(k_proj->forward(x), num_heads);              // (B, H, T, Dh)
  Tensor v = split_heads(v_proj->forward(x), num_heads);
  Tensor context;   // (B, H, Tq, Dh)
  if (dropout_ && is_training()) {
    dropout_->train(true);
    Tensor scores = mul(matmul(q, transpose(k, -1, -2)), scale);   // (B, H, Tq, T)
    if (bias.defined()) scores = add(scores, bias);
    context = matmul(dropout_->forward(softmax(scores, -1)), v);
  } else {
    context = scaled_dot_product_attention(q, k, v, bias, scale);
  }
  if (residual.defined()) return add_linear(residual, *out_proj, merge_heads(context));   // (B, Tq, D)
  return out_proj->forward(merge_heads(context));
}

CLIPMLP::CLIPMLP(const CLIPEncoderSettings& s, Generator& init, DType dtype) : activation(s.activation) {
  const double d = double(s.hidden_size);
  const double fc1_std = std::pow(2.0 * d, -0.5) * s.initializer_factor;
  const double fc2_std = std::pow(d, -0.5) * std::pow(2.0 * double(s.num_hidden_layers), -0.5) * s.initializer_factor;
  fc1 = register_module("fc1", make_linear(s.hidden_size, s.intermediate_size, init, fc1_std, dtype));
  fc2 = register_module("fc2", make_linear(s.intermediate_size, s.hidden_size, init, fc2_std, dtype));
}

Tensor CLIPMLP::forward(const Tensor& x, const Tensor& residual) {
  Tensor hidden = activate_linear(activation, *fc1, x);   // (..., intermediate)
  return residual.defined() ? add_linear(residual, *fc2, hidden) : fc2->forward(hidden);
}

CLIPEncoderLayer::CLIPEncoderLayer(const CLIPEncoderSettings& s, Generator& init, DType dtype) {
  self_attn = register_module("self_attn", std::make_shared<CLIPAttention>(s, init, dtype));
  layer_norm1 = register_module("layer_norm1", std::make_shared<LayerNorm>(s.hidden_size, s.layer_norm_eps, dtype));
  mlp = register_module("mlp", std::make_shared<CLIPMLP>(s, init, dtype));
  layer_norm2 = register_module("layer_norm2", std::make_shared<LayerNorm>(s.hidden_size, s.layer_norm_eps, dtype));
}

Tensor CLIPEncoderLayer::forward(const Tensor& x, const Tensor& attention_bias) {
  // h = x + attention(ln1(x)), then h + mlp(ln2(h)): each residual add fused into the block's last product.
  Tensor h = self_attn->forward(layer_norm1->forward(x), attention_bias, /*residual=*/x);   // (B, T, D)
  return mlp->forward(layer_norm2->forward(h), /*residual=*/h);
}

Tensor CLIPEncoderLayer::forward_first_token(const Tensor& x, const Tensor& attention_bias) {
  // Row 0 of forward's result: layer norms, projections and the MLP act row by row, and attention's row 0 reads
  // the keys and values of every row and the query of row 0 alone.
  Tensor normed = layer_norm1->forward(x);                                                     // (B, T, D)
  Tensor first = slice(x, 1, 0, 1);                                                            // (B, 1, D)
  Tensor h = self_attn->attend(slice(normed, 1, 0, 1), normed, attention_bias, /*residual=*/first);   // (B, 1, D)
  return mlp->forward(layer_norm2->forward(h), /*residual=*/h);
}

CLIPEncoder::CLIPEncoder(const CLIPEncoderSettings& s, Generator& init, DType dtype) {
  layers = register_module("layers", std::make_shared<ModuleList<CLIPEncoderLayer>>());
  for (int64_t i = 0; i < s.num_hidden_layers; ++i) layers->push_back(std::make_shared<CLIPEncoderLayer>(s, init, dtype));
}

Tensor CLIPEncoder::forward(const Tensor& x, const Tensor& attention_bias) {
  Tensor h = x;
  for (const auto& layer : *layers) h = layer->forward(h, attention_bias);
  return h;
}

}  // namespace linfuse::nn
