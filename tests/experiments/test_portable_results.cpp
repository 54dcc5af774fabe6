// The same commit gives the same results on every machine: OpenBLAS picks its compute kernel by CPU, and
// linfuse pins it (tensor/blas_kernel.h), so the study's results.json must not depend on which kernel
// OpenBLAS would have chosen. Both core types below run on any AVX2 machine; without the pin their results
// differ (measured: the smoke study under Haswell, Sandybridge and SkylakeX kernels gave three results.json).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tensor/build_info.h"
#include "../merge/merge_tool_helpers.h"

namespace fs = std::filesystem;
using linfuse::testing::linfuse_binary;
using linfuse::testing::run_command;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("linfuse --version names the commit, the target instruction set and OpenBLAS's pinned kernel", "[portable]") {
  auto run = run_command("OPENBLAS_CORETYPE=Sandybridge '" + linfuse_binary() + "' --version");
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find(linfuse::build_commit_label()) != std::string::npos);
  CHECK(run.output.find("-march=" + linfuse::build_info().target_isa) != std::string::npos);
  CHECK(run.output.find("on its Haswell kernel") != std::string::npos);
}

TEST_CASE("the smoke study's results.json is the same whichever kernel OpenBLAS would pick", "[portable][smoke]") {
  fs::path root = fs::temp_directory_path() / ("linfuse_portable_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto study = [&](const std::string& core) {
    fs::path out = root / core;
    auto run = run_command("OPENBLAS_CORETYPE=" + core + " '" + linfuse_binary() +
                           "' experiment --preset smoke --suite vision --threads 1 --no-report --set "
                           "'vision.modes=[\"full\",\"lora\"]' --out '" + (out / "results").string() + "' --cache '" +
                           (out / "cache").string() + "'");
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    return out / "results";
  };
  fs::path haswell = study("Haswell"), sandybridge = study("Sandybridge");
  CHECK(slurp(haswell / "results.json") == slurp(sandybridge / "results.json"));
  CHECK(slurp(haswell / "manifest.json").find("\"blas_core\": \"Haswell\"") != std::string::npos);
  CHECK(slurp(sandybridge / "manifest.json").find("\"blas_core\": \"Haswell\"") != std::string::npos);
  fs::remove_all(root);
}
