#pragma once
// On-disk cache of pipeline stages. A stage's outputs live in <root>/<stage>/<key>/ where key is a hash of
// the stage's config (canonical JSON: nlohmann sorts keys). A stage is done when its folder holds the DONE
// marker, written last (atomically) together with config.json, so an interrupted stage is redone, never
// half-read. The stage config is kept as stage.json (config.json is a checkpoint's). Changing any field of a stage's config gives it a new folder; old folders are left alone.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace linfuse::experiments {

class StageCache {
 public:
  explicit StageCache(std::filesystem::path root);

  // The folder of `stage` (e.g. "vision/finetune/full/mnist") for `config`; created if missing.
  std::filesystem::path folder(const std::string& stage, const nlohmann::json& config) const;
  bool done(const std::string& stage, const nlohmann::json& config) const;
  // Marks the stage done (writes stage.json and DONE). Call after every output file is in place.
  void mark_done(const std::string& stage, const nlohmann::json& config) const;
  const std::filesystem::path& root() const { return root_; }

  static std::string key(const nlohmann::json& config);   // 16 hex digits (FNV-1a 64 of the canonical dump)

 private:
  std::filesystem::path root_;
};

}  // namespace linfuse::experiments
