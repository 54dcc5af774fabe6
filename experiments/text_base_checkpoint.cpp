// The text suite's base checkpoint (base_checkpoint.h): the T5 after pretraining and instruction tuning, shipped
// in checkpoints/text-<preset>/ so that `make run` need not pretrain.
//
// Folder: model.safetensors (Hugging Face's T5 layout and names, metadata {"format": "pt"}, float32),
// config.json (T5Config), spiece.model (the tokenizer, T5's ids), manifest.json. The manifest's config is
// base_model_key(): seed, model shape, tokenizer settings, the pretrain and instruct sections, the tasks, the
// data sizes (which place the instruct split's sentences) and max_input_tokens. The study loads the folder
// named by text.base_checkpoint instead of running the pretrain and instruct stages when that config equals its
// own; text.base_checkpoint=null pretrains from scratch (stage-cached as before).
#include "experiments/base_checkpoint.h"
#include "experiments/text_suite.h"
#include "nn/safetensors.h"

namespace linfuse::experiments {

namespace fs = std::filesystem;

bool TextSuite::load_base_checkpoint(nlohmann::json& results) {
  const std::string folder = experiments::base_checkpoint_folder(config_, "text");
  if (folder.empty()) return false;
  StageTimer timer(ctx_, "text/base_checkpoint");
  const std::string fix =
      "regenerate it with the same `linfuse experiment` command (preset, --seed and --set options) and `--write-base " + folder +
      "` (pretraining at the checkpoint's budget takes tens of minutes), or pretrain from scratch in this run with "
      "--set text.base_checkpoint=null";
  BaseCheckpointManifest manifest = open_base_checkpoint(folder, "text", base_model_key(), fix);
  const fs::path dir(folder);
  tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::load((dir / "spiece.model").string()));
  model_config_ = nn::T5Config::load((dir / "config.json").string());
  pretrained_ = load_safetensors((dir / "model.safetensors").string());
  results["pretrain"] = manifest.metrics.value("pretrain", nlohmann::json::object());
  if (manifest.metrics.contains("instruct")) results["instruct"] = manifest.metrics["instruct"];
  results["base_checkpoint"] = {{"folder", folder}, {"commit", manifest.commit}, {"files", manifest.files}};
  ctx_.log("text: base model (pretrained and instruction-tuned T5) loaded from " + folder + ", written at commit " + manifest.commit +
           " by: " + manifest.command);
  return true;
}

void TextSuite::write_base(const fs::path& folder, const std::string& preset, const std::string& command) {
  nlohmann::json results;
  load_data();
  pretrain(results);
  tokenize_tasks();
  instruction_tune(results);
  // The stages' own folders hold the tokenizer and config; the weights are written again with the metadata
  // Hugging Face's loader requires.
  const fs::path pretrain_dir = ctx_.cache.folder("text/pretrain", pretrain_key());
  const fs::path weights = ctx_.cache.folder("text/base_checkpoint", base_model_key()) / "model.safetensors";
  save_safetensors(weights.string(), pretrained_, {{"format", "pt"}}, FloatFormat::F32);
  BaseCheckpointManifest manifest = new_manifest("text", preset, command, seed_, base_model_key());
  manifest.metrics = {{"pretrain", results["pretrain"]}};
  if (results.contains("instruct")) manifest.metrics["instruct"] = results["instruct"];
  manifest.notes = "The T5 of the text suite after span-corruption pretraining and instruction tuning (experiments/text_suite.h); "
                   "Hugging Face T5 layout, float32. Regenerate with the command above; the model files come out bit for bit.";
  write_base_checkpoint(folder, {{"model.safetensors", weights}, {"config.json", pretrain_dir / "config.json"},
                                 {"spiece.model", pretrain_dir / "spiece.model"}},
                        manifest);
  ctx_.log("text: base checkpoint written to " + folder.string());
}

}  // namespace linfuse::experiments
