#include "tensor/build_info.h"

#include "linfuse_build_commit.h"   // written at build time (cmake/write_build_commit.cmake)
#include "tensor/blas_kernel.h"
#include "tensor/kernel_isa.h"

namespace linfuse {

// LINFUSE_TARGET_ISA, LINFUSE_COMPILER and LINFUSE_BUILD_TYPE come from CMakeLists.txt for this file alone.
const BuildInfo& build_info() {
  static const BuildInfo info{LINFUSE_BUILD_COMMIT, LINFUSE_BUILD_DIRTY != 0, LINFUSE_COMPILER, LINFUSE_TARGET_ISA,
                              LINFUSE_BUILD_TYPE};
  return info;
}

std::string build_commit_label() {
  const BuildInfo& b = build_info();
  return b.commit + (b.dirty ? "-dirty" : "");
}

std::string build_summary() {
  const BuildInfo& b = build_info();
  return "linfuse " + build_commit_label() + " (" + b.compiler + ", " + b.build_type + ", -march=" + b.target_isa +
         "; " + blas_description() + "; own kernels on " + kernels::kernel_paths_description() + ")";
}

}  // namespace linfuse
