#include "nn/t5.h"

#include <cmath>
#include <stdexcept>

#include "autodiff/ops.h"
#include "nn/attention.h"
#include "tensor/kernels.h"

namespace linfuse::nn {
namespace {

std::shared_ptr<Dropout> make_dropout(const T5Config& config, Generator& init) {
  return std::make_shared<Dropout>(config.dropout_rate, init.next_u64());
}

// A bias-free Linear. Its torch-style uniform initialisation is replaced by init_weights, so it draws from
// a scratch generator and leaves the model's generator to the T5 scheme.
std::shared_ptr<Linear> make_projection(int64_t in, int64_t out, DType dtype) {
  Generator scratch(0);
  return std::make_shared<Linear>(in, out, /*bias=*/false, scratch, dtype);
}

void fill_normal(Tensor& parameter, double std, Generator& init) {
  Tensor values = init.normal(parameter.shape(), 0.0, std, parameter.dtype());
  kernels::copy_into(parameter, values);
}

void check_ids(const Tensor& ids, const char* op, const char* what) {
  if (!ids.defined() || ids.dtype() != DType::I64 || ids.dim() != 2)
    throw std::invalid_argument(std::string("[") + op + "] " + what + " must be int64 (B, T), got " +
                                (ids.defined() ? ids.describe() : std::string("undefined")));
}

void check_mask(const Tensor& mask, const Tensor& ids, const char* op, const char* what) {
  if (mask.defined() && (mask.dim() != 2 || mask.size(0) != ids.size(0) || mask.size(1) != ids.size(1)))
    throw std::invalid_argument(std::string("[") + op + "] " + what + " " + mask.describe() +
                                " must match the token ids " + ids.describe());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// T5Attention

T5Attention::T5Attention(const T5Config& config, bool has_bias, bool decoder, Generator& init, DType dtype)
    : has_relative_attention_bias(has_bias),
      is_decoder(decoder),
      num_heads(config.num_heads),
      d_kv(config.d_kv),
      num_buckets(config.relative_attention_num_buckets),
      max_distance(config.relative_attention_max_distance) {
  q = register_module("q", make_projection(config.d_model, config.inner_dim(), dtype));
  k = register_module("k", make_projection(config.d_model, config.inner_dim(), dtype));
  v = register_module("v", make_projection(config.d_model, config.inner_dim(), dtype));
  o = register_module("o", make_projection(config.inner_dim(), config.d_model, dtype));
  if (has_bias)
    relative_attention_bias =
        register_module("relative_attention_bias", std::make_shared<Embedding>(num_buckets, num_heads, init, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5Attention::compute_bias(int64_t query_length, int64_t key_length) {
  if (!relative_attention_bias)
    throw std::logic_error("[T5Attention] compute_bias called on an attention without a relative_attention_bias");
  // buckets (Tq, Tk) of memory position - query position; bidirectional in the encoder, causal in the decoder
  Tensor buckets = relative_position_buckets(query_length, key_length, !is_decoder, num_buckets, max_distance);
  Tensor values = relative_attention_bias->forward(buckets);   // (Tq, Tk, H)
  return unsqueeze(permute(values, {2, 0, 1}), 0);              // (1, H, Tq, Tk)
}

Tensor T5Attention::forward(const Tensor& hidden, const Tensor& key_value, const Tensor& bias) {
  const Tensor& source = key_value.defined() ? key_value : hidden;
  if (hidden.dim() != 3 || source.dim() != 3 || source.size(0) != hidden.size(0))
    throw std::invalid_argument("[T5Attention] expected hidden (B, Tq, D) and key_value (B, Tk, D), got " +
                                hidden.describe() + " and " + source.describe());
  Tensor query = split_heads(q->forward(hidden), num_heads);   // (B, H, Tq, d_kv)
  Tensor key = split_heads(k->forward(source), num_heads);     // (B, H, Tk, d_kv)
  Tensor value = split_heads(v->forward(source), num_heads);   // (B, H, Tk, d_kv)
  // No 1/sqrt(d_kv): T5 folds it into the initialisation of q (Mesh TensorFlow). Without dropout on the weights,
  // one fused primitive (the position bias's gradient included); with it, the separate ops.
  if (!dropout_->acts())
    return o->forward(merge_heads(scaled_dot_product_attention(query, key, value, bias, 1.0)));   // (B, Tq, D)
  Tensor scores = matmul(query, transpose(key, -1, -2));   // (B, H, Tq, Tk)
  if (bias.defined()) scores = add(scores, bias);
  Tensor weights = dropout_->forward(softmax(scores, -1));   // (B, H, Tq, Tk)
  return o->forward(merge_heads(matmul(weights, value)));     // (B, Tq, H*d_kv) -> (B, Tq, D)
}

// ---------------------------------------------------------------------------------------------------------
// Residual layers

T5LayerSelfAttention::T5LayerSelfAttention(const T5Config& config, bool has_bias, bool decoder, Generator& init,
                                           DType dtype) {
  SelfAttention = register_module("SelfAttention", std::make_shared<T5Attention>(config, has_bias, decoder, init, dtype));
  layer_norm = register_module("layer_norm", std::make_shared<RMSNorm>(config.d_model, config.layer_norm_epsilon, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5LayerSelfAttention::forward(const Tensor& hidden, const Tensor& bias) {
  return add(hidden, dropout_->forward(SelfAttention->forward(layer_norm->forward(hidden), Tensor(), bias)));
}

T5LayerCrossAttention::T5LayerCrossAttention(const T5Config& config, Generator& init, DType dtype) {
  EncDecAttention = register_module("EncDecAttention", std::make_shared<T5Attention>(config, false, true, init, dtype));
  layer_norm = register_module("layer_norm", std::make_shared<RMSNorm>(config.d_model, config.layer_norm_epsilon, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5LayerCrossAttention::forward(const Tensor& hidden, const Tensor& encoder_hidden, const Tensor& bias) {
  return add(hidden, dropout_->forward(EncDecAttention->forward(layer_norm->forward(hidden), encoder_hidden, bias)));
}

T5DenseReluDense::T5DenseReluDense(const T5Config& config, Generator& init, DType dtype)
    : gated(config.is_gated_act()), activation(config.dense_act_fn()) {
  if (gated) {
    wi_0 = register_module("wi_0", make_projection(config.d_model, config.d_ff, dtype));
    wi_1 = register_module("wi_1", make_projection(config.d_model, config.d_ff, dtype));
  } else {
    wi = register_module("wi", make_projection(config.d_model, config.d_ff, dtype));
  }
  wo = register_module("wo", make_projection(config.d_ff, config.d_model, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5DenseReluDense::forward(const Tensor& x) {
  // hidden (..., d_ff)
  Tensor hidden = gated ? mul(activate_linear(activation, *wi_0, x), wi_1->forward(x)) : activate_linear(activation, *wi, x);
  return wo->forward(dropout_->forward(hidden));
}

T5LayerFF::T5LayerFF(const T5Config& config, Generator& init, DType dtype) {
  DenseReluDense = register_module("DenseReluDense", std::make_shared<T5DenseReluDense>(config, init, dtype));
  layer_norm = register_module("layer_norm", std::make_shared<RMSNorm>(config.d_model, config.layer_norm_epsilon, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5LayerFF::forward(const Tensor& hidden) {
  return add(hidden, dropout_->forward(DenseReluDense->forward(layer_norm->forward(hidden))));
}

T5Block::T5Block(const T5Config& config, bool has_bias, bool decoder, Generator& init, DType dtype) {
  layer_ = register_module("layer", std::make_shared<ModuleList<Module>>());
  self_attention = std::make_shared<T5LayerSelfAttention>(config, has_bias, decoder, init, dtype);
  layer_->push_back(self_attention);
  if (decoder) {
    cross_attention = std::make_shared<T5LayerCrossAttention>(config, init, dtype);
    layer_->push_back(cross_attention);
  }
  feed_forward = std::make_shared<T5LayerFF>(config, init, dtype);
  layer_->push_back(feed_forward);
}

Tensor T5Block::forward(const Tensor& hidden, const Tensor& self_bias, const Tensor& encoder_hidden,
                        const Tensor& cross_bias) {
  Tensor h = self_attention->forward(hidden, self_bias);
  if (cross_attention) h = cross_attention->forward(h, encoder_hidden, cross_bias);
  return feed_forward->forward(h);
}

// ---------------------------------------------------------------------------------------------------------
// T5Stack

T5Stack::T5Stack(const T5Config& config, bool decoder, std::shared_ptr<Embedding> embed_tokens, Generator& init,
                 DType dtype)
    : is_decoder(decoder), embed_tokens_(std::move(embed_tokens)), vocab_size_(config.vocab_size) {
  block = register_module("block", std::make_shared<ModuleList<T5Block>>());
  int64_t layers = decoder ? config.num_decoder_layers : config.num_layers;
  for (int64_t i = 0; i < layers; ++i)
    block->push_back(std::make_shared<T5Block>(config, /*has_relative_attention_bias=*/i == 0, decoder, init, dtype));
  final_layer_norm =
      register_module("final_layer_norm", std::make_shared<RMSNorm>(config.d_model, config.layer_norm_epsilon, dtype));
  dropout_ = register_module("dropout", make_dropout(config, init));
}

Tensor T5Stack::forward(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& encoder_hidden,
                        const Tensor& encoder_mask) {
  const char* op = is_decoder ? "T5Stack decoder" : "T5Stack encoder";
  check_ids(input_ids, op, "input_ids");
  check_mask(attention_mask, input_ids, op, "attention_mask");
  if (is_decoder && (!encoder_hidden.defined() || encoder_hidden.dim() != 3 || encoder_hidden.size(0) != input_ids.size(0)))
    throw std::invalid_argument(std::string("[") + op + "] needs encoder_hidden (B, S, D) for input_ids " +
                                input_ids.describe() + ", got " +
                                (encoder_hidden.defined() ? encoder_hidden.describe() : std::string("undefined")));
  if (is_decoder && encoder_mask.defined() &&
      (encoder_mask.dim() != 2 || encoder_mask.size(0) != encoder_hidden.size(0) ||
       encoder_mask.size(1) != encoder_hidden.size(1)))
    throw std::invalid_argument(std::string("[") + op + "] encoder_mask " + encoder_mask.describe() +
                                " must be (B, S) for encoder_hidden " + encoder_hidden.describe());
  kernels::check_indices(input_ids, vocab_size_, op);
  const int64_t length = input_ids.size(1);
  const DType dtype = embed_tokens_->weight.dtype();

  Tensor hidden = dropout_->forward(embed_tokens_->forward(input_ids));   // (B, T, D)

  // Additive masks: padding (B, 1, 1, T); the decoder adds the causal (T, T) one.
  Tensor mask;
  if (attention_mask.defined()) mask = padding_mask(attention_mask, dtype);
  if (is_decoder) mask = mask.defined() ? add(mask, causal_mask(length, dtype)) : causal_mask(length, dtype);
  // The position bias of block 0, shared by every block of the stack (HF passes it along the same way).
  Tensor self_bias = (*block)[0]->self_attention->SelfAttention->compute_bias(length, length);   // (1, H, T, T)
  if (mask.defined()) self_bias = add(self_bias, mask);   // (B or 1, H, T, T)
  // Cross-attention has no position bias, only the encoder padding mask.
  Tensor cross_bias = is_decoder && encoder_mask.defined() ? padding_mask(encoder_mask, dtype) : Tensor();

  for (const auto& b : *block) hidden = b->forward(hidden, self_bias, encoder_hidden, cross_bias);
  return dropout_->forward(final_layer_norm->forward(hidden));
}

// ---------------------------------------------------------------------------------------------------------
// T5ForConditionalGeneration

T5ForConditionalGeneration::T5ForConditionalGeneration(const T5Config& config, Generator& init, DType dtype)
    : config_(config), dtype_(dtype) {
  config_.validate();
  if (!is_floating(dtype))
    throw std::invalid_argument(std::string("[T5ForConditionalGeneration] dtype must be float32 or float64, got ") +
                                dtype_name(dtype));
  shared = register_module("shared", std::make_shared<Embedding>(config.vocab_size, config.d_model, init, dtype));
  encoder = register_module("encoder", std::make_shared<T5Stack>(config, false, shared, init, dtype));
  decoder = register_module("decoder", std::make_shared<T5Stack>(config, true, shared, init, dtype));
  if (!config.tie_word_embeddings) lm_head = register_module("lm_head", make_projection(config.d_model, config.vocab_size, dtype));
  init_weights(init);
}

void T5ForConditionalGeneration::init_weights(Generator& init) {
  // Hugging Face's T5PreTrainedModel._init_weights (Mesh TensorFlow): std factor * fan^-1/2 with the
  // attention's 1/sqrt(d_kv) folded into q, embeddings N(0, factor), norms factor.
  const double f = config_.initializer_factor, d_model = double(config_.d_model);
  fill_normal(shared->weight, f * 1.0, init);
  if (lm_head) fill_normal(lm_head->weight, f * 1.0, init);
  for (auto& [name, module] : named_modules()) {
    if (auto attention = std::dynamic_pointer_cast<T5Attention>(module)) {
      fill_normal(attention->q->weight, f * std::pow(d_model * double(config_.d_kv), -0.5), init);
      fill_normal(attention->k->weight, f * std::pow(d_model, -0.5), init);
      fill_normal(attention->v->weight, f * std::pow(d_model, -0.5), init);
      fill_normal(attention->o->weight, f * std::pow(double(config_.inner_dim()), -0.5), init);
      if (attention->relative_attention_bias)
        fill_normal(attention->relative_attention_bias->weight, f * std::pow(d_model, -0.5), init);
    } else if (auto dense = std::dynamic_pointer_cast<T5DenseReluDense>(module)) {
      for (auto& w : {dense->wi, dense->wi_0, dense->wi_1})
        if (w) fill_normal(w->weight, f * std::pow(d_model, -0.5), init);
      fill_normal(dense->wo->weight, f * std::pow(double(config_.d_ff), -0.5), init);
    } else if (auto norm = std::dynamic_pointer_cast<RMSNorm>(module)) {
      kernels::copy_into(norm->weight, Tensor::full(norm->weight.shape(), f, norm->weight.dtype()));
    }
  }
}

Tensor T5ForConditionalGeneration::encode(const Tensor& input_ids, const Tensor& attention_mask) {
  return encoder->forward(input_ids, attention_mask);
}

Tensor T5ForConditionalGeneration::decode(const Tensor& decoder_input_ids, const Tensor& encoder_hidden,
                                          const Tensor& encoder_mask, const Tensor& decoder_attention_mask) {
  Tensor sequence = decoder->forward(decoder_input_ids, decoder_attention_mask, encoder_hidden, encoder_mask);   // (B, T, D)
  if (lm_head) return lm_head->forward(sequence);   // (B, T, V)
  // Tied embeddings: Mesh TensorFlow rescales the decoder output before projecting on the embedding.
  return linear(mul(sequence, std::pow(double(config_.d_model), -0.5)), shared->weight);
}

namespace {
// labels (B, T): every entry must be a token id or -100.
std::vector<int64_t> checked_labels(const Tensor& labels, int64_t vocab_size, const char* op) {
  check_ids(labels, op, "labels");
  std::vector<int64_t> values = labels.to_vector<int64_t>();
  for (int64_t v : values)
    if (v != -100 && (v < 0 || v >= vocab_size))
      throw std::invalid_argument(std::string("[") + op + "] label " + std::to_string(v) +
                                  " is neither a token id in [0, " + std::to_string(vocab_size) + ") nor -100");
  return values;
}
}  // namespace

Tensor T5ForConditionalGeneration::shift_right(const Tensor& labels) const {
  std::vector<int64_t> values = checked_labels(labels, config_.vocab_size, "T5 shift_right");
  const int64_t rows = labels.size(0), length = labels.size(1);
  std::vector<int64_t> shifted(values.size());
  for (int64_t b = 0; b < rows; ++b) {
    shifted[b * length] = config_.decoder_start_token_id;
    for (int64_t t = 1; t < length; ++t) {
      int64_t previous = values[b * length + t - 1];
      shifted[b * length + t] = previous == -100 ? config_.pad_token_id : previous;
    }
  }
  return Tensor::from_vector(shifted, labels.shape());
}

Tensor T5ForConditionalGeneration::loss_targets(const Tensor& labels) const {
  std::vector<int64_t> values = checked_labels(labels, config_.vocab_size, "T5 loss_targets");
  for (int64_t& v : values)
    if (v == config_.pad_token_id) v = -100;
  return Tensor::from_vector(values, labels.shape());
}

T5Output T5ForConditionalGeneration::forward(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                                             const Tensor& decoder_attention_mask) {
  Tensor decoder_input_ids = shift_right(labels), targets = loss_targets(labels);   // (B, T) each
  check_ids(input_ids, "T5ForConditionalGeneration", "input_ids");
  if (labels.size(0) != input_ids.size(0))
    throw std::invalid_argument("[T5ForConditionalGeneration] labels " + labels.describe() + " and input_ids " +
                                input_ids.describe() + " have different batch sizes");
  T5Output out;
  out.encoder_hidden = encode(input_ids, attention_mask);                                                  // (B, S, D)
  out.logits = decode(decoder_input_ids, out.encoder_hidden, attention_mask, decoder_attention_mask);   // (B, T, V)
  out.loss = cross_entropy(out.logits, targets, -100);
  return out;
}

void T5ForConditionalGeneration::load_hf_state_dict(const StateDict& state, bool strict) {
  load_state_dict(canonical_t5_state_dict(state, config_), strict);
}

StateDict canonical_t5_state_dict(const StateDict& state, const T5Config& config) {
  std::vector<std::string> aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"};
  if (config.tie_word_embeddings) aliases.push_back("lm_head.weight");
  auto is_alias = [&](const std::string& name) {
    for (const auto& a : aliases)
      if (a == name) return true;
    return false;
  };
  // The embedding every alias must equal: shared.weight, else the first alias present.
  std::string source = "shared.weight";
  if (!state.contains(source))
    for (const auto& a : aliases)
      if (state.contains(a)) {
        source = a;
        break;
      }
  for (const auto& a : aliases) {
    if (a == source || !state.contains(a) || !state.contains(source)) continue;
    const Tensor &x = state.at(a), &y = state.at(source);
    if (x.shape() != y.shape() || x.to_vector<double>() != y.to_vector<double>())
      throw std::invalid_argument("[canonical_t5_state_dict] " + a + " " + x.describe() + " should be an alias of " +
                                  source + " " + y.describe() +
                                  " but holds different values: a T5 has one token embedding (and, with "
                                  "tie_word_embeddings, no lm_head of its own); fix the checkpoint or the config");
  }
  StateDict out;
  for (const auto& [name, tensor] : state) {
    if (name == source) out.insert("shared.weight", tensor);
    else if (!is_alias(name)) out.insert(name, tensor);
  }
  return out;
}

}  // namespace linfuse::nn
