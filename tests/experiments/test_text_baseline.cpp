// The word-feature baseline of the text tasks (experiments/text_baseline.h): it learns what its features can
// express, nothing else, deterministically; on the real tasks it solves the overlap tasks and stays at chance
// where word features carry no signal.
#include <catch2/catch.hpp>

#include <string>

#include "experiments/text_baseline.h"
#include "tensor/random.h"

using namespace linfuse;

namespace {

const std::vector<std::string> kWords = {"apple", "river", "stone", "cloud", "paper", "window", "garden", "music",
                                         "winter", "forest", "silver", "candle", "bridge", "orange", "letter", "planet"};

std::string random_sentence(Generator& gen, int64_t length) {
  std::string s;
  for (int64_t i = 0; i < length; ++i) s += (i ? " " : "") + kWords[gen.next_u64() % kWords.size()];
  return s;
}

data::TextExample classified(std::string input, int64_t label) {
  data::TextExample e;
  e.input = std::move(input);
  e.label = label;
  e.target = std::to_string(label);
  return e;
}

// A single-sentence task: label 1 iff the sentence holds "zebra".
data::TextTask keyword_task(uint64_t seed) {
  data::TextTask task{"keyword", "accuracy", {"no", "yes"}, {}, {}, {}, {}};
  Generator gen(seed);
  for (int i = 0; i < 400; ++i) {
    std::string s = random_sentence(gen, 8);
    const int64_t label = i % 2;
    if (label) s += " zebra";
    (i < 300 ? task.train : task.test).push_back(classified("keyword sentence: " + s, label));
  }
  return task;
}

// A pair task: sentence2 repeats sentence1 (label 1) or is an unrelated sentence (label 0).
data::TextTask duplicate_task(uint64_t seed) {
  data::TextTask task{"dup", "accuracy", {"different", "same"}, {}, {}, {}, {}};
  Generator gen(seed);
  for (int i = 0; i < 400; ++i) {
    std::string a = random_sentence(gen, 10), b = i % 2 ? a : random_sentence(gen, 10);
    (i < 300 ? task.train : task.test).push_back(classified("dup sentence1: " + a + " sentence2: " + b, i % 2));
  }
  return task;
}

// A regression task: sentence2 keeps k of sentence1's 10 words (different words elsewhere), score k / 2.
data::TextTask similarity_task(uint64_t seed) {
  data::TextTask task{"sim", "spearman", {}, {}, {}, {}, {}};
  Generator gen(seed);
  for (int i = 0; i < 400; ++i) {
    std::vector<std::string> a, b;
    for (int w = 0; w < 10; ++w) a.push_back(kWords[gen.next_u64() % 8]);   // the first half of the words
    const int64_t kept = int64_t(gen.next_u64() % 11);
    for (int w = 0; w < 10; ++w) b.push_back(w < kept ? a[size_t(w)] : kWords[8 + gen.next_u64() % 8]);
    std::string sa, sb;
    for (int w = 0; w < 10; ++w) sa += (w ? " " : "") + a[size_t(w)], sb += (w ? " " : "") + b[size_t(w)];
    data::TextExample e;
    e.input = "sim sentence1: " + sa + " sentence2: " + sb;
    e.score = double(kept) / 2;
    (i < 300 ? task.train : task.test).push_back(e);
  }
  return task;
}

}  // namespace

TEST_CASE("the word-feature baseline learns what its features express", "[text_baseline]") {
  auto keyword = experiments::text_feature_baseline(keyword_task(1), 0);
  CHECK(keyword.features == "bag of words");
  CHECK(keyword.test > 0.97);
  auto duplicate = experiments::text_feature_baseline(duplicate_task(2), 0);
  CHECK(duplicate.features == "word overlap");
  CHECK(duplicate.test > 0.97);
  auto similarity = experiments::text_feature_baseline(similarity_task(3), 0);
  CHECK(similarity.features == "word overlap");
  CHECK(similarity.test > 0.9);
}

TEST_CASE("the word-feature baseline scores the first test examples, the same bits every time", "[text_baseline]") {
  data::TextTask task = keyword_task(4);
  auto all = experiments::text_feature_baseline(task, 0), again = experiments::text_feature_baseline(task, 0);
  CHECK(all.test == again.test);
  // 10 examples: the score is a multiple of 1/10
  double ten = experiments::text_feature_baseline(task, 10).test * 10;
  CHECK(ten == Approx(std::round(ten)));
  task.test.clear();
  CHECK_THROWS_WITH(experiments::text_feature_baseline(task, 0), Catch::Contains("keyword") && Catch::Contains("test"));
}

TEST_CASE("on the real tasks, word overlap solves qqp and bag of words is at chance on cola", "[text_baseline]") {
  data::TextOptions options;
  options.train = 600;
  options.validation = 10;
  options.test = 200;
  auto qqp = experiments::text_feature_baseline(data::load_text_task("qqp", options), 0);
  CHECK(qqp.features == "word overlap");
  CHECK(qqp.test > 0.9);
  // cola's corruptions (swapped, doubled or moved words) leave the bag of words unchanged or nearly so
  auto cola = experiments::text_feature_baseline(data::load_text_task("cola", options), 0);
  CHECK(cola.features == "bag of words");
  CHECK(cola.test < 0.62);
}
