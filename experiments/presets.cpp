// The experiment presets. Sizes are chosen so that `small` (the default of `make run`) finishes in at most
// 20 minutes on 2 cores including the build; `smoke` runs the whole pipeline in about a minute for the test
// suite; `paper` runs the study at the largest size this project targets.
#include <cmath>
#include <stdexcept>

#include "experiments/experiment.h"
#include "experiments/merge_study.h"
#include "nn/clip_config.h"
#include "nn/t5_config.h"

namespace linfuse::experiments {

namespace {

using json = nlohmann::json;

std::vector<double> grid(double from, double to, double step) {
  std::vector<double> g;
  for (int i = 0; from + i * step <= to + 1e-9; ++i) g.push_back(std::round((from + i * step) * 1000) / 1000);
  return g;
}

// The merge study's settings that every preset keeps at MergeStudyConfig's defaults (which methods run, in which
// spaces, seeds, AdaMerging's and LoraHub's optimiser settings), written out so that the config lists every field
// the study reads: --set refuses a path that is not in the preset.
void add_merge_defaults(json& merge) {
  const MergeStudyConfig defaults;
  merge["methods"] = defaults.methods;
  merge["lora_spaces"] = defaults.lora_spaces;
  merge["dare_seed"] = defaults.dare_seed;
  merge["regmean_alpha"] = defaults.regmean_alpha;
  merge["adamerging_learning_rate"] = defaults.adamerging_learning_rate;
  merge["adamerging_init"] = defaults.adamerging_init;
  merge["lorahub_l1"] = defaults.lorahub_l1;
  merge["lorahub_bound"] = defaults.lorahub_bound;
}

// The number-of-tasks sweep (its seed, which draws the subsets, at SweepConfig's default).
json sweep(const std::vector<std::string>& methods, int64_t max_subsets, const std::vector<double>& lambdas) {
  return {{"methods", methods}, {"max_subsets", max_subsets}, {"lambdas", lambdas}, {"seed", SweepConfig{}.seed}};
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
  // Each task in its own look (RGB, experiments/vision_style.h: style_strength 1), while the pretraining images
  // show it at half strength (pretrain_style_strength 0.5): a shift between pretraining and the tasks' data, as
  // between CLIP's web images and MNIST or EuroSAT. With every task at 0.5 (docs/findings-vision.md): zero-shot
  // about 50, fine-tuning +28 points (full), task arithmetic keeping a third of that gain at lambda 0.35, where
  // the shared gray look (style_strength null) kept none. standardize: inputs
  // as (x - mean) / std of the pretraining pool. pretrain_style_strength_per_task ({task: strength}) overrides the
  // strength for the tasks it names: mnist and glyphs, whose zero-shot at 0.5 is near chance (16-19%), at 0.7.
  // A task vector keeps a share of its gain that grows with its task's zero-shot (a partly right pretrained model
  // crosses most decision boundaries early); with these two tasks at 0.7, task arithmetic keeps G = 0.46-0.53 of
  // full fine-tuning's gain over three seeds, against 0.30 with every task at 0.5 (at the fine-tuning learning
  // rates before the ones below; with them 0.53-0.66; docs/findings-vision.md).
  v["data"] = {{"train", 2000}, {"validation", 500}, {"test", 1000}, {"pretrain", 2000}, {"style_strength", 1.0}, {"pretrain_style_strength", 0.5},
               {"pretrain_style_strength_per_task", {{"mnist", 0.7}, {"glyphs", 0.7}}}, {"standardize", true}};
  // Patch 7 (16 patches + the class token): a third of the tokens of patch 4, which the 20-minute budget
  // needs; width 64, 3 layers, 4 heads.
  // The pretrained CLIP shipped in the repository (experiments/base_checkpoint.h), written by
  // `make vision-base` (its manifest.json holds the command); null: the study pretrains it (stage-cached).
  v["base_checkpoint"] = "checkpoints/vision-small";
  v["model"] = clip_model(64, 3, 4, 7, 64, 64);
  v["tokenizer_vocab"] = 600;
  // 3,000 steps, more than `make run` could afford, hence the shipped checkpoint: 600 steps gave a weaker model
  // (zero-shot 36.8, linear probe 60.2 against 49.8 and 70.4) and lower retained gains. Every class is named in
  // some caption (held_out_fraction 0): classes pretraining never names made the fine-tuning gain a nonlinear
  // move that task vectors scaled by 0.3 do not keep (docs/findings-vision.md).
  v["pretrain"] = {{"steps", 3000},          {"batch_size", 128},     {"learning_rate", 2e-3},
                   {"weight_decay", 0.1},   {"warmup_fraction", 0.05}, {"held_out_fraction", 0.0},
                   {"class_name_probability", 1.0}, {"held_out_name_probability", 0.0}, {"openclip_decay", false}};
  // Fine-tuning learning rates a third of the earlier preset's (3e-4 full, 3e-3 LoRA modes), which fit each task
  // 2-4 points better alone but merged worse: a smaller step keeps each task vector near the pretrained model,
  // where it leaks less onto the other tasks (first-order leakage 0.44 -> 0.32 for l-lora at seed 0), so task
  // arithmetic keeps more of a somewhat smaller gain. Seeds
  // 0 / 1 / 2, G before -> after: full 0.52 / 0.46 / 0.53 -> 0.66 / 0.53 / 0.66; lora 0.42 / 0.25 / 0.43 ->
  // 0.50 / 0.35 / 0.44; l-lora 0.37 / 0.15 / 0.28 -> 0.63 / 0.38 / 0.47; l-lora-local 0.45 / 0.36 / 0.35 ->
  // 0.70 / 0.47 / 0.51 (seeds 3 and 4, these rates only: full 0.52 / 0.61, lora 0.60 / 0.38, l-lora 0.52 / 0.35,
  // l-lora-local 0.57 / 0.45). At the larger rates L-LoRA merged worse than LoRA at every seed; at these,
  // layer-level L-LoRA merges better at 4 of 5 seeds and network-level is level with LoRA on average (the paper
  // fine-tunes every mode at 1e-5). A tenth instead of a third pushes L-LoRA's lambda to the grid's end
  // (1.0) for gains of 9-12 points (docs/findings-vision.md).
  v["finetune"] = {{"steps", 150},
                   {"batch_size", 32},
                   {"optimizer", "adamw"},
                   {"learning_rates", {{"full", 1e-4}, {"linear-full", 1e-4}, {"lora", 1e-3}, {"l-lora", 1e-3}, {"l-lora-local", 1e-3}}},
                   {"weight_decay", 0.1},
                   {"warmup_fraction", 0.1},
                   {"max_grad_norm", 1.0},
                   {"lora", {{"rank", 8}, {"alpha", 16}, {"dropout", 0.0}, {"targets", {"q_proj", "v_proj"}}, {"init", "peft"}, {"init_seed", 1}}}};
  // 500 validation examples a task choose hyperparameters (every candidate merge is evaluated on them; 150 gave
  // a standard error of about 4 points a task), 500 test.
  v["evaluation"] = {{"validation_examples", 500}, {"test_examples", 500}, {"batch_size", 500}};
  // Task arithmetic's grid is fine near zero, where the chosen lambda of a merge of 8 tasks lies (0.25-0.4 in
  // docs/findings-vision.md), and includes 0: the pretrained model is a candidate.
  v["merge"] = {{"task_arithmetic_lambdas", {0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0}},
                {"ties_keep", {0.2}},
                {"ties_lambdas", grid(0.2, 1.0, 0.2)},  // 1.2 and 1.4 were never chosen on validation
                {"dare_drop", {0.5}},
                {"dare_lambdas", {0.2, 0.6, 1.0}},
                {"fisher_examples", 32},
                {"regmean_examples", 256},
                {"adamerging_steps", 20},
                {"adamerging_batch", 16},
                {"lorahub_budget", 30},
                {"lorahub_examples", 16},
                // normalized scores count a task only if every mode's single-task score beats chance by this
                // many standard errors (suite_common.h, learned_threshold)
                {"learned_margin_se", 2.0}};
  add_merge_defaults(v["merge"]);
  // The sweep was the longest stage (157 s with 4 lambdas x 3 subsets; 114 s with 3 x 3); 3 lambdas x 2 subsets
  // keep `make run` near its 20-minute budget.
  v["sweep"] = sweep({"task_arithmetic"}, 2, {0.3, 0.6, 1.0});
  v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"})})}, {"steps", 11}, {"coefficient_range", 2.0}, {"examples", 100},
                          {"modes", {"lora", "l-lora", "l-lora-local"}}};
  // Why merging keeps or loses the fine-tuning gains: the first-order leakage of each task vector onto the other
  // tasks' outputs (leakage.h, on this many validation images a task), and a linear probe of the pretrained
  // features (linear_probe.h: full-batch Adam, the L2 penalty chosen on validation from the grid).
  // task_vector_scaling (merge_study.h): each task vector alone, scaled, on its own task; the grid of task
  // arithmetic's usual choices, to read task arithmetic's retained gain against it.
  v["diagnostics"] = {{"leakage_examples", 32},
                      {"scaling_lambdas", {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8}},
                      {"linear_probe", {{"steps", 300}, {"learning_rate", 0.05}, {"l2_grid", {1e-4, 1e-3, 1e-2}}}}};
  return v;
}

// ---- text (the tiny T5 on the GLUE-shaped tasks) --------------------------------------------------------

// A Flan-T5-shaped config (gated-GELU feed-forward, untied lm_head, relative position buckets) without
// vocab_size: the suite takes it from the tokenizer it trains.
json t5_model(int64_t d_model, int64_t heads, int64_t d_ff, int64_t layers, double dropout) {
  nn::T5Config c = nn::tiny_t5_config();
  c.d_model = d_model;
  c.num_heads = heads;
  c.d_kv = d_model / heads;
  c.d_ff = d_ff;
  c.num_layers = layers;
  c.num_decoder_layers = layers;
  c.dropout_rate = dropout;
  c.validate();
  json j = json::parse(c.to_json());
  j.erase("vocab_size");
  return j;
}

// The small preset's text half (the budget and the reasons are in the report of the text branch and below).
json text_small() {
  json t;
  t["tasks"] = {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "rte"};
  t["modes"] = {"full", "linear-full", "lora", "l-lora", "l-lora-local"};
  // 300 test examples a task: a standard error of 2.9 points on a binary task at chance (96 gave 5.1).
  // The instruct split (text_instruct.cpp) comes from sentences the other splits never use.
  // 5,000 training examples a task: fine-tuning's 600 steps of 16 see each about twice instead of ten times.
  // Measured (docs/findings-text.md, seeds 0 / 1): single-task +6 / +6 points (full), +6 / +4 (lora), +5 / +5
  // (l-lora) over 1,000 examples, gains of 5 points or more on 6 / 7, 6 / 6, 5 / 5 tasks (1,000: 5 / 6, 4 / 5,
  // 2 / 3), at the same cost; the merges are no better (the text task vectors still erase the other tasks).
  t["data"] = {{"train", 5000}, {"validation", 100}, {"test", 300}, {"instruct", 300}};
  // ~20k fortune sentences: 1500 ids (1400 pieces + 100 sentinels) keep common words whole.
  t["tokenizer_vocab"] = 1500;
  t["tokenizer_sentences"] = 6000;   // the tokenizer's training text: an evenly spaced subset of the corpus
  t["max_input_tokens"] = 64;
  // The pretrained and instruction-tuned T5 shipped in the repository (experiments/base_checkpoint.h); null:
  // the study pretrains it (stage-cached).
  t["base_checkpoint"] = nullptr;
  // Dropout 0 (as T5 v1.1's pretraining): every run is shorter than two epochs of its data.
  t["model"] = t5_model(64, 4, 128, 2, 0.0);
  t["pretrain"] = {{"steps", 300}, {"batch_size", 32}, {"learning_rate", 3e-3}, {"weight_decay", 0.01}, {"warmup_fraction", 0.05},
                   {"sequence_tokens", 48}, {"noise_density", 0.15}, {"mean_span_length", 3.0}, {"pair_fraction", 0.0}};
  // Instruction tuning (text_instruct.cpp), the miniature of Flan-T5's: 150 steps of 32 on 300 training
  // examples of each task. Measured on this preset: it takes the label-word loss at the start of fine-tuning
  // from 6-16 to 0.2-1.4 per token, so the L-LoRA modes train (their loss had stayed at 2-7 without it; now
  // 0.2-1.1 like LoRA's); it did not raise zero-shot or single-task accuracy, which the tiny T5's grasp of
  // the tasks limits (zero-shot 41.5 with it, 41.6 without).
  t["instruct"] = {{"steps", 150}, {"batch_size", 32}, {"learning_rate", 1e-3}, {"source", "instruct"}, {"label_word_share", 0.25}, {"prefix_share", 0.0},
                   {"examples_per_task", 300}, {"weight_decay", 0.0}, {"warmup_fraction", 0.1}, {"max_grad_norm", 1.0},
                   {"max_input_tokens", nullptr}};   // null: text.max_input_tokens
  // LoRA on the attention q and v projections (self- and cross-attention), as the paper's Flan-T5 config
  // (r 16, alpha 32 for d_model 768) scaled to d_model 64: r 4, alpha 8 (s = 2 in both).
  // 600 steps of 16 examples (about two epochs of the 5000 training examples): the tiny T5 learns the tasks
  // slowly (docs/findings-text.md). Measured at 059479a (seed 0, 1000 examples): 120 steps left no task learned by
  // every mode; 600 gained 5 points or more over zero-shot on 5 tasks in full fine-tuning and 4 in lora. The L-LoRA modes
  // take a 4x larger learning rate: at 5e-3 and 600 steps l-lora gained 5 points on one task, at 2e-2 on two.
  // The vision suite's shipped checkpoint freed the `make run` budget this needs.
  t["finetune"] = {{"steps", 600},
                   {"batch_size", 16},
                   {"learning_rates", {{"full", 1e-3}, {"linear-full", 1e-3}, {"lora", 5e-3}, {"l-lora", 2e-2}, {"l-lora-local", 2e-2}}},
                   {"weight_decay", 0.0},
                   {"warmup_fraction", 0.1},
                   {"max_grad_norm", 1.0},
                   {"lora", {{"rank", 4}, {"alpha", 8}, {"dropout", 0.0}, {"targets", {"q", "v"}}, {"init", "peft"}, {"init_seed", 1}}}};
  // Answers ranked by log-probability less its mean over the task's validation inputs (text_suite.h, Calibration):
  // ranked by likelihood alone, the tiny T5 answers one label for every input of a task (zero-shot, and the merged
  // models on 4 to 6 of 6 classification tasks), because its preference between a task's answers holds a large
  // input-independent part that every task vector shifts; the calibration takes that part out and nothing else.
  // Measured on this preset (docs/findings-text.md, seeds 0-2, full / lora / l-lora): task arithmetic's G 0.52 / 0.01
  // / 0.12, 0.21 / 0.03 / -0.14, 0.32 / 0.31 / 0.00 calibrated, against 0.22 / -0.03 / -0.07, -0.05 / 0.00 / -0.13 and
  // 0 / 0.07 / 0 by likelihood; constant answers of the merged models 0-1 of 6 tasks instead of 4-6.
  t["evaluation"] = {{"validation_examples", 100}, {"test_examples", 300}, {"batch_size", 100}, {"calibration", "validation_mean"}};
  // lambda 0 (the pretrained model) is a candidate: "task arithmetic picks lambda > 0" must be a choice.
  t["merge"] = {{"task_arithmetic_lambdas", grid(0.0, 1.0, 0.2)},
                {"ties_keep", {0.2}},
                {"ties_lambdas", grid(0.4, 1.2, 0.4)},
                {"dare_drop", {0.5}},
                {"dare_lambdas", grid(0.4, 1.0, 0.3)},
                {"fisher_examples", 16},
                {"regmean_examples", 64},
                {"adamerging_steps", 10},
                {"adamerging_batch", 8},
                {"lorahub_budget", 15},
                {"lorahub_examples", 8},
                {"learned_margin_se", 2.0}};   // as the vision suite's
  add_merge_defaults(t["merge"]);
  t["sweep"] = sweep({"task_arithmetic"}, 1, {0.4, 0.8});
  t["disentanglement"] = {{"pairs", json::array({json::array({"sst2", "mnli"})})}, {"steps", 5}, {"coefficient_range", 2.0},
                          {"examples", 50}, {"modes", {"lora", "l-lora", "l-lora-local"}}};
  // leakage.h on this many validation inputs a task; the own-task scaling curve as the vision suite's.
  t["diagnostics"] = {{"leakage_examples", 16}, {"scaling_lambdas", {0.2, 0.4, 0.6, 0.8}}};
  return t;
}

// The smoke preset's text half: three tasks (two classification, the regression one), a 2-block T5 of
// width 32, a few dozen steps: the whole pipeline in well under a minute.
json text_smoke() {
  json t = text_small();
  t["tasks"] = {"sst2", "stsb", "rte"};
  t["data"] = {{"train", 128}, {"validation", 32}, {"test", 48}, {"instruct", 32}};
  t["tokenizer_vocab"] = 600;
  t["tokenizer_sentences"] = 2000;
  t["max_input_tokens"] = 48;
  t["model"] = t5_model(32, 2, 64, 1, 0.0);
  t["pretrain"]["steps"] = 30;
  t["pretrain"]["batch_size"] = 16;
  t["instruct"]["steps"] = 10;
  t["instruct"]["batch_size"] = 8;
  t["instruct"]["examples_per_task"] = 32;
  t["pretrain"]["sequence_tokens"] = 32;
  t["finetune"]["steps"] = 20;
  t["finetune"]["batch_size"] = 8;
  t["finetune"]["learning_rates"] = {{"full", 1e-3}, {"linear-full", 1e-3}, {"lora", 5e-3}, {"l-lora", 5e-3}, {"l-lora-local", 5e-3}};
  t["finetune"]["lora"]["rank"] = 2;
  t["finetune"]["lora"]["alpha"] = 4;
  t["evaluation"] = {{"validation_examples", 32}, {"test_examples", 48}, {"batch_size", 48}, {"calibration", "validation_mean"}};
  t["merge"]["task_arithmetic_lambdas"] = {0.5, 1.0};
  t["merge"]["ties_lambdas"] = {1.0};
  t["merge"]["dare_lambdas"] = {1.0};
  t["merge"]["fisher_examples"] = 4;
  t["merge"]["regmean_examples"] = 32;
  t["merge"]["adamerging_steps"] = 2;
  t["merge"]["adamerging_batch"] = 4;
  t["merge"]["lorahub_budget"] = 5;
  t["merge"]["lorahub_examples"] = 4;
  t["sweep"] = sweep({"task_arithmetic"}, 1, {1.0});
  t["diagnostics"]["scaling_lambdas"] = {0.5};
  t["disentanglement"] = {{"pairs", json::array({json::array({"sst2", "rte"})})}, {"steps", 3}, {"coefficient_range", 1.0},
                          {"examples", 16}, {"modes", {"l-lora"}}};
  return t;
}

// The paper preset's text half: a 4+4-block T5 of width 128 (nn::tiny_t5_config's shape), LoRA r 16 alpha 32
// as the paper, full grids.
json text_paper() {
  json t = text_small();
  t["data"] = {{"train", 2000}, {"validation", 500}, {"test", 500}, {"instruct", 1000}};
  t["tokenizer_vocab"] = 2000;
  t["tokenizer_sentences"] = 0;   // the whole corpus
  t["max_input_tokens"] = 96;
  t["model"] = t5_model(128, 4, 256, 4, 0.1);
  t["pretrain"]["steps"] = 4000;
  t["pretrain"]["batch_size"] = 64;
  t["pretrain"]["learning_rate"] = 1e-3;
  t["pretrain"]["sequence_tokens"] = 64;
  t["instruct"]["steps"] = 600;
  t["instruct"]["examples_per_task"] = 1000;
  t["finetune"]["steps"] = 1000;
  t["finetune"]["batch_size"] = 16;
  t["finetune"]["learning_rates"] = {{"full", 3e-4}, {"linear-full", 3e-4}, {"lora", 2e-3}, {"l-lora", 2e-3}, {"l-lora-local", 2e-3}};
  t["finetune"]["lora"]["rank"] = 16;
  t["finetune"]["lora"]["alpha"] = 32;
  t["evaluation"] = {{"validation_examples", 500}, {"test_examples", 500}, {"batch_size", 250}, {"calibration", "validation_mean"}};
  t["merge"]["task_arithmetic_lambdas"] = grid(0.0, 1.0, 0.05);
  t["merge"]["ties_keep"] = {0.1, 0.2, 0.3};
  t["merge"]["ties_lambdas"] = grid(0.1, 1.5, 0.1);
  t["merge"]["dare_drop"] = {0.3, 0.5, 0.7};
  t["merge"]["dare_lambdas"] = grid(0.1, 1.0, 0.1);
  t["merge"]["fisher_examples"] = 256;
  t["merge"]["regmean_examples"] = 256;
  t["merge"]["adamerging_steps"] = 100;
  t["merge"]["adamerging_batch"] = 16;
  t["merge"]["lorahub_budget"] = 40;
  t["merge"]["lorahub_examples"] = 16;
  t["sweep"] = sweep({"task_arithmetic", "ties"}, 10, grid(0.1, 1.0, 0.1));
  t["disentanglement"] = {{"pairs", json::array({json::array({"sst2", "mnli"}), json::array({"cola", "rte"})})}, {"steps", 21},
                          {"coefficient_range", 2.0}, {"examples", 200}, {"modes", {"full", "linear-full", "lora", "l-lora", "l-lora-local"}}};
  return t;
}

}  // namespace

std::vector<std::string> preset_names() { return {"smoke", "small", "paper"}; }

json preset_config(const std::string& preset) {
  json c;
  c["preset"] = preset;
  if (preset == "small") {
    c["vision"] = vision_small();
    c["text"] = text_small();
  } else if (preset == "smoke") {
    json v = vision_small();
    v["tasks"] = {"mnist", "shapes", "position"};
    v["data"].update({{"train", 256}, {"validation", 64}, {"test", 128}, {"pretrain", 256}});
    v["data"]["pretrain_style_strength_per_task"] = nullptr;   // the recorded smoke hashes predate it (its unit test covers it)
    v["model"] = clip_model(32, 2, 2, 7, 32, 32);
    v["tokenizer_vocab"] = 300;
    v["base_checkpoint"] = nullptr;   // pretrains (the shipped checkpoint is the small preset's)
    v["pretrain"]["steps"] = 100;
    v["pretrain"]["batch_size"] = 64;
    v["finetune"]["steps"] = 40;
    v["finetune"]["batch_size"] = 16;
    // The learning rates the recorded smoke hashes were made with (the small preset's until it took a third of them).
    v["finetune"]["learning_rates"] = {{"full", 3e-4}, {"linear-full", 3e-4}, {"lora", 3e-3}, {"l-lora", 3e-3}, {"l-lora-local", 3e-3}};
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
    v["sweep"] = sweep({"task_arithmetic"}, 2, {0.5, 1.0});
    v["diagnostics"]["scaling_lambdas"] = {0.5};
    v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"})})}, {"steps", 3}, {"coefficient_range", 1.0}, {"examples", 32},
                            {"modes", {"lora", "l-lora"}}};
    c["vision"] = v;
    c["text"] = text_smoke();
  } else if (preset == "paper") {
    json v = vision_small();
    v["model"] = clip_model(128, 4, 4, 4, 64, 64);
    v["tokenizer_vocab"] = 600;
    v["base_checkpoint"] = nullptr;   // pretrains as long as the small preset's checkpoint (not measured at this width)
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
    v["sweep"] = sweep({"task_arithmetic", "ties"}, 10, grid(0.1, 1.0, 0.1));
    v["disentanglement"] = {{"pairs", json::array({json::array({"mnist", "shapes"}), json::array({"fashion_mnist", "glyphs"})})}, {"steps", 21}, {"coefficient_range", 2.0},
                            {"examples", 200}, {"modes", {"full", "linear-full", "lora", "l-lora", "l-lora-local"}}};
    c["vision"] = v;
    c["text"] = text_paper();
  } else {
    throw std::invalid_argument("[experiment] unknown preset '" + preset + "' (known: smoke, small, paper)");
  }
  return c;
}

}  // namespace linfuse::experiments
