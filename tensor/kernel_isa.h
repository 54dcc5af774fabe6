#pragma once
// Which vector width linfuse's own GEMM kernels run at: 8 floats (AVX2, every machine the default build
// supports) or 16 (AVX-512, where the CPU has it). The choice changes speed only, never a bit of a result: every
// element of a product is summed over k in the same order by one multiply-add per step on either path (the
// kernels vectorize over C's columns, never over the reduction), so a wider register holds more independent sums.
// Chosen once per process: AVX-512 where the CPU has it and runs 512-bit operations at full width, AVX2 elsewhere
// (AMD's Zen 4 splits each 512-bit operation into two 256-bit halves: there the packed GEMM's AVX2 tile measured
// 7-19% faster in isolation and the training steps about 5% faster, docs/performance.md); LINFUSE_KERNEL_ISA=avx2 or
// avx512 overrides the choice.
#include <string>

namespace linfuse::kernels {

enum class KernelIsa { avx2, avx512 };

// The path in use (from the CPU and LINFUSE_KERNEL_ISA at first call, or the last set_kernel_isa).
KernelIsa kernel_isa();
// Forces a path (tests compare them bit for bit). Throws std::runtime_error naming the CPU's lack when the CPU
// cannot run `isa`.
void set_kernel_isa(KernelIsa isa);
bool cpu_has_avx512();
// Whether the CPU has AVX-512 but runs it as two 256-bit halves (AMD family 19h, Zen 4: the only family of that
// vendor with AVX-512 and without full-width units), where the AVX2 path is the faster one.
bool cpu_splits_avx512();
std::string kernel_isa_name(KernelIsa isa);   // "avx2" or "avx512"

}  // namespace linfuse::kernels
