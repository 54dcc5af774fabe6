#include "experiments/vision_suite.h"

#include <cmath>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/optim.h"
#include "nn/progress.h"
#include "nn/safetensors.h"
#include "tensor/kernels.h"

namespace linfuse::experiments {

namespace {

Tensor images_tensor(const data::ImageSplit& s) {
  return Tensor::from_vector(s.pixels, {s.count, s.channels, data::kImageSide, data::kImageSide});
}
Tensor labels_tensor(const data::ImageSplit& s) { return Tensor::from_vector(s.labels, {s.count}); }

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", 100 * x);
  return b;
}

}  // namespace

Tensor select_range(const Tensor& t, int64_t begin, int64_t end) {
  Shape first(t.dim(), 0), last = t.shape(), step(t.dim(), 1);
  first[0] = begin;
  last[0] = end;
  return kernels::slice(t, first, last, step);
}

Tensor select_rows(const Tensor& t, const std::vector<int64_t>& rows) {
  return kernels::index_select(t, 0, Tensor::from_vector(rows, {int64_t(rows.size())}));
}

VisionSuite::VisionSuite(nlohmann::json config, uint64_t seed, SuiteContext context)
    : config_(std::move(config)), seed_(seed), ctx_(std::move(context)) {}

std::vector<peft::FinetuneMode> VisionSuite::modes() const {
  std::vector<peft::FinetuneMode> out;
  for (const auto& m : config_["modes"]) out.push_back(peft::mode_from_name(m.get<std::string>()));
  return out;
}

int64_t VisionSuite::eval_examples(Split split) const {
  return split == Split::Validation ? config_["evaluation"].value("validation_examples", int64_t(200))
                                    : config_["evaluation"].value("test_examples", int64_t(500));
}

peft::FinetuneConfig VisionSuite::finetune_config_for(peft::FinetuneMode mode) const {
  return finetune_config(config_["finetune"], mode, seed_);
}

const std::vector<double>& VisionSuite::single_task_test(peft::FinetuneMode mode) const {
  return single_task_test_.at(peft::mode_name(mode));
}

std::vector<int64_t> VisionSuite::test_examples() const {
  std::vector<int64_t> out;
  for (const auto& task : tasks_) out.push_back(std::min(eval_examples(Split::Test), task.test_images.size(0)));
  return out;
}

std::vector<double> VisionSuite::learned_thresholds(double margin_se) const {
  std::vector<double> out;
  std::vector<int64_t> examples = test_examples();
  for (size_t t = 0; t < tasks_.size(); ++t) out.push_back(learned_threshold(tasks_[t].head.size(0), examples[t], margin_se));
  return out;
}

const StateDict& VisionSuite::finetuned_state(peft::FinetuneMode mode, int task) const {
  return finetuned_.at(peft::mode_name(mode)).at(task);
}

data::VisionOptions vision_task_options(const data::VisionOptions& base, const nlohmann::json& per_task, const std::string& task) {
  data::VisionOptions options = base;
  if (per_task.is_object() && per_task.contains(task)) options.pretrain_style_strength = per_task[task].get<double>();
  return options;
}

void VisionSuite::load_data() {
  StageTimer timer(ctx_, "vision/data");
  data::VisionOptions o;
  o.seed = seed_;
  const auto& d = config_["data"];
  o.train = d.value("train", o.train);
  o.validation = d.value("validation", o.validation);
  o.test = d.value("test", o.test);
  o.pretrain = d.value("pretrain", o.pretrain);
  if (d.contains("style_strength") && d["style_strength"].is_number()) o.style_strength = d["style_strength"].get<double>();
  if (d.contains("pretrain_style_strength") && d["pretrain_style_strength"].is_number())
    o.pretrain_style_strength = d["pretrain_style_strength"].get<double>();
  // A task named in pretrain_style_strength_per_task is shown to pretraining at its own strength (a shift per task).
  const nlohmann::json per_task = d.value("pretrain_style_strength_per_task", nlohmann::json());
  for (const auto& name : config_["tasks"]) {
    VisionTaskTensors t;
    t.task = data::load_vision_task(name.get<std::string>(), vision_task_options(o, per_task, name.get<std::string>()));
    tasks_.push_back(std::move(t));
  }
  if (d.value("standardize", false)) standardize();
  for (VisionTaskTensors& t : tasks_) {
    t.train_images = images_tensor(t.task.train);
    t.validation_images = images_tensor(t.task.validation);
    t.test_images = images_tensor(t.task.test);
    t.train_labels = labels_tensor(t.task.train);
    t.validation_labels = labels_tensor(t.task.validation);
    t.test_labels = labels_tensor(t.task.test);
  }
  ctx_.log("vision: loaded " + std::to_string(tasks_.size()) + " tasks");
}

int64_t VisionSuite::image_channels() const { return tasks_.empty() ? 1 : tasks_[0].task.train.channels; }

// Input standardization, as CLIP's preprocessing: every pixel x of channel c becomes (x - mean_c) / std_c, with
// the mean and standard deviation of channel c over the pretraining pool (every task's pretrain split), the
// data the pretrained model learns from; fine-tuning and evaluation images get the same transform.
void VisionSuite::standardize() {
  const int64_t channels = image_channels();
  std::vector<double> sum(size_t(channels), 0.0), sum_squares(size_t(channels), 0.0);
  double count = 0;
  for (const auto& t : tasks_) {
    const data::ImageSplit& pool = t.task.pretrain;
    for (int64_t i = 0; i < pool.count; ++i)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t p = 0; p < data::kImagePixels; ++p) {
          double v = pool.pixels[size_t((i * channels + c) * data::kImagePixels + p)];
          sum[size_t(c)] += v, sum_squares[size_t(c)] += v * v;
        }
    count += double(pool.count * data::kImagePixels);
  }
  image_mean_.assign(size_t(channels), 0.0), image_std_.assign(size_t(channels), 1.0);
  for (int64_t c = 0; c < channels; ++c) {
    double mean = sum[size_t(c)] / count;
    image_mean_[size_t(c)] = mean;
    image_std_[size_t(c)] = std::sqrt(std::max(sum_squares[size_t(c)] / count - mean * mean, 1e-12));
  }
  for (auto& t : tasks_)
    for (data::ImageSplit* split : {&t.task.train, &t.task.validation, &t.task.test, &t.task.pretrain})
      for (int64_t i = 0; i < split->count; ++i)
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t p = 0; p < data::kImagePixels; ++p) {
            float& v = split->pixels[size_t((i * channels + c) * data::kImagePixels + p)];
            v = float((v - image_mean_[size_t(c)]) / image_std_[size_t(c)]);
          }
}

nlohmann::json VisionSuite::pretrain_key() const {
  return {{"seed", seed_}, {"tasks", config_["tasks"]}, {"data", config_["data"]}, {"model", config_["model"]},
          {"tokenizer_vocab", config_["tokenizer_vocab"]}, {"pretrain", config_["pretrain"]}};
}

// Classes whose names pretraining never shows: their images get captions naming only the domain. A fixed
// fraction of each task's classes, drawn from the seed. This keeps zero-shot accuracy moderate (the model
// knows some concepts of each task and not others, like a real CLIP on a new task) while pretraining can
// run long enough for good image features, so that fine-tuning stays a small move, as in the paper.
namespace {
std::vector<std::vector<bool>> held_out_classes(const std::vector<VisionTaskTensors>& tasks, double fraction, uint64_t seed) {
  std::vector<std::vector<bool>> held(tasks.size());
  for (size_t t = 0; t < tasks.size(); ++t) {
    int64_t classes = int64_t(tasks[t].task.class_names.size());
    std::vector<int64_t> order = Generator(seed + 29).fork(uint64_t(t)).permutation(classes);
    held[t].assign(size_t(classes), false);
    for (int64_t i = 0; i < int64_t(std::llround(fraction * double(classes))); ++i) held[t][size_t(order[i])] = true;
  }
  return held;
}

std::string domain_caption(const data::ImageTask& task, Generator& gen) {
  static const char* forms[] = {"a photo of a {}.", "an image of a {}.", "a {}.", "a picture showing a {}."};
  std::string text = forms[gen.next_u64() % 4];
  text.replace(text.find("{}"), 2, task.domain);
  return text;
}
}  // namespace

namespace {
// OpenCLIP clamps the learned log-temperature at ln(100) after each step.
void clamp_logit_scale(nn::CLIPModel& clip, double most) {
  float* v = clip.logit_scale.data<float>();
  if (*v > float(most)) *v = float(most);
}
}  // namespace

// Contrastive pretraining on the pretrain splits of every task with varied captions.
void VisionSuite::pretrain() {
  StageTimer timer(ctx_, "vision/pretrain");
  nlohmann::json key = pretrain_key();
  auto dir = ctx_.cache.folder("vision/pretrain", key);
  if (ctx_.cache.done("vision/pretrain", key)) {
    tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::load((dir / "spiece.model").string()));
    clip_ = nn::load_pretrained_clip(dir.string());
    ctx_.log("vision: pretrained CLIP loaded from " + dir.string());
    return;
  }
  // Pool of (task, row) pairs over every pretrain split.
  std::vector<std::pair<int, int64_t>> pool;
  for (size_t t = 0; t < tasks_.size(); ++t)
    for (int64_t i = 0; i < tasks_[t].task.pretrain.count; ++i) pool.emplace_back(int(t), i);
  Generator caption_gen(seed_ * 7919 + 11);
  std::vector<std::vector<bool>> held = held_out_classes(tasks_, config_["pretrain"].value("held_out_fraction", 0.0), seed_);
  // How often a caption names its image's class (otherwise it names only the domain): class_name_probability for
  // most classes, held_out_name_probability for the held-out ones. At 0 a held-out class is never named, so its
  // zero-shot head vector is a word the text tower never saw in context, far from every image; a small positive
  // probability keeps the class known but weakly aligned, as a real CLIP knows a rare concept.
  const double name_probability = config_["pretrain"].value("class_name_probability", 1.0);
  const double held_out_name_probability = config_["pretrain"].value("held_out_name_probability", 0.0);
  auto caption_of = [&](int t, int64_t label) {
    const double p = held[t][size_t(label)] ? held_out_name_probability : name_probability;
    bool named = p >= 1 || (p > 0 && caption_gen.next_uniform() < p);
    return named ? data::caption(tasks_[t].task, label, caption_gen) : domain_caption(tasks_[t].task, caption_gen);
  };
  // Tokenizer: one caption per pretrain image plus every prompt template filled with every class name.
  std::vector<std::string> corpus;
  for (auto& [t, i] : pool) corpus.push_back(caption_of(t, tasks_[t].task.pretrain.labels[i]));
  for (const auto& t : tasks_)
    for (const auto& tmpl : t.task.templates)
      for (const auto& c : t.task.class_names) corpus.push_back(nn::fill_template(tmpl, c));
  int64_t vocab = config_["tokenizer_vocab"].get<int64_t>();
  TokenizerTrainOptions tokenizer_options;
  tokenizer_options.hard_vocab_limit = false;   // captions are a small corpus: take at most `vocab` pieces
  tokenizer_ = std::make_shared<Tokenizer>(
      Tokenizer::train_unigram(corpus, vocab, (dir / "spiece.model").string(), tokenizer_options));

  nn::CLIPConfig model_config = nn::CLIPConfig::from_json(config_["model"]);
  model_config.text_config.vocab_size = tokenizer_->vocab_size();
  model_config.vision_config.num_channels = image_channels();   // from the data: 1 gray, 3 styled
  Generator init(seed_ + 1);
  clip_ = std::make_shared<nn::CLIPModel>(model_config, init);
  const auto& p = config_["pretrain"];
  int64_t steps = p["steps"].get<int64_t>(), batch = p["batch_size"].get<int64_t>();
  double lr = p["learning_rate"].get<double>();
  // Weight decay as OpenCLIP applies it when pretrain.openclip_decay is set: not on gains, biases, embeddings of
  // rank 1 (the class token) nor on logit_scale, which then learns the temperature freely (clamped at 100, as
  // OpenCLIP does). Otherwise every parameter decays, logit_scale included, which holds the temperature near its
  // initial 14.3.
  const bool openclip_decay = p.value("openclip_decay", false);
  std::vector<Tensor> params, decayed, not_decayed;
  for (auto& e : clip_->trainable_parameters()) {
    params.push_back(*e.tensor);
    bool exempt = e.tensor->dim() < 2 || e.name.find("bias") != std::string::npos ||
                  e.name.find("norm") != std::string::npos || e.name == "logit_scale";
    (openclip_decay && exempt ? not_decayed : decayed).push_back(*e.tensor);
  }
  nn::AdamW opt(decayed, lr, p.value("weight_decay", 0.1));
  nn::AdamW opt_without_decay(not_decayed, lr, 0.0);
  int64_t warmup = int64_t(p.value("warmup_fraction", 0.05) * double(steps));
  nn::TokenizeFunction tokenize = [this](const std::string& s) { return tokenizer_->encode(s); };
  Generator batch_gen(seed_ * 104729 + 3);
  nn::Progress progress("vision: pretraining CLIP", steps);
  double loss_value = 0;
  clip_->train(true);
  for (int64_t step = 0; step < steps; ++step) {
    // A batch of images from every domain with one freshly drawn caption each.
    std::vector<float> pixels;
    std::vector<std::string> captions;
    for (int64_t b = 0; b < batch; ++b) {
      auto [t, i] = pool[batch_gen.next_u64() % pool.size()];
      const auto& split = tasks_[t].task.pretrain;
      pixels.insert(pixels.end(), split.pixels.begin() + i * split.values_per_image(),
                    split.pixels.begin() + (i + 1) * split.values_per_image());
      captions.push_back(caption_of(t, split.labels[i]));
    }
    Tensor images = Tensor::from_vector(pixels, {batch, image_channels(), data::kImageSide, data::kImageSide});
    nn::TokenizedBatch text = nn::tokenize_for_clip(captions, tokenize, model_config.text_config);
    opt.set_lr(nn::warmup_cosine_lr(step, warmup, steps, lr));
    opt_without_decay.set_lr(opt.lr());
    opt.zero_grad();
    opt_without_decay.zero_grad();
    nn::CLIPOutput out = clip_->forward(images, text.input_ids, text.attention_mask);
    Tensor loss = nn::clip_loss(out.logits_per_image);
    loss_value = loss.item();
    if (!std::isfinite(loss_value))
      throw std::runtime_error("vision pretraining diverged (loss " + std::to_string(loss_value) + " at step " +
                               std::to_string(step) + "): lower pretrain.learning_rate");
    backward(loss);
    nn::clip_grad_norm(params, 1.0);
    opt.step();
    opt_without_decay.step();
    if (openclip_decay) clamp_logit_scale(*clip_, std::log(100.0));
    progress.update(step + 1, loss_value);
  }
  progress.finish();
  clip_->eval();
  nn::save_pretrained(*clip_, dir.string());
  write_json(dir / "pretrain_metrics.json", {{"final_loss", loss_value}, {"steps", steps}});
  ctx_.cache.mark_done("vision/pretrain", key);
  ctx_.log("vision: pretrained CLIP for " + std::to_string(steps) + " steps, final contrastive loss " +
           std::to_string(loss_value));
}

void VisionSuite::zero_shot(nlohmann::json& results) {
  StageTimer timer(ctx_, "vision/zero_shot");
  nn::TokenizeFunction tokenize = [this](const std::string& s) { return tokenizer_->encode(s); };
  double total = 0;
  for (auto& t : tasks_) {
    t.head = nn::zero_shot_head_weight(*clip_, t.task.class_names, t.task.templates, tokenize);
    auto classifier = nn::ImageClassifier::from_clip(*clip_, t.head);
    classifier->eval();
    NoGradGuard no_grad;
    int64_t n = std::min(eval_examples(Split::Test), t.test_images.size(0)), correct = 0;
    for (int64_t b = 0; b < n; b += eval_batch()) {
      int64_t e = std::min(n, b + eval_batch());
      Tensor x = select_range(t.test_images, b, e);
      Tensor y = kernels::slice(t.test_labels, {b}, {e}, {1});
      correct += count_correct(classifier->forward(x), y);
    }
    double acc = double(correct) / double(n);
    results["zero_shot"][t.task.name] = acc;
    total += acc;
  }
  ctx_.log("vision: zero-shot average " + pct(total / tasks_.size()));
}

void VisionSuite::finetune(peft::FinetuneMode mode, nlohmann::json& results) {
  std::string mode_name = peft::mode_name(mode);
  StageTimer timer(ctx_, "vision/finetune/" + mode_name);
  peft::FinetuneConfig fc = finetune_config_for(mode);
  int64_t batch = config_["finetune"]["batch_size"].get<int64_t>();
  std::vector<std::string> names;
  for (const auto& task : tasks_) names.push_back(task.task.name);
  auto key_of = [&](size_t t) -> nlohmann::json {
    return {{"pretrain", pretrain_key()}, {"finetune", config_["finetune"]}, {"mode", mode_name},
            {"task", names[t]}, {"evaluation", config_["evaluation"]}};
  };
  // Each task's run is independent (its own classifier copy, head, data order and seed), so runs go side by side.
  auto train = [&](size_t t, const std::filesystem::path& dir, bool show_progress) {
    const auto& task = tasks_[t];
    auto classifier = nn::ImageClassifier::from_clip(*clip_, task.head);
    peft::FinetuneConfig config = fc;
    config.seed = seed_ * 1000 + t;
    if (show_progress) config.progress_label = "vision: " + mode_name + " " + task.task.name;
    peft::PreparedModel prepared(*classifier, {"vision_model.*"}, config);
    // The same data order in every mode: a permutation per epoch from a generator of the task.
    EpochOrder order(Generator(seed_ + 17).fork(uint64_t(t)), task.train_images.size(0));
    peft::FinetuneResult r = peft::finetune(prepared, config, [&](int64_t step) {
      std::vector<int64_t> rows = order.batch_rows(step, batch);
      Tensor x = select_rows(task.train_images, rows), y = select_rows(task.train_labels, rows);
      Tensor features = prepared.forward([&] { return classifier->image_features(x); });
      return cross_entropy(classifier->classification_head->forward(features), y);
    });
    // Single-task scores of the fine-tuned model, validation and test.
    auto accuracy = [&](const Tensor& images, const Tensor& labels, int64_t limit) {
      NoGradGuard no_grad;
      int64_t m = std::min(limit, images.size(0)), correct = 0;
      for (int64_t b = 0; b < m; b += eval_batch()) {
        int64_t e = std::min(m, b + eval_batch());
        Tensor x = select_range(images, b, e);
        Tensor f = prepared.forward([&] { return classifier->image_features(x); });
        correct += count_correct(classifier->classification_head->forward(f), kernels::slice(labels, {b}, {e}, {1}));
      }
      return double(correct) / double(m);
    };
    double val = accuracy(task.validation_images, task.validation_labels, eval_examples(Split::Validation));
    double test = accuracy(task.test_images, task.test_labels, eval_examples(Split::Test));
    save_finetuned_run(dir, prepared, r, mode_name, task.task.name, val, test);
    return "vision: " + mode_name + " " + task.task.name + ": test " + pct(test) + " (" + std::to_string(int(r.seconds)) + " s)";
  };
  finetune_tasks(ctx_, "vision", mode_name, names, key_of, train, finetuned_[mode_name], single_task_test_[mode_name], results);
}

nlohmann::json VisionSuite::prepare() {
  nlohmann::json results;
  load_data();
  if (!load_base_checkpoint(results)) pretrain();   // the pretrained CLIP, shipped or made here
  zero_shot(results);
  for (peft::FinetuneMode mode : modes()) finetune(mode, results);
  results["tasks"] = config_["tasks"];
  results["modes"] = config_["modes"];
  for (const auto& t : tasks_) results["metric"][t.task.name] = "accuracy";
  std::vector<int64_t> examples = test_examples();
  for (size_t t = 0; t < tasks_.size(); ++t) results["test_examples"][tasks_[t].task.name] = examples[t];
  nn::CLIPConfig c = clip_->config;
  results["model"] = "tiny CLIP: ViT " + std::to_string(c.vision_config.image_size) + "x" +
                     std::to_string(c.vision_config.image_size) + "/" + std::to_string(c.vision_config.patch_size) +
                     ", width " + std::to_string(c.vision_config.hidden_size) + ", " +
                     std::to_string(c.vision_config.num_hidden_layers) + " layers, " +
                     std::to_string(c.vision_config.num_attention_heads) + " heads; text width " +
                     std::to_string(c.text_config.hidden_size) + ", " + std::to_string(clip_->num_parameters()) +
                     " parameters";
  return results;
}

}  // namespace linfuse::experiments
