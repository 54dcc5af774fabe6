// Domain styles (experiments/vision_style.h): strength 0 is the gray image, styles are per task and never per class,
// they separate the tasks' colour statistics more as the strength grows, and mnist and glyphs stay related.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdlib>
#include <map>

#include "experiments/vision_style.h"
#include "experiments/vision_suite.h"
#include "experiments/vision_tasks.h"
#include "tests/experiments/vision_checks.h"
#include "tests/helpers.h"

using namespace linfuse;

namespace {

std::string test_data_dir() {
  const char* env = std::getenv("LINFUSE_DATA_DIR");
  return env && *env ? env : testing::source_path("data");
}

data::ImageTask styled_task(const std::string& name, double strength, int64_t train = 200) {
  data::VisionOptions options;
  options.train = train, options.validation = 10, options.test = 10, options.pretrain = 10;
  options.data_dir = test_data_dir();
  options.style_strength = strength;
  return data::load_vision_task(name, options);
}

// The mean colour of an image's 4 x 4 corner patches (R, G, B): its background, away from the object.
std::array<double, 3> corner_colour(const data::ImageSplit& split, int64_t i) {
  std::array<double, 3> colour{0, 0, 0};
  const float* image = split.pixels.data() + i * split.values_per_image();
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0;
    for (int64_t row : {0, 1, 2, 3, 24, 25, 26, 27})
      for (int64_t col : {0, 1, 2, 3, 24, 25, 26, 27}) sum += image[c * data::kImagePixels + row * data::kImageSide + col];
    colour[size_t(c)] = sum / 64;
  }
  return colour;
}

std::array<double, 3> mean_corner_colour(const data::ImageSplit& split) {
  std::array<double, 3> mean{0, 0, 0};
  for (int64_t i = 0; i < split.count; ++i)
    for (int64_t c = 0; c < 3; ++c) mean[size_t(c)] += corner_colour(split, i)[size_t(c)] / double(split.count);
  return mean;
}

double distance(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

}  // namespace

TEST_CASE("strength 0 gives the gray image in three channels, bit for bit", "[vision][style]") {
  data::ImageTask gray = styled_task("shapes", -1), zero = styled_task("shapes", 0);
  REQUIRE(gray.train.channels == 1);
  REQUIRE(zero.train.channels == 3);
  REQUIRE(zero.train.labels == gray.train.labels);
  for (int64_t i = 0; i < gray.train.count; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < data::kImagePixels; ++p)
        REQUIRE(zero.train.pixels[size_t((i * 3 + c) * data::kImagePixels + p)] ==
                gray.train.pixels[size_t(i * data::kImagePixels + p)]);
}

TEST_CASE("styled images are deterministic, in [0, 1], and their labels are the gray task's", "[vision][style]") {
  data::ImageTask a = styled_task("fashion_mnist", 0.7), b = styled_task("fashion_mnist", 0.7), gray = styled_task("fashion_mnist", -1);
  CHECK(a.train.pixels == b.train.pixels);
  CHECK(a.train.labels == gray.train.labels);
  for (float v : a.train.pixels) REQUIRE((v >= 0 && v <= 1));
}

TEST_CASE("a style is per task, never per class: every class has the same background colours", "[vision][style]") {
  // The style's draws never see the label, so the mean background colour of each class is the task's, within
  // sampling noise (100 images a class: the palette's spread / 10).
  for (const std::string& name : data::vision_task_names()) {
    if (name == "textures") continue;   // its classes are patterns that fill the frame, corners included
    INFO(name);
    data::ImageTask task = styled_task(name, 1.0, 1000);
    const int64_t classes = int64_t(task.class_names.size());
    std::array<double, 3> all = mean_corner_colour(task.train);
    std::vector<std::array<double, 3>> per_class(size_t(classes), {0, 0, 0});
    std::vector<int64_t> counts(size_t(classes), 0);
    for (int64_t i = 0; i < task.train.count; ++i) {
      int64_t label = task.train.labels[size_t(i)];
      ++counts[size_t(label)];
      for (int64_t c = 0; c < 3; ++c) per_class[size_t(label)][size_t(c)] += corner_colour(task.train, i)[size_t(c)];
    }
    for (int64_t k = 0; k < classes; ++k) {
      for (double& v : per_class[size_t(k)]) v /= double(counts[size_t(k)]);
      CHECK(distance(per_class[size_t(k)], all) < 0.08);
    }
  }
}

TEST_CASE("the strength separates the tasks: their mean colours tell the task apart better as it grows", "[vision][style]") {
  // A nearest-centroid "which task" classifier on an image's mean colour (3 numbers), fitted on the first half of
  // each task's images and scored on the second: at strength 0 the colour is gray, so only each generator's own
  // brightness tells the tasks apart; styles add hue, and more so at full strength.
  std::map<double, double> accuracy;
  for (double strength : {0.0, 0.5, 1.0}) {
    std::vector<std::vector<std::array<double, 3>>> colours;   // task -> image -> mean colour
    for (const std::string& name : data::vision_task_names()) {
      data::ImageSplit split = styled_task(name, strength).train;
      std::vector<std::array<double, 3>> per_image;
      for (int64_t i = 0; i < split.count; ++i) {
        std::array<double, 3> mean{0, 0, 0};
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t p = 0; p < data::kImagePixels; ++p)
            mean[size_t(c)] += split.pixels[size_t((i * 3 + c) * data::kImagePixels + p)] / double(data::kImagePixels);
        per_image.push_back(mean);
      }
      colours.push_back(per_image);
    }
    std::vector<std::array<double, 3>> centroids;
    for (const auto& images : colours) {
      std::array<double, 3> centroid{0, 0, 0};
      for (size_t i = 0; i < images.size() / 2; ++i)
        for (int c = 0; c < 3; ++c) centroid[size_t(c)] += images[i][size_t(c)] / double(images.size() / 2);
      centroids.push_back(centroid);
    }
    int64_t correct = 0, total = 0;
    for (size_t t = 0; t < colours.size(); ++t)
      for (size_t i = colours[t].size() / 2; i < colours[t].size(); ++i, ++total) {
        size_t best = 0;
        for (size_t k = 1; k < centroids.size(); ++k)
          if (distance(colours[t][i], centroids[k]) < distance(colours[t][i], centroids[best])) best = k;
        correct += best == t;
      }
    accuracy[strength] = double(correct) / double(total);
  }
  INFO("task identified from the mean colour: " << accuracy[0.0] << " (strength 0), " << accuracy[0.5] << " (0.5), "
                                                << accuracy[1.0] << " (1)");
  CHECK(accuracy[0.5] > accuracy[0.0] + 0.1);
  CHECK(accuracy[1.0] >= accuracy[0.5]);
  CHECK(accuracy[1.0] > 0.8);
}

TEST_CASE("mnist and glyphs keep related styles: closer to each other than to any other task", "[vision][style]") {
  std::map<std::string, std::array<double, 3>> colour;
  for (const std::string& name : data::vision_task_names()) colour[name] = mean_corner_colour(styled_task(name, 1.0).train);
  double related = distance(colour["mnist"], colour["glyphs"]);
  for (const std::string& name : data::vision_task_names()) {
    if (name == "mnist" || name == "glyphs") continue;
    INFO(name);
    CHECK(related < distance(colour["mnist"], colour[name]));
    CHECK(related < distance(colour["glyphs"], colour[name]));
  }
}

TEST_CASE("every styled task stays learnable from raw pixels", "[vision][style]") {
  // The style must not hide the class: a nearest-centroid classifier on raw styled pixels stays above chance.
  for (const std::string& name : data::vision_task_names()) {
    INFO(name);
    data::VisionOptions options;
    options.train = 600, options.validation = 10, options.test = 300, options.pretrain = 10;
    options.data_dir = test_data_dir();
    options.style_strength = 1.0;
    data::ImageTask task = data::load_vision_task(name, options);
    double chance = 1.0 / double(task.class_names.size());
    CHECK(testing::nearest_centroid_accuracy(task.train, task.test, int64_t(task.class_names.size())) > chance + 0.05);
  }
}

TEST_CASE("a strength outside [0, 1] is refused", "[vision][style][errors]") {
  CHECK_THROWS_WITH(styled_task("mnist", 1.5), Catch::Contains("style strengths must be in [0, 1]"));
}

TEST_CASE("pretrain_style_strength styles only the pretrain split at its own strength", "[vision][style]") {
  // A shift between pretraining and task images: the train/validation/test splits are those of style_strength,
  // the pretrain split is that of pretrain_style_strength (here the gray look in three channels, strength 0).
  data::VisionOptions options;
  options.train = 50, options.validation = 10, options.test = 10, options.pretrain = 50;
  options.data_dir = test_data_dir();
  options.style_strength = 1.0;
  data::ImageTask full = data::load_vision_task("shapes", options);
  options.pretrain_style_strength = 0.0;
  data::ImageTask shifted = data::load_vision_task("shapes", options);
  options.style_strength = 0.0, options.pretrain_style_strength = -1;
  data::ImageTask gray = data::load_vision_task("shapes", options);
  CHECK(shifted.train.pixels == full.train.pixels);
  CHECK(shifted.test.pixels == full.test.pixels);
  CHECK(shifted.pretrain.pixels == gray.pretrain.pixels);
  CHECK(shifted.pretrain.pixels != full.pretrain.pixels);

  options.style_strength = -1, options.pretrain_style_strength = 0.5;
  CHECK_THROWS_WITH(data::load_vision_task("shapes", options), Catch::Contains("pretrain_style_strength needs a style_strength"));
  options.style_strength = 1.0, options.pretrain_style_strength = 2.0;
  CHECK_THROWS_WITH(data::load_vision_task("shapes", options), Catch::Contains("style strengths must be in [0, 1]"));
}

TEST_CASE("pretrain_style_strength_per_task gives the tasks it names their own pretraining strength", "[vision][style]") {
  data::VisionOptions base;
  base.style_strength = 1.0, base.pretrain_style_strength = 0.5;
  const nlohmann::json per_task = {{"mnist", 0.7}, {"glyphs", 0.0}};
  CHECK(experiments::vision_task_options(base, per_task, "mnist").pretrain_style_strength == 0.7);
  CHECK(experiments::vision_task_options(base, per_task, "glyphs").pretrain_style_strength == 0.0);
  CHECK(experiments::vision_task_options(base, per_task, "shapes").pretrain_style_strength == 0.5);
  CHECK(experiments::vision_task_options(base, nullptr, "mnist").pretrain_style_strength == 0.5);   // the preset's null
  CHECK(experiments::vision_task_options(base, per_task, "mnist").style_strength == 1.0);   // the tasks' own look stays
}
