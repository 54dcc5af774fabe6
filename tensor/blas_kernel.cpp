#include "tensor/blas_kernel.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace linfuse {

namespace {
// Set in the restarted program, so that a setting OpenBLAS ignores cannot restart it again and again.
constexpr const char* kRestartMarker = "LINFUSE_BLAS_CORE_RESTARTED";
}  // namespace

std::string blas_core_name() { return openblas_get_corename(); }

std::string blas_version() {
  std::istringstream config(openblas_get_config());   // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
  std::string name, version;
  config >> name >> version;
  return name + " " + version;
}

std::string blas_description() { return blas_version() + " on its " + blas_core_name() + " kernel"; }

void pin_blas_core(char** argv) {
  const bool restarted = std::getenv(kRestartMarker) != nullptr;
  unsetenv(kRestartMarker);   // not inherited by the programs this one starts
  const char* choice = std::getenv("LINFUSE_BLAS_CORE");
  if (choice && std::string(choice) == "native") return;
  if (blas_core_name() == kPinnedBlasCore) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
  if (restarted) {
    std::fprintf(stderr, "linfuse: warning: OpenBLAS runs on its %s kernel although OPENBLAS_CORETYPE=%s was set; "
                 "products may differ in the last bits from those of other machines\n",
                 blas_core_name().c_str(), kPinnedBlasCore);
    return;
  }
  setenv("OPENBLAS_CORETYPE", kPinnedBlasCore, 1);
  setenv(kRestartMarker, "1", 1);
  execv("/proc/self/exe", argv);
  std::perror("linfuse: warning: could not restart with OPENBLAS_CORETYPE=Haswell (execv)");
  unsetenv(kRestartMarker);
}

}  // namespace linfuse
