#pragma once
// Which compute kernel OpenBLAS runs on, and pinning it. Debian builds OpenBLAS with DYNAMIC_ARCH: when it is
// loaded it picks a kernel for the CPU it finds (Haswell on AVX2 machines, SkylakeX or Cooperlake on AVX-512
// ones, Zen on AMD, ...). The kernels block and fuse their arithmetic differently, so one product gives other
// bits on another machine: the smoke study's results.json differed between OPENBLAS_CORETYPE=Haswell,
// Sandybridge and SkylakeX (docs/design.md, "Same bits on every machine"). linfuse therefore runs OpenBLAS on
// one kernel that every machine it targets can run, Haswell (AVX2 + FMA), as its own kernels do.
#include <string>

namespace linfuse {

inline constexpr const char* kPinnedBlasCore = "Haswell";

std::string blas_core_name();     // the kernel OpenBLAS runs on: "Haswell", "SkylakeX", ...
std::string blas_version();       // "OpenBLAS 0.3.21"
std::string blas_description();   // "OpenBLAS 0.3.21 on its Haswell kernel"

// Call first thing in main(). OpenBLAS reads OPENBLAS_CORETYPE only when it is loaded, so when it runs on
// another kernel than kPinnedBlasCore, this restarts the program (execv of /proc/self/exe, same arguments)
// with OPENBLAS_CORETYPE=Haswell, and returns in the restarted program. It returns at once, changing nothing,
// when the kernel is already the pinned one, when the CPU lacks AVX2 or FMA (a baseline x86-64 build), or
// when LINFUSE_BLAS_CORE=native asks to keep OpenBLAS's own choice (to benchmark its AVX-512 kernels, say);
// it warns on stderr when the restart fails or OpenBLAS ignores the setting (a build without DYNAMIC_ARCH).
// Under valgrind or a debugger, set OPENBLAS_CORETYPE=Haswell yourself: the restart would leave the tool.
void pin_blas_core(char** argv);

}  // namespace linfuse
