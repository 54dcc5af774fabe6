// Size and speed of the default tiny CLIP (CLIPConfig::tiny()): parameter counts, and forward / forward+backward
// time of the image tower at batch 64 with 1 and 2 threads. Hidden (tag [.]): run with
//   ./build/test_nn "[clip-bench]"
// The parameter counts are also checked by a regular test in test_clip.cpp.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/clip.h"
#include "tensor/threading.h"

using namespace linfuse;
using namespace linfuse::nn;

namespace {
// Median of `repeats` timings of `step`, in milliseconds, after two warm-up runs.
template <class F>
double median_ms(int repeats, F&& step) {
  for (int i = 0; i < 2; ++i) step();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}
}  // namespace

TEST_CASE("tiny CLIP size and image-tower speed at batch 64", "[.][clip-bench]") {
  Generator init(0);
  CLIPConfig config = CLIPConfig::tiny();
  CLIPModel clip(config, init);
  std::printf("tiny CLIP parameters: vision_model %lld + visual_projection %lld, text_model %lld + text_projection %lld, "
              "logit_scale 1; total %lld\n",
              (long long)clip.vision_model->num_parameters(), (long long)clip.visual_projection->num_parameters(),
              (long long)clip.text_model->num_parameters(), (long long)clip.text_projection->num_parameters(),
              (long long)clip.num_parameters());
  Generator data(1);
  Tensor pixels = data.normal({64, 1, 28, 28});
  Tensor cotangent = data.normal({64, config.projection_dim});
  const int previous = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    double forward_ms = median_ms(9, [&] {
      NoGradGuard no_grad;
      Tensor f = clip.get_image_features(pixels);
      CHECK(f.shape() == Shape{64, config.projection_dim});
    });
    double train_ms = median_ms(9, [&] {
      clip.zero_grad();
      Tensor f = clip.get_image_features(pixels);
      backward(sum(mul(f, cotangent)));
    });
    std::printf("image tower, batch 64, %d thread(s): forward %.1f ms, forward+backward %.1f ms\n", threads, forward_ms,
                train_ms);
  }
  set_num_threads(previous);
}
