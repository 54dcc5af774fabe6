// The tiny T5: config, Hugging Face names, masks, loss conventions, state-dict aliases, generation and
// label scoring. Numerical parity with PyTorch is in test_t5_parity.cpp, learning in test_t5_training.cpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/t5.h"
#include "nn/t5_generation.h"
#include "tensor/kernels.h"

using namespace linfuse;
using namespace linfuse::nn;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;

namespace {

T5Config small_config(const std::string& ff = "gated-gelu", bool tied = false) {
  T5Config c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.d_kv = 4;
  c.num_heads = 3;
  c.d_ff = 24;
  c.num_layers = 2;
  c.num_decoder_layers = 3;
  c.relative_attention_num_buckets = 8;
  c.relative_attention_max_distance = 16;
  c.feed_forward_proj = ff;
  c.tie_word_embeddings = tied;
  return c;
}

Tensor ids(std::vector<int64_t> v, int64_t rows) { return Tensor::from_vector(v, {rows, (int64_t)v.size() / rows}); }

}  // namespace

TEST_CASE("T5Config defaults are Hugging Face's and the JSON round trip keeps every field", "[t5][config]") {
  T5Config hf;
  CHECK(hf.vocab_size == 32128);
  CHECK(hf.d_model == 512);
  CHECK(hf.feed_forward_proj == "relu");
  CHECK(hf.tie_word_embeddings);
  CHECK(hf.dense_act_fn() == Activation::Relu);
  CHECK_FALSE(hf.is_gated_act());
  T5Config tiny = tiny_t5_config(1000);
  CHECK(tiny.is_gated_act());
  CHECK(tiny.dense_act_fn() == Activation::GeluTanh);   // "gated-gelu" means gelu_new, as in HF
  CHECK(tiny.dense_act_fn_name() == "gelu_new");
  CHECK(T5Config::from_json(tiny.to_json()) == tiny);

  T5Config gelu = tiny;
  gelu.feed_forward_proj = "gelu";   // a plain "gelu" is the erf GELU
  CHECK(gelu.dense_act_fn() == Activation::GeluErf);

  auto dir = std::filesystem::temp_directory_path() / "linfuse_t5_config_test";
  std::filesystem::create_directories(dir);
  tiny.save((dir / "config.json").string());
  CHECK(T5Config::load((dir / "config.json").string()) == tiny);
  std::filesystem::remove_all(dir);
}

TEST_CASE("T5Config reads a Hugging Face config.json: unknown keys ignored, null num_decoder_layers = num_layers",
          "[t5][config]") {
  T5Config c = T5Config::from_json(R"({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
      "d_model": 32, "d_kv": 8, "num_heads": 4, "num_layers": 3, "num_decoder_layers": null,
      "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "vocab_size": 100,
      "task_specific_params": {"summarization": {"prefix": "summarize: "}}, "use_cache": true})");
  CHECK(c.num_decoder_layers == 3);
  CHECK(c.d_ff == 2048);   // absent: Hugging Face's default
  CHECK(c.decoder_start_token_id == 0);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK_THROWS_WITH(T5Config::from_json(R"({"model_type": "bert"})"), Catch::Contains("expected \"t5\""));
  CHECK_THROWS_WITH(T5Config::from_json(R"({"d_model": "big"})"), Catch::Contains("d_model has the wrong type"));
  CHECK_THROWS_WITH(T5Config::from_json("{nope"), Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(T5Config::load("/nonexistent/config.json"), Catch::Contains("cannot open /nonexistent/config.json"));
}

TEST_CASE("invalid T5 configs are rejected naming the field", "[t5][config]") {
  auto rejects = [](auto edit, const std::string& message) {
    T5Config c = tiny_t5_config(100);
    edit(c);
    CHECK_THROWS_WITH(c.validate(), Catch::Contains(message));
  };
  rejects([](T5Config& c) { c.vocab_size = 0; }, "vocab_size must be positive");
  rejects([](T5Config& c) { c.num_heads = -1; }, "num_heads must be positive");
  rejects([](T5Config& c) { c.num_decoder_layers = 0; }, "num_decoder_layers must be positive");
  rejects([](T5Config& c) { c.relative_attention_num_buckets = 2; }, "at least 4");
  rejects([](T5Config& c) { c.relative_attention_max_distance = 16; }, "must exceed relative_attention_num_buckets / 2");
  rejects([](T5Config& c) { c.dropout_rate = 1.0; }, "dropout_rate must be in [0, 1)");
  rejects([](T5Config& c) { c.layer_norm_epsilon = 0; }, "layer_norm_epsilon must be positive");
  rejects([](T5Config& c) { c.eos_token_id = 100; }, "eos_token_id 100 is outside the vocabulary [0, 100)");
  rejects([](T5Config& c) { c.feed_forward_proj = "gated-gelu-new"; }, "not of the form 'gated-{ACT}' or '{ACT}'");
  rejects([](T5Config& c) { c.feed_forward_proj = "swish"; }, "unknown activation 'swish'");
  Generator g(0);
  T5Config bad = tiny_t5_config(100);
  bad.d_model = 0;
  CHECK_THROWS_WITH(T5ForConditionalGeneration(bad, g), Catch::Contains("d_model must be positive"));
}

TEST_CASE("the T5 module tree gives Hugging Face's parameter names, every projection a bias-free Linear",
          "[t5][names]") {
  Generator g(1);
  T5ForConditionalGeneration gated(small_config("gated-gelu", false), g);
  std::set<std::string> names;
  for (auto& p : gated.named_parameters()) names.insert(p.name);
  for (const char* expected :
       {"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.block.1.layer.0.SelfAttention.o.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.0.layer.0.layer_norm.weight",
        "encoder.block.1.layer.1.DenseReluDense.wi_0.weight", "encoder.block.1.layer.1.DenseReluDense.wi_1.weight",
        "encoder.block.1.layer.1.DenseReluDense.wo.weight", "encoder.block.1.layer.1.layer_norm.weight",
        "encoder.final_layer_norm.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "decoder.block.2.layer.1.EncDecAttention.k.weight", "decoder.block.2.layer.1.layer_norm.weight",
        "decoder.block.2.layer.2.DenseReluDense.wo.weight", "decoder.final_layer_norm.weight", "lm_head.weight"})
    CHECK(names.count(expected) == 1);
  // The position bias lives in block 0 of each stack only; cross-attention has none; no Linear has a bias.
  for (const auto& n : names) {
    if (n.find("relative_attention_bias") != std::string::npos) CHECK(n.find(".block.0.layer.0.SelfAttention.") != std::string::npos);
    CHECK(n.find(".bias") == std::string::npos);
    CHECK(n.find("embed_tokens") == std::string::npos);   // aliases are not parameters of their own
  }
  // Count by hand: shared 1, lm_head 1; encoder block: q k v o + norm + wi_0 wi_1 wo + norm = 9, x2, + bias 1 +
  // final norm 1; decoder block: 9 + EncDec q k v o + norm = 14, x3, + bias 1 + final norm 1.
  CHECK(names.size() == 2 + (2 * 9 + 2) + (3 * 14 + 2));
  // Every projection is a Linear that PEFT can find by name.
  for (const char* linear_name : {"encoder.block.0.layer.0.SelfAttention.q", "decoder.block.1.layer.1.EncDecAttention.v",
                                  "decoder.block.2.layer.2.DenseReluDense.wi_1", "lm_head"}) {
    auto linear = std::dynamic_pointer_cast<Linear>(gated.find_module(linear_name));
    REQUIRE(linear);
    CHECK_FALSE(linear->bias.defined());
  }
  CHECK(gated.freeze("*.SelfAttention.q.*") == 5);

  T5ForConditionalGeneration relu(small_config("relu", true), g);
  std::set<std::string> relu_names;
  for (auto& p : relu.named_parameters()) relu_names.insert(p.name);
  CHECK(relu_names.count("encoder.block.0.layer.1.DenseReluDense.wi.weight") == 1);
  CHECK(relu_names.count("encoder.block.0.layer.1.DenseReluDense.wi_0.weight") == 0);
  CHECK(relu_names.count("lm_head.weight") == 0);
  CHECK(relu.lm_head == nullptr);
}

TEST_CASE("T5 weights are initialised with Hugging Face's Mesh TensorFlow scales", "[t5][init]") {
  T5Config c = tiny_t5_config(512);
  c.initializer_factor = 2.0;
  Generator g(3);
  T5ForConditionalGeneration model(c, g);
  auto std_of = [](const Tensor& t) {
    auto v = t.to_vector<double>();
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / v.size());
  };
  auto expect = [&](const std::string& name, double expected) {
    INFO(name);
    CHECK(std_of(model.parameter(name)) == Approx(expected).epsilon(0.05));
  };
  expect("shared.weight", 2.0);
  expect("lm_head.weight", 2.0);
  expect("encoder.block.1.layer.0.SelfAttention.q.weight", 2.0 / std::sqrt(128.0 * 32));
  expect("encoder.block.1.layer.0.SelfAttention.k.weight", 2.0 / std::sqrt(128.0));
  expect("decoder.block.3.layer.1.EncDecAttention.o.weight", 2.0 / std::sqrt(128.0));
  expect("decoder.block.0.layer.2.DenseReluDense.wi_0.weight", 2.0 / std::sqrt(128.0));
  expect("decoder.block.0.layer.2.DenseReluDense.wo.weight", 2.0 / std::sqrt(256.0));
  for (double w : model.parameter("decoder.block.2.layer.1.layer_norm.weight").to_vector<double>()) CHECK(w == 2.0);
  // Different seeds, different weights; the same seed, the same bits.
  Generator g1(3), g2(4);
  T5ForConditionalGeneration same(c, g1), other(c, g2);
  CHECK(bit_equal(same.parameter("encoder.block.2.layer.1.DenseReluDense.wo.weight"),
                  model.parameter("encoder.block.2.layer.1.DenseReluDense.wo.weight")));
  CHECK_FALSE(bit_equal(other.parameter("encoder.block.2.layer.1.DenseReluDense.wo.weight"),
                        model.parameter("encoder.block.2.layer.1.DenseReluDense.wo.weight")));
}

TEST_CASE("T5 shift_right and loss targets follow HF: start token, -100 -> pad, pad -> ignored", "[t5][loss]") {
  Generator g(0);
  T5Config c = small_config();
  c.decoder_start_token_id = 5;   // distinct from pad to see which is which
  T5ForConditionalGeneration model(c, g);
  Tensor labels = ids({7, 8, 1, -100, 9, 1, 0, 0}, 2);
  CHECK(model.shift_right(labels).to_vector<int64_t>() == std::vector<int64_t>{5, 7, 8, 1, 5, 9, 1, 0});
  CHECK(model.loss_targets(labels).to_vector<int64_t>() == std::vector<int64_t>{7, 8, 1, -100, 9, 1, -100, -100});
  CHECK_THROWS_WITH(model.shift_right(ids({3, 40}, 1)), Catch::Contains("label 40 is neither a token id in [0, 40) nor -100"));
  CHECK_THROWS_WITH(model.shift_right(Tensor::zeros({2, 3})), Catch::Contains("labels must be int64 (B, T)"));
}

TEST_CASE("T5 loss: labels padded with pad or with -100 give the same loss, and padding positions do not count",
          "[t5][loss]") {
  Generator g(2);
  T5ForConditionalGeneration model(small_config(), g, DType::F64);
  model.eval();
  Tensor input = ids({5, 6, 7, 1, 9, 1, 0, 0}, 2), mask = ids({1, 1, 1, 1, 1, 1, 0, 0}, 2);
  Tensor with_pad = ids({11, 12, 1, 13, 1, 0}, 2), with_ignore = ids({11, 12, 1, 13, 1, -100}, 2);
  double a = model.forward(input, mask, with_pad).loss.item();
  double b = model.forward(input, mask, with_ignore).loss.item();
  CHECK(a == b);
  // The mean over the 5 real targets of -log p(target).
  T5Output out = model.forward(input, mask, with_pad);
  Tensor log_probs = log_softmax(out.logits, -1);
  auto lp = log_probs.to_vector<double>();
  const int64_t V = 40;
  double expected = -(lp[(0 * 3 + 0) * V + 11] + lp[(0 * 3 + 1) * V + 12] + lp[(0 * 3 + 2) * V + 1] +
                      lp[(1 * 3 + 0) * V + 13] + lp[(1 * 3 + 1) * V + 1]) / 5;
  CHECK(a == Approx(expected).epsilon(1e-12));
}

TEST_CASE("T5 padding: the encoder output at real positions ignores pad tokens; batching changes nothing",
          "[t5][masks]") {
  Generator g(5);
  T5ForConditionalGeneration model(small_config(), g, DType::F64);
  model.eval();
  Tensor mask = ids({1, 1, 1, 0, 0}, 1);
  Tensor a = model.encode(ids({4, 5, 1, 0, 0}, 1), mask);
  Tensor b = model.encode(ids({4, 5, 1, 33, 17}, 1), mask);   // different tokens under the padding
  Tensor alone = model.encode(ids({4, 5, 1}, 1), Tensor());     // no padding at all
  CHECK(max_abs_diff(slice(a, 1, 0, 3), slice(b, 1, 0, 3)) < 1e-13);
  CHECK(max_abs_diff(slice(a, 1, 0, 3), alone) < 1e-13);
  // In a batch with a longer example, the short one decodes exactly as alone.
  Tensor batch_input = ids({4, 5, 1, 0, 0, 8, 9, 10, 11, 1}, 2), batch_mask = ids({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, 2);
  Tensor labels = ids({20, 21, 1, 22, 1, 0}, 2);
  Tensor batched = model.forward(batch_input, batch_mask, labels).logits;
  Tensor single = model.forward(ids({4, 5, 1}, 1), Tensor(), ids({20, 21, 1}, 1)).logits;
  CHECK(max_abs_diff(slice(batched, 0, 0, 1), single) < 1e-12);
}

TEST_CASE("T5 decoder is causal: a later decoder token never changes earlier logits", "[t5][masks]") {
  Generator g(6);
  T5ForConditionalGeneration model(small_config("relu", true), g, DType::F64);
  model.eval();
  Tensor input = ids({4, 5, 6, 1}, 1);
  Tensor enc = model.encode(input, Tensor());
  Tensor x = model.decode(ids({0, 7, 8, 9}, 1), enc, Tensor());
  Tensor y = model.decode(ids({0, 7, 30, 31}, 1), enc, Tensor());
  CHECK(max_abs_diff(slice(x, 1, 0, 2), slice(y, 1, 0, 2)) < 1e-13);
  CHECK(max_abs_diff(slice(x, 1, 2, 4), slice(y, 1, 2, 4)) > 1e-3);
  // The same through the encoder side: a changed input changes every decoder position.
  Tensor z = model.decode(ids({0, 7, 8, 9}, 1), model.encode(ids({4, 5, 12, 1}, 1), Tensor()), Tensor());
  CHECK(max_abs_diff(slice(x, 1, 0, 1), slice(z, 1, 0, 1)) > 1e-6);
}

TEST_CASE("T5 dropout is active in training mode only, and a float64 model runs", "[t5][dropout]") {
  Generator g(7);
  T5ForConditionalGeneration model(small_config(), g, DType::F64);
  CHECK(model.parameter("shared.weight").dtype() == DType::F64);
  Tensor input = ids({4, 5, 6, 1}, 1), labels = ids({9, 1}, 1);
  double t1 = model.forward(input, Tensor(), labels).loss.item();
  double t2 = model.forward(input, Tensor(), labels).loss.item();
  CHECK(t1 != t2);
  model.eval();
  double e1 = model.forward(input, Tensor(), labels).loss.item();
  double e2 = model.forward(input, Tensor(), labels).loss.item();
  CHECK(e1 == e2);
  CHECK(std::isfinite(e1));
}

TEST_CASE("T5 loads HF state dicts with embed_tokens and tied lm_head aliases, and rejects disagreeing ones",
          "[t5][state_dict]") {
  Generator g1(8), g2(9);
  T5Config c = small_config("relu", true);
  T5ForConditionalGeneration source(c, g1), target(c, g2);
  StateDict hf;
  // Hugging Face's full state_dict(): shared.weight, both embed_tokens aliases, and the tied lm_head.weight.
  for (auto& [name, tensor] : source.state_dict()) {
    hf.insert(name, kernels::copy(tensor));
    if (name == "shared.weight") {
      hf.insert("encoder.embed_tokens.weight", kernels::copy(tensor));
      hf.insert("decoder.embed_tokens.weight", kernels::copy(tensor));
      hf.insert("lm_head.weight", kernels::copy(tensor));
    }
  }
  CHECK_THROWS_WITH(target.load_state_dict(hf), Catch::Contains("encoder.embed_tokens.weight"));   // plain: strict
  target.load_hf_state_dict(hf);
  for (auto& [name, tensor] : source.state_dict()) CHECK(bit_equal(tensor, target.parameter(name)));

  // Only an alias present (no shared.weight): it provides the embedding.
  StateDict only_alias = hf;
  only_alias.erase("shared.weight");
  only_alias.erase("decoder.embed_tokens.weight");
  only_alias.erase("lm_head.weight");
  T5ForConditionalGeneration third(c, g2);
  third.load_hf_state_dict(only_alias);
  CHECK(bit_equal(third.parameter("shared.weight"), source.parameter("shared.weight")));

  StateDict disagreeing = hf;
  disagreeing.set("decoder.embed_tokens.weight", mul(hf.at("shared.weight"), 2.0));
  CHECK_THROWS_WITH(target.load_hf_state_dict(disagreeing), Catch::Contains("decoder.embed_tokens.weight"));

  // Untied: lm_head.weight is a parameter of its own, not an alias.
  T5Config untied = small_config("gated-gelu", false);
  T5ForConditionalGeneration u1(untied, g1), u2(untied, g2);
  StateDict us = u1.state_dict();
  CHECK(us.contains("lm_head.weight"));
  CHECK_FALSE(us.contains("encoder.embed_tokens.weight"));
  u2.load_hf_state_dict(us);
  CHECK(bit_equal(u2.parameter("lm_head.weight"), u1.parameter("lm_head.weight")));
}

TEST_CASE("greedy decoding stops at eos, pads after it, and agrees with the teacher-forced argmax", "[t5][generate]") {
  Generator g(10);
  T5Config c = small_config();
  c.initializer_factor = 3.0;   // peaky random logits, so the argmax is well separated
  T5ForConditionalGeneration model(c, g, DType::F64);
  Tensor input = ids({4, 5, 6, 1, 0, 8, 9, 10, 11, 1}, 2), mask = ids({1, 1, 1, 1, 0, 1, 1, 1, 1, 1}, 2);
  Tensor generated = greedy_generate(model, input, mask, 8);
  CHECK(model.is_training());   // the mode is restored
  REQUIRE(generated.dim() == 2);
  CHECK(generated.size(0) == 2);
  CHECK(generated.size(1) <= 8);
  auto gen = generated.to_vector<int64_t>();
  const int64_t L = generated.size(1);
  model.eval();
  Tensor logits = model.forward(input, mask, generated).logits;   // teacher-forced on its own output
  auto lg = logits.to_vector<double>();
  for (int64_t b = 0; b < 2; ++b) {
    bool ended = false;
    for (int64_t t = 0; t < L; ++t) {
      int64_t token = gen[b * L + t];
      if (ended) {
        CHECK(token == c.pad_token_id);
        continue;
      }
      int64_t best = 0;
      for (int64_t v = 1; v < c.vocab_size; ++v)
        if (lg[(b * L + t) * c.vocab_size + v] > lg[(b * L + t) * c.vocab_size + best]) best = v;
      CHECK(token == best);
      ended = token == c.eos_token_id;
    }
  }
  // Stops as soon as every sequence has emitted eos. With the decoder's final norm zeroed, every logit is 0
  // and the argmax is the lowest id (ties go to the first), so an eos of id 0 comes first everywhere.
  T5Config eos_first = c;
  eos_first.eos_token_id = 0;
  eos_first.pad_token_id = 3;
  eos_first.decoder_start_token_id = 3;
  Generator g2(10);
  T5ForConditionalGeneration silent(eos_first, g2, DType::F64);
  kernels::copy_into(silent.decoder->final_layer_norm->weight, Tensor::zeros({c.d_model}, DType::F64));
  Tensor all_eos = greedy_generate(silent, input, mask, 8);
  CHECK(all_eos.shape() == Shape{2, 1});
  CHECK(all_eos.to_vector<int64_t>() == std::vector<int64_t>{0, 0});
  CHECK_THROWS_WITH(greedy_generate(model, input, mask, 0), Catch::Contains("max_new_tokens must be at least 1"));
}

TEST_CASE("label scoring sums log-probabilities of each candidate plus eos, batched, and picks the argmax",
          "[t5][scoring]") {
  Generator g(11);
  T5ForConditionalGeneration model(small_config("relu", true), g, DType::F64);
  Tensor input = ids({4, 5, 6, 1, 0, 8, 9, 10, 11, 1, 12, 1, 0, 0, 0}, 3);
  Tensor mask = ids({1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, 3);
  std::vector<std::vector<int64_t>> candidates = {{20, 21}, {22}, {23, 24, 25, 1}};   // the last already ends in eos
  Tensor scores = score_candidates(model, input, mask, candidates);
  REQUIRE(scores.shape() == Shape{3, 3});
  CHECK(model.is_training());
  model.eval();
  // Reference: - (mean token cross-entropy) x (number of tokens), one example and one candidate at a time.
  std::vector<std::vector<int64_t>> with_eos = {{20, 21, 1}, {22, 1}, {23, 24, 25, 1}};
  auto s = scores.to_vector<double>();
  auto in = input.to_vector<int64_t>();
  auto mk = mask.to_vector<int64_t>();
  for (int64_t b = 0; b < 3; ++b) {
    std::vector<int64_t> x, m;
    for (int64_t t = 0; t < 5; ++t)
      if (mk[b * 5 + t]) x.push_back(in[b * 5 + t]);
    for (int64_t k = 0; k < 3; ++k) {
      double mean_ce = model.forward(ids(x, 1), Tensor(), ids(with_eos[k], 1)).loss.item();
      CHECK(s[b * 3 + k] == Approx(-mean_ce * double(with_eos[k].size())).epsilon(1e-11));
    }
  }
  Tensor predicted = classify_by_likelihood(model, input, mask, candidates);
  auto p = predicted.to_vector<int64_t>();
  for (int64_t b = 0; b < 3; ++b) {
    int64_t best = 0;
    for (int64_t k = 1; k < 3; ++k)
      if (s[b * 3 + k] > s[b * 3 + best]) best = k;
    CHECK(p[b] == best);
  }
  CHECK_THROWS_WITH(score_candidates(model, input, mask, {}), Catch::Contains("at least one candidate"));
  CHECK_THROWS_WITH(score_candidates(model, input, mask, {{3, 99}}), Catch::Contains("token 99 outside the vocabulary"));
}

TEST_CASE("T5 reverse and forward mode agree: <grad L, v> equals the JVP of the loss along v", "[t5][autodiff]") {
  Generator g(12);
  T5ForConditionalGeneration model(small_config("gated-gelu", false), g, DType::F64);
  model.eval();
  Tensor input = ids({4, 5, 6, 1, 8, 9, 1, 0}, 2), mask = ids({1, 1, 1, 1, 1, 1, 1, 0}, 2);
  Tensor labels = ids({20, 21, 1, 22, 1, -100}, 2);
  backward(model.forward(input, mask, labels).loss);
  Generator tangents(13);
  double reverse = 0;
  std::vector<Tensor> v;
  for (auto& p : model.named_parameters()) {
    v.push_back(tangents.normal(p.tensor->shape(), 0, 1, DType::F64));
    auto gv = p.tensor->grad().to_vector<double>(), vv = v.back().to_vector<double>();
    for (size_t i = 0; i < gv.size(); ++i) reverse += gv[i] * vv[i];
  }
  double forward_mode = 0;
  {
    NoGradGuard no_grad;
    DualLevel level;
    size_t i = 0;
    for (auto& p : model.named_parameters()) set_tangent(*p.tensor, v[i++]);
    forward_mode = tangent_of(model.forward(input, mask, labels).loss).item();
  }
  CHECK(forward_mode == Approx(reverse).epsilon(1e-11));
}

TEST_CASE("T5 input errors name the op, the shapes and the offending id", "[t5][errors]") {
  Generator g(14);
  T5ForConditionalGeneration model(small_config(), g);
  Tensor input = ids({4, 5, 1}, 1);
  CHECK_THROWS_WITH(model.encode(ids({4, 40, 1}, 1), Tensor()), Catch::Contains("[T5Stack encoder] index 40 is out of range [0, 40)"));
  CHECK_THROWS_WITH(model.encode(input, ids({1, 1}, 1)), Catch::Contains("attention_mask int64(1,2) must match the token ids int64(1,3)"));
  CHECK_THROWS_WITH(model.encode(Tensor::zeros({1, 3}), Tensor()), Catch::Contains("input_ids must be int64 (B, T)"));
  Tensor enc = model.encode(input, Tensor());
  CHECK_THROWS_WITH(model.decode(ids({0, 4}, 2), enc, Tensor()), Catch::Contains("needs encoder_hidden (B, S, D)"));
  CHECK_THROWS_WITH(model.forward(input, Tensor(), ids({4, 1, 5, 1}, 2)), Catch::Contains("different batch sizes"));
}
