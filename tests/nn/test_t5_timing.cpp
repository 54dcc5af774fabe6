// Timing of the default tiny T5 (hidden: run with ./test_nn "[.t5-timing]"). Prints the parameter count and the
// forward and forward+backward times (wall clock and process CPU time, best of 3) at batch 32 x 64 input
// tokens with 64 and with 4 target tokens, with 1 and 2 threads, in train mode (dropout) and eval mode.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sys/resource.h>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/t5.h"
#include "tensor/threading.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {

// CPU time of the whole process (all threads), which other jobs on a shared machine do not inflate.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + 1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

struct Timing {
  double wall = 1e30, cpu = 1e30;   // best of the repeats, seconds
};

template <class F>
Timing best_of(int repeats, F&& f) {
  Timing best;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    double cpu_start = process_cpu_seconds();
    f();
    best.cpu = std::min(best.cpu, process_cpu_seconds() - cpu_start);
    best.wall = std::min(best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

TEST_CASE("timing of the default tiny T5 at batch 32 x 64 tokens", "[.t5-timing]") {
  const int previous_threads = num_threads();
  T5Config config = tiny_t5_config();
  Generator init(1);
  T5ForConditionalGeneration model(config, init);
  std::printf("[t5 timing] tiny_t5_config(vocab %lld): %lld parameters\n", (long long)config.vocab_size,
              (long long)model.num_parameters());
  const int64_t batch = 32, source_length = 64;
  Generator data(2);
  Tensor input_ids = data.randint({batch, source_length}, 3, config.vocab_size);
  Tensor attention_mask = Tensor::ones({batch, source_length}, DType::I64);
  // 64 target tokens (a seq2seq batch) and 4 (a GLUE label word + eos, the paper's fine-tuning shape)
  for (int64_t target_length : {64, 4}) {
    Tensor labels = data.randint({batch, target_length}, 3, config.vocab_size);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (bool training : {true, false}) {
        model.train(training);   // training: dropout 0.1 on, as in fine-tuning
        Timing forward = best_of(3, [&] {
          NoGradGuard no_grad;
          model.forward(input_ids, attention_mask, labels);
        });
        Timing forward_backward = best_of(3, [&] {
          backward(model.forward(input_ids, attention_mask, labels).loss);
          model.zero_grad();
        });
        std::printf("[t5 timing] %lld x (%lld -> %lld) tokens, %d thread(s), %-20s: forward %6.1f ms (cpu %6.1f), "
                    "forward+backward %6.1f ms (cpu %6.1f)\n",
                    (long long)batch, (long long)source_length, (long long)target_length, threads,
                    training ? "train mode (dropout)" : "eval mode", 1e3 * forward.wall, 1e3 * forward.cpu,
                    1e3 * forward_backward.wall, 1e3 * forward_backward.cpu);
      }
    }
  }
  set_num_threads(previous_threads);
  CHECK(model.num_parameters() == 2624512);
}
