#include "nn/clip_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "nn/layers.h"

namespace linfuse::nn {

using json = nlohmann::json;

namespace {

// Reads j[key] into `field` when present and not null; a value of the wrong type names the field.
template <class T>
void read_field(const json& j, const char* key, T& field, const char* config) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      // HF writes integers; accept 512.0 too, but not 512.5.
      if (it->is_number_float()) {
        double v = it->get<double>();
        if (v != double(int64_t(v))) throw std::invalid_argument("not an integer");
        field = int64_t(v);
        return;
      }
    }
    field = it->get<T>();
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("[") + config + "] field '" + key + "' has the wrong type (" + it->dump() +
                                "): " + e.what());
  }
}

void require(bool ok, const char* config, const std::string& message) {
  if (!ok) throw std::invalid_argument(std::string("[") + config + "] " + message);
}

void check_positive(int64_t value, const char* config, const char* field) {
  require(value > 0, config, std::string(field) + " must be positive, got " + std::to_string(value));
}

void check_common(const char* config, int64_t hidden_size, int64_t intermediate_size, int64_t layers, int64_t heads,
                  const std::string& act, double eps, double dropout, double init_range, double init_factor) {
  check_positive(hidden_size, config, "hidden_size");
  check_positive(intermediate_size, config, "intermediate_size");
  check_positive(layers, config, "num_hidden_layers");
  check_positive(heads, config, "num_attention_heads");
  require(hidden_size % heads == 0, config,
          "hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
              std::to_string(heads) + ": choose a hidden_size that is a multiple of the number of heads");
  try {
    activation_from_name(act);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("[") + config + "] hidden_act: " + e.what());
  }
  require(eps > 0, config, "layer_norm_eps must be positive, got " + std::to_string(eps));
  require(dropout >= 0 && dropout < 1, config, "attention_dropout must be in [0, 1), got " + std::to_string(dropout));
  require(init_range >= 0 && init_factor >= 0, config, "initializer_range and initializer_factor must be >= 0");
}

}  // namespace

// ---- vision ----

void CLIPVisionConfig::validate() const {
  const char* c = "CLIPVisionConfig";
  check_common(c, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, hidden_act, layer_norm_eps,
               attention_dropout, initializer_range, initializer_factor);
  check_positive(projection_dim, c, "projection_dim");
  check_positive(num_channels, c, "num_channels");
  check_positive(image_size, c, "image_size");
  check_positive(patch_size, c, "patch_size");
  require(image_size % patch_size == 0, c,
          "patch_size " + std::to_string(patch_size) + " does not divide image_size " + std::to_string(image_size) +
              ": patches must tile the image (choose a divisor, e.g. 4 or 7 for 28x28 images)");
}

json CLIPVisionConfig::to_json() const {
  return {{"model_type", "clip_vision_model"},     {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size}, {"projection_dim", projection_dim},
          {"num_hidden_layers", num_hidden_layers}, {"num_attention_heads", num_attention_heads},
          {"num_channels", num_channels},           {"image_size", image_size},
          {"patch_size", patch_size},               {"hidden_act", hidden_act},
          {"layer_norm_eps", layer_norm_eps},       {"attention_dropout", attention_dropout},
          {"initializer_range", initializer_range}, {"initializer_factor", initializer_factor}};
}

CLIPVisionConfig CLIPVisionConfig::from_json(const json& j) {
  const char* c = "CLIPVisionConfig";
  if (!j.is_object()) throw std::invalid_argument("[CLIPVisionConfig] expected a JSON object, got " + j.dump());
  CLIPVisionConfig v;
  read_field(j, "hidden_size", v.hidden_size, c);
  read_field(j, "intermediate_size", v.intermediate_size, c);
  read_field(j, "projection_dim", v.projection_dim, c);
  read_field(j, "num_hidden_layers", v.num_hidden_layers, c);
  read_field(j, "num_attention_heads", v.num_attention_heads, c);
  read_field(j, "num_channels", v.num_channels, c);
  read_field(j, "image_size", v.image_size, c);
  read_field(j, "patch_size", v.patch_size, c);
  read_field(j, "hidden_act", v.hidden_act, c);
  read_field(j, "layer_norm_eps", v.layer_norm_eps, c);
  read_field(j, "attention_dropout", v.attention_dropout, c);
  read_field(j, "initializer_range", v.initializer_range, c);
  read_field(j, "initializer_factor", v.initializer_factor, c);
  v.validate();
  return v;
}

// ---- text ----

void CLIPTextConfig::validate() const {
  const char* c = "CLIPTextConfig";
  check_common(c, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, hidden_act, layer_norm_eps,
               attention_dropout, initializer_range, initializer_factor);
  check_positive(vocab_size, c, "vocab_size");
  check_positive(projection_dim, c, "projection_dim");
  check_positive(max_position_embeddings, c, "max_position_embeddings");
  auto check_id = [&](int64_t id, const char* field) {
    require(id >= 0 && id < vocab_size, c,
            std::string(field) + " " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size) + "): set it to the tokenizer's id or enlarge vocab_size");
  };
  check_id(pad_token_id, "pad_token_id");
  // bos_token_id is not checked against the vocabulary: the forward pass never reads it, and transformers loads
  // a small-vocabulary config that keeps HF's default 49406. Only tokenize_for_clip uses it, and refuses there.
  check_id(eos_token_id, "eos_token_id");
  require(bos_token_id != eos_token_id, c,
          "bos_token_id and eos_token_id are both " + std::to_string(eos_token_id) +
              ": the text is pooled at the first eos, so they must differ (use bos_token_id -1 for none)");
}

json CLIPTextConfig::to_json() const {
  return {{"model_type", "clip_text_model"},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"projection_dim", projection_dim},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"max_position_embeddings", max_position_embeddings},
          {"hidden_act", hidden_act},
          {"layer_norm_eps", layer_norm_eps},
          {"attention_dropout", attention_dropout},
          {"initializer_range", initializer_range},
          {"initializer_factor", initializer_factor},
          {"pad_token_id", pad_token_id},
          {"bos_token_id", bos_token_id >= 0 ? json(bos_token_id) : json(nullptr)},
          {"eos_token_id", eos_token_id}};
}

CLIPTextConfig CLIPTextConfig::from_json(const json& j) {
  const char* c = "CLIPTextConfig";
  if (!j.is_object()) throw std::invalid_argument("[CLIPTextConfig] expected a JSON object, got " + j.dump());
  CLIPTextConfig t;
  read_field(j, "vocab_size", t.vocab_size, c);
  read_field(j, "hidden_size", t.hidden_size, c);
  read_field(j, "intermediate_size", t.intermediate_size, c);
  read_field(j, "projection_dim", t.projection_dim, c);
  read_field(j, "num_hidden_layers", t.num_hidden_layers, c);
  read_field(j, "num_attention_heads", t.num_attention_heads, c);
  read_field(j, "max_position_embeddings", t.max_position_embeddings, c);
  read_field(j, "hidden_act", t.hidden_act, c);
  read_field(j, "layer_norm_eps", t.layer_norm_eps, c);
  read_field(j, "attention_dropout", t.attention_dropout, c);
  read_field(j, "initializer_range", t.initializer_range, c);
  read_field(j, "initializer_factor", t.initializer_factor, c);
  read_field(j, "pad_token_id", t.pad_token_id, c);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_null()) t.bos_token_id = -1;   // HF None: no bos
  read_field(j, "bos_token_id", t.bos_token_id, c);
  read_field(j, "eos_token_id", t.eos_token_id, c);
  t.validate();
  return t;
}

// ---- the whole model ----

// Why these sizes:
// - Vision: the paper fine-tunes CLIP ViT-B/16 (width 768, 12 layers, 12 heads, MLP 4x, patch 16 on 224x224,
//   i.e. 196 patches). At CPU scale on 28x28 grayscale images (MNIST-like tasks) patch 4 gives 49 patches,
//   the same order of sequence length per FLOP budget; width 128 with 4 heads keeps head_dim 32 and the MLP
//   ratio 4, and 4 layers are enough depth for LoRA on q,k,v,o,fc1,fc2 to matter. This is exactly the ViT of
//   the project's reference benchmark (DESIGN.md, torch_ref.py), so benchmark and experiments agree.
// - Text: it only builds the frozen zero-shot head (class-name prompts), so it is smaller than the image
//   tower, as in CLIP (B/16: text width 512 vs vision 768): width 64, 2 layers, 4 heads, 32 positions (prompts
//   are short). Vocabulary 1024 and pad 0 / eos 1 / no bos are the project's SentencePiece tokenizer
//   (nn/tokenizer.h: T5's ids, pad 0, eos 1, unk 2, no bos) trained with vocab_size 1024 (sentinels included),
//   so Tokenizer::encode (which appends eos) plugs in directly; pooling takes the first eos (HF's rule).
// - projection_dim 64 = the text width, as OpenAI's CLIP sets the embedding width to the text width.
// - quick_gelu: OpenAI's CLIP activation (HF's default for CLIP).
CLIPConfig CLIPConfig::tiny() {
  CLIPConfig c;
  c.projection_dim = 64;
  auto& v = c.vision_config;
  v.hidden_size = 128;
  v.intermediate_size = 512;
  v.projection_dim = 64;
  v.num_hidden_layers = 4;
  v.num_attention_heads = 4;
  v.num_channels = 1;
  v.image_size = 28;
  v.patch_size = 4;
  auto& t = c.text_config;
  t.vocab_size = 1024;
  t.hidden_size = 64;
  t.intermediate_size = 256;
  t.projection_dim = 64;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 4;
  t.max_position_embeddings = 32;
  t.pad_token_id = 0;
  t.bos_token_id = -1;
  t.eos_token_id = 1;
  c.validate();
  return c;
}

void CLIPConfig::validate() const {
  text_config.validate();
  vision_config.validate();
  check_positive(projection_dim, "CLIPConfig", "projection_dim");
  require(initializer_factor >= 0, "CLIPConfig", "initializer_factor must be >= 0");
}

json CLIPConfig::to_json() const {
  return {{"model_type", "clip"},
          {"architectures", {"CLIPModel"}},
          {"projection_dim", projection_dim},
          {"logit_scale_init_value", logit_scale_init_value},
          {"initializer_factor", initializer_factor},
          {"text_config", text_config.to_json()},
          {"vision_config", vision_config.to_json()}};
}

CLIPConfig CLIPConfig::from_json(const json& j) {
  const char* c = "CLIPConfig";
  if (!j.is_object()) throw std::invalid_argument("[CLIPConfig] expected a JSON object, got " + j.dump());
  CLIPConfig config;
  auto sub = [&](const char* key) { return j.contains(key) && !j[key].is_null() ? j[key] : json::object(); };
  config.text_config = CLIPTextConfig::from_json(sub("text_config"));
  config.vision_config = CLIPVisionConfig::from_json(sub("vision_config"));
  read_field(j, "projection_dim", config.projection_dim, c);
  read_field(j, "logit_scale_init_value", config.logit_scale_init_value, c);
  read_field(j, "initializer_factor", config.initializer_factor, c);
  config.validate();
  return config;
}

CLIPConfig CLIPConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("[CLIPConfig] cannot open '" + path + "': check the path");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error("[CLIPConfig] '" + path + "' is not valid JSON: " + e.what());
  }
  try {
    return from_json(j);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

void CLIPConfig::save_json_file(const std::string& path) const {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("[CLIPConfig] cannot write '" + path + "': check that the folder exists");
  out << to_json().dump(2) << "\n";
  if (!out) throw std::runtime_error("[CLIPConfig] writing '" + path + "' failed");
}

}  // namespace linfuse::nn
