// The vision suite's base checkpoint (base_checkpoint.h): the contrastively pretrained tiny CLIP, shipped in
// checkpoints/vision-<preset>/ so that `make run` need not pretrain it at the length the study needs.
//
// Folder: model.safetensors (Hugging Face's CLIPModel layout and names, metadata {"format": "pt"}, float32),
// config.json (CLIPConfig), spiece.model (the caption tokenizer), manifest.json. The manifest's config is
// pretrain_key(): seed, tasks, data (sizes and styles, which decide the pretraining images), model shape,
// tokenizer size and the pretrain section. The study loads the folder named by vision.base_checkpoint instead
// of running the pretrain stage when that config equals its own; vision.base_checkpoint=null pretrains from
// scratch (stage-cached as before).
#include "experiments/base_checkpoint.h"
#include "experiments/vision_suite.h"
#include "nn/clip.h"

namespace linfuse::experiments {

namespace fs = std::filesystem;

bool VisionSuite::load_base_checkpoint(nlohmann::json& results) {
  const std::string folder = experiments::base_checkpoint_folder(config_, "vision");
  if (folder.empty()) return false;
  StageTimer timer(ctx_, "vision/base_checkpoint");
  const std::string fix =
      "regenerate it with the same `linfuse experiment` command (preset, --seed and --set options) and `--suite vision "
      "--write-base " + folder + "` (pretraining at the checkpoint's budget takes minutes), or pretrain from scratch in "
      "this run with --set vision.base_checkpoint=null";
  BaseCheckpointManifest manifest = open_base_checkpoint(folder, "vision", pretrain_key(), fix);
  tokenizer_ = std::make_shared<Tokenizer>(Tokenizer::load((fs::path(folder) / "spiece.model").string()));
  clip_ = nn::load_pretrained_clip(folder);
  clip_->eval();
  if (clip_->config.vision_config.num_channels != image_channels())
    throw std::runtime_error("[vision] the base checkpoint " + folder + " takes images of " +
                             std::to_string(clip_->config.vision_config.num_channels) + " channels, the data has " +
                             std::to_string(image_channels()) + "; " + fix);
  results["base_checkpoint"] = {{"folder", folder}, {"commit", manifest.commit}, {"files", manifest.files}};
  ctx_.log("vision: pretrained CLIP loaded from the base checkpoint " + folder + ", written at commit " + manifest.commit +
           " by: " + manifest.command);
  return true;
}

void VisionSuite::write_base(const fs::path& folder, const std::string& preset, const std::string& command) {
  load_data();
  pretrain();   // stage-cached; its folder holds model.safetensors, config.json, spiece.model, pretrain_metrics.json
  const fs::path dir = ctx_.cache.folder("vision/pretrain", pretrain_key());
  BaseCheckpointManifest manifest = new_manifest("vision", preset, command, seed_, pretrain_key());
  manifest.metrics = {{"pretrain", read_json(dir / "pretrain_metrics.json")}};
  manifest.notes = "The tiny CLIP of the vision suite after contrastive pretraining (experiments/vision_suite.h); "
                   "Hugging Face CLIPModel layout, float32. Regenerate with the command above; the files come out bit for bit.";
  write_base_checkpoint(folder, {{"model.safetensors", dir / "model.safetensors"}, {"config.json", dir / "config.json"},
                                 {"spiece.model", dir / "spiece.model"}},
                        manifest);
  ctx_.log("vision: base checkpoint written to " + folder.string());
}

}  // namespace linfuse::experiments
