#include "nn/t5_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace linfuse::nn {
namespace {

using json = nlohmann::json;

// The activation part of feed_forward_proj: "gated-gelu" -> "gelu", "relu" -> "relu"; throws like Hugging
// Face when the string has any other shape.
std::string activation_part(const std::string& proj) {
  std::string act = proj;
  bool gated = proj.rfind("gated-", 0) == 0;
  if (gated) act = proj.substr(6);
  if (act.empty() || act.find('-') != std::string::npos)
    throw std::invalid_argument("[T5Config] feed_forward_proj '" + proj +
                                "' is not of the form 'gated-{ACT}' or '{ACT}', e.g. 'gated-gelu' or 'relu'");
  return act;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("[T5Config] " + message);
}

}  // namespace

bool T5Config::is_gated_act() const { return feed_forward_proj.rfind("gated-", 0) == 0; }

std::string T5Config::dense_act_fn_name() const {
  // Hugging Face: "for backwards compatibility", gated-gelu uses the tanh approximation (gelu_new), which is
  // what T5 v1.1 and Flan-T5 were trained with.
  if (feed_forward_proj == "gated-gelu") return "gelu_new";
  return activation_part(feed_forward_proj);
}

Activation T5Config::dense_act_fn() const { return activation_from_name(dense_act_fn_name()); }

void T5Config::validate() const {
  auto positive = [](const char* name, int64_t v) {
    require(v > 0, std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("d_kv", d_kv);
  positive("d_ff", d_ff);
  positive("num_layers", num_layers);
  positive("num_decoder_layers", num_decoder_layers);
  positive("num_heads", num_heads);
  // Buckets: the bidirectional variant halves them and keeps a quarter exact, so with fewer than 4 there is
  // no exact bucket and the log-spaced formula divides by zero; the causal variant keeps num_buckets/2 exact
  // and needs max_distance beyond them for log(max_distance / max_exact) > 0.
  require(relative_attention_num_buckets >= 4,
          "relative_attention_num_buckets must be at least 4, got " + std::to_string(relative_attention_num_buckets));
  require(relative_attention_max_distance > relative_attention_num_buckets / 2,
          "relative_attention_max_distance (" + std::to_string(relative_attention_max_distance) +
              ") must exceed relative_attention_num_buckets / 2 (" + std::to_string(relative_attention_num_buckets / 2) +
              ", the exact buckets)");
  require(dropout_rate >= 0 && dropout_rate < 1, "dropout_rate must be in [0, 1), got " + std::to_string(dropout_rate));
  require(layer_norm_epsilon > 0, "layer_norm_epsilon must be positive, got " + std::to_string(layer_norm_epsilon));
  require(initializer_factor > 0, "initializer_factor must be positive, got " + std::to_string(initializer_factor));
  auto token = [&](const char* name, int64_t id) {
    require(id >= 0 && id < vocab_size,
            std::string(name) + " " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  };
  token("pad_token_id", pad_token_id);
  token("eos_token_id", eos_token_id);
  token("decoder_start_token_id", decoder_start_token_id);
  try {
    dense_act_fn();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[T5Config] feed_forward_proj '" + feed_forward_proj + "': " + e.what());
  }
}

std::string T5Config::to_json() const {
  json j = {
      {"model_type", "t5"},
      {"is_encoder_decoder", true},
      {"vocab_size", vocab_size},
      {"d_model", d_model},
      {"d_kv", d_kv},
      {"d_ff", d_ff},
      {"num_layers", num_layers},
      {"num_decoder_layers", num_decoder_layers},
      {"num_heads", num_heads},
      {"relative_attention_num_buckets", relative_attention_num_buckets},
      {"relative_attention_max_distance", relative_attention_max_distance},
      {"dropout_rate", dropout_rate},
      {"layer_norm_epsilon", layer_norm_epsilon},
      {"initializer_factor", initializer_factor},
      {"feed_forward_proj", feed_forward_proj},
      {"dense_act_fn", dense_act_fn_name()},
      {"is_gated_act", is_gated_act()},
      {"tie_word_embeddings", tie_word_embeddings},
      {"pad_token_id", pad_token_id},
      {"eos_token_id", eos_token_id},
      {"decoder_start_token_id", decoder_start_token_id},
  };
  return j.dump(2) + "\n";
}

T5Config T5Config::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(std::string("[T5Config] not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument("[T5Config] expected a JSON object, got " + std::string(j.type_name()));
  if (j.contains("model_type") && j["model_type"] != "t5")
    throw std::invalid_argument("[T5Config] model_type is " + j["model_type"].dump() + ", expected \"t5\"");
  T5Config c;
  auto read = [&](const char* key, auto& field) {
    if (!j.contains(key) || j[key].is_null()) return;
    try {
      j[key].get_to(field);
    } catch (const json::exception& e) {
      throw std::invalid_argument(std::string("[T5Config] field ") + key + " has the wrong type (" + j[key].dump() + ")");
    }
  };
  read("vocab_size", c.vocab_size);
  read("d_model", c.d_model);
  read("d_kv", c.d_kv);
  read("d_ff", c.d_ff);
  read("num_layers", c.num_layers);
  c.num_decoder_layers = c.num_layers;   // HF: num_decoder_layers if not None else num_layers
  read("num_decoder_layers", c.num_decoder_layers);
  read("num_heads", c.num_heads);
  read("relative_attention_num_buckets", c.relative_attention_num_buckets);
  read("relative_attention_max_distance", c.relative_attention_max_distance);
  read("dropout_rate", c.dropout_rate);
  read("layer_norm_epsilon", c.layer_norm_epsilon);
  read("initializer_factor", c.initializer_factor);
  read("feed_forward_proj", c.feed_forward_proj);
  read("tie_word_embeddings", c.tie_word_embeddings);
  read("pad_token_id", c.pad_token_id);
  read("eos_token_id", c.eos_token_id);
  read("decoder_start_token_id", c.decoder_start_token_id);
  c.validate();
  return c;
}

void T5Config::save(const std::string& path) const {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("[T5Config] cannot write " + path + ": check that the directory exists");
  out << to_json();
  if (!out) throw std::runtime_error("[T5Config] writing " + path + " failed");
}

T5Config T5Config::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("[T5Config] cannot open " + path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return from_json(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

T5Config tiny_t5_config(int64_t vocab_size) {
  T5Config c;
  c.vocab_size = vocab_size;
  c.d_model = 128;
  c.d_kv = 32;
  c.num_heads = 4;
  c.d_ff = 256;   // 2 x d_model, the ratio of t5-v1.1-small (512 / 1024) for a gated feed-forward
  c.num_layers = 4;
  c.num_decoder_layers = 4;
  c.relative_attention_num_buckets = 32;
  c.relative_attention_max_distance = 128;
  c.dropout_rate = 0.1;
  c.feed_forward_proj = "gated-gelu";
  c.tie_word_embeddings = false;
  c.validate();
  return c;
}

}  // namespace linfuse::nn
