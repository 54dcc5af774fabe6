// Fine-tuning a tiny CLIP image classifier with LoRA on one task, then saving the adapter in Hugging Face PEFT's
// layout and loading it into a fresh copy of the base model.
//
// The task is synthetic: 16x16 gray images of a bar, horizontal (class 0), vertical (1) or diagonal (2), at a
// random place, with noise. The classifier is CLIP's image tower + projection + a frozen head (nn/clip_classifier.h).
// LoRA adds s B A to the chosen Linear layers (y = W0 x + b + s B A x; peft/lora.h); only A and B train.
//
// Run: build/examples/lora_finetune [adapter folder, default ./lora_adapter]
#include <algorithm>
#include <cstdio>
#include <string>

#include "autodiff/ops.h"
#include "autodiff/tape.h"        // NoGradGuard
#include "nn/clip_classifier.h"   // ImageClassifier
#include "peft/finetune.h"        // PreparedModel, finetune
#include "peft/peft_io.h"         // save_peft_adapter, load_peft_adapter_into

using namespace linfuse;

struct Batch { Tensor images, labels; };   // images (N, 1, 16, 16) float32, labels int64 (N)

Batch make_batch(Generator& gen, int64_t n) {
  std::vector<float> pixels(static_cast<size_t>(n * 256));
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t label = int64_t(gen.next_u64() % 3), at = int64_t(gen.next_u64() % 16);
    for (int64_t k = 0; k < 16; ++k) {   // the bar's 16 pixels (row, column)
      int64_t row = label == 0 ? at : k, column = label == 1 ? at : (label == 0 ? k : (k + at) % 16);
      pixels[size_t(i * 256 + row * 16 + column)] = 1.0f;
    }
    labels[size_t(i)] = label;
  }
  Tensor noise = gen.normal({n, 1, 16, 16}, 0.0, 0.3);
  return {add(Tensor::from_vector(pixels, {n, 1, 16, 16}), noise), Tensor::from_vector(labels, {n})};
}

double accuracy(nn::ImageClassifier& model, const Batch& test) {
  NoGradGuard no_grad;   // evaluation records no tape
  std::vector<float> logits = model.forward(test.images).to_vector<float>();   // (N, 3), row-major
  std::vector<int64_t> labels = test.labels.to_vector<int64_t>();
  double right = 0;
  for (size_t i = 0; i < labels.size(); ++i)
    right += std::max_element(&logits[3 * i], &logits[3 * i] + 3) - &logits[3 * i] == labels[i];
  return right / double(labels.size());
}

int main(int argc, char** argv) {
  const std::string folder = argc > 1 ? argv[1] : "lora_adapter";
  nn::CLIPConfig config = nn::CLIPConfig::tiny();   // shrunk below: 16x16 images, patch 4, width 32, 2 layers
  nn::CLIPVisionConfig& vision = config.vision_config;
  vision.image_size = 16, vision.hidden_size = 32, vision.intermediate_size = 64, vision.num_hidden_layers = 2;
  vision.num_attention_heads = 2, config.projection_dim = vision.projection_dim = 16;
  Generator gen(0);
  Tensor head = mul(nn::l2_normalize(gen.normal({3, 16})), 10.0);   // a fixed head: 3 classes x 16 features
  auto base_model = [&] { return std::make_shared<nn::ImageClassifier>(config, head, DType::F32, /*seed=*/1); };
  auto model = base_model();   // the same seed gives the same "pretrained" weights every time

  peft::FinetuneConfig finetuning;   // AdamW, warm-up and cosine decay
  finetuning.mode = peft::FinetuneMode::Lora;
  finetuning.lora.rank = 4, finetuning.lora.alpha = 8;   // s = alpha / rank = 2
  finetuning.lora.target_modules = {"q_proj", "v_proj", "fc1", "fc2"};
  finetuning.steps = 200, finetuning.learning_rate = 2e-2, finetuning.weight_decay = 0.0;
  // Attaches the adapters (A kaiming-uniform, B = 0: the model starts as the base model) and freezes the rest.
  peft::PreparedModel prepared(*model, {"vision_model.*"}, finetuning);

  Batch test = make_batch(gen, 300);
  double before = accuracy(*model, test);
  peft::FinetuneResult run = peft::finetune(prepared, finetuning, [&](int64_t /*step*/) {
    Batch batch = make_batch(gen, 32);
    Tensor features = prepared.forward([&] { return model->image_features(batch.images); });   // (32, 16)
    return cross_entropy(model->classification_head->forward(features), batch.labels);
  });
  double after = accuracy(*model, test);
  std::printf("%lld trainable parameters of %lld; loss %.3f -> %.3f; test accuracy %.1f%% -> %.1f%%\n",
              (long long)run.trainable_parameters, (long long)model->num_parameters(), run.losses.front(),
              run.losses.back(), 100 * before, 100 * after);

  // PEFT's layout: adapter_config.json, adapter_model.safetensors ("base_model.model.<module>.lora_A.weight", ...),
  // and adapter_initial.safetensors (phi0, since task vectors are taken against it).
  peft::save_peft_adapter(folder, *model, finetuning.lora, "tiny-clip-example", prepared.initial_state());
  auto fresh = base_model();
  peft::load_peft_adapter_into(folder, *fresh);   // attaches the adapters and loads A and B
  double reloaded = accuracy(*fresh, test);
  std::printf("saved to %s/; a fresh base model with the adapter scores %.1f%%\n", folder.c_str(), 100 * reloaded);
  bool ok = after >= 0.9 && after > before + 0.3 && reloaded == after;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
