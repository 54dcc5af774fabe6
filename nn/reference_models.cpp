#include "nn/reference_models.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "autodiff/ops.h"
#include "nn/clip.h"
#include "nn/reference_parameters.h"
#include "nn/t5.h"

namespace linfuse::nn {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------------------
// The specification: every tensor name, shape and meaning (`linfuse forward --help` prints these tables).

namespace {

const char* kFloat = "float";
const char* kInt64 = "int64";
const char* kMask = "0/1";

ReferenceTensorSpec pixel_values_spec() {
  return {"pixel_values", "(B, C, H, W)", kFloat,
          "images, C = num_channels, H = W = image_size of vision_config (already normalised: no preprocessing here)",
          true};
}
ReferenceTensorSpec clip_input_ids_spec() {
  return {"input_ids", "(B, T)", kInt64,
          "token ids in [0, vocab_size), T <= max_position_embeddings; every row holds eos_token_id (pooled at the "
          "first one; at the largest id when every row's largest id is 49407, as HF)",
          true};
}
ReferenceTensorSpec clip_attention_mask_spec() {
  return {"attention_mask", "(B, T)", kMask, "1 token, 0 padding (default: all ones); the causal mask is added", false};
}
// HF gives one name two meanings: CLIPVisionModelWithProjection's image_embeds is the projection itself, CLIPModel's
// is that divided by its norm. Each model here writes what its HF counterpart writes under the name; `clip` also
// writes the unnormalised projections as image_features / text_features (HF's get_image_features).
ReferenceTensorSpec image_embeds_spec() {
  return {"image_embeds", "(B, P)", kFloat,
          "visual_projection(pooled class token), NOT L2-normalised, as HF CLIPVisionModelWithProjection's "
          "image_embeds and get_image_features; P = projection_dim",
          false};
}
ReferenceTensorSpec text_embeds_spec() {
  return {"text_embeds", "(B, P)", kFloat,
          "text_projection(pooled end-of-text token), NOT L2-normalised, as HF CLIPTextModelWithProjection's "
          "text_embeds and get_text_features",
          false};
}

std::vector<ReferenceModelSpec> make_specs() {
  std::vector<ReferenceModelSpec> specs;
  specs.push_back({"clip_vision",
                   "HF CLIPVisionModelWithProjection: vision_model.* and visual_projection.weight",
                   {pixel_values_spec()},
                   {image_embeds_spec()},
                   {}});
  specs.push_back({"clip_text",
                   "HF CLIPTextModelWithProjection: text_model.* and text_projection.weight",
                   {clip_input_ids_spec(), clip_attention_mask_spec()},
                   {text_embeds_spec()},
                   {}});
  specs.push_back(
      {"clip",
       "HF CLIPModel: both towers and logit_scale",
       {pixel_values_spec(), clip_input_ids_spec(), clip_attention_mask_spec()},
       {{"image_embeds", "(Bi, P)", kFloat, "image_features / its L2 norm, as HF CLIPModel's output.image_embeds", false},
        {"text_embeds", "(Bt, P)", kFloat, "text_features / its L2 norm, as HF CLIPModel's output.text_embeds", false},
        {"image_features", "(Bi, P)", kFloat, "visual_projection(pooled class token), unnormalised: HF get_image_features",
         false},
        {"text_features", "(Bt, P)", kFloat, "text_projection(pooled end-of-text token), unnormalised: HF get_text_features",
         false},
        {"logits_per_image", "(Bi, Bt)", kFloat, "exp(logit_scale) x cosine(image i, text j)", false},
        {"logits_per_text", "(Bt, Bi)", kFloat, "its transpose", false},
        {"loss", "()", kFloat,
         "HF clip_loss(logits_per_text): (CE(rows) + CE(columns)) / 2, image i pairs with text i; written only when "
         "there are as many images as texts",
         false}},
       {{"clip_loss", "loss"}}});
  specs.push_back(
      {"t5",
       "HF T5ForConditionalGeneration, teacher-forced (T5 v1.0 relu / v1.1 gated-gelu, tied or untied lm_head)",
       {{"input_ids", "(B, S)", kInt64, "encoder token ids in [0, vocab_size)", true},
        {"attention_mask", "(B, S)", kMask, "1 token, 0 padding (default: all ones); also masks cross-attention", false},
        {"decoder_input_ids", "(B, T)", kInt64,
         "decoder token ids; default: labels shifted right (decoder_start_token_id first, -100 -> pad_token_id)", false},
        {"labels", "(B, T)", kInt64,
         "targets in [0, vocab_size) or -100 (ignored; pad_token_id IS a target, as in HF). Needed for loss, or "
         "decoder_input_ids must be given",
         false},
        {"decoder_attention_mask", "(B, T)", kMask, "1 keep, 0 padding (default: all ones); the causal mask is added",
         false}},
       {{"encoder_last_hidden_state", "(B, S, D)", kFloat, "encoder output after its final_layer_norm", false},
        {"logits", "(B, T, V)", kFloat, "lm_head(decoder output) (tied: shared.weight applied to it times d_model^-0.5)",
         false},
        {"loss", "()", kFloat,
         "HF's CrossEntropyLoss(ignore_index=-100) of logits against labels, the mean over non-ignored tokens; "
         "written only when labels are given",
         false}},
       {{"cross_entropy", "loss"}}});
  return specs;
}

std::string known_models() {
  std::string names;
  for (const auto& s : reference_model_specs()) names += (names.empty() ? "" : ", ") + s.name;
  return names;
}

}  // namespace

const ReferenceTensorSpec* ReferenceModelSpec::input(const std::string& n) const {
  for (const auto& t : inputs)
    if (t.name == n) return &t;
  return nullptr;
}

const ReferenceTensorSpec* ReferenceModelSpec::output(const std::string& n) const {
  for (const auto& t : outputs)
    if (t.name == n) return &t;
  return nullptr;
}

const std::vector<ReferenceModelSpec>& reference_model_specs() {
  static const std::vector<ReferenceModelSpec> specs = make_specs();
  return specs;
}

const ReferenceModelSpec& reference_model_spec(const std::string& name) {
  for (const auto& s : reference_model_specs())
    if (s.name == name) return s;
  throw std::invalid_argument("unknown model '" + name + "': the models are " + known_models());
}

// ---------------------------------------------------------------------------------------------------------
// Config files

ReferenceConfig read_reference_config(const std::string& path, const std::string& model_override) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("config '" + path + "': cannot open it; check the path");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw std::runtime_error("config '" + path + "' is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument("config '" + path + "' must be a JSON object");
  if (!model_override.empty()) reference_model_spec(model_override);   // throws on an unknown name

  ReferenceConfig out;
  if (j.contains("model")) {   // the wrapper {"model": ..., "config": {...}}
    if (!j["model"].is_string())
      throw std::invalid_argument("config '" + path + "': \"model\" must be a string, one of " + known_models());
    out.model = j["model"].get<std::string>();
    if (!j.contains("config") || !j["config"].is_object())
      throw std::invalid_argument("config '" + path + "': the wrapper layout needs \"config\": {...the Hugging Face config...}");
    out.config = j["config"];
    reference_model_spec(out.model);
    if (!model_override.empty() && model_override != out.model)
      throw std::invalid_argument("config '" + path + "' names the model '" + out.model + "' but --model says '" +
                                  model_override + "': drop one of them");
    return out;
  }
  // A plain Hugging Face config.json: its model_type decides, --model may narrow a CLIPModel config to a tower.
  out.config = j;
  std::string type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  std::string implied = type == "clip"                ? "clip"
                        : type == "t5"                ? "t5"
                        : type == "clip_vision_model" ? "clip_vision"
                        : type == "clip_text_model"   ? "clip_text"
                                                      : "";
  if (implied.empty() && model_override.empty())
    throw std::invalid_argument("config '" + path + "': cannot tell the model (model_type is " +
                                (type.empty() ? std::string("absent") : "'" + type + "'") +
                                "): use a Hugging Face config.json with model_type clip or t5, the layout "
                                "{\"model\": NAME, \"config\": {...}}, or --model NAME (" + known_models() + ")");
  out.model = model_override.empty() ? implied : model_override;
  bool fits = implied.empty() || implied == out.model ||
              (implied == "clip" && (out.model == "clip_vision" || out.model == "clip_text"));
  if (!fits)
    throw std::invalid_argument("config '" + path + "' has model_type '" + type + "', which cannot run as --model " +
                                out.model + " (a CLIPModel config runs as clip, clip_vision or clip_text)");
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Input checks shared by the models

namespace {

std::string index_str(const std::vector<int64_t>& index) {
  std::string s = "(";
  for (size_t i = 0; i < index.size(); ++i) s += (i ? ", " : "") + std::to_string(index[i]);
  return s + ")";
}

// A rank-2 (B, T) tensor with B, T >= 1.
void check_batch_of_sequences(const Tensor& t, const std::string& name) {
  if (t.dim() != 2 || t.size(0) < 1 || t.size(1) < 1)
    throw std::invalid_argument("input " + name + " is " + shape_str(t.shape()) +
                                "; it must be (B, T) with at least one row and one position");
}

// Token ids in [0, vocab) (or -100 where `allow_ignore`).
void check_token_ids(const Tensor& ids, const std::string& name, int64_t vocab_size, const std::string& vocab_field,
                     bool allow_ignore = false) {
  check_batch_of_sequences(ids, name);
  std::vector<int64_t> values = ids.to_vector<int64_t>();
  const int64_t length = ids.size(1);
  for (size_t i = 0; i < values.size(); ++i) {
    int64_t v = values[i];
    if ((v >= 0 && v < vocab_size) || (allow_ignore && v == -100)) continue;
    throw std::invalid_argument("input " + name + ": id " + std::to_string(v) + " at " +
                                index_str({int64_t(i) / length, int64_t(i) % length}) + " is outside [0, " +
                                std::to_string(vocab_size) + ") = " + vocab_field +
                                (allow_ignore ? " (or -100, ignored)" : "") +
                                ": use the tokenizer the model was trained with, or fix the config");
  }
}

// A 0/1 mask of the shape of `ids`.
void check_mask(const StateDict& inputs, const std::string& name, const std::string& ids_name) {
  if (!inputs.contains(name)) return;
  const Tensor &mask = inputs.at(name), &ids = inputs.at(ids_name);
  if (mask.shape() != ids.shape())
    throw std::invalid_argument("input " + name + " is " + shape_str(mask.shape()) + " but " + ids_name + " is " +
                                shape_str(ids.shape()) + ": one mask entry per token");
  std::vector<double> values = mask.to_vector<double>();
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] != 0 && values[i] != 1)
      throw std::invalid_argument("input " + name + ": value " + std::to_string(values[i]) + " at " +
                                  index_str({int64_t(i) / mask.size(1), int64_t(i) % mask.size(1)}) +
                                  " is neither 0 nor 1 (1 token, 0 padding)");
}

void check_pixel_values(const Tensor& pixels, const CLIPVisionConfig& v) {
  if (pixels.dim() != 4 || pixels.size(0) < 1 || pixels.size(1) != v.num_channels || pixels.size(2) != v.image_size ||
      pixels.size(3) != v.image_size)
    throw std::invalid_argument("input pixel_values is " + shape_str(pixels.shape()) + " but the config wants (B, " +
                                std::to_string(v.num_channels) + ", " + std::to_string(v.image_size) + ", " +
                                std::to_string(v.image_size) +
                                ") (num_channels, image_size, image_size of vision_config) with B >= 1: resize the "
                                "images or use the model's config");
}

std::vector<std::string> check_clip_text_inputs(const StateDict& inputs, CLIPTextTransformer& text) {
  const CLIPTextConfig& c = text.config;
  const Tensor& ids = inputs.at("input_ids");
  check_token_ids(ids, "input_ids", c.vocab_size, "text_config.vocab_size");
  if (ids.size(1) > c.max_position_embeddings)
    throw std::invalid_argument("input input_ids has " + std::to_string(ids.size(1)) +
                                " positions, more than text_config.max_position_embeddings " +
                                std::to_string(c.max_position_embeddings) + ": truncate the texts (keeping eos)");
  check_mask(inputs, "attention_mask", "input_ids");
  std::vector<int64_t> pooled;
  try {
    pooled = text.eos_positions(ids);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("input input_ids: ") + e.what());
  }
  std::vector<std::string> warnings;
  if (!inputs.contains("attention_mask")) return warnings;
  // HF masks with finfo.min, linfuse with -inf: they agree unless a query sees no unmasked key at all.
  std::vector<double> mask = inputs.at("attention_mask").to_vector<double>();
  const int64_t length = ids.size(1);
  for (size_t b = 0; b < pooled.size(); ++b) {
    bool visible = false;
    for (int64_t t = 0; t <= pooled[b]; ++t) visible = visible || mask[b * length + t] != 0;
    if (!visible)
      warnings.push_back("text row " + std::to_string(b) + ": the pooled end-of-text token (position " +
                         std::to_string(pooled[b]) +
                         ") sees no unmasked token; HF attends uniformly there, linfuse to nothing, so text_embeds "
                         "differ from HF's in that row");
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------------------
// The modules of the two single-tower models (HF's *WithProjection classes, same parameter names).

class CLIPVisionModelWithProjection : public Module {
 public:
  CLIPVisionModelWithProjection(const CLIPVisionConfig& config, int64_t projection_dim, DType dtype) {
    Generator placeholder(0);
    vision_model = register_module("vision_model", std::make_shared<CLIPVisionTransformer>(
                                                       config, config.initializer_factor, placeholder, dtype));
    visual_projection = register_module(
        "visual_projection", std::make_shared<Linear>(config.hidden_size, projection_dim, false, placeholder, dtype));
  }
  Tensor forward(const Tensor& pixel_values) {   // as CLIPModel::get_image_features
    return visual_projection->forward(vision_model->forward(pixel_values).pooled_output);
  }
  std::string type_name() const override { return "CLIPVisionModelWithProjection"; }
  std::shared_ptr<CLIPVisionTransformer> vision_model;
  std::shared_ptr<Linear> visual_projection;
};

class CLIPTextModelWithProjection : public Module {
 public:
  CLIPTextModelWithProjection(const CLIPTextConfig& config, int64_t projection_dim, DType dtype) {
    Generator placeholder(0);
    text_model = register_module(
        "text_model", std::make_shared<CLIPTextTransformer>(config, config.initializer_factor, placeholder, dtype));
    text_projection = register_module(
        "text_projection", std::make_shared<Linear>(config.hidden_size, projection_dim, false, placeholder, dtype));
  }
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask) {   // as CLIPModel::get_text_features
    return text_projection->forward(text_model->forward(input_ids, attention_mask).pooled_output);
  }
  std::string type_name() const override { return "CLIPTextModelWithProjection"; }
  std::shared_ptr<CLIPTextTransformer> text_model;
  std::shared_ptr<Linear> text_projection;
};

Tensor optional_input(const StateDict& inputs, const std::string& name) {
  return inputs.contains(name) ? inputs.at(name) : Tensor();
}

// ---------------------------------------------------------------------------------------------------------
// The four models

class ClipVisionReference : public ReferenceModel {
 public:
  ClipVisionReference(std::shared_ptr<CLIPVisionModelWithProjection> m, DType dtype)
      : ReferenceModel("clip_vision", m, dtype), model_(std::move(m)) {}
  std::vector<std::string> check_inputs(const StateDict& inputs) const override {
    check_pixel_values(inputs.at("pixel_values"), model_->vision_model->config);
    return {};
  }
  std::vector<std::pair<std::string, Tensor>> forward(const StateDict& inputs) override {
    return {{"image_embeds", model_->forward(inputs.at("pixel_values"))}};
  }

 private:
  std::shared_ptr<CLIPVisionModelWithProjection> model_;
};

class ClipTextReference : public ReferenceModel {
 public:
  ClipTextReference(std::shared_ptr<CLIPTextModelWithProjection> m, DType dtype)
      : ReferenceModel("clip_text", m, dtype), model_(std::move(m)) {}
  std::vector<std::string> check_inputs(const StateDict& inputs) const override {
    return check_clip_text_inputs(inputs, *model_->text_model);
  }
  std::vector<std::pair<std::string, Tensor>> forward(const StateDict& inputs) override {
    return {{"text_embeds", model_->forward(inputs.at("input_ids"), optional_input(inputs, "attention_mask"))}};
  }

 private:
  std::shared_ptr<CLIPTextModelWithProjection> model_;
};

class ClipReference : public ReferenceModel {
 public:
  ClipReference(std::shared_ptr<CLIPModel> m, DType dtype) : ReferenceModel("clip", m, dtype), model_(std::move(m)) {}
  std::vector<std::string> check_inputs(const StateDict& inputs) const override {
    check_pixel_values(inputs.at("pixel_values"), model_->config.vision_config);
    return check_clip_text_inputs(inputs, *model_->text_model);
  }
  std::vector<std::pair<std::string, Tensor>> forward(const StateDict& inputs) override {
    Tensor image = model_->get_image_features(inputs.at("pixel_values"));                                       // (Bi, P)
    Tensor text = model_->get_text_features(inputs.at("input_ids"), optional_input(inputs, "attention_mask"));   // (Bt, P)
    // As CLIPModel::forward (HF's order of operations): normalise, text @ image^T, times exp(logit_scale).
    Tensor image_embeds = l2_normalize(image), text_embeds = l2_normalize(text);
    Tensor logits_per_text = mul(matmul(text_embeds, transpose(image_embeds, 0, 1)), exp(model_->logit_scale));   // (Bt, Bi)
    std::vector<std::pair<std::string, Tensor>> out = {{"image_embeds", image_embeds},
                                                       {"text_embeds", text_embeds},
                                                       {"image_features", image},
                                                       {"text_features", text},
                                                       {"logits_per_image", transpose(logits_per_text, 0, 1)},
                                                       {"logits_per_text", logits_per_text}};
    if (image.size(0) == text.size(0)) out.push_back({"loss", clip_loss(logits_per_text)});
    return out;
  }

 private:
  std::shared_ptr<CLIPModel> model_;
};

// HF's CrossEntropyLoss(ignore_index=-100), mean reduction. With every label -100 that is a mean over no token,
// 0/0: PyTorch gives NaN, and so does this reference, since `linfuse forward` is an oracle to compare other
// implementations with (a 0 there would hide that they disagree with PyTorch). The gradient stays 0, as PyTorch's
// backward gives (no token contributes); check_inputs warns. autodiff's cross_entropy itself returns 0 for such a
// batch on purpose: fine-tuning (nn/t5.cpp, experiments/text_scoring.cpp) must not turn a batch of padding into NaN
// weights, so the NaN is added here, for the reference only.
Tensor reference_cross_entropy(const Tensor& logits, const Tensor& labels) {
  Tensor loss = cross_entropy(logits, labels, -100);
  std::vector<int64_t> ids = labels.to_vector<int64_t>();
  const bool none = std::all_of(ids.begin(), ids.end(), [](int64_t id) { return id == -100; });
  return none ? add(loss, Tensor::scalar(std::numeric_limits<double>::quiet_NaN(), loss.dtype())) : loss;
}

class T5Reference : public ReferenceModel {
 public:
  T5Reference(std::shared_ptr<T5ForConditionalGeneration> m, DType dtype)
      : ReferenceModel("t5", m, dtype), model_(std::move(m)) {}

  std::vector<std::string> check_inputs(const StateDict& inputs) const override {
    const T5Config& c = model_->config();
    const Tensor& ids = inputs.at("input_ids");
    check_token_ids(ids, "input_ids", c.vocab_size, "vocab_size");
    check_mask(inputs, "attention_mask", "input_ids");
    const bool has_labels = inputs.contains("labels"), has_decoder_ids = inputs.contains("decoder_input_ids");
    if (!has_labels && !has_decoder_ids)
      throw std::invalid_argument(
          "t5 needs decoder inputs: give labels (decoder_input_ids are then the labels shifted right, as HF) or "
          "decoder_input_ids");
    if (has_labels) check_token_ids(inputs.at("labels"), "labels", c.vocab_size, "vocab_size", /*allow_ignore=*/true);
    if (has_decoder_ids) check_token_ids(inputs.at("decoder_input_ids"), "decoder_input_ids", c.vocab_size, "vocab_size");
    if (has_labels && has_decoder_ids && inputs.at("labels").shape() != inputs.at("decoder_input_ids").shape())
      throw std::invalid_argument("input labels is " + shape_str(inputs.at("labels").shape()) +
                                  " but decoder_input_ids is " + shape_str(inputs.at("decoder_input_ids").shape()) +
                                  ": one label per decoder position");
    const std::string decoder_ids = has_decoder_ids ? "decoder_input_ids" : "labels";
    if (inputs.at(decoder_ids).size(0) != ids.size(0))
      throw std::invalid_argument("input " + decoder_ids + " has " + std::to_string(inputs.at(decoder_ids).size(0)) +
                                  " rows but input_ids has " + std::to_string(ids.size(0)) +
                                  ": one target sequence per input sequence");
    check_mask(inputs, "decoder_attention_mask", decoder_ids);

    // HF masks with finfo.min, linfuse with -inf: they agree unless a query sees no unmasked key at all.
    std::vector<std::string> warnings;
    auto rows_where = [](const Tensor& mask, bool whole_row) {
      std::vector<int64_t> rows;
      std::vector<double> m = mask.to_vector<double>();
      const int64_t length = mask.size(1);
      for (int64_t b = 0; b < mask.size(0); ++b) {
        bool none = true;
        for (int64_t t = 0; t < (whole_row ? length : 1); ++t) none = none && m[b * length + t] == 0;
        if (none) rows.push_back(b);
      }
      return rows;
    };
    if (inputs.contains("attention_mask"))
      for (int64_t b : rows_where(inputs.at("attention_mask"), true))
        warnings.push_back("t5 row " + std::to_string(b) +
                           ": attention_mask is all 0; HF attends uniformly over padding there, linfuse to nothing, "
                           "so that row's outputs differ from HF's");
    if (has_labels) {
      std::vector<int64_t> labels = inputs.at("labels").to_vector<int64_t>();
      if (std::all_of(labels.begin(), labels.end(), [](int64_t id) { return id == -100; }))
        warnings.push_back("t5: every label is -100, so the loss is a mean over no token: NaN, as PyTorch gives (its "
                           "gradient is 0)");
    }
    if (inputs.contains("decoder_attention_mask"))
      for (int64_t b : rows_where(inputs.at("decoder_attention_mask"), false))
        warnings.push_back("t5 row " + std::to_string(b) +
                           ": decoder_attention_mask is 0 at position 0, so the first decoder positions see no key; "
                           "HF attends uniformly there, linfuse to nothing, so their logits differ from HF's");
    return warnings;
  }

  std::vector<std::pair<std::string, Tensor>> forward(const StateDict& inputs) override {
    const Tensor attention_mask = optional_input(inputs, "attention_mask"), labels = optional_input(inputs, "labels");
    Tensor decoder_ids = optional_input(inputs, "decoder_input_ids");
    if (!decoder_ids.defined()) decoder_ids = model_->shift_right(labels);   // HF's _shift_right
    Tensor encoder_hidden = model_->encode(inputs.at("input_ids"), attention_mask);   // (B, S, D)
    Tensor logits = model_->decode(decoder_ids, encoder_hidden, attention_mask,
                                   optional_input(inputs, "decoder_attention_mask"));   // (B, T, V)
    std::vector<std::pair<std::string, Tensor>> out = {{"encoder_last_hidden_state", encoder_hidden}, {"logits", logits}};
    // HF's loss ignores -100 only (T5ForConditionalGeneration::forward would also ignore pad_token_id).
    if (labels.defined()) out.push_back({"loss", reference_cross_entropy(logits, labels)});
    return out;
  }

 private:
  std::shared_ptr<T5ForConditionalGeneration> model_;
};

}  // namespace

std::unique_ptr<ReferenceModel> make_reference_model(const ReferenceConfig& config, DType dtype) {
  if (!is_floating(dtype)) throw std::invalid_argument("the compute dtype must be float32 or float64");
  std::unique_ptr<ReferenceModel> model;
  const json& c = config.config;
  if (config.model == "clip") {
    Generator placeholder(0);
    model = std::make_unique<ClipReference>(std::make_shared<CLIPModel>(CLIPConfig::from_json(c), placeholder, dtype), dtype);
  } else if (config.model == "clip_vision" || config.model == "clip_text") {
    // A CLIPModel config (CLIPModel's projection_dim applies) or a single tower's (its own projection_dim, as
    // HF's *WithProjection models read it).
    if (config.model == "clip_vision") {
      auto [v, projection] = clip_vision_tower_config(c);
      model = std::make_unique<ClipVisionReference>(std::make_shared<CLIPVisionModelWithProjection>(v, projection, dtype),
                                                    dtype);
    } else {
      auto [t, projection] = clip_text_tower_config(c);
      model = std::make_unique<ClipTextReference>(std::make_shared<CLIPTextModelWithProjection>(t, projection, dtype),
                                                  dtype);
    }
  } else if (config.model == "t5") {
    Generator placeholder(0);
    model = std::make_unique<T5Reference>(
        std::make_shared<T5ForConditionalGeneration>(T5Config::from_json(c.dump()), placeholder, dtype), dtype);
  } else {
    reference_model_spec(config.model);   // throws listing the names
  }
  model->module().eval();
  return model;
}

}  // namespace linfuse::nn
