#include "nn/clip.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "autodiff/ops.h"
#include "nn/attention.h"
#include "nn/safetensors.h"

namespace linfuse::nn {

namespace {
std::string sizes(std::initializer_list<int64_t> dims) {
  std::string s = "(";
  for (int64_t d : dims) s += (s.size() > 1 ? "," : "") + (d < 0 ? std::string("B") : std::to_string(d));
  return s + ")";
}
}  // namespace

// ---- vision ----

PatchEmbedding::PatchEmbedding(int64_t channels_, int64_t hidden_size_, int64_t patch_size_, Generator& init, double std,
                               DType dtype)
    : channels(channels_), hidden_size(hidden_size_), patch_size(patch_size_) {
  weight = init.normal({hidden_size, channels, patch_size, patch_size}, 0.0, std, dtype);
  register_parameter("weight", weight);
}

Tensor PatchEmbedding::forward(const Tensor& pixel_values) {
  const int64_t p = patch_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != channels || pixel_values.size(2) % p != 0 ||
      pixel_values.size(3) % p != 0)
    throw std::invalid_argument("[PatchEmbedding] expected pixel_values (B, " + std::to_string(channels) +
                                ", H, W) with H and W multiples of the patch size " + std::to_string(p) + ", got " +
                                pixel_values.describe());
  const int64_t batch = pixel_values.size(0), rows = pixel_values.size(2) / p, cols = pixel_values.size(3) / p;
  // unfold: (B, C, rows, p, cols, p) -> (B, rows, cols, C, p, p) -> (B, rows*cols, C*p*p)
  Tensor x = reshape(cast(pixel_values, weight.dtype()), {batch, channels, rows, p, cols, p});
  x = reshape(permute(x, {0, 2, 4, 1, 3, 5}), {batch, rows * cols, channels * p * p});
  return linear(x, reshape(weight, {hidden_size, channels * p * p}));   // (B, N, D)
}

CLIPVisionEmbeddings::CLIPVisionEmbeddings(const CLIPVisionConfig& config_, double factor, Generator& init, DType dtype)
    : config(config_) {
  const int64_t d = config.hidden_size;
  // HF: class_embedding ~ N(0, D^-0.5 factor), patch and position ~ N(0, initializer_range factor).
  class_embedding = init.normal({d}, 0.0, std::pow(double(d), -0.5) * factor, dtype);
  register_parameter("class_embedding", class_embedding);
  patch_embedding = register_module(
      "patch_embedding", std::make_shared<PatchEmbedding>(config.num_channels, d, config.patch_size, init,
                                                          config.initializer_range * factor, dtype));
  Generator scratch(0);
  position_embedding = register_module("position_embedding",
                                       std::make_shared<Embedding>(config.num_positions(), d, scratch, dtype));
  init_normal_(position_embedding->weight, init, config.initializer_range * factor);
}

Tensor CLIPVisionEmbeddings::forward(const Tensor& pixel_values) {
  const int64_t s = config.image_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != config.num_channels || pixel_values.size(2) != s ||
      pixel_values.size(3) != s)
    throw std::invalid_argument("[CLIPVisionEmbeddings] expected pixel_values " +
                                sizes({-1, config.num_channels, s, s}) + " as the config says, got " +
                                pixel_values.describe());
  const int64_t batch = pixel_values.size(0), d = config.hidden_size;
  Tensor patches = patch_embedding->forward(pixel_values);                               // (B, N, D)
  Tensor cls = broadcast_to(reshape(class_embedding, {1, 1, d}), {batch, 1, d});         // (B, 1, D)
  return add(concat({cls, patches}, 1), position_embedding->weight);                    // (B, N + 1, D)
}

CLIPVisionTransformer::CLIPVisionTransformer(const CLIPVisionConfig& config_, double factor, Generator& init, DType dtype)
    : config(config_) {
  config.validate();
  embeddings = register_module("embeddings", std::make_shared<CLIPVisionEmbeddings>(config, factor, init, dtype));
  pre_layrnorm = register_module("pre_layrnorm", std::make_shared<LayerNorm>(config.hidden_size, config.layer_norm_eps, dtype));
  CLIPEncoderSettings settings = CLIPEncoderSettings::of(config);
  settings.initializer_factor = factor;
  encoder = register_module("encoder", std::make_shared<CLIPEncoder>(settings, init, dtype));
  post_layernorm =
      register_module("post_layernorm", std::make_shared<LayerNorm>(config.hidden_size, config.layer_norm_eps, dtype));
}

CLIPTowerOutput CLIPVisionTransformer::forward(const Tensor& pixel_values) {
  Tensor h = pre_layrnorm->forward(embeddings->forward(pixel_values));   // (B, N + 1, D)
  h = encoder->forward(h, Tensor());                                      // no mask: every token sees every token
  return {h, post_layernorm->forward(select(h, 1, 0))};                  // pooled: the class token (B, D)
}

Tensor CLIPVisionTransformer::pooled_output(const Tensor& pixel_values) {
  const auto& layers = *encoder->layers;
  if (!pool_last_layer_only || layers.size() == 0) return forward(pixel_values).pooled_output;
  Tensor h = pre_layrnorm->forward(embeddings->forward(pixel_values));   // (B, N + 1, D)
  for (size_t i = 0; i + 1 < layers.size(); ++i) h = layers[i]->forward(h, Tensor());
  h = layers[layers.size() - 1]->forward_first_token(h, Tensor());        // (B, 1, D)
  return post_layernorm->forward(select(h, 1, 0));                         // (B, D)
}

// ---- text ----

CLIPTextEmbeddings::CLIPTextEmbeddings(const CLIPTextConfig& config, double factor, Generator& init, DType dtype) {
  Generator scratch(0);
  token_embedding = register_module("token_embedding",
                                    std::make_shared<Embedding>(config.vocab_size, config.hidden_size, scratch, dtype));
  position_embedding = register_module(
      "position_embedding", std::make_shared<Embedding>(config.max_position_embeddings, config.hidden_size, scratch, dtype));
  // HF: both N(0, 0.02 factor) (a fixed 0.02, not initializer_range).
  init_normal_(token_embedding->weight, init, 0.02 * factor);
  init_normal_(position_embedding->weight, init, 0.02 * factor);
}

Tensor CLIPTextEmbeddings::forward(const Tensor& input_ids) {
  const int64_t max_positions = position_embedding->weight.size(0);
  if (input_ids.dim() != 2 || input_ids.dtype() != DType::I64)
    throw std::invalid_argument("[CLIPTextEmbeddings] input_ids must be int64 (B, T), got " + input_ids.describe());
  const int64_t length = input_ids.size(1);
  if (length > max_positions)
    throw std::invalid_argument("[CLIPTextEmbeddings] sequence length " + std::to_string(length) +
                                " exceeds max_position_embeddings " + std::to_string(max_positions) +
                                ": truncate the text (tokenize_for_clip does) or enlarge the config");
  Tensor tokens = token_embedding->forward(input_ids);                                  // (B, T, D)
  return add(tokens, slice(position_embedding->weight, 0, 0, length));                  // + (T, D)
}

CLIPTextTransformer::CLIPTextTransformer(const CLIPTextConfig& config_, double factor, Generator& init, DType dtype)
    : config(config_) {
  config.validate();
  embeddings = register_module("embeddings", std::make_shared<CLIPTextEmbeddings>(config, factor, init, dtype));
  CLIPEncoderSettings settings = CLIPEncoderSettings::of(config);
  settings.initializer_factor = factor;
  encoder = register_module("encoder", std::make_shared<CLIPEncoder>(settings, init, dtype));
  final_layer_norm =
      register_module("final_layer_norm", std::make_shared<LayerNorm>(config.hidden_size, config.layer_norm_eps, dtype));
}

std::vector<int64_t> CLIPTextTransformer::eos_positions(const Tensor& input_ids) const {
  if (input_ids.dim() != 2 || input_ids.dtype() != DType::I64)
    throw std::invalid_argument("[CLIPTextTransformer] input_ids must be int64 (B, T), got " + input_ids.describe());
  const int64_t batch = input_ids.size(0), length = input_ids.size(1);
  std::vector<int64_t> ids = input_ids.to_vector<int64_t>();
  // HF (after PR #24773): OpenAI's tokenizer puts end-of-text (49407) last in its vocabulary, and old configs
  // carry a wrong eos_token_id (2), so when every row's largest id is 49407 HF pools at the largest id.
  bool openai_vocabulary = batch > 0;
  for (int64_t b = 0; b < batch && openai_vocabulary; ++b) {
    int64_t largest = ids[b * length];
    for (int64_t t = 1; t < length; ++t) largest = std::max(largest, ids[b * length + t]);
    openai_vocabulary = largest == 49407;
  }
  std::vector<int64_t> positions(size_t(batch), -1);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = ids.data() + b * length;
    if (openai_vocabulary) {
      positions[b] = std::max_element(row, row + length) - row;   // the first largest, as torch.argmax
      continue;
    }
    for (int64_t t = 0; t < length && positions[b] < 0; ++t)
      if (row[t] == config.eos_token_id) positions[b] = t;
    if (positions[b] < 0)
      throw std::invalid_argument("[CLIPTextTransformer] row " + std::to_string(b) + " of input_ids has no eos_token_id " +
                                  std::to_string(config.eos_token_id) +
                                  ": CLIP pools the end-of-text token, so every sequence must contain it "
                                  "(tokenize_for_clip appends it)");
  }
  return positions;
}

CLIPTowerOutput CLIPTextTransformer::forward(const Tensor& input_ids, const Tensor& attention_mask) {
  Tensor h = embeddings->forward(input_ids);   // (B, T, D)
  const int64_t batch = h.size(0), length = h.size(1), d = h.size(2);
  Tensor bias = causal_mask(length, h.dtype());   // (T, T)
  if (attention_mask.defined()) {
    if (attention_mask.shape() != input_ids.shape())
      throw std::invalid_argument("[CLIPTextTransformer] attention_mask " + attention_mask.describe() +
                                  " must have the shape of input_ids " + input_ids.describe());
    bias = add(bias, padding_mask(attention_mask, h.dtype()));   // (B, 1, T, T)
  }
  h = final_layer_norm->forward(encoder->forward(h, bias));
  std::vector<int64_t> rows;
  std::vector<int64_t> positions = eos_positions(input_ids);
  for (int64_t b = 0; b < batch; ++b) rows.push_back(b * length + positions[b]);
  Tensor pooled = index_select(reshape(h, {batch * length, d}), 0, Tensor::from_vector(rows, {batch}));   // (B, D)
  return {h, pooled};
}

// ---- the model ----

CLIPModel::CLIPModel(const CLIPConfig& config_, Generator& init, DType dtype) : config(config_) {
  config.validate();
  if (!is_floating(dtype)) throw std::invalid_argument("[CLIPModel] dtype must be float32 or float64");
  // HF's order: logit_scale (a parameter of CLIPModel itself) comes first, then the submodules.
  logit_scale = Tensor::scalar(config.logit_scale_init_value, dtype);
  register_parameter("logit_scale", logit_scale);
  text_model = register_module("text_model", std::make_shared<CLIPTextTransformer>(
                                                 config.text_config, config.text_config.initializer_factor, init, dtype));
  vision_model = register_module("vision_model", std::make_shared<CLIPVisionTransformer>(
                                                     config.vision_config, config.vision_config.initializer_factor, init, dtype));
  Generator scratch(0);
  const int64_t p = config.projection_dim, dv = config.vision_config.hidden_size, dt = config.text_config.hidden_size;
  visual_projection = register_module("visual_projection", std::make_shared<Linear>(dv, p, false, scratch, dtype));
  text_projection = register_module("text_projection", std::make_shared<Linear>(dt, p, false, scratch, dtype));
  init_normal_(visual_projection->weight, init, std::pow(double(dv), -0.5) * config.initializer_factor);
  init_normal_(text_projection->weight, init, std::pow(double(dt), -0.5) * config.initializer_factor);
}

Tensor CLIPModel::get_image_features(const Tensor& pixel_values) {
  return visual_projection->forward(vision_model->pooled_output(pixel_values));   // (B, P)
}

Tensor CLIPModel::get_text_features(const Tensor& input_ids, const Tensor& attention_mask) {
  return text_projection->forward(text_model->forward(input_ids, attention_mask).pooled_output);   // (B, P)
}

CLIPOutput CLIPModel::forward(const Tensor& pixel_values, const Tensor& input_ids, const Tensor& attention_mask) {
  Tensor image_embeds = l2_normalize(get_image_features(pixel_values));               // (Bi, P)
  Tensor text_embeds = l2_normalize(get_text_features(input_ids, attention_mask));    // (Bt, P)
  // As HF: logits_per_text = text @ image^T * exp(logit_scale), logits_per_image its transpose.
  Tensor logits_per_text = mul(matmul(text_embeds, transpose(image_embeds, 0, 1)), exp(logit_scale));   // (Bt, Bi)
  return {transpose(logits_per_text, 0, 1), logits_per_text, image_embeds, text_embeds};
}

void save_pretrained(CLIPModel& clip, const std::string& directory) {
  std::filesystem::create_directories(directory);
  clip.config.save_json_file(directory + "/config.json");
  save_safetensors(directory + "/model.safetensors", clip.state_dict(), {{"format", "pt"}});
}

std::shared_ptr<CLIPModel> load_pretrained_clip(const std::string& directory, DType dtype) {
  CLIPConfig config = CLIPConfig::from_json_file(directory + "/config.json");
  Generator unused(0);   // the initial values are overwritten by the checkpoint
  auto clip = std::make_shared<CLIPModel>(config, unused, dtype);
  const std::string weights = directory + "/model.safetensors";
  try {
    clip->load_state_dict(load_safetensors(weights));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(weights + ": " + e.what());
  }
  return clip;
}

Tensor l2_normalize(const Tensor& x) { return div(x, sqrt(sum(square(x), {-1}, true))); }

Tensor clip_loss(const Tensor& similarity) {
  if (similarity.dim() != 2 || similarity.size(0) != similarity.size(1))
    throw std::invalid_argument("[clip_loss] the similarity matrix must be square (N, N): pair image i with text i; got " +
                                similarity.describe());
  Tensor targets = Tensor::arange(similarity.size(0), DType::I64);
  Tensor caption_loss = cross_entropy(similarity, targets);
  Tensor image_loss = cross_entropy(transpose(similarity, 0, 1), targets);
  return div(add(caption_loss, image_loss), 2.0);
}

}  // namespace linfuse::nn
