// The tiny CLIP's structure and contracts: configs (HF fields, JSON, validation), parameter names and shapes,
// HF initialisation, the patch embedding as a convolution, end-of-text pooling, causal and padding masks,
// tokenization for CLIP, the contrastive loss, the zero-shot head and the image classifier.
// Numerical parity with PyTorch is in test_clip_parity.cpp, learning in test_clip_training.cpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/clip.h"
#include "nn/attention.h"
#include "nn/clip_classifier.h"
#include "nn/clip_encoder.h"
#include "nn/safetensors.h"
#include "nn/tokenizer.h"
#include "tensor/kernels.h"
#include "tensor/threading.h"

using namespace linfuse;
using namespace linfuse::nn;
using json = nlohmann::json;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;

namespace {

// A CLIP small enough for exhaustive checks: 8x8 images, patch 4, widths 16 / 12.
CLIPConfig small_config(int64_t channels = 3) {
  CLIPConfig c;
  c.projection_dim = 8;
  auto& v = c.vision_config;
  v.hidden_size = 16, v.intermediate_size = 32, v.num_hidden_layers = 2, v.num_attention_heads = 2;
  v.num_channels = channels, v.image_size = 8, v.patch_size = 4;
  auto& t = c.text_config;
  t.vocab_size = 20, t.hidden_size = 12, t.intermediate_size = 24, t.num_hidden_layers = 2, t.num_attention_heads = 3;
  t.max_position_embeddings = 10, t.pad_token_id = 0, t.bos_token_id = 1, t.eos_token_id = 2;
  return c;
}

double std_of(const Tensor& t) {
  auto v = t.to_vector<double>();
  double mean = 0, square = 0;
  for (double x : v) mean += x / double(v.size());
  for (double x : v) square += (x - mean) * (x - mean) / double(v.size());
  return std::sqrt(square);
}

// Parameters of one pre-norm encoder layer of width d and MLP width m: q, k, v, out (+ biases), 2 LayerNorms, fc1, fc2.
int64_t layer_parameters(int64_t d, int64_t m) { return 4 * (d * d + d) + 2 * 2 * d + (d * m + m) + (m * d + d); }

}  // namespace

TEST_CASE("CLIP configs read HF's config.json: unknown fields ignored, missing fields get HF's defaults", "[clip][config]") {
  json j = {{"architectures", {"CLIPModel"}},
            {"projection_dim", 32},
            {"text_config", {{"hidden_size", 64}, {"num_attention_heads", 4}, {"bos_token_id", 0}, {"some_new_field", true}}},
            {"vision_config", {{"image_size", 28}, {"patch_size", 4}, {"num_channels", 1}, {"id2label", {{"0", "a"}}}}}};
  CLIPConfig c = CLIPConfig::from_json(j);
  CHECK(c.projection_dim == 32);
  CHECK(c.logit_scale_init_value == 2.6592);
  CHECK(c.text_config.hidden_size == 64);
  CHECK(c.text_config.num_hidden_layers == 12);   // HF default
  CHECK(c.text_config.eos_token_id == 49407);
  CHECK(c.text_config.pad_token_id == 1);
  CHECK(c.text_config.hidden_act == "quick_gelu");
  CHECK(c.vision_config.hidden_size == 768);
  CHECK(c.vision_config.num_patches() == 49);
  CHECK(c.vision_config.num_positions() == 50);
  // An HF-style file with nothing in it is HF's default CLIP (ViT-B/32 sizes).
  CLIPConfig defaults = CLIPConfig::from_json(json::object());
  CHECK(defaults.vision_config.patch_size == 32);
  CHECK(defaults.text_config.max_position_embeddings == 77);
  // Round trip, through a file too.
  CLIPConfig tiny = CLIPConfig::tiny();
  CHECK(CLIPConfig::from_json(tiny.to_json()).to_json() == tiny.to_json());
  const std::string path = "/tmp/linfuse_test_clip_config.json";
  tiny.save_json_file(path);
  CHECK(CLIPConfig::from_json_file(path).to_json() == tiny.to_json());
  CHECK(tiny.to_json()["model_type"] == "clip");
  // No start-of-text token: -1 here, null in JSON (None in HF).
  CHECK(tiny.text_config.bos_token_id == -1);
  CHECK(tiny.to_json()["text_config"]["bos_token_id"].is_null());
  CHECK(CLIPConfig::from_json(tiny.to_json()).text_config.bos_token_id == -1);
  CHECK(tiny.to_json()["vision_config"]["model_type"] == "clip_vision_model");
}

TEST_CASE("invalid CLIP configs are rejected with a message naming the field and the fix", "[clip][config]") {
  auto rejects = [](json j, const std::string& expected) {
    INFO(j.dump());
    CHECK_THROWS_WITH(CLIPConfig::from_json(j), Catch::Contains(expected));
  };
  rejects({{"vision_config", {{"hidden_size", 130}, {"num_attention_heads", 4}}}},
          "[CLIPVisionConfig] hidden_size 130 is not divisible by num_attention_heads 4");
  rejects({{"text_config", {{"hidden_size", 10}, {"num_attention_heads", 4}}}}, "[CLIPTextConfig] hidden_size 10");
  rejects({{"vision_config", {{"image_size", 28}, {"patch_size", 5}}}}, "patch_size 5 does not divide image_size 28");
  rejects({{"vision_config", {{"hidden_act", "swish"}}}}, "unknown activation 'swish'");
  rejects({{"text_config", {{"vocab_size", 100}}}}, "eos_token_id 49407 is outside the vocabulary [0, 100)");
  rejects({{"text_config", {{"hidden_size", "wide"}}}}, "field 'hidden_size' has the wrong type");
  rejects({{"vision_config", {{"num_hidden_layers", 0}}}}, "num_hidden_layers must be positive");
  rejects({{"projection_dim", -1}}, "[CLIPConfig] projection_dim must be positive");
  rejects({{"text_config", {{"bos_token_id", 7}, {"eos_token_id", 7}}}}, "bos_token_id and eos_token_id are both 7");
  CHECK_THROWS_WITH(CLIPConfig::from_json_file("/nonexistent/config.json"), Catch::Contains("cannot open"));
}

TEST_CASE("a small-vocabulary CLIP config without bos_token_id loads, as in transformers", "[clip][config]") {
  // HF's default bos 49406 stays: the forward pass never reads it; only tokenizing with it is refused.
  CLIPConfig c = CLIPConfig::from_json({{"text_config", {{"vocab_size", 100}, {"pad_token_id", 0}, {"eos_token_id", 2}}}});
  CHECK(c.text_config.bos_token_id == 49406);
  TokenizeFunction tokenizer = [](const std::string&) { return std::vector<int64_t>{5, 6}; };
  CHECK_THROWS_WITH(tokenize_for_clip({"a photo"}, tokenizer, c.text_config),
                    Catch::Contains("token id 49406") && Catch::Contains("outside the vocabulary [0, 100)"));
}

TEST_CASE("the tiny preset is the 28x28 grayscale ViT of the benchmarks, and its parameter count follows", "[clip][config]") {
  CLIPConfig c = CLIPConfig::tiny();
  const auto& v = c.vision_config;
  CHECK(v.num_channels == 1);
  CHECK(v.image_size == 28);
  CHECK(v.num_patches() == 49);
  CHECK(v.hidden_size == 128);
  CHECK(v.num_hidden_layers == 4);
  CHECK(v.num_attention_heads == 4);
  CHECK(v.intermediate_size == 512);
  CHECK(v.hidden_act == "quick_gelu");
  Generator init(0);
  CLIPModel clip(c, init);
  const auto& t = c.text_config;
  const int64_t dv = v.hidden_size, dt = t.hidden_size;
  const int64_t vision = dv * v.patch_size * v.patch_size * v.num_channels + dv + v.num_positions() * dv + 2 * dv +
                         v.num_hidden_layers * layer_parameters(dv, v.intermediate_size) + 2 * dv;
  const int64_t text = t.vocab_size * dt + t.max_position_embeddings * dt +
                       t.num_hidden_layers * layer_parameters(dt, t.intermediate_size) + 2 * dt;
  CHECK(clip.vision_model->num_parameters() == vision);
  CHECK(clip.text_model->num_parameters() == text);
  CHECK(clip.num_parameters() == vision + text + c.projection_dim * (dv + dt) + 1);
  std::printf("[tiny CLIP] parameters: vision tower %lld (+ projection %lld), text tower %lld (+ projection %lld), total %lld\n",
              (long long)vision, (long long)(c.projection_dim * dv), (long long)text, (long long)(c.projection_dim * dt),
              (long long)clip.num_parameters());
}

TEST_CASE("parameter names, order and shapes are Hugging Face's CLIPModel's", "[clip][model]") {
  Generator init(0);
  CLIPModel clip(CLIPConfig::tiny(), init);
  StateDict sd = clip.state_dict();
  std::vector<std::string> names = sd.names();
  CHECK(names.front() == "logit_scale");
  CHECK(sd.at("logit_scale").dim() == 0);
  CHECK(names[1] == "text_model.embeddings.token_embedding.weight");
  CHECK(names.back() == "text_projection.weight");
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"text_model.embeddings.token_embedding.weight", {1024, 64}},
      {"text_model.embeddings.position_embedding.weight", {32, 64}},
      {"text_model.encoder.layers.1.mlp.fc1.weight", {256, 64}},
      {"text_model.final_layer_norm.bias", {64}},
      {"vision_model.embeddings.class_embedding", {128}},
      {"vision_model.embeddings.patch_embedding.weight", {128, 1, 4, 4}},
      {"vision_model.embeddings.position_embedding.weight", {50, 128}},
      {"vision_model.pre_layrnorm.weight", {128}},
      {"vision_model.encoder.layers.3.self_attn.out_proj.bias", {128}},
      {"vision_model.encoder.layers.0.layer_norm2.weight", {128}},
      {"vision_model.post_layernorm.bias", {128}},
      {"visual_projection.weight", {64, 128}},
      {"text_projection.weight", {64, 64}}};
  for (const auto& [name, shape] : expected) {
    INFO(name);
    REQUIRE(sd.contains(name));
    CHECK(sd.at(name).shape() == shape);
  }
  CHECK_FALSE(sd.contains("visual_projection.bias"));
  CHECK_FALSE(sd.contains("vision_model.embeddings.patch_embedding.bias"));
  // HF registers k, v, q, out in that order inside an attention block.
  auto at = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  CHECK(at("vision_model.encoder.layers.0.self_attn.k_proj.weight") < at("vision_model.encoder.layers.0.self_attn.q_proj.weight"));
  // Every projection is an nn::Linear (PEFT attaches adapters to Linear layers by name).
  int linears = 0;
  for (auto& [name, module] : clip.named_modules()) linears += std::dynamic_pointer_cast<Linear>(module) != nullptr;
  CHECK(linears == 6 * (4 + 2) + 2);
  CHECK(std::dynamic_pointer_cast<Linear>(clip.find_module("vision_model.encoder.layers.2.self_attn.q_proj")));
  CHECK(std::dynamic_pointer_cast<Linear>(clip.find_module("vision_model.encoder.layers.2.mlp.fc2")));
}

TEST_CASE("weights are initialised with Hugging Face's scheme", "[clip][model]") {
  CLIPConfig c = CLIPConfig::tiny();
  Generator init(3);
  CLIPModel clip(c, init);
  const double d = 128, layers = 4;
  auto within = [](double measured, double expected) { return std::abs(measured / expected - 1) < 0.08; };
  CHECK(within(std_of(clip.parameter("vision_model.encoder.layers.1.self_attn.q_proj.weight")), std::pow(d, -0.5) / std::sqrt(2 * layers)));
  CHECK(within(std_of(clip.parameter("vision_model.encoder.layers.1.self_attn.out_proj.weight")), std::pow(d, -0.5)));
  CHECK(within(std_of(clip.parameter("vision_model.encoder.layers.1.mlp.fc1.weight")), std::pow(2 * d, -0.5)));
  CHECK(within(std_of(clip.parameter("vision_model.encoder.layers.1.mlp.fc2.weight")), std::pow(d, -0.5) / std::sqrt(2 * layers)));
  CHECK(within(std_of(clip.parameter("vision_model.embeddings.patch_embedding.weight")), 0.02));
  CHECK(within(std_of(clip.parameter("text_model.embeddings.token_embedding.weight")), 0.02));
  CHECK(within(std_of(clip.parameter("visual_projection.weight")), std::pow(d, -0.5)));
  CHECK(std_of(clip.parameter("vision_model.encoder.layers.1.self_attn.q_proj.bias")) == 0);
  CHECK(clip.parameter("vision_model.pre_layrnorm.weight").to_vector<float>() == std::vector<float>(128, 1.0f));
  CHECK(clip.logit_scale.item() == Approx(2.6592));
  // Same seed, same weights; a float64 model is the float32 model's twin.
  Generator again(3), twin(3);
  CLIPModel same(c, again);
  CLIPModel wide(c, twin, DType::F64);
  CHECK(bit_equal(same.parameter("text_projection.weight"), clip.parameter("text_projection.weight")));
  CHECK(wide.parameter("text_projection.weight").dtype() == DType::F64);
  CHECK(max_abs_diff(wide.parameter("text_projection.weight"), clip.parameter("text_projection.weight")) < 1e-6);
}

TEST_CASE("the patch embedding is a strided convolution without bias, for 1 and 3 channels", "[clip][model]") {
  for (int64_t channels : {1, 3}) {
    Generator g(5);
    PatchEmbedding patch(channels, 6, 4, g, 1.0, DType::F64);
    Tensor pixels = g.normal({2, channels, 8, 12}, 0, 1, DType::F64);
    Tensor out = patch.forward(pixels);   // (2, 2*3, 6)
    REQUIRE(out.shape() == Shape{2, 6, 6});
    auto x = pixels.to_vector<double>(), w = patch.weight.to_vector<double>(), y = out.to_vector<double>();
    for (int b = 0; b < 2; ++b)
      for (int row = 0; row < 2; ++row)
        for (int col = 0; col < 3; ++col)
          for (int o = 0; o < 6; ++o) {
            double conv = 0;
            for (int c = 0; c < channels; ++c)
              for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j)
                  conv += w[((o * channels + c) * 4 + i) * 4 + j] * x[((b * channels + c) * 8 + row * 4 + i) * 12 + col * 4 + j];
            CHECK(y[(b * 6 + row * 3 + col) * 6 + o] == Approx(conv).epsilon(1e-12));
          }
  }
  Generator g(0);
  CLIPModel clip(small_config(3), g);
  CHECK_THROWS_WITH(clip.get_image_features(Tensor::zeros({2, 1, 8, 8})),
                    Catch::Contains("expected pixel_values (B,3,8,8) as the config says, got float32(2,1,8,8)"));
}

TEST_CASE("text features pool the first end-of-text token; the OpenAI-vocabulary rule takes the largest id",
          "[clip][model]") {
  Generator g(1);
  CLIPConfig c = small_config();
  CLIPModel clip(c, g, DType::F64);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 2, 0, 0, 1, 7, 8, 9, 2, 1, 2, 2, 2, 2}, {3, 5});
  CHECK(clip.text_model->eos_positions(ids) == std::vector<int64_t>{2, 4, 1});
  // Causal: what comes after the end-of-text token does not change the features.
  Tensor other = Tensor::from_vector(std::vector<int64_t>{1, 5, 2, 13, 17, 1, 7, 8, 9, 2, 1, 2, 4, 4, 4}, {3, 5});
  CHECK(max_abs_diff(clip.get_text_features(ids), clip.get_text_features(other)) < 1e-12);
  // The padding mask is applied: masking a token before the end-of-text changes the features of that row only.
  Tensor hole = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 5});
  Tensor full = clip.get_text_features(ids), masked = clip.get_text_features(ids, hole);
  CHECK(max_abs_diff(select(full, 0, 0), select(masked, 0, 0)) < 1e-12);
  CHECK(max_abs_diff(select(full, 0, 1), select(masked, 0, 1)) > 1e-6);
  CHECK_THROWS_WITH(clip.get_text_features(Tensor::from_vector(std::vector<int64_t>{1, 5, 6}, {1, 3})),
                    Catch::Contains("row 0 of input_ids has no eos_token_id 2"));
  CHECK_THROWS_WITH(clip.get_text_features(Tensor::zeros({1, 11}, DType::I64)),
                    Catch::Contains("sequence length 11 exceeds max_position_embeddings 10"));

  CLIPTextConfig openai = c.text_config;
  openai.vocab_size = 49408, openai.bos_token_id = 49406, openai.eos_token_id = 2;   // an old HF config
  CLIPTextTransformer tower(openai, 1.0, g, DType::F32);
  Tensor bpe = Tensor::from_vector(std::vector<int64_t>{49406, 320, 2, 49407, 49407, 49406, 2, 49407, 0, 0}, {2, 5});
  CHECK(tower.eos_positions(bpe) == std::vector<int64_t>{3, 2});   // not the eos_token_id 2 at positions 2 and 1
}

TEST_CASE("tokenize_for_clip adds bos and eos when missing, truncates keeping eos, pads on the right", "[clip][text]") {
  CLIPTextConfig c = small_config().text_config;   // pad 0, bos 1, eos 2, 10 positions
  TokenizeFunction words = [](const std::string& text) {
    std::vector<int64_t> ids;
    for (char ch : text)
      if (ch != ' ') ids.push_back(3 + (ch - 'a'));
    return ids;
  };
  TokenizedBatch batch = tokenize_for_clip({"ab", "abcdefghijkl", ""}, words, c);
  CHECK(batch.input_ids.shape() == Shape{3, 10});
  auto ids = batch.input_ids.to_vector<int64_t>(), mask = batch.attention_mask.to_vector<int64_t>();
  CHECK(std::vector<int64_t>(ids.begin(), ids.begin() + 10) == std::vector<int64_t>{1, 3, 4, 2, 0, 0, 0, 0, 0, 0});
  CHECK(std::vector<int64_t>(ids.begin() + 10, ids.begin() + 20) == std::vector<int64_t>{1, 3, 4, 5, 6, 7, 8, 9, 10, 2});
  CHECK(std::vector<int64_t>(ids.begin() + 20, ids.end()) == std::vector<int64_t>{1, 2, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(std::vector<int64_t>(mask.begin(), mask.begin() + 10) == std::vector<int64_t>{1, 1, 1, 1, 0, 0, 0, 0, 0, 0});
  // A tokenizer that already adds them is left alone.
  TokenizeFunction with_specials = [&](const std::string& text) {
    auto inner = words(text);
    inner.insert(inner.begin(), 1);
    inner.push_back(2);
    return inner;
  };
  CHECK(tokenize_for_clip({"ab"}, with_specials, c).input_ids.to_vector<int64_t>() == std::vector<int64_t>{1, 3, 4, 2});
  CHECK_THROWS_WITH(tokenize_for_clip({"z"}, words, c), Catch::Contains("token id 28 of \"z\" is outside the vocabulary"));
  // Without a start-of-text token (bos_token_id -1) only eos is added.
  CLIPTextConfig no_bos = c;
  no_bos.bos_token_id = -1;
  CHECK(tokenize_for_clip({"ab"}, words, no_bos).input_ids.to_vector<int64_t>() == std::vector<int64_t>{3, 4, 2});
  CHECK(tokenize_for_clip({""}, words, no_bos).input_ids.to_vector<int64_t>() == std::vector<int64_t>{2});
  CHECK(fill_template("a photo of the digit {}.", "7") == "a photo of the digit 7.");
  CHECK(fill_template("{} or {}", "x") == "x or x");
  CHECK_THROWS_WITH(fill_template("a photo", "7"), Catch::Contains("has no \"{}\""));
}

TEST_CASE("clip_loss is the symmetric InfoNCE loss and CLIPModel's logits are scaled cosines", "[clip][model]") {
  Tensor s = Tensor::from_list({2.0, 0.5, -1.0, 0.0, 1.5, 0.3, 0.7, -0.2, 0.9}, {3, 3}, DType::F64);
  auto v = s.to_vector<double>();
  double expected = 0;
  for (int i = 0; i < 3; ++i) {
    double row = 0, col = 0;
    for (int j = 0; j < 3; ++j) {
      row += std::exp(v[i * 3 + j]);
      col += std::exp(v[j * 3 + i]);
    }
    expected += (std::log(row) - v[i * 3 + i] + std::log(col) - v[i * 3 + i]) / 6;
  }
  CHECK(clip_loss(s).item() == Approx(expected).epsilon(1e-14));
  CHECK(clip_loss(s).dim() == 0);
  CHECK_THROWS_WITH(clip_loss(Tensor::zeros({2, 3})), Catch::Contains("must be square"));

  Generator g(2);
  CLIPModel clip(small_config(), g, DType::F64);
  Tensor pixels = g.normal({2, 3, 8, 8}, 0, 1, DType::F64);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 6, 2, 1, 7, 2, 0, 1, 9, 9, 2}, {3, 4});
  CLIPOutput out = clip.forward(pixels, ids);
  REQUIRE(out.logits_per_image.shape() == Shape{2, 3});
  REQUIRE(out.logits_per_text.shape() == Shape{3, 2});
  Tensor image = l2_normalize(clip.get_image_features(pixels)), text = l2_normalize(clip.get_text_features(ids));
  Tensor cosine = matmul(image, transpose(text, 0, 1));
  CHECK(max_abs_diff(out.logits_per_image, mul(cosine, std::exp(2.6592))) < 1e-12);
  CHECK(max_abs_diff(transpose(out.logits_per_text, 0, 1), out.logits_per_image) == 0);
}

TEST_CASE("the zero-shot head averages normalised prompt embeddings; the classifier trains only the vision tower",
          "[clip][classifier]") {
  Generator g(4);
  CLIPConfig c = small_config();
  CLIPModel clip(c, g);
  TokenizeFunction letters = [](const std::string& text) {
    std::vector<int64_t> ids;
    for (char ch : text)
      if (ch >= 'a' && ch <= 'p') ids.push_back(3 + (ch - 'a'));
    return ids;
  };
  std::vector<std::string> classes = {"cab", "dog", "hen"}, templates = {"a {}", "bad {} face", "{}"};
  Tensor head = zero_shot_head_weight(clip, classes, templates, letters);
  REQUIRE(head.shape() == Shape{3, 8});
  // Row 1 by hand: mean of the normalised embeddings of the class's prompts, renormalised, times exp(logit_scale).
  {
    NoGradGuard no_grad;
    TokenizedBatch batch = tokenize_for_clip({"a dog", "bad dog face", "dog"}, letters, c.text_config);
    Tensor mean_embedding = mean(l2_normalize(clip.get_text_features(batch.input_ids, batch.attention_mask)), {0});
    Tensor expected = mul(l2_normalize(mean_embedding), std::exp(c.logit_scale_init_value));
    CHECK(max_abs_diff(select(head, 0, 1), expected) < 1e-5);
  }
  CHECK(clip.is_training());   // restored

  auto classifier = ImageClassifier::from_clip(clip, head);
  auto names = classifier->state_dict().names();
  CHECK(names.front() == "vision_model.embeddings.class_embedding");
  CHECK(names.back() == "classification_head.weight");
  for (auto& e : classifier->trainable_parameters()) CHECK(e.name.rfind("vision_model.", 0) == 0);
  CHECK(classifier->num_parameters(true) == clip.vision_model->num_parameters());
  CHECK_FALSE(classifier->visual_projection->weight.requires_grad());
  // Its copy of the tower is its own: changing it leaves the CLIP alone.
  Tensor pixels = g.normal({2, 3, 8, 8});
  Tensor logits = classifier->forward(pixels);
  Tensor expected = matmul(l2_normalize(clip.get_image_features(pixels)), transpose(head, 0, 1));
  CHECK(max_abs_diff(logits, expected) < 1e-5);
  kernels::copy_into(classifier->vision_model->pre_layrnorm->weight, Tensor::full({16}, 2.0));
  CHECK(clip.vision_model->pre_layrnorm->weight.to_vector<float>() == std::vector<float>(16, 1.0f));
  CHECK_THROWS_WITH(ImageClassifier(c, Tensor::zeros({3, 5})), Catch::Contains("head weight must be (num_classes, projection_dim = 8)"));
}

TEST_CASE("attention dropout acts in training only", "[clip][model]") {
  CLIPConfig with_dropout = small_config(), without = small_config();
  with_dropout.vision_config.attention_dropout = 0.5;
  Generator g1(6), g2(6);
  CLIPModel a(with_dropout, g1, DType::F64), b(without, g2, DType::F64);
  b.load_state_dict(a.state_dict());
  Tensor pixels = Generator(7).normal({2, 3, 8, 8}, 0, 1, DType::F64);
  a.eval();
  CHECK(max_abs_diff(a.get_image_features(pixels), b.get_image_features(pixels)) == 0);
  a.train();
  CHECK(max_abs_diff(a.get_image_features(pixels), b.get_image_features(pixels)) > 1e-6);
}

TEST_CASE("image features and their gradients are the same bits with 1 and 2 threads", "[clip][model]") {
  Generator g(9);
  CLIPModel clip(CLIPConfig::tiny(), g);
  Tensor pixels = g.normal({8, 1, 28, 28});
  auto run = [&](int threads) {
    set_num_threads(threads);
    clip.zero_grad();
    Tensor features = clip.get_image_features(pixels);
    backward(sum(square(features)));
    return std::make_pair(kernels::copy(features), kernels::copy(clip.parameter("vision_model.encoder.layers.0.mlp.fc1.weight").grad()));
  };
  const int previous = num_threads();
  auto one = run(1), two = run(2);
  set_num_threads(previous);
  clip.zero_grad();
  CHECK(bit_equal(one.first, two.first));
  CHECK(bit_equal(one.second, two.second));
}

namespace {
// Counts the rows a Linear layer sees, leaving its output alone.
struct RowCounter : LinearAdapter {
  int64_t rows = 0;
  Tensor adapt(const Tensor& x, const Tensor& base_output) override {
    rows += x.numel() / x.size(-1);
    return base_output;
  }
  std::string type_name() const override { return "RowCounter"; }
};
}  // namespace

TEST_CASE("pooled_output runs the last layer for the class token alone, with forward's value, gradients and tangents",
          "[clip][model]") {
  Generator g(21);
  CLIPConfig c = small_config();
  c.vision_config.num_hidden_layers = 3;
  CLIPModel clip(c, g, DType::F64);
  CLIPVisionTransformer& tower = *clip.vision_model;
  Tensor pixels = g.normal({3, 3, 8, 8}, 0, 1, DType::F64);   // 4 patches + the class token: T = 5
  Tensor weights = g.normal({3, 16}, 0, 1, DType::F64);

  // Which rows each layer of the last block sees: keys and values every token, the rest the class token.
  const std::string last = "encoder.layers.2.";
  std::map<std::string, std::shared_ptr<RowCounter>> counters;
  for (const char* name : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"}) {
    auto layer = std::dynamic_pointer_cast<Linear>(tower.find_module(last + name));
    REQUIRE(layer);
    counters[name] = std::make_shared<RowCounter>();
    layer->set_adapter(counters[name]);
  }
  auto loss_of = [&](const Tensor& pooled) { return sum(mul(pooled, weights)); };
  auto run = [&](bool shortcut) {
    tower.pool_last_layer_only = shortcut;
    for (auto& [_, counter] : counters) counter->rows = 0;
    clip.zero_grad();
    Tensor pooled = tower.pooled_output(pixels);   // (3, 16)
    backward(loss_of(pooled));
    std::map<std::string, Tensor> grads;
    for (auto& [name, p] : tower.named_parameters()) grads[name] = kernels::copy(p->grad());
    std::map<std::string, int64_t> rows;
    for (auto& [name, counter] : counters) rows[name] = counter->rows;
    return std::make_tuple(kernels::copy(pooled), grads, rows);
  };
  auto [short_value, short_grads, short_rows] = run(true);
  auto [full_value, full_grads, full_rows] = run(false);
  tower.pool_last_layer_only = true;
  for (auto& [name, counter] : counters) std::dynamic_pointer_cast<Linear>(tower.find_module(last + name))->remove_adapter();

  CHECK(short_rows["self_attn.k_proj"] == 15);
  CHECK(short_rows["self_attn.v_proj"] == 15);
  for (const char* name : {"self_attn.q_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"}) {
    CAPTURE(name);
    CHECK(short_rows[name] == 3);
    CHECK(full_rows[name] == 15);
  }
  CHECK(max_abs_diff(short_value, full_value) < 1e-12);
  // The switch off is forward's pooled output, bit for bit.
  CHECK(bit_equal(full_value, tower.forward(pixels).pooled_output));
  double largest = 0;
  for (auto& [name, grad] : full_grads) {
    CAPTURE(name);
    REQUIRE(short_grads[name].defined());
    CHECK(max_abs_diff(short_grads[name], grad) < 1e-12);
    largest = std::max(largest, max_abs_diff(grad, Tensor::zeros(grad.shape(), DType::F64)));
  }
  CHECK(largest > 1e-3);   // the gradients compared are not all zero

  // Tangents: the JVP of the shortcut equals the full forward's.
  Tensor tangent = g.normal(pixels.shape(), 0, 1, DType::F64);
  auto tangent_of = [&](bool shortcut) {
    tower.pool_last_layer_only = shortcut;
    return jvp([&](const Tensors& in) { return tower.pooled_output(in[0]); }, {pixels}, {tangent}).second;
  };
  Tensor short_tangent = tangent_of(true), full_tangent = tangent_of(false);
  tower.pool_last_layer_only = true;
  CHECK(max_abs_diff(short_tangent, full_tangent) < 1e-12);
  CHECK(max_abs_diff(full_tangent, Tensor::zeros(full_tangent.shape(), DType::F64)) > 1e-3);
  clip.zero_grad();
}

TEST_CASE("a layer's first-token forward is row 0 of its forward, with a padding mask too", "[clip][model]") {
  Generator g(22);
  CLIPEncoderSettings settings{12, 24, 2, 3, Activation::QuickGelu, 1e-5, 0.0, 1.0};
  CLIPEncoderLayer layer(settings, g, DType::F64);
  Tensor x = g.normal({2, 6, 12}, 0, 1, DType::F64);
  Tensor mask = Tensor::from_vector(std::vector<double>{1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, {2, 6});
  for (const Tensor& bias : {Tensor(), padding_mask(mask, DType::F64)}) {
    Tensor full = slice(layer.forward(x, bias), 1, 0, 1);   // (2, 1, 12)
    Tensor first = layer.forward_first_token(x, bias);
    REQUIRE(first.shape() == Shape{2, 1, 12});
    CHECK(max_abs_diff(first, full) < 1e-12);
  }
  CHECK_THROWS_WITH(layer.self_attn->attend(Tensor::zeros({3, 1, 12}, DType::F64), x, Tensor()),
                    Catch::Contains("with one B"));
}

TEST_CASE("the project's SentencePiece tokenizer plugs into the text tower and the zero-shot head", "[clip][text]") {
  Tokenizer spm = Tokenizer::load(linfuse::testing::source_path("tests/fixtures/t5_layout_spiece.model"));
  CLIPConfig c = CLIPConfig::tiny();   // pad 0, eos 1, no bos: the tokenizer's ids
  REQUIRE(spm.pad_id() == c.text_config.pad_token_id);
  REQUIRE(spm.eos_id() == c.text_config.eos_token_id);
  c.text_config.vocab_size = spm.vocab_size();
  Generator init(10);
  CLIPModel clip(c, init);
  TokenizeFunction tokenize = [&](const std::string& text) { return spm.encode(text); };   // appends eos
  std::vector<std::string> digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
  TokenizedBatch batch = tokenize_for_clip({"a photo of the digit seven.", "7"}, tokenize, c.text_config);
  std::vector<int64_t> expected = spm.encode("a photo of the digit seven.");
  auto ids = batch.input_ids.to_vector<int64_t>();
  CHECK(std::vector<int64_t>(ids.begin(), ids.begin() + int64_t(expected.size())) == expected);   // nothing added
  CHECK(clip.text_model->eos_positions(batch.input_ids)[0] == int64_t(expected.size()) - 1);
  Tensor head = zero_shot_head_weight(clip, digits, {"a photo of the digit {}.", "the number {}"}, tokenize);
  REQUIRE(head.shape() == Shape{10, 64});
  for (int64_t k = 0; k < 10; ++k) CHECK(std::sqrt(sum(square(select(head, 0, k))).item()) == Approx(std::exp(2.6592)));
}

TEST_CASE("a CLIP checkpoint folder (config.json + model.safetensors) round-trips by HF name", "[clip][io]") {
  Generator init(11);
  CLIPModel clip(small_config(), init);
  const std::string dir = "/tmp/linfuse_test_clip_checkpoint";
  save_pretrained(clip, dir);
  StateDict stored = load_safetensors(dir + "/model.safetensors");
  CHECK(stored.names() == clip.state_dict().names());
  auto loaded = load_pretrained_clip(dir);
  Tensor pixels = init.normal({2, 3, 8, 8});
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 6, 2, 1, 7, 2, 0}, {2, 4});
  CLIPOutput a = clip.forward(pixels, ids), b = loaded->forward(pixels, ids);
  CHECK(bit_equal(a.logits_per_image, b.logits_per_image));
  auto wide = load_pretrained_clip(dir, DType::F64);
  CHECK(wide->dtype() == DType::F64);
  CHECK(max_abs_diff(wide->forward(cast(pixels, DType::F64), ids).logits_per_image, a.logits_per_image) < 1e-4);
  // A checkpoint that does not fit the config is refused, naming the file and the tensor.
  stored.erase("text_projection.weight");
  save_safetensors(dir + "/model.safetensors", stored);
  CHECK_THROWS_WITH(load_pretrained_clip(dir), Catch::Contains("model.safetensors") && Catch::Contains("text_projection.weight"));
}
