// Looking at image splits: class means and a contact sheet (PGM for gray images, PPM for styled RGB ones).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "experiments/vision_tasks.h"

namespace linfuse::data {

std::vector<std::vector<double>> class_mean_images(const ImageSplit& split, int64_t classes) {
  const int64_t values = split.values_per_image();
  std::vector<std::vector<double>> means(size_t(classes), std::vector<double>(size_t(values), 0.0));
  std::vector<int64_t> counts(size_t(classes), 0);
  for (int64_t i = 0; i < split.count; ++i) {
    int64_t label = split.labels[size_t(i)];
    if (label < 0 || label >= classes)
      throw std::invalid_argument("[class_mean_images] label " + std::to_string(label) + " at index " +
                                  std::to_string(i) + " is outside 0.." + std::to_string(classes - 1));
    ++counts[size_t(label)];
    const float* image = split.pixels.data() + i * values;
    for (int64_t p = 0; p < values; ++p) means[size_t(label)][size_t(p)] += image[p];
  }
  for (int64_t c = 0; c < classes; ++c)
    for (double& value : means[size_t(c)]) value /= double(std::max<int64_t>(1, counts[size_t(c)]));
  return means;
}

void write_preview(const ImageSplit& split, int64_t classes, int64_t per_class, const std::string& path) {
  const int64_t gap = 2, cell = kImageSide + gap, channels = split.channels;
  const int64_t width = per_class * cell + gap, height = classes * cell + gap;
  std::vector<unsigned char> sheet(size_t(width * height * channels), 128);   // gray gaps frame each image
  std::vector<int64_t> shown(size_t(classes), 0);
  for (int64_t i = 0; i < split.count; ++i) {
    int64_t label = split.labels[size_t(i)];
    if (label < 0 || label >= classes || shown[size_t(label)] >= per_class) continue;
    int64_t top = gap + label * cell, left = gap + shown[size_t(label)]++ * cell;
    const float* image = split.pixels.data() + i * split.values_per_image();   // (channels, 28, 28)
    for (int64_t row = 0; row < kImageSide; ++row)
      for (int64_t col = 0; col < kImageSide; ++col)
        for (int64_t c = 0; c < channels; ++c)   // the sheet is interleaved: PPM's RGB triples
          sheet[size_t(((top + row) * width + left + col) * channels + c)] = (unsigned char)std::lround(
              std::clamp(image[c * kImagePixels + row * kImageSide + col], 0.0f, 1.0f) * 255.0f);
  }
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("[write_preview] cannot write " + path + ": check the directory exists");
  out << (channels == 1 ? "P5\n" : "P6\n") << width << " " << height << "\n255\n";
  out.write(reinterpret_cast<const char*>(sheet.data()), std::streamsize(sheet.size()));
}

}  // namespace linfuse::data
