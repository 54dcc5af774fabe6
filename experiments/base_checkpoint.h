#pragma once
// A suite's shipped base model: the pretrained model its fine-tuning starts from, made by the project's own
// command at a budget larger than `make run` allows, and kept in the repository so that the study need not
// pretrain (checkpoints/<suite>-<preset>/, named by the preset's "<suite>.base_checkpoint").
//
// A folder holds the model's files under Hugging Face's names (text: the T5's model.safetensors, config.json
// and spiece.model; vision: the CLIPModel's) and manifest.json:
//   {"suite", "preset", "command" (the exact command that wrote it), "config" (the configuration of the stages
//    that produced it: the suite's cache key of its base model, seed included), "commit", "dirty", "seed",
//    "files": {name: SHA-256}, "metrics": what the stages reported, "notes"}
// A suite uses the folder only when the manifest's config equals the one it would pretrain with and every file
// has its recorded SHA-256; otherwise it refuses with a message naming what differs and how to regenerate the
// folder or pretrain from scratch (`--set <suite>.base_checkpoint=null`). It never retrains silently: a run that
// expects to load a base model in seconds should not spend half an hour pretraining because one field changed.
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace linfuse::experiments {

struct BaseCheckpointManifest {
  std::string suite, preset, command, commit;
  bool dirty = false;
  uint64_t seed = 0;
  nlohmann::json config;                        // the stages' configuration (what the suite compares)
  std::map<std::string, std::string> files;     // file name in the folder -> SHA-256 (lowercase hex)
  nlohmann::json metrics = nlohmann::json::object();
  std::string notes;

  nlohmann::json to_json() const;
  static BaseCheckpointManifest from_json(const nlohmann::json& j);
};

// Writes `folder`: each file of `files` (name in the folder -> the file to copy) and manifest.json with their
// SHA-256s (manifest.files is filled here). The folder is replaced as a whole: files of an older checkpoint
// that the new one does not have are removed.
void write_base_checkpoint(const std::filesystem::path& folder, const std::map<std::string, std::filesystem::path>& files,
                           BaseCheckpointManifest manifest);

// Reads and checks `folder` for `suite`: manifest.json present and of that suite, its config equal to
// `expected_config`, every listed file present with its SHA-256. Throws std::runtime_error whose message names
// the folder, what differs (up to a few config fields with both values) and `how_to_fix`.
BaseCheckpointManifest open_base_checkpoint(const std::filesystem::path& folder, const std::string& suite,
                                            const nlohmann::json& expected_config, const std::string& how_to_fix);

// The fields where two configurations differ, as "pretrain.steps: 6000 (checkpoint) vs 300 (this run)", at
// most `limit` of them; empty when equal.
std::vector<std::string> config_differences(const nlohmann::json& checkpoint, const nlohmann::json& run, size_t limit = 4);

// The folder a suite's config names in "base_checkpoint": "" when the field is null or absent. Throws
// std::invalid_argument naming "<suite>.base_checkpoint" when it is neither a string nor null.
std::string base_checkpoint_folder(const nlohmann::json& suite_config, const std::string& suite);

// A manifest for `suite` written now: this build's commit and dirty flag, and the given fields.
BaseCheckpointManifest new_manifest(const std::string& suite, const std::string& preset, const std::string& command,
                                    uint64_t seed, const nlohmann::json& config);

// The command line a program was started with, quoted for a shell where needed (for manifests).
std::string shell_command(int argc, const char* const* argv);

}  // namespace linfuse::experiments
