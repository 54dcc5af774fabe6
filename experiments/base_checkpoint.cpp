// Shipped base models: writing a folder with its manifest, and checking one before a suite uses it
// (base_checkpoint.h).
#include "experiments/base_checkpoint.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "experiments/sha256.h"
#include "nn/atomic_file.h"
#include "tensor/build_info.h"

namespace linfuse::experiments {

namespace fs = std::filesystem;

nlohmann::json BaseCheckpointManifest::to_json() const {
  return {{"suite", suite}, {"preset", preset}, {"command", command}, {"commit", commit}, {"dirty", dirty}, {"seed", seed},
          {"config", config}, {"files", files},  {"metrics", metrics}, {"notes", notes}};
}

BaseCheckpointManifest BaseCheckpointManifest::from_json(const nlohmann::json& j) {
  BaseCheckpointManifest m;
  m.suite = j.at("suite").get<std::string>();
  m.preset = j.value("preset", std::string());
  m.command = j.value("command", std::string());
  m.commit = j.value("commit", std::string());
  m.dirty = j.value("dirty", false);
  m.seed = j.value("seed", uint64_t(0));
  m.config = j.at("config");
  m.files = j.at("files").get<std::map<std::string, std::string>>();
  m.metrics = j.value("metrics", nlohmann::json::object());
  m.notes = j.value("notes", std::string());
  return m;
}

std::string base_checkpoint_folder(const nlohmann::json& suite_config, const std::string& suite) {
  if (!suite_config.contains("base_checkpoint") || suite_config["base_checkpoint"].is_null()) return "";
  if (!suite_config["base_checkpoint"].is_string())
    throw std::invalid_argument("[" + suite + "] " + suite + ".base_checkpoint must be a folder (a string) or null, got " +
                                suite_config["base_checkpoint"].dump());
  return suite_config["base_checkpoint"].get<std::string>();
}

BaseCheckpointManifest new_manifest(const std::string& suite, const std::string& preset, const std::string& command,
                                    uint64_t seed, const nlohmann::json& config) {
  BaseCheckpointManifest manifest;
  manifest.suite = suite;
  manifest.preset = preset;
  manifest.command = command;
  manifest.commit = build_info().commit;
  manifest.dirty = build_info().dirty;
  manifest.seed = seed;
  manifest.config = config;
  return manifest;
}

void write_base_checkpoint(const fs::path& folder, const std::map<std::string, fs::path>& files, BaseCheckpointManifest manifest) {
  if (files.empty()) throw std::invalid_argument("[base checkpoint] no files to write to " + folder.string());
  // Read everything first: a missing source leaves the old folder as it was.
  std::map<std::string, std::string> contents;
  for (const auto& [name, source] : files) {
    std::ifstream in(source, std::ios::binary);
    if (!in) throw std::runtime_error("[base checkpoint] cannot read " + source.string() + " (for " + name + ")");
    contents[name] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::create_directories(folder);
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file() && !contents.count(entry.path().filename().string())) fs::remove(entry.path());
  manifest.files.clear();
  for (const auto& [name, bytes] : contents) {
    write_file_atomic((folder / name).string(), bytes);
    manifest.files[name] = sha256_hex(bytes);
  }
  write_file_atomic((folder / "manifest.json").string(), manifest.to_json().dump(2) + "\n");
}

namespace {

void collect_differences(const nlohmann::json& a, const nlohmann::json& b, const std::string& path, std::vector<std::string>& out) {
  if (a == b) return;
  if (a.is_object() && b.is_object()) {
    std::map<std::string, bool> keys;
    for (const auto& item : a.items()) keys[item.key()] = true;
    for (const auto& item : b.items()) keys[item.key()] = true;
    for (const auto& [key, unused] : keys) {
      const std::string here = path.empty() ? key : path + "." + key;
      collect_differences(a.contains(key) ? a[key] : nlohmann::json(), b.contains(key) ? b[key] : nlohmann::json(), here, out);
    }
    return;
  }
  auto shown = [](const nlohmann::json& v) {
    std::string text = v.is_null() ? "absent" : v.dump();
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
  };
  out.push_back((path.empty() ? std::string("(the whole config)") : path) + ": " + shown(a) + " (checkpoint) vs " + shown(b) + " (this run)");
}

}  // namespace

std::vector<std::string> config_differences(const nlohmann::json& checkpoint, const nlohmann::json& run, size_t limit) {
  std::vector<std::string> all;
  collect_differences(checkpoint, run, "", all);
  if (all.size() > limit) {
    const size_t more = all.size() - limit;
    all.resize(limit);
    all.push_back("and " + std::to_string(more) + " more");
  }
  return all;
}

BaseCheckpointManifest open_base_checkpoint(const fs::path& folder, const std::string& suite, const nlohmann::json& expected_config,
                                            const std::string& how_to_fix) {
  const std::string where = "[base checkpoint] " + folder.string() + ": ";
  const fs::path manifest_path = folder / "manifest.json";
  if (!fs::exists(manifest_path))
    throw std::runtime_error(where + "no manifest.json (relative paths are read from the current directory, " +
                             fs::current_path().string() + "); " + how_to_fix);
  BaseCheckpointManifest manifest;
  try {
    std::ifstream in(manifest_path);
    manifest = BaseCheckpointManifest::from_json(nlohmann::json::parse(in));
  } catch (const std::exception& e) {
    throw std::runtime_error(where + "unreadable manifest.json (" + e.what() + "); " + how_to_fix);
  }
  if (manifest.suite != suite)
    throw std::runtime_error(where + "a checkpoint of the " + manifest.suite + " suite, not of the " + suite + " suite; " + how_to_fix);
  // Compared field by field, an absent field equal to null: a field added after the checkpoint was written, whose
  // null default leaves the pretraining as it was, does not invalidate it.
  const std::vector<std::string> differences = config_differences(manifest.config, expected_config);
  if (!differences.empty()) {
    std::string listed;
    for (const std::string& line : differences) listed += "\n  " + line;
    throw std::runtime_error(where + "made for another configuration than this run's:" + listed + "\n" + how_to_fix);
  }
  for (const auto& [name, expected] : manifest.files) {
    const fs::path file = folder / name;
    if (!fs::exists(file)) throw std::runtime_error(where + name + " is missing; " + how_to_fix);
    const std::string actual = sha256_file(file);
    if (actual != expected)
      throw std::runtime_error(where + name + " has SHA-256 " + actual + ", its manifest says " + expected +
                               " (the file changed since the checkpoint was written; a git checkout with LFS or "
                               "line-ending filters can do that); " + how_to_fix);
  }
  return manifest;
}

std::string shell_command(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    const bool plain = !arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos;
    if (!plain) {
      std::string quoted = "'";
      for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
      arg = quoted + "'";
    }
    out += (i ? " " : "") + arg;
  }
  return out;
}

}  // namespace linfuse::experiments
