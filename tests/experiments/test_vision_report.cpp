// Hidden reports on the vision suite (run with: ./build/test_experiments "[.report]"): load time, raw-pixel
// baselines and a PGM preview per task, written to $LINFUSE_PREVIEW_DIR (default: the working directory).
#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <algorithm>
#include <cstdlib>

#include "tests/experiments/vision_checks.h"
#include "tests/helpers.h"

using namespace linfuse;

namespace {
std::string report_data_dir() {
  const char* env = std::getenv("LINFUSE_DATA_DIR");
  return env && *env ? env : testing::source_path("data");
}
}  // namespace

TEST_CASE("vision report: load time, nearest-centroid baseline and previews", "[.report]") {
  const char* env = std::getenv("LINFUSE_PREVIEW_DIR");
  std::string dir = env ? env : ".";
  data::VisionOptions options;
  options.data_dir = report_data_dir();
  // LINFUSE_STYLE_STRENGTH=0.5 (say): the styled tasks (vision_style.h), previews as PPM.
  if (const char* style = std::getenv("LINFUSE_STYLE_STRENGTH")) options.style_strength = std::atof(style);
  for (const std::string& name : data::vision_task_names()) {
    auto start = std::chrono::steady_clock::now();
    std::clock_t cpu_start = std::clock();
    data::ImageTask task = data::load_vision_task(name, options);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double cpu_seconds = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    int64_t classes = int64_t(task.class_names.size());
    double train_fit = testing::nearest_centroid_accuracy(task.train, task.train, classes);
    double test_accuracy = testing::nearest_centroid_accuracy(task.train, task.test, classes);
    std::printf("%-14s classes %2lld  load %.3f s (cpu %.3f s)  nearest-centroid train %.3f test %.3f (chance %.3f)\n",
                name.c_str(), (long long)classes, seconds, cpu_seconds, train_fit, test_accuracy, 1.0 / double(classes));
    // 1-nearest-neighbour on raw pixels (first 300 test images): a non-linear reference point.
    int64_t correct = 0, shown = std::min<int64_t>(300, task.test.count);
    for (int64_t i = 0; i < shown; ++i) {
      const int64_t values = task.test.values_per_image();
      const float* image = task.test.pixels.data() + i * values;
      double best = 1e300;
      int64_t best_label = -1;
      for (int64_t j = 0; j < task.train.count; ++j) {
        const float* other = task.train.pixels.data() + j * values;
        double distance = 0;
        for (int64_t p = 0; p < values; ++p) distance += double(image[p] - other[p]) * (image[p] - other[p]);
        if (distance < best) best = distance, best_label = task.train.labels[size_t(j)];
      }
      correct += best_label == task.test.labels[size_t(i)];
    }
    std::printf("%-14s 1-nearest-neighbour test %.3f\n", name.c_str(), double(correct) / double(shown));
    data::write_preview(task.train, classes, 10, dir + "/preview_" + name + (task.train.channels == 1 ? ".pgm" : ".ppm"));
  }
}

TEST_CASE("vision report: a nearest-centroid classifier of task A applied to task B", "[.report]") {
  data::VisionOptions options;
  options.train = 1000, options.validation = 0, options.test = 500, options.pretrain = 0;
  options.data_dir = report_data_dir();
  std::vector<data::ImageTask> tasks;
  for (const std::string& name : data::vision_task_names()) tasks.push_back(data::load_vision_task(name, options));
  std::printf("%-14s", "train \\ test");
  for (const auto& b : tasks) std::printf(" %8.8s", b.name.c_str());
  std::printf("\n");
  for (const auto& a : tasks) {
    std::printf("%-14s", a.name.c_str());
    for (const auto& b : tasks)
      std::printf(" %8.3f", testing::nearest_centroid_accuracy(a.train, b.test, int64_t(a.class_names.size())));
    std::printf("\n");
  }
  std::printf("RMS distance between the mean images of two tasks:\n");
  for (const auto& a : tasks) {
    std::printf("%-14s", a.name.c_str());
    for (const auto& b : tasks) std::printf(" %8.3f", testing::rms_distance(testing::mean_image(a.train), testing::mean_image(b.train)));
    std::printf("\n");
  }
}
