#include "nn/clip_classifier.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernels.h"

namespace linfuse::nn {

TokenizedBatch tokenize_for_clip(const std::vector<std::string>& texts, const TokenizeFunction& tokenizer,
                                 const CLIPTextConfig& config) {
  if (texts.empty()) throw std::invalid_argument("[tokenize_for_clip] no texts");
  if (config.max_position_embeddings < 2)
    throw std::invalid_argument("[tokenize_for_clip] max_position_embeddings must leave room for a token and eos");
  std::vector<std::vector<int64_t>> sequences;
  size_t longest = 0;
  for (const std::string& text : texts) {
    std::vector<int64_t> ids = tokenizer(text);
    const bool with_bos = config.bos_token_id >= 0;
    if (with_bos && (ids.empty() || ids.front() != config.bos_token_id)) ids.insert(ids.begin(), config.bos_token_id);
    if (ids.size() < (with_bos ? 2u : 1u) || ids.back() != config.eos_token_id) ids.push_back(config.eos_token_id);
    if (int64_t(ids.size()) > config.max_position_embeddings) {   // truncate, keeping the end-of-text token
      ids.resize(size_t(config.max_position_embeddings));
      ids.back() = config.eos_token_id;
    }
    for (int64_t id : ids)
      if (id < 0 || id >= config.vocab_size)
        throw std::invalid_argument("[tokenize_for_clip] token id " + std::to_string(id) + " of \"" + text +
                                    "\" is outside the vocabulary [0, " + std::to_string(config.vocab_size) +
                                    "): the tokenizer and the text config disagree");
    longest = std::max(longest, ids.size());
    sequences.push_back(std::move(ids));
  }
  const int64_t n = int64_t(texts.size()), length = int64_t(longest);
  std::vector<int64_t> ids(size_t(n * length), config.pad_token_id), mask(size_t(n * length), 0);
  for (int64_t i = 0; i < n; ++i)
    for (size_t t = 0; t < sequences[i].size(); ++t) {
      ids[i * length + t] = sequences[i][t];
      mask[i * length + t] = 1;
    }
  return {Tensor::from_vector(ids, {n, length}), Tensor::from_vector(mask, {n, length})};
}

std::string fill_template(const std::string& prompt_template, const std::string& class_name) {
  std::string out;
  size_t start = 0, found = 0;
  for (size_t at; (at = prompt_template.find("{}", start)) != std::string::npos; start = at + 2, ++found)
    out += prompt_template.substr(start, at - start) + class_name;
  if (found == 0)
    throw std::invalid_argument("[fill_template] template \"" + prompt_template +
                                "\" has no \"{}\" where the class name goes");
  return out + prompt_template.substr(start);
}

Tensor zero_shot_head_weight(CLIPModel& clip, const std::vector<std::string>& class_names,
                             const std::vector<std::string>& templates, const TokenizeFunction& tokenizer) {
  if (class_names.empty() || templates.empty())
    throw std::invalid_argument("[zero_shot_head_weight] needs at least one class name and one template, got " +
                                std::to_string(class_names.size()) + " and " + std::to_string(templates.size()));
  std::vector<std::string> prompts;   // class-major: prompt (c, t) at c * T + t
  for (const std::string& name : class_names)
    for (const std::string& t : templates) prompts.push_back(fill_template(t, name));
  TokenizedBatch batch = tokenize_for_clip(prompts, tokenizer, clip.config.text_config);

  const bool was_training = clip.is_training();
  clip.eval();
  Tensor head;
  {
    NoGradGuard no_grad;
    const int64_t classes = int64_t(class_names.size()), per_class = int64_t(templates.size());
    Tensor text = l2_normalize(clip.get_text_features(batch.input_ids, batch.attention_mask));   // (C*T, P)
    text = reshape(text, {classes, per_class, text.size(-1)});                                    // (C, T, P)
    Tensor class_embeddings = l2_normalize(mean(text, {1}));                                      // (C, P)
    head = mul(class_embeddings, exp(clip.logit_scale.detach()));
  }
  clip.train(was_training);
  return head.detach();
}

ClassificationHead::ClassificationHead(const Tensor& weight_) {
  if (weight_.dim() != 2 || !is_floating(weight_.dtype()))
    throw std::invalid_argument("[ClassificationHead] weight must be a float (num_classes, projection_dim) matrix, got " +
                                weight_.describe());
  weight = kernels::copy(weight_.detach());
  register_buffer("weight", weight);
}

Tensor ClassificationHead::forward(const Tensor& features) {
  if (features.dim() != 2 || features.size(1) != weight.size(1))
    throw std::invalid_argument("[ClassificationHead] features must be (B, " + std::to_string(weight.size(1)) + "), got " +
                                features.describe());
  return linear(l2_normalize(features), weight);   // (B, C)
}

ImageClassifier::ImageClassifier(const CLIPConfig& config_, const Tensor& head_weight, DType dtype, uint64_t seed)
    : config(config_) {
  config.validate();
  if (head_weight.dim() != 2 || head_weight.size(1) != config.projection_dim)
    throw std::invalid_argument("[ImageClassifier] head weight must be (num_classes, projection_dim = " +
                                std::to_string(config.projection_dim) + "), got " + head_weight.describe());
  Generator init(seed), scratch(0);
  vision_model = register_module("vision_model", std::make_shared<CLIPVisionTransformer>(
                                                     config.vision_config, config.vision_config.initializer_factor, init, dtype));
  const int64_t dv = config.vision_config.hidden_size;
  visual_projection =
      register_module("visual_projection", std::make_shared<Linear>(dv, config.projection_dim, false, scratch, dtype));
  init_normal_(visual_projection->weight, init, std::pow(double(dv), -0.5) * config.initializer_factor);
  visual_projection->weight.set_requires_grad(false);   // the paper trains the vision tower only
  classification_head =
      register_module("classification_head", std::make_shared<ClassificationHead>(cast(head_weight.detach(), dtype)));
}

std::shared_ptr<ImageClassifier> ImageClassifier::from_clip(CLIPModel& clip, const Tensor& head_weight) {
  auto classifier = std::make_shared<ImageClassifier>(clip.config, head_weight, clip.dtype());
  for (auto& [name, tensor] : classifier->named_parameters()) kernels::copy_into(*tensor, clip.parameter(name));
  return classifier;
}

Tensor ImageClassifier::image_features(const Tensor& pixel_values) {
  return visual_projection->forward(vision_model->pooled_output(pixel_values));   // (B, P)
}

Tensor ImageClassifier::forward(const Tensor& pixel_values) {
  return classification_head->forward(image_features(pixel_values));   // (B, C)
}

}  // namespace linfuse::nn
