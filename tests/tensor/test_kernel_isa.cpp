// The kernel paths' switches (tensor/kernel_isa.h): what the tests and the benchmarks rely on to compare paths.
#include <catch2/catch.hpp>

#include "tensor/kernel_isa.h"

using namespace linfuse::kernels;

TEST_CASE("set_kernel_isa forces every kernel's path, reset_kernel_isa returns to the choice made at first use",
          "[tensor][isa]") {
  reset_kernel_isa();
  const KernelIsa kernels = kernel_isa(), gemm = gemm_isa();
  // The default: the packed GEMM narrower only where the CPU splits 512-bit operations (unless LINFUSE_KERNEL_ISA forced
  // one path for all).
  if (!cpu_has_avx512()) CHECK((kernels == KernelIsa::avx2 && gemm == KernelIsa::avx2));
  if (gemm != kernels) CHECK((cpu_splits_avx512() && kernels == KernelIsa::avx512 && gemm == KernelIsa::avx2));
  set_kernel_isa(KernelIsa::avx2);
  CHECK(kernel_isa() == KernelIsa::avx2);
  CHECK(gemm_isa() == KernelIsa::avx2);
  CHECK(kernel_paths_description() == "avx2");
  if (cpu_has_avx512()) {
    set_kernel_isa(KernelIsa::avx512);
    CHECK(kernel_isa() == KernelIsa::avx512);
    CHECK(gemm_isa() == KernelIsa::avx512);
    CHECK(kernel_paths_description() == "avx512");
  } else {
    CHECK_THROWS_WITH(set_kernel_isa(KernelIsa::avx512), Catch::Contains("no AVX-512"));
  }
  reset_kernel_isa();
  CHECK(kernel_isa() == kernels);
  CHECK(gemm_isa() == gemm);
  CHECK(kernel_paths_description() ==
        (gemm == kernels ? kernel_isa_name(kernels) : kernel_isa_name(kernels) + ", packed GEMM on " + kernel_isa_name(gemm)));
}
