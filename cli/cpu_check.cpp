// Before anything else runs: a CPU without the instruction set this build targets (x86-64-v3 by default:
// AVX2, FMA) gets a message instead of an illegal instruction somewhere in a kernel. This file alone is
// compiled for the x86-64 baseline (CMakeLists.txt), and its constructor runs before every other static
// initializer of the program (priority 101), so nothing built for AVX2 has run yet.
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

__attribute__((constructor(101))) void require_target_isa() {
#if defined(LINFUSE_TARGET_ISA)
  constexpr const char* isa = LINFUSE_TARGET_ISA;
  if (std::strcmp(isa, "native") == 0 || std::strcmp(isa, "x86-64") == 0) return;   // nothing to check
  __builtin_cpu_init();
  bool supported = true;
  if (std::strcmp(isa, "x86-64-v2") == 0) supported = __builtin_cpu_supports("x86-64-v2");
  if (std::strcmp(isa, "x86-64-v3") == 0) supported = __builtin_cpu_supports("x86-64-v3");
  if (std::strcmp(isa, "x86-64-v4") == 0) supported = __builtin_cpu_supports("x86-64-v4");
  if (supported) return;
  static const char part1[] = "linfuse: this CPU cannot run ";
  static const char part2[] =
      " code, which this build of linfuse targets. Rebuild it for the baseline instruction set: "
      "make CMAKE_FLAGS=-DLINFUSE_MARCH=x86-64 (README.md, Building)\n";
  (void)!write(2, part1, sizeof part1 - 1);
  (void)!write(2, isa, std::strlen(isa));
  (void)!write(2, part2, sizeof part2 - 1);
  _exit(4);
#endif
}

}  // namespace
