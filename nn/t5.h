#pragma once
// The tiny T5: a faithful miniature of Hugging Face's T5ForConditionalGeneration (v1.0 "relu" and v1.1 /
// Flan-T5 "gated-gelu" flavours), with Hugging Face's module tree, so parameter names match exactly:
//
//   shared.weight                                              (V, D) token embedding, shared by both stacks
//   encoder.block.{i}.layer.0.SelfAttention.{q,k,v}.weight     (H*d_kv, D)   .o.weight (D, H*d_kv)
//   encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight   (buckets, H), block 0 only
//   encoder.block.{i}.layer.0.layer_norm.weight                (D)
//   encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight   gated;  {wi,wo}.weight  relu
//   encoder.block.{i}.layer.1.layer_norm.weight, encoder.final_layer_norm.weight
//   decoder.block.{i}.layer.0.SelfAttention.*, layer.1.EncDecAttention.{q,k,v,o}.weight (no bias table),
//   decoder.block.{i}.layer.2.DenseReluDense.*, decoder.final_layer_norm.weight
//   lm_head.weight                                             (V, D), only when tie_word_embeddings is false
//
// Every projection is an nn::Linear (no bias), so PEFT attaches adapters to "*.SelfAttention.q" etc. by name.
// Hugging Face also lists encoder.embed_tokens.weight and decoder.embed_tokens.weight (and, when tied,
// lm_head.weight) as aliases of shared.weight. linfuse's state_dict() holds each tensor once, under the
// canonical names above (what HF's save_pretrained writes to safetensors); load_hf_state_dict() accepts the
// aliases too (see canonical_t5_state_dict).
//
// What T5 does differently from a textbook transformer, all reproduced here: no 1/sqrt(d) scaling of the
// attention scores (it is folded into the initialisation of q); pre-norm residual blocks with RMSNorm
// (T5LayerNorm, no mean, no bias); learned relative-position biases (bidirectional buckets in the encoder,
// causal in the decoder) computed by the first block of each stack and reused by the later ones; no
// position bias in cross-attention; no bias in any Linear; with tied embeddings the decoder output is
// scaled by d_model^-0.5 before the projection on shared.weight.
//
// Masks: Hugging Face adds finfo(dtype).min for masked keys; linfuse adds -inf. The two agree exactly
// whenever a query row has at least one visible key (exp underflows to 0 either way). They differ only for a
// row with no visible key at all (an encoder input that is entirely padding): HF averages all values
// uniformly, linfuse's softmax gives that row zeros. Such rows carry no information in either.
//
// Precision: everything runs in the model's dtype (float32 by default, float64 for gradient checks),
// RMSNorm and softmax included, with reductions accumulated in double by the kernels. (HF upcasts the
// RMSNorm variance and the softmax to float32, which for a float32 model is the same thing.)
#include <cstdint>
#include <memory>
#include <string>

#include "nn/layers.h"
#include "nn/module.h"
#include "nn/t5_config.h"
#include "tensor/random.h"

namespace linfuse::nn {

// Multi-head attention with T5's conventions. Self-attention when `key_value` is undefined, else
// cross-attention over `key_value`. Module name in HF: SelfAttention / EncDecAttention.
class T5Attention : public Module {
 public:
  T5Attention(const T5Config& config, bool has_relative_attention_bias, bool is_decoder, Generator& init, DType dtype);
  // hidden (B, Tq, D), key_value (B, Tk, D) or undefined, bias broadcastable to (B, H, Tq, Tk) (position
  // bias + additive mask; may be undefined) -> (B, Tq, D)
  Tensor forward(const Tensor& hidden, const Tensor& key_value, const Tensor& bias);
  // The learned relative-position bias (1, H, Tq, Tk) for query positions [0, Tq) and keys [0, Tk);
  // only for the attention of a stack's first block.
  Tensor compute_bias(int64_t query_length, int64_t key_length);
  std::string type_name() const override { return "T5Attention"; }

  bool has_relative_attention_bias, is_decoder;
  int64_t num_heads, d_kv, num_buckets, max_distance;
  std::shared_ptr<Linear> q, k, v, o;
  std::shared_ptr<Embedding> relative_attention_bias;   // (buckets, H); null unless has_relative_attention_bias

 private:
  std::shared_ptr<Dropout> dropout_;   // on the attention probabilities, as HF's functional dropout
};

// Pre-norm residual self-attention: x + dropout(SelfAttention(layer_norm(x))).
class T5LayerSelfAttention : public Module {
 public:
  T5LayerSelfAttention(const T5Config& config, bool has_relative_attention_bias, bool is_decoder, Generator& init,
                       DType dtype);
  Tensor forward(const Tensor& hidden, const Tensor& bias);   // (B, T, D) -> (B, T, D)
  std::string type_name() const override { return "T5LayerSelfAttention"; }
  std::shared_ptr<T5Attention> SelfAttention;
  std::shared_ptr<RMSNorm> layer_norm;

 private:
  std::shared_ptr<Dropout> dropout_;
};

// Pre-norm residual cross-attention over the encoder output: x + dropout(EncDecAttention(layer_norm(x), enc)).
class T5LayerCrossAttention : public Module {
 public:
  T5LayerCrossAttention(const T5Config& config, Generator& init, DType dtype);
  // hidden (B, T, D), encoder_hidden (B, S, D), bias (B, 1, 1, S) encoder padding mask -> (B, T, D)
  Tensor forward(const Tensor& hidden, const Tensor& encoder_hidden, const Tensor& bias);
  std::string type_name() const override { return "T5LayerCrossAttention"; }
  std::shared_ptr<T5Attention> EncDecAttention;
  std::shared_ptr<RMSNorm> layer_norm;

 private:
  std::shared_ptr<Dropout> dropout_;
};

// The feed-forward of one block, HF's T5DenseActDense (wo(dropout(act(wi x)))) or, when the config is
// gated, T5DenseGatedActDense (wo(dropout(act(wi_0 x) * wi_1 x))). Module name in HF: DenseReluDense.
class T5DenseReluDense : public Module {
 public:
  T5DenseReluDense(const T5Config& config, Generator& init, DType dtype);
  Tensor forward(const Tensor& x);   // (..., D) -> (..., D)
  std::string type_name() const override { return gated ? "T5DenseGatedActDense" : "T5DenseActDense"; }
  bool gated;
  Activation activation;
  std::shared_ptr<Linear> wi, wi_0, wi_1, wo;   // wi for the plain variant, wi_0 / wi_1 for the gated one

 private:
  std::shared_ptr<Dropout> dropout_;
};

// Pre-norm residual feed-forward: x + dropout(DenseReluDense(layer_norm(x))).
class T5LayerFF : public Module {
 public:
  T5LayerFF(const T5Config& config, Generator& init, DType dtype);
  Tensor forward(const Tensor& hidden);
  std::string type_name() const override { return "T5LayerFF"; }
  std::shared_ptr<T5DenseReluDense> DenseReluDense;
  std::shared_ptr<RMSNorm> layer_norm;

 private:
  std::shared_ptr<Dropout> dropout_;
};

// One block: layer.0 self-attention, (decoder) layer.1 cross-attention, then the feed-forward.
class T5Block : public Module {
 public:
  T5Block(const T5Config& config, bool has_relative_attention_bias, bool is_decoder, Generator& init, DType dtype);
  // hidden (B, T, D); self_bias broadcastable to (B, H, T, T); encoder_hidden (B, S, D) and cross_bias
  // (B, 1, 1, S) for the decoder only.
  Tensor forward(const Tensor& hidden, const Tensor& self_bias, const Tensor& encoder_hidden, const Tensor& cross_bias);
  std::string type_name() const override { return "T5Block"; }
  std::shared_ptr<T5LayerSelfAttention> self_attention;
  std::shared_ptr<T5LayerCrossAttention> cross_attention;   // null in the encoder
  std::shared_ptr<T5LayerFF> feed_forward;

 private:
  std::shared_ptr<ModuleList<Module>> layer_;   // the HF-named list "layer" holding the three above
};

// A stack of blocks (the encoder or the decoder) reading token ids through the shared embedding, which it
// uses but does not own (HF's embed_tokens alias, not registered here).
class T5Stack : public Module {
 public:
  T5Stack(const T5Config& config, bool is_decoder, std::shared_ptr<Embedding> embed_tokens, Generator& init, DType dtype);
  // input_ids (B, T) int64; attention_mask (B, T) 1 keep / 0 pad, or undefined (all kept). Decoder only:
  // encoder_hidden (B, S, D) and encoder_mask (B, S) or undefined. -> hidden (B, T, D) after final_layer_norm.
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& encoder_hidden = Tensor(),
                 const Tensor& encoder_mask = Tensor());
  std::string type_name() const override { return "T5Stack"; }
  bool is_decoder;
  std::shared_ptr<ModuleList<T5Block>> block;
  std::shared_ptr<RMSNorm> final_layer_norm;

 private:
  std::shared_ptr<Embedding> embed_tokens_;
  std::shared_ptr<Dropout> dropout_;
  int64_t vocab_size_;
};

// Teacher-forced outputs of T5ForConditionalGeneration::forward.
struct T5Output {
  Tensor loss;             // scalar mean cross-entropy over the non-ignored label tokens
  Tensor logits;           // (B, T, V)
  Tensor encoder_hidden;   // (B, S, D)
};

class T5ForConditionalGeneration : public Module {
 public:
  // Weights initialised as Hugging Face's T5PreTrainedModel._init_weights (Mesh TensorFlow scheme) from
  // `init`; dropout masks drawn from generators seeded by `init` too. Validates the config.
  T5ForConditionalGeneration(const T5Config& config, Generator& init, DType dtype = DType::F32);

  // input_ids (B, S) int64, attention_mask (B, S) (1 keep, 0 pad; undefined = all kept) -> hidden (B, S, D)
  Tensor encode(const Tensor& input_ids, const Tensor& attention_mask);
  // decoder_input_ids (B, T) int64 (starting with decoder_start_token_id), encoder_hidden (B, S, D),
  // encoder_mask (B, S) or undefined, decoder_attention_mask (B, T) or undefined (HF's default: all ones; the
  // causal mask already keeps right padding from influencing earlier positions) -> logits (B, T, V)
  Tensor decode(const Tensor& decoder_input_ids, const Tensor& encoder_hidden, const Tensor& encoder_mask,
                const Tensor& decoder_attention_mask = Tensor());
  // Teacher forcing: labels (B, T) int64, where -100 and pad_token_id both mean "no target here" (HF's
  // data collators write -100 for padding; linfuse accepts either). Decoder inputs are the labels shifted
  // right (shift_right). -> loss, logits, encoder output.
  T5Output forward(const Tensor& input_ids, const Tensor& attention_mask, const Tensor& labels,
                   const Tensor& decoder_attention_mask = Tensor());

  // HF's _shift_right: (B, T) labels -> decoder inputs [start, labels[:-1]] with -100 replaced by pad.
  Tensor shift_right(const Tensor& labels) const;
  // labels (B, T) with pad_token_id replaced by -100, the ignore index of the loss.
  Tensor loss_targets(const Tensor& labels) const;

  // Loads a state dict with HF's names, aliases included (see canonical_t5_state_dict); strict as
  // Module::load_state_dict.
  void load_hf_state_dict(const StateDict& state, bool strict = true);

  const T5Config& config() const { return config_; }
  DType dtype() const { return dtype_; }
  std::string type_name() const override { return "T5ForConditionalGeneration"; }

  std::shared_ptr<Embedding> shared;
  std::shared_ptr<T5Stack> encoder, decoder;
  std::shared_ptr<Linear> lm_head;   // null when tie_word_embeddings

 private:
  void init_weights(Generator& init);
  T5Config config_;
  DType dtype_;
};

// Maps a Hugging Face T5 state dict onto linfuse's names: encoder.embed_tokens.weight and
// decoder.embed_tokens.weight stand in for shared.weight when it is absent and are dropped otherwise (they
// must then equal it: a file whose aliases disagree is rejected, since HF would load only one of them);
// with tie_word_embeddings, lm_head.weight is treated the same way. Other names pass through unchanged.
StateDict canonical_t5_state_dict(const StateDict& state, const T5Config& config);

}  // namespace linfuse::nn
