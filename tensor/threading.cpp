#include "tensor/threading.h"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace linfuse {
namespace {

struct ThreadState {
  int threads = 0;
  std::unique_ptr<tbb::global_control> control;
};

ThreadState& state() {
  static ThreadState* s = [] {
    auto* st = new ThreadState();
    int n = 0;
    if (const char* env = std::getenv("LINFUSE_THREADS")) n = std::atoi(env);
    if (n <= 0) n = (int)std::max(1u, std::thread::hardware_concurrency());
    st->threads = n;
    st->control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
    openblas_set_num_threads(1);   // TBB owns the threads; BLAS runs inside its tasks (see kernels_matmul.cpp)
    return st;
  }();
  return *s;
}

}  // namespace

void set_num_threads(int threads) {
  if (threads < 1) throw std::invalid_argument("[set_num_threads] needs at least 1 thread, got " + std::to_string(threads));
  ThreadState& s = state();
  s.threads = threads;
  s.control.reset();
  s.control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
}

int num_threads() { return state().threads; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1 || num_threads() == 1) {
    for (int64_t c = 0; c < chunks; ++c) body(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t c = r.begin(); c < r.end(); ++c) body(c * grain, std::min(n, (c + 1) * grain));
      },
      tbb::simple_partitioner());
}

void run_concurrently(int64_t count, const std::function<void(int64_t)>& job) {
  const int64_t workers = std::min<int64_t>(num_threads(), count);
  if (workers <= 1) {
    for (int64_t i = 0; i < count; ++i) job(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto worker = [&] {
    tbb::task_arena one_thread(1);
    for (int64_t i = next++; i < count && !failed; i = next++) {
      try {
        one_thread.execute([&] { job(i); });
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace linfuse
