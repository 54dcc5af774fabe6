#pragma once
// Which vector width linfuse's own kernels run at: 8 floats (AVX2, every machine the default build supports) or
// 16 (AVX-512, where the CPU has it). The choice changes speed only, never a bit of a result: every element of a
// product is summed over k in the same order by one multiply-add per step on either path (the kernels vectorize over
// C's columns, never over the reduction), so a wider register holds more independent sums; an elementwise loop has no
// sum across elements.
// Chosen once per process, per kind of kernel: AVX-512 where the CPU has it, AVX2 elsewhere; except the packed GEMM's
// register tile on CPUs that run each 512-bit operation as two 256-bit halves (AMD's Zen 4), where its AVX2 tile is
// the faster one while the elementwise loops and the fused attention are faster on AVX-512 (docs/performance.md).
// LINFUSE_KERNEL_ISA=avx2 or avx512 forces one path for every kernel.
#include <string>

namespace linfuse::kernels {

enum class KernelIsa { avx2, avx512 };

// The path in use (from the CPU and LINFUSE_KERNEL_ISA at first call, or the last set_kernel_isa) of the elementwise
// loops, the fused attention's tiles and the GEMM's epilogues,
KernelIsa kernel_isa();
// and of the packed GEMM's register tile.
KernelIsa gemm_isa();
// Forces one path for every kernel (tests compare them bit for bit). Throws std::runtime_error naming the CPU's lack
// when the CPU cannot run `isa`.
void set_kernel_isa(KernelIsa isa);
// Back to the choice made at first use (the CPU's, or LINFUSE_KERNEL_ISA's).
void reset_kernel_isa();
// What runs, for --version and the manifests: "avx2", "avx512", or "avx512, packed GEMM on avx2".
std::string kernel_paths_description();
bool cpu_has_avx512();
// Whether the CPU has AVX-512 but runs it as two 256-bit halves (AMD family 19h, Zen 4: the only family of that
// vendor with AVX-512 and without full-width units), where the packed GEMM's AVX2 tile is the faster one.
bool cpu_splits_avx512();
std::string kernel_isa_name(KernelIsa isa);   // "avx2" or "avx512"

}  // namespace linfuse::kernels
