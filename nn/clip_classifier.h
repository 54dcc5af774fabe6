#pragma once
// Zero-shot classification with the tiny CLIP, and the image classifier the paper fine-tunes.
//
// Zero-shot head (CLIP; the task-arithmetic codebase's build_classification_head): for each class, embed every
// prompt template filled with the class name, L2-normalise each text embedding, average them over the
// templates and renormalise; the head weight is exp(logit_scale) times these class embeddings, (C, P).
//
// ImageClassifier: vision tower + visual projection + L2 normalisation + the frozen head -> logits (B, C).
// Its parameter names are CLIPModel's ("vision_model.*", "visual_projection.weight"), so task vectors between a
// fine-tuned classifier and the pretrained CLIP are taken by name. Only "vision_model.*" is trainable, as in
// the paper's code (tanganke/peta, finetune_clip.py: the optimizer gets clip_model.vision_model's parameters);
// visual_projection is a frozen parameter (unfreeze it to train it), the head a buffer (never trained).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/clip.h"

namespace linfuse::nn {

// Text -> token ids: wrap the project's SentencePiece tokenizer (nn/tokenizer.h) or any other in a lambda. It may
// or may not add bos/eos itself (tokenize_for_clip adds what is missing).
using TokenizeFunction = std::function<std::vector<int64_t>(const std::string&)>;

struct TokenizedBatch {
  Tensor input_ids;        // int64 (N, T), right-padded with pad_token_id
  Tensor attention_mask;   // int64 (N, T), 1 for tokens, 0 for padding
};

// Tokenizes `texts` for the text tower as CLIP's tokenizer does: bos + tokens + eos (bos / eos added only when
// the tokenizer did not; no bos when bos_token_id is -1), truncated to max_position_embeddings keeping eos
// last, right-padded with pad_token_id to the longest.
TokenizedBatch tokenize_for_clip(const std::vector<std::string>& texts, const TokenizeFunction& tokenizer,
                                 const CLIPTextConfig& config);

// Replaces every "{}" in `prompt_template` by `class_name` ("a photo of the digit {}." + "7"). Throws if the
// template has no "{}".
std::string fill_template(const std::string& prompt_template, const std::string& class_name);

// The zero-shot head weight (C, P) described above, computed without gradients in eval mode (the model's
// training flag is restored). Detached, in the model's dtype.
Tensor zero_shot_head_weight(CLIPModel& clip, const std::vector<std::string>& class_names,
                             const std::vector<std::string>& templates, const TokenizeFunction& tokenizer);

// logits = normalise(features) W^T with W (C, P) a buffer (the task-arithmetic ClassificationHead with
// normalize=True; its bias is zero there and omitted here).
class ClassificationHead : public Module {
 public:
  explicit ClassificationHead(const Tensor& weight);   // (C, P); copied
  Tensor forward(const Tensor& features);               // (B, P) -> (B, C)
  std::string type_name() const override { return "ClassificationHead"; }
  int64_t num_classes() const { return weight.size(0); }
  Tensor weight;
};

class ImageClassifier : public Module {
 public:
  // A tower initialised by HF's scheme (seed `seed`); load weights with load_state_dict, or use from_clip.
  ImageClassifier(const CLIPConfig& config, const Tensor& head_weight, DType dtype = DType::F32, uint64_t seed = 0);
  // A copy (own storage) of `clip`'s vision tower and visual projection, with the given head (C, P).
  static std::shared_ptr<ImageClassifier> from_clip(CLIPModel& clip, const Tensor& head_weight);

  Tensor image_features(const Tensor& pixel_values);   // (B, C, H, W) -> (B, P), not normalised
  Tensor forward(const Tensor& pixel_values);          // (B, C, H, W) -> logits (B, num_classes)
  std::string type_name() const override { return "ImageClassifier"; }

  CLIPConfig config;
  std::shared_ptr<CLIPVisionTransformer> vision_model;
  std::shared_ptr<Linear> visual_projection;
  std::shared_ptr<ClassificationHead> classification_head;
};

}  // namespace linfuse::nn
