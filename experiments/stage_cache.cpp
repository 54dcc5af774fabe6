#include "experiments/stage_cache.h"

#include <cstdio>

#include "nn/atomic_file.h"

namespace linfuse::experiments {

StageCache::StageCache(std::filesystem::path root) : root_(std::move(root)) {}

std::string StageCache::key(const nlohmann::json& config) {
  std::string canonical = config.dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : canonical) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

std::filesystem::path StageCache::folder(const std::string& stage, const nlohmann::json& config) const {
  std::filesystem::path dir = root_ / stage / key(config);
  std::filesystem::create_directories(dir);
  return dir;
}

bool StageCache::done(const std::string& stage, const nlohmann::json& config) const {
  return std::filesystem::exists(root_ / stage / key(config) / "DONE");
}

void StageCache::mark_done(const std::string& stage, const nlohmann::json& config) const {
  std::filesystem::path dir = folder(stage, config);
  write_file_atomic((dir / "stage.json").string(), config.dump(2) + "\n");   // not config.json: checkpoints use that name
  write_file_atomic((dir / "DONE").string(), "done\n");
}

}  // namespace linfuse::experiments
