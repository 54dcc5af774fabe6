// run_concurrently (tensor/threading.h): every job runs once, side-by-side jobs compute the bits they compute
// alone, and a job's exception reaches the caller after the other jobs have ended.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "../helpers.h"
#include "tensor/kernels.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;

namespace {

// Restores the thread setting a test changed.
struct ThreadSetting {
  int saved = num_threads();
  ~ThreadSetting() { set_num_threads(saved); }
};

// A job's work: two chained products large enough to be tiled over several TBB chunks.
Tensor product_chain(uint64_t seed) {
  Generator gen(seed);
  Tensor a = gen.normal({300, 200}), b = gen.normal({200, 250}), c = gen.normal({250, 90});
  return kernels::matmul(kernels::matmul(a, b), c);
}

}  // namespace

TEST_CASE("run_concurrently runs every job once and each gives the bits it gives alone", "[tensor][threads]") {
  ThreadSetting restore;
  const int64_t jobs = 7;
  set_num_threads(1);
  std::vector<Tensor> alone(jobs);
  for (int64_t i = 0; i < jobs; ++i) alone[size_t(i)] = product_chain(uint64_t(100 + i));
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    set_num_threads(threads);
    std::vector<Tensor> together(jobs);
    std::vector<std::atomic<int>> runs(jobs);
    run_concurrently(jobs, [&](int64_t i) {
      ++runs[size_t(i)];
      together[size_t(i)] = product_chain(uint64_t(100 + i));
    });
    for (int64_t i = 0; i < jobs; ++i) {
      CHECK(runs[size_t(i)] == 1);
      CHECK(bit_equal(together[size_t(i)], alone[size_t(i)]));
    }
  }
}

TEST_CASE("a job's exception reaches the caller of run_concurrently, after the running jobs end", "[tensor][threads]") {
  ThreadSetting restore;
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    set_num_threads(threads);
    std::atomic<int> finished{0};
    CHECK_THROWS_WITH(run_concurrently(6,
                                       [&](int64_t i) {
                                         if (i == 1) throw std::runtime_error("job 1 failed");
                                         product_chain(uint64_t(i));
                                         ++finished;
                                       }),
                      "job 1 failed");
    // job 0 ran (it starts first in either case); no job ran after the failure was seen by its worker.
    CHECK(finished >= 1);
    CHECK(finished <= 5);
  }
  CHECK_NOTHROW(run_concurrently(0, [](int64_t) { throw std::runtime_error("never called"); }));
}
