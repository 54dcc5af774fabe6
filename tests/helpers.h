#pragma once
// Shared test helpers.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tensor/kernel_isa.h"
#include "tensor/tensor.h"
#include "tensor/threading.h"

namespace linfuse::testing {

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  if (x.size() != y.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// Largest |x - y| relative to the largest |y|.
inline double relative_error(const Tensor& x, const Tensor& y) {
  auto a = x.to_vector<double>(), b = y.to_vector<double>();
  if (a.size() != b.size()) return INFINITY;
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

inline bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i)
    if (std::memcmp(&x[i], &y[i], sizeof(double)) != 0) return false;
  return true;
}

// The paths of linfuse's own kernels this CPU can run (tensor/kernel_isa.h): AVX2, and AVX-512 where it has it.
inline std::vector<kernels::KernelIsa> kernel_paths() {
  std::vector<kernels::KernelIsa> paths{kernels::KernelIsa::avx2};
  if (kernels::cpu_has_avx512()) paths.push_back(kernels::KernelIsa::avx512);
  return paths;
}

// For a test comparing the AVX-512 path with the AVX2 path: true where the CPU has AVX-512. Elsewhere nothing can be
// compared; what is checked is that the wide path is refused, not run, and a warning names what was not compared.
inline bool can_compare_kernel_paths(const std::string& what) {
  if (kernels::cpu_has_avx512()) return true;
  CHECK_THROWS_WITH(kernels::set_kernel_isa(kernels::KernelIsa::avx512), Catch::Contains("no AVX-512"));
  CHECK(kernels::kernel_isa() == kernels::KernelIsa::avx2);
  WARN("this CPU has no AVX-512: " + what + " was not compared with the AVX2 path here");
  return false;
}

// outputs() (a vector of tensors) on every kernel path at 1 and 2 threads, each tensor checked bit for bit against
// `reference`; `what` names the tensors in a failure. Restores the path in use and 2 threads.
template <class Outputs>
void check_bits_on_every_path(const std::vector<Tensor>& reference, const Outputs& outputs, const std::string& what) {
  for (kernels::KernelIsa isa : kernel_paths())
    for (int threads : {1, 2}) {
      CAPTURE(kernels::kernel_isa_name(isa), threads);
      kernels::set_kernel_isa(isa);
      set_num_threads(threads);
      const std::vector<Tensor> got = outputs();
      REQUIRE(got.size() == reference.size());
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("tensor " << i << " (" << what << ")");
        CHECK(bit_equal(got[i], reference[i]));
      }
    }
  kernels::reset_kernel_isa();
  set_num_threads(2);
}

inline std::string source_path(const std::string& rel) { return std::string(LINFUSE_SOURCE_DIR) + "/" + rel; }

}  // namespace linfuse::testing
