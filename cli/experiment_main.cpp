// linfuse experiment: the study end to end (see experiments/experiment.h and `--help`).
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command_line.h"
#include "experiments/base_checkpoint.h"
#include "experiments/experiment.h"

int experiment_main(int argc, char** argv) {
  cxxopts::Options options(
      "linfuse experiment",
      "Runs the study of Tang et al. (ICLR 2024) at small scale, end to end, and writes a report.\n\n"
      "Stages (each cached on disk under a key of its config, skipped when already done):\n"
      "  1. pretrain: a tiny CLIP contrastively on captions over all vision domains (+ its tokenizer), on\n"
      "     images styled at vision.data.pretrain_style_strength (a shift from the tasks' own look);\n"
      "     the small preset's vision.base_checkpoint names the shipped folder holding it (make vision-base\n"
      "     writes it); --set vision.base_checkpoint=null pretrains from scratch;\n"
      "     text: a tiny T5 with span corruption on the fortune corpus (+ its tokenizer), then instruction-\n"
      "     tuned on a mixture of the tasks, as Flan-T5 (text.instruct; steps 0: skipped): each task's\n"
      "     instruct split (text.data.instruct examples from sentences fine-tuning and evaluation never see,\n"
      "     written as instructions answered yes / no; a share text.instruct.label_word_share offers the\n"
      "     label words), or with text.instruct.source=train its training examples in the prefix form;\n"
      "     a preset's text.base_checkpoint names a shipped folder holding that T5 (--write-base writes it),\n"
      "     loaded instead when its manifest's config equals the run's (else the run stops and says how to\n"
      "     regenerate it); --set text.base_checkpoint=null pretrains from scratch\n"
      "  2. zero-shot: each task's head from its class names and prompt templates; zero-shot test accuracy\n"
      "  3. fine-tune: every task in every mode (full, linear-full, lora, l-lora = network-level linearized\n"
      "     LoRA, l-lora-local = layer-level), the image encoder against the task's frozen head; text: the\n"
      "     T5 (or LoRA on its q, v) text-to-text on the label words (STS-B: the score rounded to 0.5);\n"
      "     --set text.finetune.objective=answers: cross-entropy over the task's own answers instead;\n"
      "     text answers are ranked by likelihood, or with --set text.evaluation.calibration=\n"
      "     validation_mean by likelihood less its mean over the task's validation inputs\n"
      "  4. merge: simple average, task arithmetic, TIES, DARE (+TA, +TIES), Fisher, RegMean, AdaMerging\n"
      "     (task- and layer-wise), LoraHub; LoRA modes in parameter and weight space; hyperparameters chosen\n"
      "     on the validation split, scores on the test split; normalized score = merged / single-task, over\n"
      "     the tasks every mode learned (above chance by merge.learned_margin_se = 2 standard errors)\n"
      "  5. analyses: normalized score vs number of tasks, cosine similarity of task vectors, cross-task\n"
      "     scores (each task's fine-tuned model on every task, against zero-shot), weight-disentanglement\n"
      "     error maps; diagnostics: first-order cross-task leakage of the task vectors (forward mode at the\n"
      "     pretrained state; diagnostics.leakage_examples, 0: skipped), each task vector alone scaled by\n"
      "     lambda on its own task (diagnostics.scaling_lambdas, []: skipped) and, for vision, a linear probe\n"
      "     of the pretrained features and the tasks' domain similarity against the cross-task damage\n"
      "  6. report: results.json, manifest.json (config, seed, threads, commit, time per stage), report.md,\n"
      "     CSV tables and gnuplot plots in the results folder\n");
  options.add_options()("suite", "vision, text or all", cxxopts::value<std::string>()->default_value("all"))(
      "preset", "smoke (about a minute), small (the default, <= 20 min on 2 cores), paper (the full study)",
      cxxopts::value<std::string>()->default_value("small"))(
      "threads", "threads for TBB and the GEMM tiles (0: all cores)", cxxopts::value<int>()->default_value("0"))(
      "seed", "seed of data, initialisation and training", cxxopts::value<uint64_t>()->default_value("0"))(
      "out", "results folder (default results/<preset>-<suites>-seed<seed>)", cxxopts::value<std::string>()->default_value(""))(
      "cache", "stage cache folder", cxxopts::value<std::string>()->default_value("runs/cache"))(
      "set",
      "override a config field: --set vision.finetune.steps=300, a list entry: --set vision.tasks.1=shapes (value in JSON, "
      "of the same kind as the preset's; the field must exist in the preset, see --print-config; not 'preset'; repeatable)",
      cxxopts::value<std::string>())(
      "print-config", "print the preset's configuration (with --set applied and checked) as JSON and exit")(
      "write-base",
      "run only the suite's pretraining stages (cached; --suite text) and write its base model to this folder as a base "
      "checkpoint: model.safetensors, config.json, spiece.model (Hugging Face's names) and manifest.json (this command, "
      "the stages' config, commit, seed, SHA-256 of each file); a preset's text.base_checkpoint names the folder the "
      "study then loads instead of pretraining (null: pretrain from scratch). The stages come from the --cache when "
      "it holds them; its keys hold the configuration, not the code, so pass an empty --cache to regenerate a "
      "checkpoint after the code changed",
      cxxopts::value<std::string>())(
      "no-report", "skip report.md and the plots")("h,help", "show this help");
  const linfuse::cli::CommandLine line = linfuse::cli::parse_command_line(options, argc, argv, "linfuse experiment", options.help());
  if (line.exit_code) return *line.exit_code;
  const cxxopts::ParseResult& args = line.args;
  linfuse::experiments::ExperimentOptions o;
  o.preset = args["preset"].as<std::string>();
  std::string suite = args["suite"].as<std::string>();
  if (suite == "all") o.suites = {"vision", "text"};
  else if (suite == "vision" || suite == "text") o.suites = {suite};
  else {
    std::fprintf(stderr, "linfuse experiment: --suite must be vision, text or all (got '%s')\n", suite.c_str());
    return 2;
  }
  o.threads = args["threads"].as<int>();
  if (o.threads < 0) {
    std::fprintf(stderr, "linfuse experiment: --threads must be 0 (all cores) or a positive count, got %d\n", o.threads);
    return 2;
  }
  o.seed = args["seed"].as<uint64_t>();
  o.out_dir = args["out"].as<std::string>();
  o.cache_dir = args["cache"].as<std::string>();
  o.report = !args.count("no-report");
  if (args.count("write-base")) {
    o.write_base = args["write-base"].as<std::string>();
    o.command = "linfuse " + linfuse::experiments::shell_command(argc, argv);
  }
  // Every --set in order (not as a vector option: cxxopts would split JSON arrays at their commas); parsed and
  // checked against the preset by experiment_config.
  for (const auto& argument : args.arguments())
    if (argument.key() == "set") o.settings.push_back(argument.value());
  try {
    nlohmann::json config = linfuse::experiments::experiment_config(o);
    linfuse::experiments::validate_config(config, o.suites, o.seed);
    if (args.count("print-config")) {
      std::printf("%s\n", config.dump(2).c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse experiment: %s\n", e.what());
    return 2;
  }
  try {
    std::string dir = linfuse::experiments::run_experiment(o);
    std::printf("%s: %s\n", o.write_base.empty() ? "results" : "base checkpoint", dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse experiment: %s\n", e.what());
    return 1;
  }
  return 0;
}
