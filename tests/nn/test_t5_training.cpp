// The tiny T5 learns: a copy task (target = input) decoded greedily, and a classification task scored by
// the likelihood of label strings (the paper's way of evaluating Flan-T5 on GLUE). Release build, 2 threads:
// see the times printed.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "nn/optim.h"
#include "nn/t5.h"
#include "nn/t5_generation.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {

// Token ids: 0 pad, 1 eos, 2 unk (T5's conventions), 3.. ordinary symbols.
constexpr int64_t kVocab = 24, kFirstSymbol = 3;

T5Config learner_config() {
  T5Config c;
  c.vocab_size = kVocab;
  c.d_model = 64;
  c.d_kv = 16;
  c.num_heads = 4;
  c.d_ff = 128;
  c.num_layers = 2;
  c.num_decoder_layers = 2;
  c.feed_forward_proj = "gated-gelu";
  c.tie_word_embeddings = false;   // the Flan-T5 flavour
  c.dropout_rate = 0.0;   // a deterministic task learned in a few hundred steps; dropout is tested elsewhere
  return c;
}

// A batch of variable-length examples, right-padded: ids (B, S) with eos after the tokens, mask (B, S), and
// the targets (B, T) padded with pad.
struct Batch {
  Tensor input_ids, attention_mask, labels;
};

Batch make_batch(const std::vector<std::vector<int64_t>>& inputs, const std::vector<std::vector<int64_t>>& targets) {
  size_t s = 0, t = 0;
  for (auto& x : inputs) s = std::max(s, x.size() + 1);
  for (auto& y : targets) t = std::max(t, y.size() + 1);
  std::vector<int64_t> ids, mask, labels;
  for (size_t b = 0; b < inputs.size(); ++b) {
    for (size_t i = 0; i < s; ++i) {
      ids.push_back(i < inputs[b].size() ? inputs[b][i] : i == inputs[b].size() ? 1 : 0);
      mask.push_back(i <= inputs[b].size() ? 1 : 0);
    }
    for (size_t i = 0; i < t; ++i) labels.push_back(i < targets[b].size() ? targets[b][i] : i == targets[b].size() ? 1 : 0);
  }
  int64_t rows = (int64_t)inputs.size();
  return {Tensor::from_vector(ids, {rows, (int64_t)s}), Tensor::from_vector(mask, {rows, (int64_t)s}),
          Tensor::from_vector(labels, {rows, (int64_t)t})};
}

std::vector<int64_t> random_symbols(Generator& g, int64_t min_length, int64_t max_length, int64_t low, int64_t high) {
  int64_t length = min_length + int64_t(g.next_uniform() * double(max_length - min_length + 1));
  std::vector<int64_t> s;
  for (int64_t i = 0; i < length; ++i) s.push_back(low + int64_t(g.next_uniform() * double(high - low)));
  return s;
}

// Trains with AdamW, linear warm-up + cosine decay, gradient clipping at 1; returns the last loss.
double train(T5ForConditionalGeneration& model, int64_t steps, double peak_lr,
             const std::function<Batch(int64_t)>& next_batch) {
  std::vector<Tensor> params;
  for (auto& p : model.trainable_parameters()) params.push_back(*p.tensor);
  AdamW optimizer(params, peak_lr, /*weight_decay=*/0.01);
  model.train();
  double loss = 0;
  for (int64_t step = 0; step < steps; ++step) {
    optimizer.set_lr(warmup_cosine_lr(step, steps / 10, steps, peak_lr, 0.05));
    Batch batch = next_batch(step);
    Tensor l = model.forward(batch.input_ids, batch.attention_mask, batch.labels).loss;
    backward(l);
    clip_grad_norm(params, 1.0);
    optimizer.step();
    optimizer.zero_grad();
    loss = l.item();
  }
  return loss;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("a tiny T5 learns to copy random sequences: > 95% exact match with greedy decoding on held-out data",
          "[t5][training]") {
  auto start = std::chrono::steady_clock::now();
  Generator init(100), data(101), held_out_data(202);
  T5ForConditionalGeneration model(learner_config(), init);
  // T5 has no absolute positions: to copy, the model must learn where it is from the relative biases and
  // the sequence edges. It does so abruptly; 1200 steps leave a margin (97.5-99.5% over seeds 7, 8, 100).
  const int64_t steps = 1200, batch_size = 16, min_length = 3, max_length = 8;
  double final_loss = train(model, steps, 3e-3, [&](int64_t) {
    std::vector<std::vector<int64_t>> xs;
    for (int64_t b = 0; b < batch_size; ++b) xs.push_back(random_symbols(data, min_length, max_length, kFirstSymbol, kVocab));
    return make_batch(xs, xs);
  });
  double train_seconds = seconds_since(start);

  std::vector<std::vector<int64_t>> held_out;
  for (int i = 0; i < 200; ++i) held_out.push_back(random_symbols(held_out_data, min_length, max_length, kFirstSymbol, kVocab));
  Batch batch = make_batch(held_out, held_out);
  Tensor generated = greedy_generate(model, batch.input_ids, batch.attention_mask, max_length + 3);
  // Exact match: the tokens, eos, then only padding, over the whole generated row.
  auto out = generated.to_vector<int64_t>();
  const int64_t width = generated.size(1);
  int correct = 0;
  for (size_t b = 0; b < held_out.size(); ++b) {
    std::vector<int64_t> expected = held_out[b];
    expected.push_back(1);
    expected.resize(std::max<size_t>(expected.size(), size_t(width)), 0);
    std::vector<int64_t> got(out.begin() + b * width, out.begin() + (b + 1) * width);
    got.resize(expected.size(), 0);
    correct += got == expected;
  }
  double accuracy = correct / double(held_out.size());
  std::printf("[t5 training] copy: %lld steps x %lld, final loss %.4f, held-out exact match %.1f%%, "
              "%.1f s training + %.1f s decoding\n",
              (long long)steps, (long long)batch_size, final_loss, 100 * accuracy, train_seconds,
              seconds_since(start) - train_seconds);
  CHECK(accuracy > 0.95);
}

TEST_CASE("a tiny T5 classifies by label likelihood: the right label string wins on a learnable task",
          "[t5][training]") {
  auto start = std::chrono::steady_clock::now();
  Generator init(300), data(301), held_out_data(402);
  T5ForConditionalGeneration model(learner_config(), init);
  // Three classes, each with its own range of input symbols; label strings of different lengths.
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{3, 10}, {10, 17}, {17, 24}};
  const std::vector<std::vector<int64_t>> label_words = {{4, 5}, {11}, {18, 19, 20}};
  auto sample = [&](Generator& g, int64_t& label) {
    label = std::min<int64_t>(2, int64_t(g.next_uniform() * 3));
    return random_symbols(g, 2, 8, ranges[label].first, ranges[label].second);
  };
  const int64_t steps = 80, batch_size = 32;
  double final_loss = train(model, steps, 3e-3, [&](int64_t) {
    std::vector<std::vector<int64_t>> xs, ys;
    for (int64_t b = 0; b < batch_size; ++b) {
      int64_t label;
      xs.push_back(sample(data, label));
      ys.push_back(label_words[label]);
    }
    return make_batch(xs, ys);
  });

  std::vector<std::vector<int64_t>> xs;
  std::vector<int64_t> truth;
  for (int i = 0; i < 150; ++i) {
    int64_t label;
    xs.push_back(sample(held_out_data, label));
    truth.push_back(label);
  }
  Batch batch = make_batch(xs, xs);
  auto predicted = classify_by_likelihood(model, batch.input_ids, batch.attention_mask, label_words).to_vector<int64_t>();
  int correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  double accuracy = correct / double(truth.size());
  std::printf("[t5 training] label scoring: %lld steps x %lld, final loss %.4f, held-out accuracy %.1f%%, %.1f s\n",
              (long long)steps, (long long)batch_size, final_loss, 100 * accuracy, seconds_since(start));
  CHECK(accuracy > 0.95);
}
