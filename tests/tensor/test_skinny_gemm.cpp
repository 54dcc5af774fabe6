// The float32 products with a C 8 or 16 columns wide (LoRA's x A^T and g B) run on linfuse's own skinny kernel
// rather than OpenBLAS: checked against a float64 product, transposed views, addmm's accumulation and the thread
// count.
#include <catch2/catch.hpp>

#include "../helpers.h"
#include "tensor/kernels.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;

namespace {

using linfuse::testing::relative_error;

Tensor f64(const Tensor& t) { return kernels::cast(t, DType::F64); }

}  // namespace

TEST_CASE("skinny float32 products match float64 for every layout and edge of the blocking, with any thread count", "[tensor][matmul]") {
  Generator gen(11);
  struct Case {
    int64_t m, n, k;
  };
  // C 8 or 16 wide (the kernel's blocks of 8 x 1 and 4 x 2 vectors, with row tails) and the LoRA shapes of the
  // reference workload at a smaller batch; the transposed-A layouts go to OpenBLAS and are checked alike.
  for (Case c : {Case{203, 8, 70}, Case{97, 16, 40}, Case{320, 8, 128}, Case{320, 16, 512}, Case{61, 8, 1000}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        CAPTURE(c.m, c.n, c.k, ta, tb);
        Tensor a = ta ? kernels::permute(gen.normal({c.k, c.m}), {1, 0}) : gen.normal({c.m, c.k});
        Tensor b = tb ? kernels::permute(gen.normal({c.n, c.k}), {1, 0}) : gen.normal({c.k, c.n});
        Tensor expected = kernels::matmul(f64(a), f64(b));
        set_num_threads(1);
        Tensor one = kernels::matmul(a, b);
        set_num_threads(2);
        Tensor two = kernels::matmul(a, b);
        CHECK(relative_error(one, expected) < 1e-5);
        CHECK(bit_equal(one, two));
        Tensor bias = gen.normal({c.n});
        Tensor acc = kernels::addmm(bias, a, b, 0.5);
        Tensor acc_expected = kernels::addmm(f64(bias), f64(a), f64(b), 0.5);
        CHECK(relative_error(acc, acc_expected) < 1e-5);
      }
  }
  Tensor batched_a = gen.normal({3, 100, 40}), shared_b = gen.normal({40, 8});
  Tensor batched = kernels::matmul(batched_a, shared_b);
  CHECK(relative_error(batched, kernels::matmul(f64(batched_a), f64(shared_b))) < 1e-5);
}
