#pragma once
// The tiny CLIP: a faithful miniature of Hugging Face's CLIPModel (modeling_clip.py). Parameter names, their
// order and shapes are HF's, HF's own spellings included ("vision_model.pre_layrnorm"), so a state dict moves
// between linfuse and transformers by name:
//
//   logit_scale                                              ()
//   text_model.embeddings.token_embedding.weight             (vocab_size, Dt)
//   text_model.embeddings.position_embedding.weight          (max_position_embeddings, Dt)
//   text_model.encoder.layers.{i}.{self_attn.{k,v,q,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*
//   text_model.final_layer_norm.{weight,bias}
//   vision_model.embeddings.class_embedding                  (Dv)
//   vision_model.embeddings.patch_embedding.weight           (Dv, channels, patch, patch)   (Conv2d layout)
//   vision_model.embeddings.position_embedding.weight        (num_patches + 1, Dv)
//   vision_model.pre_layrnorm.{weight,bias}
//   vision_model.encoder.layers.{i}.*                        (as in the text tower)
//   vision_model.post_layernorm.{weight,bias}
//   visual_projection.weight                                 (projection_dim, Dv)   no bias
//   text_projection.weight                                   (projection_dim, Dt)   no bias
//
// Weights are initialised with HF's scheme (_init_weights: normal with initializer_range / width-based
// standard deviations times initializer_factor, LayerNorms 1 and 0, biases 0). Each tower uses its own
// config's initializer_factor and the projections CLIPConfig's (HF's order of post_init calls decides which one
// applies; every released CLIP sets all three to 1). float32 by default; float64 works throughout (parity tests).
#include <memory>

#include "nn/clip_config.h"
#include "nn/clip_encoder.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace linfuse::nn {

// A Conv2d with kernel = stride = patch and no bias, computed as unfold + matmul: non-overlapping patches
// flattened in (channel, row, column) order, times the weight reshaped to (D, C*p*p).
class PatchEmbedding : public Module {
 public:
  PatchEmbedding(int64_t channels, int64_t hidden_size, int64_t patch_size, Generator& init, double std, DType dtype);
  Tensor forward(const Tensor& pixel_values);   // (B, C, H, W) -> (B, (H/p)*(W/p), D), patches row-major
  std::string type_name() const override { return "PatchEmbedding"; }
  int64_t channels, hidden_size, patch_size;
  Tensor weight;   // (D, C, p, p)
};

// Class token + patch embeddings + learned positions (HF CLIPVisionEmbeddings).
class CLIPVisionEmbeddings : public Module {
 public:
  CLIPVisionEmbeddings(const CLIPVisionConfig& config, double initializer_factor, Generator& init, DType dtype);
  Tensor forward(const Tensor& pixel_values);   // (B, C, H, W) -> (B, N + 1, D), the class token first
  std::string type_name() const override { return "CLIPVisionEmbeddings"; }
  CLIPVisionConfig config;
  Tensor class_embedding;   // (D)
  std::shared_ptr<PatchEmbedding> patch_embedding;
  std::shared_ptr<Embedding> position_embedding;   // (N + 1, D)
};

// A tower's outputs (HF BaseModelOutputWithPooling).
struct CLIPTowerOutput {
  Tensor last_hidden_state;   // (B, T, D)
  Tensor pooled_output;       // (B, D): the class token after post_layernorm, or the text's eos token
};

// The image tower (HF CLIPVisionTransformer): embeddings, pre_layrnorm, encoder, post_layernorm on the class token.
class CLIPVisionTransformer : public Module {
 public:
  CLIPVisionTransformer(const CLIPVisionConfig& config, double initializer_factor, Generator& init, DType dtype);
  CLIPTowerOutput forward(const Tensor& pixel_values);   // pixel_values (B, C, H, W), any float dtype
  // forward(pixel_values).pooled_output (B, D), computing only what it reads: the last layer's keys and values
  // need every token, its queries, attention, out_proj and MLP only the class token's row (1 of N + 1). The same
  // value up to rounding (the last layer's weight gradients sum fewer rows). With pool_last_layer_only false,
  // the full forward's pooled output.
  Tensor pooled_output(const Tensor& pixel_values);
  std::string type_name() const override { return "CLIPVisionTransformer"; }
  // Whether pooled_output skips the rows nothing reads. RegMean's statistics turn it off: they need the inputs
  // of every Linear layer at every token, as the full forward gives them.
  bool pool_last_layer_only = true;
  CLIPVisionConfig config;
  std::shared_ptr<CLIPVisionEmbeddings> embeddings;
  std::shared_ptr<LayerNorm> pre_layrnorm;   // sic: HF's spelling
  std::shared_ptr<CLIPEncoder> encoder;
  std::shared_ptr<LayerNorm> post_layernorm;
};

// Token + position embeddings (HF CLIPTextEmbeddings).
class CLIPTextEmbeddings : public Module {
 public:
  CLIPTextEmbeddings(const CLIPTextConfig& config, double initializer_factor, Generator& init, DType dtype);
  Tensor forward(const Tensor& input_ids);   // int64 (B, T) -> (B, T, D), T <= max_position_embeddings
  std::string type_name() const override { return "CLIPTextEmbeddings"; }
  std::shared_ptr<Embedding> token_embedding, position_embedding;
};

// The text tower (HF CLIPTextTransformer): causal encoder, final_layer_norm, pooled at the end-of-text token.
class CLIPTextTransformer : public Module {
 public:
  CLIPTextTransformer(const CLIPTextConfig& config, double initializer_factor, Generator& init, DType dtype);
  // input_ids int64 (B, T); attention_mask (B, T) of 1 (token) / 0 (padding), any dtype, or undefined.
  CLIPTowerOutput forward(const Tensor& input_ids, const Tensor& attention_mask = Tensor());
  // The position pooled in each row, by HF's rule: if every row's largest id is 49407 (OpenAI's BPE, whose
  // end-of-text is its largest id) the position of the largest id, otherwise the first eos_token_id.
  // Throws when a row has no eos_token_id (HF would silently pool position 0).
  std::vector<int64_t> eos_positions(const Tensor& input_ids) const;
  std::string type_name() const override { return "CLIPTextTransformer"; }
  CLIPTextConfig config;
  std::shared_ptr<CLIPTextEmbeddings> embeddings;
  std::shared_ptr<CLIPEncoder> encoder;
  std::shared_ptr<LayerNorm> final_layer_norm;
};

// HF CLIPOutput without the tower outputs.
struct CLIPOutput {
  Tensor logits_per_image;   // (B_images, B_texts) = exp(logit_scale) cos(image_i, text_j)
  Tensor logits_per_text;    // (B_texts, B_images), its transpose
  Tensor image_embeds;       // (B_images, P), L2-normalised
  Tensor text_embeds;        // (B_texts, P), L2-normalised
};

class CLIPModel : public Module {
 public:
  explicit CLIPModel(const CLIPConfig& config, Generator& init, DType dtype = DType::F32);

  Tensor get_image_features(const Tensor& pixel_values);   // (B, C, H, W) -> (B, P), not normalised
  // input_ids int64 (B, T) -> (B, P), not normalised; attention_mask (B, T) or undefined.
  Tensor get_text_features(const Tensor& input_ids, const Tensor& attention_mask = Tensor());
  CLIPOutput forward(const Tensor& pixel_values, const Tensor& input_ids, const Tensor& attention_mask = Tensor());
  std::string type_name() const override { return "CLIPModel"; }
  DType dtype() const { return logit_scale.dtype(); }

  CLIPConfig config;
  Tensor logit_scale;   // () log of the inverse temperature, initialised to logit_scale_init_value
  std::shared_ptr<CLIPTextTransformer> text_model;
  std::shared_ptr<CLIPVisionTransformer> vision_model;
  std::shared_ptr<Linear> visual_projection;   // (P, Dv), no bias
  std::shared_ptr<Linear> text_projection;     // (P, Dt), no bias
};

// A checkpoint folder in Hugging Face's layout: config.json + model.safetensors (tensors in the model's dtype,
// metadata {"format": "pt"}), so transformers' CLIPModel.from_pretrained reads it and vice versa.
void save_pretrained(CLIPModel& clip, const std::string& directory);
// Reads such a folder; weights are converted to `dtype`. Throws naming the file on a missing or mismatched tensor.
std::shared_ptr<CLIPModel> load_pretrained_clip(const std::string& directory, DType dtype = DType::F32);

// x / ||x||_2 along the last axis.
Tensor l2_normalize(const Tensor& x);

// HF clip_loss: the symmetric InfoNCE loss on a square similarity matrix (row i's positive is column i),
// (cross_entropy(s, arange) + cross_entropy(s^T, arange)) / 2. Returns a scalar (rank 0).
Tensor clip_loss(const Tensor& similarity);

}  // namespace linfuse::nn
