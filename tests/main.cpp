// Catch2 main for every test binary. OpenBLAS is pinned to one kernel as in `linfuse` (tensor/blas_kernel.h), so
// that results recorded in tests (the base checkpoints' hashes) are the same on every machine. Each run gets its
// own temporary folder (TMPDIR, which std::filesystem::temp_directory_path reads), so two test runs at once never
// share scratch paths.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "tensor/blas_kernel.h"

int main(int argc, char* argv[]) {
  linfuse::pin_blas_core(argv);
  namespace fs = std::filesystem;
  fs::path scratch = fs::temp_directory_path() / ("linfuse_test_" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  ::setenv("TMPDIR", scratch.c_str(), 1);
  int failed = Catch::Session().run(argc, argv);
  std::error_code ignored;
  fs::remove_all(scratch, ignored);
  return failed;
}
