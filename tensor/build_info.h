#pragma once
// What this binary is: the commit it was built from, the compiler, the instruction set it targets, and the
// OpenBLAS kernel it runs on. Recorded in every manifest, benchmark table and merged file, so that a result
// can be traced to the code and the machine code that produced it.
#include <string>

namespace linfuse {

struct BuildInfo {
  std::string commit;       // short hash of the source tree at build time, "unknown" outside git
  bool dirty = false;       // tracked files had uncommitted changes when it was built
  std::string compiler;     // "GNU 12.2.0"
  std::string target_isa;   // the -march of the build: "x86-64-v3" (default), "native", "x86-64"
  std::string build_type;   // "Release", "Debug", ...
};
const BuildInfo& build_info();

// The commit as one word: "c469ad2f1e0b", or "c469ad2f1e0b-dirty".
std::string build_commit_label();

// One line for --version and logs: "linfuse c469ad2f1e0b (GNU 12.2.0, Release, -march=x86-64-v3; OpenBLAS
// 0.3.21 on its Haswell kernel)".
std::string build_summary();

}  // namespace linfuse
