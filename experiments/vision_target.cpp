// The vision suite's MergeTarget: the tiny CLIP image classifier in one fine-tuning mode, scoring merged
// states task by task (each task through its own frozen zero-shot head).
#include <cmath>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/gram_recorder.h"
#include "experiments/prepared_merge_target.h"
#include "experiments/vision_suite.h"
#include "merge/task_vector.h"
#include "tensor/kernels.h"

namespace linfuse::experiments {

namespace {

// A classifier prepared for a mode, with its head switchable between tasks.
struct PreparedClassifier {
  std::shared_ptr<nn::ImageClassifier> classifier;
  std::unique_ptr<peft::PreparedModel> prepared;

  // The suite's CLIP image tower (with the first task's head until use_head switches it).
  PreparedClassifier(VisionSuite& suite, const peft::FinetuneConfig& config) {
    classifier = nn::ImageClassifier::from_clip(suite.clip(), suite.tasks()[0].head);
    prepared = std::make_unique<peft::PreparedModel>(*classifier, std::vector<std::string>{"vision_model.*"}, config);
    classifier->eval();
  }
  void use_head(const Tensor& head) { classifier->classification_head->weight = head; }
  // logits (B, C) of images (B, channels, 28, 28), through the mode's forward (linearized or not)
  Tensor logits(const Tensor& images) {
    Tensor f = prepared->forward([&] { return classifier->image_features(images); });
    return classifier->classification_head->forward(f);
  }
  Tensor logits_with(const StateDict& state, const Tensor& images) {
    Tensor f = prepared->forward_with(state, [&] { return classifier->image_features(images); });
    return classifier->classification_head->forward(f);
  }
};

Tensor rows(const Tensor& t, int64_t begin, int64_t end) { return select_range(t, begin, end); }

class VisionMergeTarget : public PreparedMergeTarget<VisionSuite, PreparedClassifier> {
 public:
  using PreparedMergeTarget::PreparedMergeTarget;

  double score(const StateDict& state, int t, Split split) override {
    model_.prepared->load_trainable_state(state);
    return accuracy(model_, t, split);
  }

  double score_weight_space(const StateDict& delta, int t, Split split) override {
    return accuracy(weight_space_model_with(delta), t, split);
  }

  std::vector<int64_t> predict(const StateDict& state, int t, int64_t examples) override {
    model_.prepared->load_trainable_state(state);
    model_.use_head(suite_.tasks()[t].head);
    const auto& task = suite_.tasks()[t];
    int64_t n = std::min(examples, task.validation_images.size(0));
    NoGradGuard no_grad;
    std::vector<int64_t> out;
    for (int64_t b = 0; b < n; b += suite_.eval_batch()) {
      std::vector<int64_t> p = argmax_rows(model_.logits(rows(task.validation_images, b, std::min(n, b + suite_.eval_batch()))));
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  }

  double few_shot_loss(const StateDict& state, int t, int64_t examples) override {
    model_.prepared->load_trainable_state(state);
    model_.use_head(suite_.tasks()[t].head);
    const auto& task = suite_.tasks()[t];
    int64_t n = std::min(examples, task.validation_images.size(0));
    NoGradGuard no_grad;
    return cross_entropy(model_.logits(rows(task.validation_images, 0, n)), rows(task.validation_labels, 0, n)).item();
  }

  Tensor entropy(const StateDict& state, int t, int64_t batch_index, int64_t batch_size) override {
    model_.use_head(suite_.tasks()[t].head);
    const auto& task = suite_.tasks()[t];
    int64_t n = std::min(suite_.eval_examples(Split::Validation), task.validation_images.size(0));
    std::vector<int64_t> picked;
    for (int64_t i = 0; i < batch_size; ++i) picked.push_back((batch_index * batch_size + i) % n);
    Tensor log_p = log_softmax(model_.logits_with(state, select_rows(task.validation_images, picked)), -1);
    return neg(mean(sum(mul(exp(log_p), log_p), {-1})));
  }

  StateDict fisher(int t, int64_t examples) override {
    model_.use_head(suite_.tasks()[t].head);
    const auto& task = suite_.tasks()[t];
    return mean_squared_gradients(t, std::min(examples, task.train_images.size(0)), [&](int64_t i, Generator& sample) {
      Tensor logits = model_.logits(rows(task.train_images, i, i + 1));   // (1, C)
      std::vector<double> p = softmax(logits.detach(), -1).to_vector<double>();
      int64_t y = int64_t(draw_class(p, sample.next_uniform()));
      return cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{y}, {1}));
    });
  }

  // Logits (N, C) of task t's head on its first `examples` validation images, the trainable part holding `state`.
  Tensor outputs(const StateDict& state, int t, int64_t examples) override {
    model_.use_head(suite_.tasks()[t].head);
    const Tensor& images = suite_.tasks()[t].validation_images;
    int64_t n = std::min(examples, images.size(0));
    NoGradGuard no_grad;
    std::vector<Tensor> batches;
    for (int64_t b = 0; b < n; b += suite_.eval_batch())
      batches.push_back(model_.logits_with(state, rows(images, b, std::min(n, b + suite_.eval_batch()))));
    return concat(batches, 0);
  }

  Tensor output_jvp(const StateDict& direction, int t, int64_t examples) override {
    return jvp_at_initial(direction, [&](const StateDict& state) { return outputs(state, t, examples); });
  }

  StateDict grams(int t, int64_t examples) override {
    model_.prepared->load_trainable_state(finetuned_state(t));
    model_.use_head(suite_.tasks()[t].head);
    std::vector<std::string> modules = plain_linear_modules(*model_.classifier);
    // RegMean's Gram matrices are over every token's input to each layer, as the paper's code records them: the
    // full forward, not pooled_output's shortcut, which gives the last layer's q, out_proj, fc1 and fc2 the class
    // token alone.
    nn::CLIPVisionTransformer& tower = *model_.classifier->vision_model;
    const bool shortcut = tower.pool_last_layer_only;
    tower.pool_last_layer_only = false;
    struct Restore {
      nn::CLIPVisionTransformer& tower;
      bool value;
      ~Restore() { tower.pool_last_layer_only = value; }
    } restore{tower, shortcut};
    GramRecording recording(*model_.classifier, modules);
    const auto& task = suite_.tasks()[t];
    int64_t n = std::min(examples, task.train_images.size(0));
    NoGradGuard no_grad;
    for (int64_t b = 0; b < n; b += suite_.eval_batch()) model_.logits(rows(task.train_images, b, std::min(n, b + suite_.eval_batch())));
    return recording.grams();
  }

 private:
  double accuracy(PreparedClassifier& m, int t, Split split) {
    const auto& task = suite_.tasks()[t];
    m.use_head(task.head);
    const Tensor& images = split == Split::Validation ? task.validation_images : task.test_images;
    const Tensor& labels = split == Split::Validation ? task.validation_labels : task.test_labels;
    int64_t n = std::min(suite_.eval_examples(split), images.size(0)), correct = 0;
    NoGradGuard no_grad;
    for (int64_t b = 0; b < n; b += suite_.eval_batch()) {
      int64_t e = std::min(n, b + suite_.eval_batch());
      correct += count_correct(m.logits(rows(images, b, e)), rows(labels, b, e));
    }
    return double(correct) / double(n);
  }
};

}  // namespace

std::unique_ptr<MergeTarget> VisionSuite::merge_target(peft::FinetuneMode mode) {
  return std::make_unique<VisionMergeTarget>(*this, mode);
}

}  // namespace linfuse::experiments
