#include "nn/reference_parameters.h"

#include <stdexcept>

#include "nn/t5.h"

namespace linfuse::nn {

using json = nlohmann::json;

namespace {

// Appends parameters under a dotted prefix.
class ParameterList {
 public:
  void add(const std::string& name, Shape shape) { out_.push_back({name, std::move(shape)}); }
  void linear(const std::string& name, int64_t in, int64_t out, bool bias) {
    add(name + ".weight", {out, in});
    if (bias) add(name + ".bias", {out});
  }
  void layer_norm(const std::string& name, int64_t d) {
    add(name + ".weight", {d});
    add(name + ".bias", {d});
  }
  std::vector<ParameterShape> take() { return std::move(out_); }

 private:
  std::vector<ParameterShape> out_;
};

// CLIPEncoder (clip_encoder.cpp): per layer self_attn (k, v, q, out), layer_norm1, mlp (fc1, fc2), layer_norm2.
void clip_encoder(ParameterList& p, const std::string& prefix, int64_t d, int64_t intermediate, int64_t layers) {
  for (int64_t i = 0; i < layers; ++i) {
    const std::string layer = prefix + "encoder.layers." + std::to_string(i) + ".";
    for (const char* projection : {"k_proj", "v_proj", "q_proj", "out_proj"})
      p.linear(layer + "self_attn." + projection, d, d, true);
    p.layer_norm(layer + "layer_norm1", d);
    p.linear(layer + "mlp.fc1", d, intermediate, true);
    p.linear(layer + "mlp.fc2", intermediate, d, true);
    p.layer_norm(layer + "layer_norm2", d);
  }
}

// CLIPVisionTransformer (clip.cpp).
void clip_vision(ParameterList& p, const CLIPVisionConfig& v) {
  const int64_t d = v.hidden_size;
  p.add("vision_model.embeddings.class_embedding", {d});
  p.add("vision_model.embeddings.patch_embedding.weight", {d, v.num_channels, v.patch_size, v.patch_size});
  p.add("vision_model.embeddings.position_embedding.weight", {v.num_positions(), d});
  p.layer_norm("vision_model.pre_layrnorm", d);
  clip_encoder(p, "vision_model.", d, v.intermediate_size, v.num_hidden_layers);
  p.layer_norm("vision_model.post_layernorm", d);
}

// CLIPTextTransformer (clip.cpp).
void clip_text(ParameterList& p, const CLIPTextConfig& t) {
  const int64_t d = t.hidden_size;
  p.add("text_model.embeddings.token_embedding.weight", {t.vocab_size, d});
  p.add("text_model.embeddings.position_embedding.weight", {t.max_position_embeddings, d});
  clip_encoder(p, "text_model.", d, t.intermediate_size, t.num_hidden_layers);
  p.layer_norm("text_model.final_layer_norm", d);
}

// T5ForConditionalGeneration (t5.cpp): shared, encoder and decoder stacks, lm_head when untied.
void t5(ParameterList& p, const T5Config& c) {
  p.add("shared.weight", {c.vocab_size, c.d_model});
  for (const bool decoder : {false, true}) {
    const std::string stack = decoder ? "decoder." : "encoder.";
    const int64_t blocks = decoder ? c.num_decoder_layers : c.num_layers;
    for (int64_t i = 0; i < blocks; ++i) {
      const std::string block = stack + "block." + std::to_string(i) + ".layer.";
      auto attention = [&](const std::string& name, bool relative_bias) {
        for (const char* projection : {"q", "k", "v"}) p.linear(name + "." + projection, c.d_model, c.inner_dim(), false);
        p.linear(name + ".o", c.inner_dim(), c.d_model, false);
        if (relative_bias) p.add(name + ".relative_attention_bias.weight", {c.relative_attention_num_buckets, c.num_heads});
      };
      attention(block + "0.SelfAttention", i == 0);
      p.add(block + "0.layer_norm.weight", {c.d_model});
      int64_t ff = 1;
      if (decoder) {
        attention(block + "1.EncDecAttention", false);
        p.add(block + "1.layer_norm.weight", {c.d_model});
        ff = 2;
      }
      const std::string dense = block + std::to_string(ff) + ".DenseReluDense.";
      if (c.is_gated_act()) {
        p.linear(dense + "wi_0", c.d_model, c.d_ff, false);
        p.linear(dense + "wi_1", c.d_model, c.d_ff, false);
      } else {
        p.linear(dense + "wi", c.d_model, c.d_ff, false);
      }
      p.linear(dense + "wo", c.d_ff, c.d_model, false);
      p.add(block + std::to_string(ff) + ".layer_norm.weight", {c.d_model});
    }
    p.add(stack + "final_layer_norm.weight", {c.d_model});
  }
  if (!c.tie_word_embeddings) p.linear("lm_head", c.d_model, c.vocab_size, false);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::pair<CLIPVisionConfig, int64_t> clip_vision_tower_config(const json& c) {
  if (c.contains("vision_config") || c.contains("text_config")) {
    CLIPConfig whole = CLIPConfig::from_json(c);
    return {whole.vision_config, whole.projection_dim};
  }
  CLIPVisionConfig v = CLIPVisionConfig::from_json(c);
  return {v, v.projection_dim};
}

std::pair<CLIPTextConfig, int64_t> clip_text_tower_config(const json& c) {
  if (c.contains("vision_config") || c.contains("text_config")) {
    CLIPConfig whole = CLIPConfig::from_json(c);
    return {whole.text_config, whole.projection_dim};
  }
  CLIPTextConfig t = CLIPTextConfig::from_json(c);
  return {t, t.projection_dim};
}

std::vector<ParameterShape> reference_parameter_shapes(const ReferenceConfig& config) {
  ParameterList p;
  if (config.model == "clip") {
    CLIPConfig c = CLIPConfig::from_json(config.config);
    p.add("logit_scale", {});
    clip_text(p, c.text_config);
    clip_vision(p, c.vision_config);
    p.linear("visual_projection", c.vision_config.hidden_size, c.projection_dim, false);
    p.linear("text_projection", c.text_config.hidden_size, c.projection_dim, false);
  } else if (config.model == "clip_vision") {
    auto [v, projection] = clip_vision_tower_config(config.config);
    clip_vision(p, v);
    p.linear("visual_projection", v.hidden_size, projection, false);
  } else if (config.model == "clip_text") {
    auto [t, projection] = clip_text_tower_config(config.config);
    clip_text(p, t);
    p.linear("text_projection", t.hidden_size, projection, false);
  } else if (config.model == "t5") {
    t5(p, T5Config::from_json(config.config.dump()));
  } else {
    reference_model_spec(config.model);   // throws listing the names
  }
  return p.take();
}

std::string reference_skip_reason(const std::string& model, const std::string& name) {
  // HF's _keys_to_ignore_on_load_unexpected: position_ids was a persistent buffer before transformers 4.31;
  // old T5 checkpoints carry a relative_attention_bias in the decoder's first cross-attention, never used.
  if (name == "vision_model.embeddings.position_ids" || name == "text_model.embeddings.position_ids")
    return "a position_ids buffer of old HF checkpoints (HF ignores it too)";
  if (model == "t5" && name == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")
    return "unused by T5's cross-attention (HF ignores it too)";
  // What a single tower drops from a whole CLIPModel checkpoint (HF's *WithProjection.from_pretrained does too).
  std::vector<std::string> other_side;
  if (model == "clip_vision") other_side = {"text_model.", "text_projection.weight", "logit_scale"};
  if (model == "clip_text") other_side = {"vision_model.", "visual_projection.weight", "logit_scale"};
  for (const auto& prefix : other_side)
    if (starts_with(name, prefix)) return "not part of " + model + " (another part of CLIPModel)";
  return "";
}

StateDict canonical_reference_names(const ReferenceConfig& config, const StateDict& by_name, std::vector<std::string>* dropped) {
  StateDict out;
  for (const auto& [name, tensor] : by_name) {
    std::string reason = reference_skip_reason(config.model, name);
    if (reason.empty()) out.insert(name, tensor);
    else if (dropped) dropped->push_back(name + ": " + reason);
  }
  if (config.model == "t5") out = canonical_t5_state_dict(out, T5Config::from_json(config.config.dump()));
  return out;
}

uint64_t parameter_bytes(const std::vector<ParameterShape>& parameters, DType dtype) {
  uint64_t total = 0;
  for (const auto& p : parameters) {
    uint64_t bytes = dtype_size(dtype);
    for (int64_t d : p.shape)
      if (d < 0 || __builtin_mul_overflow(bytes, uint64_t(d), &bytes)) return UINT64_MAX;
    if (__builtin_add_overflow(total, bytes, &total)) return UINT64_MAX;
  }
  return total;
}

}  // namespace linfuse::nn
