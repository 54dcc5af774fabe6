// The tiny CLIP learns: contrastive pretraining on synthetic captioned images lowers the loss and gives zero-shot
// accuracy well above chance on held-out images; fine-tuning an ImageClassifier's vision tower against its frozen
// zero-shot head raises accuracy further. Each test prints its numbers and time.
//
// Data: 28x28 grayscale images of one shape (filled square, ring, triangle, plus-shaped cross) in one quadrant (top/bottom,
// left/right), bright or dim, with jittered centre and size and pixel noise; captions
// "a {bright|dim} {shape} at the {top|bottom} {left|right}". A training batch holds each of the 32 attribute
// combinations once (fresh jitter and noise every step), so row i's only matching caption is caption i.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/clip.h"
#include "nn/clip_classifier.h"
#include "nn/optim.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {

const std::vector<std::string> kShapes = {"square", "ring", "triangle", "cross"};
const std::vector<std::string> kVertical = {"top", "bottom"}, kHorizontal = {"left", "right"};
const std::vector<std::string> kBrightness = {"bright", "dim"};

struct Attributes {
  int shape, vertical, horizontal, brightness;
  std::string caption() const {
    return "a " + kBrightness[brightness] + " " + kShapes[shape] + " at the " + kVertical[vertical] + " " +
           kHorizontal[horizontal];
  }
};

// Word-level tokenizer over the captions' words: pad 0, bos 1, eos 2, words from 3 (no bos/eos added here:
// tokenize_for_clip adds them).
TokenizeFunction word_tokenizer() {
  auto vocabulary = std::make_shared<std::map<std::string, int64_t>>();
  for (const char* w : {"a", "at", "the"}) vocabulary->emplace(w, 3 + int64_t(vocabulary->size()));
  for (const auto* list : {&kShapes, &kVertical, &kHorizontal, &kBrightness})
    for (const std::string& w : *list) vocabulary->emplace(w, 3 + int64_t(vocabulary->size()));
  return [vocabulary](const std::string& text) {
    std::vector<int64_t> ids;
    std::istringstream words(text);
    for (std::string w; words >> w;) {
      auto it = vocabulary->find(w);
      if (it == vocabulary->end()) throw std::invalid_argument("word_tokenizer: unknown word '" + w + "'");
      ids.push_back(it->second);
    }
    return ids;
  };
}

// Draws one image (28*28 floats) for `a` into `out`.
void draw(const Attributes& a, Generator& g, float* out) {
  const double cy = (a.vertical ? 20.5 : 6.5) + 3 * (g.next_uniform() - 0.5);
  const double cx = (a.horizontal ? 20.5 : 6.5) + 3 * (g.next_uniform() - 0.5);
  const double r = 5 + 1.5 * g.next_uniform();
  const double intensity = a.brightness == 0 ? 1.0 : 0.5;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      const double dy = y - cy, dx = x - cx;
      bool inside = false;
      switch (a.shape) {
        case 0: inside = std::abs(dx) <= r && std::abs(dy) <= r; break;
        case 1: inside = dx * dx + dy * dy <= r * r && dx * dx + dy * dy >= (r - 2) * (r - 2); break;
        case 2: inside = dy >= -r && dy <= r && std::abs(dx) <= (dy + r) / 2; break;   // apex up
        case 3: inside = (std::abs(dx) <= r / 3 && std::abs(dy) <= r) || (std::abs(dy) <= r / 3 && std::abs(dx) <= r); break;
      }
      out[y * 28 + x] = float((inside ? intensity : 0.0) + 0.05 * (g.next_uniform() - 0.5) * 2);
    }
}

struct Batch {
  Tensor pixels;   // (B, 1, 28, 28)
  std::vector<Attributes> attributes;
};

Batch make_batch(const std::vector<Attributes>& attributes, Generator& g) {
  const int64_t n = int64_t(attributes.size());
  std::vector<float> pixels(size_t(n * 28 * 28));
  for (int64_t i = 0; i < n; ++i) draw(attributes[i], g, pixels.data() + i * 28 * 28);
  return {Tensor::from_vector(pixels, {n, 1, 28, 28}), attributes};
}

// Every combination of attributes once, in a random order.
Batch all_combinations(Generator& g) {
  std::vector<Attributes> all;
  for (int s = 0; s < 4; ++s)
    for (int v = 0; v < 2; ++v)
      for (int h = 0; h < 2; ++h)
        for (int b = 0; b < 2; ++b) all.push_back({s, v, h, b});
  std::vector<Attributes> shuffled;
  for (int64_t i : g.permutation(int64_t(all.size()))) shuffled.push_back(all[size_t(i)]);
  return make_batch(shuffled, g);
}

Batch random_images(int64_t n, Generator& g) {
  std::vector<Attributes> attributes;
  for (int64_t i = 0; i < n; ++i)
    attributes.push_back({int(g.next_u64() % 4), int(g.next_u64() % 2), int(g.next_u64() % 2), int(g.next_u64() % 2)});
  return make_batch(attributes, g);
}

// A small CLIP for these tests (the default tiny preset is ~1M parameters; this one trains in seconds):
// patch 7 (16 patches), vision width 48, text width 32.
CLIPConfig training_config() {
  CLIPConfig c;
  c.projection_dim = 32;
  auto& v = c.vision_config;
  v.hidden_size = 48, v.intermediate_size = 96, v.num_hidden_layers = 2, v.num_attention_heads = 4;
  v.num_channels = 1, v.image_size = 28, v.patch_size = 7, v.projection_dim = 32;
  auto& t = c.text_config;
  t.vocab_size = 32, t.hidden_size = 32, t.intermediate_size = 64, t.num_hidden_layers = 1, t.num_attention_heads = 2;
  t.max_position_embeddings = 16, t.projection_dim = 32, t.pad_token_id = 0, t.bos_token_id = 1, t.eos_token_id = 2;
  c.validate();
  return c;
}

std::vector<Tensor> trainable(Module& m) {
  std::vector<Tensor> params;
  for (auto& e : m.trainable_parameters()) params.push_back(*e.tensor);
  return params;
}

// Contrastive pretraining; returns the mean loss of the first and of the last 10 steps.
std::pair<double, double> pretrain(CLIPModel& clip, int64_t steps, uint64_t seed) {
  Generator data(seed);
  TokenizeFunction tokenizer = word_tokenizer();
  AdamW optimizer(trainable(clip), 2e-3, /*weight_decay=*/0.05);
  double first = 0, last = 0;
  for (int64_t step = 0; step < steps; ++step) {
    Batch batch = all_combinations(data);
    std::vector<std::string> captions;
    for (const Attributes& a : batch.attributes) captions.push_back(a.caption());
    TokenizedBatch text = tokenize_for_clip(captions, tokenizer, clip.config.text_config);
    optimizer.set_lr(warmup_cosine_lr(step, steps / 10, steps, 2e-3, 0.05));
    optimizer.zero_grad();
    Tensor loss = clip_loss(clip.forward(batch.pixels, text.input_ids, text.attention_mask).logits_per_text);
    backward(loss);
    optimizer.step();
    if (step < 10) first += loss.item() / 10;
    if (step >= steps - 10) last += loss.item() / 10;
  }
  return {first, last};
}

// Prompt ensemble over every wording of the other attributes ("a bright {} at the top left", ...).
std::vector<std::string> shape_templates() {
  std::vector<std::string> templates;
  for (const auto& b : kBrightness)
    for (const auto& v : kVertical)
      for (const auto& h : kHorizontal) templates.push_back("a " + b + " {} at the " + v + " " + h);
  return templates;
}

double accuracy(const Tensor& logits, const std::vector<Attributes>& attributes) {
  auto values = logits.to_vector<double>();
  const int64_t classes = logits.size(1);
  int64_t correct = 0;
  for (size_t i = 0; i < attributes.size(); ++i) {
    const double* row = values.data() + i * classes;
    correct += std::max_element(row, row + classes) - row == attributes[i].shape;
  }
  return double(correct) / double(attributes.size());
}

double classifier_accuracy(ImageClassifier& classifier, const Batch& images) {
  NoGradGuard no_grad;
  return accuracy(classifier.forward(images.pixels), images.attributes);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("contrastive pretraining halves the CLIP loss and gives zero-shot accuracy well above chance",
          "[clip][training]") {
  auto start = std::chrono::steady_clock::now();
  Generator init(7);
  CLIPModel clip(training_config(), init);
  auto [first, last] = pretrain(clip, 300, 11);

  Generator held_out(99);   // images never seen in training (fresh jitter and noise)
  Batch test = random_images(256, held_out);
  Tensor head = zero_shot_head_weight(clip, kShapes, shape_templates(), word_tokenizer());
  auto classifier = ImageClassifier::from_clip(clip, head);
  const double zero_shot = classifier_accuracy(*classifier, test);
  std::printf("[clip pretraining] loss %.3f -> %.3f over 300 steps; zero-shot shape accuracy %.3f (chance 0.25); %.1f s\n",
              first, last, zero_shot, seconds_since(start));
  CHECK(last < first / 2);
  CHECK(zero_shot > 0.8);
}

TEST_CASE("fine-tuning the vision tower against a frozen zero-shot head improves accuracy", "[clip][training]") {
  auto start = std::chrono::steady_clock::now();
  Generator init(8);
  CLIPModel clip(training_config(), init);
  pretrain(clip, 30, 12);   // a briefly pretrained model: zero-shot accuracy well short of perfect
  Tensor head = zero_shot_head_weight(clip, kShapes, shape_templates(), word_tokenizer());
  auto classifier = ImageClassifier::from_clip(clip, head);
  StateDict before;   // copies: state_dict() hands out the live tensors
  for (auto& [name, tensor] : clip.state_dict()) before.insert(name, kernels::copy(tensor));
  Tensor projection_before = kernels::copy(classifier->visual_projection->weight);
  Tensor head_before = kernels::copy(classifier->classification_head->weight);

  // Only the vision tower trains (as in the paper's code).
  for (auto& e : classifier->trainable_parameters()) REQUIRE(e.name.rfind("vision_model.", 0) == 0);
  CHECK(classifier->num_parameters(true) == clip.vision_model->num_parameters());

  Generator held_out(99), data(13);
  Batch test = random_images(256, held_out);
  const double zero_shot = classifier_accuracy(*classifier, test);
  AdamW optimizer(trainable(*classifier), 1e-3, 0.05);
  const int64_t steps = 150;
  for (int64_t step = 0; step < steps; ++step) {
    Batch batch = random_images(32, data);
    std::vector<int64_t> labels;
    for (const Attributes& a : batch.attributes) labels.push_back(a.shape);
    optimizer.set_lr(warmup_cosine_lr(step, 15, steps, 1e-3, 0.05));
    optimizer.zero_grad();
    Tensor loss = cross_entropy(classifier->forward(batch.pixels), Tensor::from_vector(labels, {32}));
    backward(loss);
    optimizer.step();
  }
  const double fine_tuned = classifier_accuracy(*classifier, test);
  std::printf("[clip fine-tuning] shape accuracy: zero-shot %.3f -> fine-tuned %.3f after %lld steps; %.1f s\n", zero_shot,
              fine_tuned, (long long)steps, seconds_since(start));
  CHECK(fine_tuned >= zero_shot + 0.1);
  CHECK(fine_tuned > 0.9);
  // The head and the projection stayed frozen, and the CLIP the classifier was copied from is untouched.
  CHECK(linfuse::testing::bit_equal(classifier->visual_projection->weight, projection_before));
  CHECK(linfuse::testing::bit_equal(classifier->classification_head->weight, head_before));
  for (auto& [name, tensor] : clip.state_dict()) CHECK(linfuse::testing::bit_equal(tensor, before.at(name)));
}
