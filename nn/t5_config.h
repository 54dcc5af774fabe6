#pragma once
// T5Config: the hyperparameters of a T5 encoder-decoder, with Hugging Face's field names and defaults
// (transformers' T5Config), so that a config.json moves between linfuse and PyTorch unchanged.
//
// A default-constructed T5Config is Hugging Face's default (t5-small shaped, v1.0 "relu" feed-forward, tied
// embeddings); tiny_t5_config() is the CPU-scale Flan-T5 miniature the experiments use.
#include <cstdint>
#include <string>

#include "nn/layers.h"

namespace linfuse::nn {

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;     // size of one attention head; num_heads * d_kv need not equal d_model
  int64_t d_ff = 2048;
  int64_t num_layers = 6;           // encoder blocks
  int64_t num_decoder_layers = 6;   // decoder blocks (null / absent in JSON: num_layers, as Hugging Face)
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  double initializer_factor = 1.0;
  // "gated-gelu" (T5 v1.1 / Flan-T5: gelu_new(wi_0 x) * wi_1 x) or "relu" (T5 v1.0: relu(wi x)); in general
  // "gated-ACT" or "ACT" with ACT an activation known to nn::activation_from_name.
  std::string feed_forward_proj = "relu";
  bool tie_word_embeddings = true;   // Flan-T5 and T5 v1.1 checkpoints set false
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t decoder_start_token_id = 0;

  // ---- derived (as Hugging Face's T5Config.__init__ computes them) ----
  bool is_gated_act() const;          // feed_forward_proj starts with "gated-"
  Activation dense_act_fn() const;    // "gated-gelu" means gelu_new (tanh), a Hugging Face special case
  std::string dense_act_fn_name() const;
  int64_t inner_dim() const { return num_heads * d_kv; }

  // Throws std::invalid_argument "[T5Config] ..." naming the first offending field and what is allowed.
  void validate() const;

  // JSON with Hugging Face's keys. Reading ignores keys it does not know (a Hugging Face config.json carries
  // many: architectures, task_specific_params, ...), uses Hugging Face's default for an absent key, and
  // validates. Writing adds model_type, is_encoder_decoder, dense_act_fn and is_gated_act as HF does.
  std::string to_json() const;
  static T5Config from_json(const std::string& json_text);
  void save(const std::string& path) const;   // writes to_json() to `path`
  static T5Config load(const std::string& path);

  bool operator==(const T5Config&) const = default;
};

// The default tiny T5 of linfuse, a Flan-T5 miniature: d_model 128, 4 heads of 32, gated-GELU d_ff 256,
// 4 encoder + 4 decoder blocks, Hugging Face's 32 relative-position buckets up to distance 128, untied
// lm_head, dropout 0.1. With vocab 4096 it has 2,624,512 parameters; vocab_size should match the tokenizer.
T5Config tiny_t5_config(int64_t vocab_size = 4096);

}  // namespace linfuse::nn
