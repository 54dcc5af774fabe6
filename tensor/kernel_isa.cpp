#include "tensor/kernel_isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace linfuse::kernels {
namespace {

// The paths at first use, from the environment or else the CPU. A bad value or a path the CPU lacks is an error, not
// a silent fallback: whoever sets the variable is comparing paths and must know which one ran.
struct Paths {
  KernelIsa kernels, gemm;
};
Paths initial_paths() {
  const char* env = std::getenv("LINFUSE_KERNEL_ISA");
  if (env == nullptr || *env == '\0') {
    if (!cpu_has_avx512()) return {KernelIsa::avx2, KernelIsa::avx2};
    return {KernelIsa::avx512, cpu_splits_avx512() ? KernelIsa::avx2 : KernelIsa::avx512};
  }
  if (std::strcmp(env, "avx2") == 0) return {KernelIsa::avx2, KernelIsa::avx2};
  if (std::strcmp(env, "avx512") == 0) {
    if (!cpu_has_avx512())
      throw std::runtime_error("LINFUSE_KERNEL_ISA=avx512, but this CPU has no AVX-512: unset it or set it to avx2");
    return {KernelIsa::avx512, KernelIsa::avx512};
  }
  throw std::runtime_error(std::string("LINFUSE_KERNEL_ISA='") + env + "' is not avx2 or avx512: unset it to let the CPU decide");
}

const Paths& initial() {
  static const Paths paths = initial_paths();
  return paths;
}
std::atomic<int>& current_kernels() {
  static std::atomic<int> isa{int(initial().kernels)};
  return isa;
}
std::atomic<int>& current_gemm() {
  static std::atomic<int> isa{int(initial().gemm)};
  return isa;
}

}  // namespace

bool cpu_has_avx512() {
  // The default build cannot be older than x86-64-v3; the wide kernels use AVX-512F only.
  return __builtin_cpu_supports("avx512f");
}

bool cpu_splits_avx512() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!cpu_has_avx512() || !__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  if (std::strcmp(vendor, "AuthenticAMD") != 0 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned base_family = (eax >> 8) & 0xF, family = base_family == 0xF ? base_family + ((eax >> 20) & 0xFF) : base_family;
  return family == 0x19;
}

KernelIsa kernel_isa() { return KernelIsa(current_kernels().load(std::memory_order_relaxed)); }
KernelIsa gemm_isa() { return KernelIsa(current_gemm().load(std::memory_order_relaxed)); }

void set_kernel_isa(KernelIsa isa) {
  if (isa == KernelIsa::avx512 && !cpu_has_avx512())
    throw std::runtime_error("the AVX-512 kernels were asked for, but this CPU has no AVX-512F");
  current_kernels().store(int(isa), std::memory_order_relaxed);
  current_gemm().store(int(isa), std::memory_order_relaxed);
}

void reset_kernel_isa() {
  current_kernels().store(int(initial().kernels), std::memory_order_relaxed);
  current_gemm().store(int(initial().gemm), std::memory_order_relaxed);
}

std::string kernel_isa_name(KernelIsa isa) { return isa == KernelIsa::avx512 ? "avx512" : "avx2"; }

std::string kernel_paths_description() {
  const std::string paths = kernel_isa_name(kernel_isa());
  return gemm_isa() == kernel_isa() ? paths : paths + ", packed GEMM on " + kernel_isa_name(gemm_isa());
}

}  // namespace linfuse::kernels
