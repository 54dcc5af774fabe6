#pragma once
// Checks shared by the vision-data tests and the report: raw-pixel baselines and image hashes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "experiments/vision_tasks.h"

namespace linfuse::testing {

// Accuracy on `test` of the nearest of the class means (squared distance on raw pixels); the index of the
// nearest mean is compared with the labels of `test` as they are.
inline double nearest_centroid_accuracy(const std::vector<std::vector<double>>& means, const data::ImageSplit& test) {
  const int64_t classes = int64_t(means.size());
  int64_t correct = 0;
  for (int64_t i = 0; i < test.count; ++i) {
    const float* image = test.pixels.data() + i * test.values_per_image();
    int64_t best = 0;
    double best_distance = 1e300;
    for (int64_t c = 0; c < classes; ++c) {
      double distance = 0;
      for (int64_t p = 0; p < test.values_per_image(); ++p) {
        double d = image[p] - means[size_t(c)][size_t(p)];
        distance += d * d;
      }
      if (distance < best_distance) best_distance = distance, best = c;
    }
    correct += best == test.labels[size_t(i)];
  }
  return double(correct) / double(test.count);
}

inline double nearest_centroid_accuracy(const data::ImageSplit& train, const data::ImageSplit& test, int64_t classes) {
  return nearest_centroid_accuracy(data::class_mean_images(train, classes), test);
}

// The mean of all images of a split (channels x 784 values).
inline std::vector<double> mean_image(const data::ImageSplit& split) {
  const int64_t values = split.values_per_image();
  std::vector<double> mean(size_t(values), 0.0);
  for (int64_t i = 0; i < split.count; ++i)
    for (int64_t p = 0; p < values; ++p) mean[size_t(p)] += split.pixels[size_t(i * values + p)];
  for (double& value : mean) value /= double(std::max<int64_t>(1, split.count));
  return mean;
}

inline double rms_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(sum / double(a.size()));
}

// FNV-1a over the bytes of image i.
inline uint64_t image_hash(const data::ImageSplit& split, int64_t i) {
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(split.pixels.data() + i * split.values_per_image());
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t k = 0; k < size_t(split.values_per_image()) * sizeof(float); ++k) hash = (hash ^ bytes[k]) * 0x100000001b3ull;
  return hash;
}

}  // namespace linfuse::testing
