#pragma once
// Helpers of the merge tool's tests: temporary folders, writing checkpoints, running the engine from a JSON config,
// running the built `linfuse` binary.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "merge/streaming_merge.h"
#include "nn/safetensors.h"
#include "tensor/kernels.h"
#include "tensor/random.h"

namespace linfuse::testing {

// A fresh folder under /tmp, deleted with everything in it when the object goes.
class TempFolder {
 public:
  TempFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "linfuse_merge_test_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  // Names in the folder (hidden temporary files included), sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& item : std::filesystem::directory_iterator(path_)) names.push_back(item.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::string path_;
};

// Runs the engine on a config whose relative paths are relative to `folder`.
inline merge::MergeReport run_tool(const nlohmann::json& config, const std::string& folder,
                                   int64_t chunk_elements = int64_t(1) << 18) {
  merge::MergeRunOptions options;
  options.chunk_elements = chunk_elements;
  options.provenance = {{"linfuse.commit", "test"}};
  return merge::run_merge(merge::parse_merge_spec(merge::resolve_config_paths(config, folder)), options);
}

// The message of the exception `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A state dict of float32 tensors: theta0 + scale * N(0, 1) per entry, layout given by names and shapes.
inline StateDict perturbed(const StateDict& base, Generator& generator, double scale) {
  StateDict out;
  for (const auto& [name, tensor] : base) {
    std::vector<double> values = tensor.to_vector<double>();
    std::vector<double> noise = generator.normal({tensor.numel()}, 0.0, 1.0, DType::F64).to_vector<double>();
    for (size_t i = 0; i < values.size(); ++i) values[i] += scale * noise[i];
    Tensor t = Tensor::from_vector(values, tensor.shape());
    out.insert(name, tensor.dtype() == DType::F64 ? t : kernels::cast(t, tensor.dtype()));
  }
  return out;
}

// Every entry of two state dicts equal bit for bit (as values: -0 == +0), names in any order.
inline bool same_values(const StateDict& a, const StateDict& b, std::string* first_difference = nullptr) {
  if (a.size() != b.size()) {
    if (first_difference) *first_difference = "sizes differ";
    return false;
  }
  for (const auto& [name, tensor] : a) {
    if (!b.contains(name) || b.at(name).shape() != tensor.shape()) {
      if (first_difference) *first_difference = name + " missing or reshaped";
      return false;
    }
    auto x = tensor.to_vector<double>(), y = b.at(name).to_vector<double>();
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i] != y[i]) {
        if (first_difference)
          *first_difference = name + "[" + std::to_string(i) + "]: " + std::to_string(x[i]) + " vs " + std::to_string(y[i]);
        return false;
      }
  }
  return true;
}

// The built linfuse binary, next to the test binary (both in the build folder).
inline std::string linfuse_binary() {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "linfuse").string();
}

struct CommandResult {
  int exit_code = -1;
  std::string output;   // stdout and stderr
};
inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace linfuse::testing
