#pragma once
// Configurations of the tiny CLIP, with Hugging Face's field names and defaults (configuration_clip.py), so
// that a config.json moves between linfuse and transformers unchanged. Struct defaults are HF's (a ViT-B/32
// sized model); the project's own model is CLIPConfig::tiny().
//
// JSON: unknown fields are ignored (HF writes many: architectures, torch_dtype, id2label, ...), missing
// fields take HF's defaults, and invalid values (a width not divisible by the heads, a patch that does not
// tile the image, an unknown activation, ...) throw std::invalid_argument naming the field and the fix.
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace linfuse::nn {

// The image tower (HF CLIPVisionConfig).
struct CLIPVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;   // used by HF's *WithProjection models; CLIPModel uses CLIPConfig's
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  double attention_dropout = 0.0;
  double initializer_range = 0.02;
  double initializer_factor = 1.0;

  int64_t grid_size() const { return image_size / patch_size; }       // patches per side
  int64_t num_patches() const { return grid_size() * grid_size(); }
  int64_t num_positions() const { return num_patches() + 1; }         // + the class token
  void validate() const;   // throws std::invalid_argument naming the field
  nlohmann::json to_json() const;
  static CLIPVisionConfig from_json(const nlohmann::json& j);   // validates
};

// The text tower (HF CLIPTextConfig). HF's defaults for the token ids are OpenAI's BPE vocabulary
// (bos 49406, eos 49407, pad 1). bos_token_id -1 (null in JSON, None in HF) means no start-of-text token:
// the project's SentencePiece tokenizer (T5's ids: pad 0, eos 1, unk 2) has none. As in transformers, a
// bos_token_id outside the vocabulary is accepted (the forward pass never reads it): a small config without
// the field keeps HF's default 49406 and loads.
struct CLIPTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  double attention_dropout = 0.0;
  double initializer_range = 0.02;
  double initializer_factor = 1.0;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 49406;
  int64_t eos_token_id = 49407;

  void validate() const;
  nlohmann::json to_json() const;
  static CLIPTextConfig from_json(const nlohmann::json& j);
};

// The whole model (HF CLIPConfig): both towers, the shared embedding width and the initial temperature.
struct CLIPConfig {
  CLIPTextConfig text_config;
  CLIPVisionConfig vision_config;
  int64_t projection_dim = 512;
  double logit_scale_init_value = 2.6592;   // log(1 / 0.07), CLIP's initial temperature
  double initializer_factor = 1.0;

  // The project's tiny CLIP for 28x28 grayscale images (see clip_config.cpp for the reasons):
  //   vision: 1 channel, patch 4 (7x7 = 49 patches + class token), width 128, 4 layers, 4 heads, MLP 512;
  //   text: vocabulary 1024, 32 positions, width 64, 2 layers, 4 heads, MLP 256, pad 0 / eos 1 / no bos
  //         (the ids of the project's SentencePiece tokenizer, nn/tokenizer.h);
  //   projection_dim 64; quick_gelu everywhere, like OpenAI's CLIP.
  static CLIPConfig tiny();

  void validate() const;
  nlohmann::json to_json() const;   // HF's config.json layout (model_type "clip", nested sub-configs)
  static CLIPConfig from_json(const nlohmann::json& j);
  static CLIPConfig from_json_file(const std::string& path);   // throws naming the file
  void save_json_file(const std::string& path) const;
};

}  // namespace linfuse::nn
