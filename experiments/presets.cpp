// The experiment presets. Sizes are chosen so that `small` (the default of `make run`) finishes in at most
// 20 minutes on 2 cores including the build; `smoke` runs the whole pipeline in about a minute for the test
// suite; `paper` runs the study at the largest size this project targets.
#include <cmath>
#include <stdexcept>

#include "experiments/experiment.h"
#include "nn/clip_config.h"

namespace linfuse::experiments {

namespace {

using json = nlohmann::json;

std::vector<double> grid(double from, double to, double step) {
  std::vector<double> g;
  for (int i = 0; from + i * step <= to + 1e-9; ++i) g.push_back(std::round((from + i * step) * 1000) / 1000);
  return g;
}

json clip_model(int64_t width, int64_t layers, int64_t heads, int64_t patch, int64_t text_width, int64_t projection) {
  nn::CLIPConfig c = nn::CLIPConfig::tiny();
  c.projection_dim = projection;
  c.vision_config.hidden_size = width;
  c.vision_config.intermediate_size = 4 * width;
  c.vision_config.num_hidden_layers = layers;
  c.vision_config.num_attention_heads = heads;
  c.vision_config.patch_size = patch;
  c.vision_config.projection_dim = projection;
  c.text_config.hidden_size = text_width;
  c.text_config.intermediate_size = 4 * text_width;
  c.text_config.projection_dim = projection;
  c.text_config.num_hidden_layers = 2;
  c.text_config.num_attention_heads = 4;
  c.validate();
  return c.to_json();
}

json vision_small() {
  json v;
  v["tasks"] = {"mnist", "fashion_mnist", "shapes", "gratings", "dot_count", "glyphs", "position", "textures"};
  v["modes"] = {"full", "linear-full", "lora", "l-lora", "l-lora-local"};
  v["data"] = {{"train", 2000}, {"validation", 500}, {"test", 1000}, {"pretrain", 2000}};
  // Patch 7 (16 patches + the class token): a third of the tokens of patch 4, which the 20-minute budget
  // needs; width 64, 3 layers, 4 heads.
  v["model"] = clip_model(64, 3, 4, 7, 64, 64);
  v["tokenizer_vocab"] = 600;
  // 600 steps give image features good enough for short fine-tuning; a quarter of each task's classes is never
  // named in captions, which keeps the zero-shot average near the paper's (about 48%).
  v["pretrain"] = {{"steps", 600},          {"batch_size", 128},     {"learning_rate", 2e-3},
                   {"weight_decay", 0.1},   {"warmup_fraction", 0.05}, {"held_out_fraction", 0.25}};
  v["finetune"] = {{"steps", 150},
                   {"batch_size", 32},
                   {"learning_rates", {{"full", 3e-4}, {"linear-full", 3e-4}, {"lora", 3e-3}, {"l-lora", 3e-3}, {"l-lora-local", 3e-3}}},
                   {"weight_decay", 0.1},
                   {"warmup_fraction", 0.1},
                   {"max_grad_norm", 1.0},
                   {"lora", {{"rank", 8}, {"alpha", 16}, {"dropout", 0.0}, {"targets", {"q_proj", "v_proj"}}, {"init", "peft"}, {"init_seed", 1}}}};
  v["evaluation"] = {{"validation_examples", 200}, {"test_examples", 500}, {"batch_size", 500}};
  v["merge"] = {{"task_arithmetic_lambdas", grid(0.0, 1.0, 0.1)},
                {"ties_keep", {0.2}},
                {"ties_lambdas", grid(0.2, 1.4, 0.2)},
                {"dare_drop", {0.5}},
                {"dare_lambdas", grid(0.2, 1.0, 0.2)},
                {"fisher_examples", 32},
                {"regmean_examples", 256},
                {"adamerging_steps", 20},
                {"adamerging_batch", 16},
                {"lorahub_budget", 30},
                {"lorahub_examples", 16}};
  v["sweep"] = {{"methods", {"task_arithmetic"}}, {"max_subsets", 3}, {"lambdas", {0.3, 0.5, 0.7, 1.0}}};
  v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"})})}, {"steps", 11}, {"coefficient_range", 2.0}, {"examples", 100},
                          {"modes", {"lora", "l-lora", "l-lora-local"}}};
  return v;
}

}  // namespace

std::vector<std::string> preset_names() { return {"smoke", "small", "paper"}; }

json preset_config(const std::string& preset) {
  json c;
  c["preset"] = preset;
  if (preset == "small") {
    c["vision"] = vision_small();
  } else if (preset == "smoke") {
    json v = vision_small();
    v["tasks"] = {"mnist", "shapes", "position"};
    v["data"] = {{"train", 256}, {"validation", 64}, {"test", 128}, {"pretrain", 256}};
    v["model"] = clip_model(32, 2, 2, 7, 32, 32);
    v["tokenizer_vocab"] = 300;
    v["pretrain"]["steps"] = 100;
    v["pretrain"]["batch_size"] = 64;
    v["finetune"]["steps"] = 40;
    v["finetune"]["batch_size"] = 16;
    v["finetune"]["lora"]["rank"] = 4;
    v["evaluation"] = {{"validation_examples", 64}, {"test_examples", 128}, {"batch_size", 128}};
    v["merge"]["task_arithmetic_lambdas"] = {0.3, 0.6, 1.0};
    v["merge"]["ties_lambdas"] = {0.5, 1.0};
    v["merge"]["dare_lambdas"] = {0.5, 1.0};
    v["merge"]["fisher_examples"] = 8;
    v["merge"]["regmean_examples"] = 64;
    v["merge"]["adamerging_steps"] = 3;
    v["merge"]["lorahub_budget"] = 8;
    v["merge"]["lorahub_examples"] = 8;
    v["sweep"] = {{"methods", {"task_arithmetic"}}, {"max_subsets", 2}, {"lambdas", {0.5, 1.0}}};
    v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"})})}, {"steps", 3}, {"coefficient_range", 1.0}, {"examples", 32},
                            {"modes", {"lora", "l-lora"}}};
    c["vision"] = v;
  } else if (preset == "paper") {
    json v = vision_small();
    v["model"] = clip_model(128, 4, 4, 4, 64, 64);
    v["tokenizer_vocab"] = 600;
    v["pretrain"]["steps"] = 1500;
    v["finetune"]["steps"] = 1000;
    v["finetune"]["batch_size"] = 64;
    v["finetune"]["lora"]["rank"] = 16;
    v["finetune"]["lora"]["alpha"] = 32;
    v["evaluation"] = {{"validation_examples", 500}, {"test_examples", 1000}, {"batch_size", 500}};
    v["merge"]["task_arithmetic_lambdas"] = grid(0.0, 1.0, 0.05);
    v["merge"]["ties_keep"] = {0.1, 0.2, 0.3};
    v["merge"]["ties_lambdas"] = grid(0.1, 1.5, 0.1);
    v["merge"]["dare_drop"] = {0.3, 0.5, 0.7};
    v["merge"]["dare_lambdas"] = grid(0.1, 1.0, 0.1);
    v["merge"]["fisher_examples"] = 256;
    v["merge"]["adamerging_steps"] = 200;
    v["merge"]["lorahub_budget"] = 40;
    v["sweep"] = {{"methods", {"task_arithmetic", "ties"}}, {"max_subsets", 10}, {"lambdas", grid(0.1, 1.0, 0.1)}};
    v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"}), json::array({"fashion_mnist", "glyphs"})})}, {"steps", 21}, {"coefficient_range", 2.0},
                            {"examples", 200}, {"modes", {"full", "linear-full", "lora", "l-lora", "l-lora-local"}}};
    c["vision"] = v;
  } else {
    throw std::invalid_argument("[experiment] unknown preset '" + preset + "' (known: smoke, small, paper)");
  }
  return c;
}

}  // namespace linfuse::experiments
