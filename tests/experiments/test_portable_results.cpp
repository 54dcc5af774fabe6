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
#include "tensor/kernel_isa.h"
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

// Runs the smoke study with `environment` (VAR=value ...) and `sets` (--set arguments) into root/name; returns
// its results folder.
fs::path smoke_study(const fs::path& root, const std::string& name, const std::string& environment, const std::string& sets) {
  fs::path out = root / name;
  auto run = run_command(environment + " '" + linfuse_binary() + "' experiment --preset smoke --threads 1 --no-report " +
                         sets + " --out '" + (out / "results").string() + "' --cache '" + (out / "cache").string() + "'");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  return out / "results";
}

}  // namespace

TEST_CASE("linfuse --version names the commit, the target instruction set and OpenBLAS's pinned kernel", "[portable]") {
  auto run = run_command("OPENBLAS_CORETYPE=Sandybridge '" + linfuse_binary() + "' --version");
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find(linfuse::build_commit_label()) != std::string::npos);
  CHECK(run.output.find("-march=" + linfuse::build_info().target_isa) != std::string::npos);
  CHECK(run.output.find("on its Haswell kernel") != std::string::npos);
}

TEST_CASE("by default the packed GEMM runs AVX-512 only where the CPU runs it at full width, the other kernels wherever "
          "it has it", "[portable][isa]") {
  // Zen 4 (AMD family 19h) has AVX-512 but splits each 512-bit operation in two: the packed GEMM's AVX2 tile is faster
  // there, the elementwise loops and the fused attention on AVX-512.
  using namespace linfuse::kernels;
  if (!cpu_has_avx512()) CHECK_FALSE(cpu_splits_avx512());
  const std::string expected = !cpu_has_avx512()     ? "avx2"
                               : cpu_splits_avx512() ? "avx512, packed GEMM on avx2"
                                                     : "avx512";
  auto run = run_command("env -u LINFUSE_KERNEL_ISA '" + linfuse_binary() + "' --version");
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find("own kernels on " + expected + ")") != std::string::npos);
  auto forced = run_command("LINFUSE_KERNEL_ISA=avx2 '" + linfuse_binary() + "' --version");
  CHECK(forced.output.find("own kernels on avx2)") != std::string::npos);
}

TEST_CASE("the smoke study's results.json is the same whichever kernel OpenBLAS would pick", "[portable][smoke]") {
  fs::path root = fs::temp_directory_path() / ("linfuse_portable_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto study = [&](const std::string& core) {
    return smoke_study(root, core, "OPENBLAS_CORETYPE=" + core, "--suite vision --set 'vision.modes=[\"full\",\"lora\"]'");
  };
  fs::path haswell = study("Haswell"), sandybridge = study("Sandybridge");
  CHECK(slurp(haswell / "results.json") == slurp(sandybridge / "results.json"));
  CHECK(slurp(haswell / "manifest.json").find("\"blas_core\": \"Haswell\"") != std::string::npos);
  CHECK(slurp(sandybridge / "manifest.json").find("\"blas_core\": \"Haswell\"") != std::string::npos);
  fs::remove_all(root);
}

TEST_CASE("the smoke study's results.json is the same on the AVX2 and the AVX-512 paths of linfuse's own kernels", "[portable][smoke][isa]") {
  // A bad value is refused before any work, naming the variable and the fix.
  auto bad = run_command("LINFUSE_KERNEL_ISA=sse2 '" + linfuse_binary() + "' --version");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("LINFUSE_KERNEL_ISA='sse2' is not avx2 or avx512") != std::string::npos);
  if (!linfuse::kernels::cpu_has_avx512()) {
    auto refused = run_command("LINFUSE_KERNEL_ISA=avx512 '" + linfuse_binary() + "' --version");
    CHECK(refused.exit_code == 2);
    CHECK(refused.output.find("this CPU has no AVX-512") != std::string::npos);
    WARN("this CPU has no AVX-512: the study on the AVX-512 path was not compared with the AVX2 path here");
    return;
  }
  fs::path root = fs::temp_directory_path() / ("linfuse_isa_" + std::to_string(::getpid()));
  fs::remove_all(root);
  // Both suites: the vision tower's linear layers and attention, and the T5's, on each path.
  auto study = [&](const std::string& isa) {
    return smoke_study(root, isa, "LINFUSE_KERNEL_ISA=" + isa,
                       "--set 'vision.modes=[\"full\",\"lora\",\"l-lora\"]' --set 'text.modes=[\"full\",\"l-lora\"]'");
  };
  fs::path narrow = study("avx2"), wide = study("avx512");
  CHECK(slurp(narrow / "results.json") == slurp(wide / "results.json"));
  CHECK(slurp(narrow / "manifest.json").find("\"kernel_isa\": \"avx2\"") != std::string::npos);
  CHECK(slurp(wide / "manifest.json").find("\"kernel_isa\": \"avx512\"") != std::string::npos);
  fs::remove_all(root);
}
