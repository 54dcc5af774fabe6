// The copy-across pretraining pairs (experiments/sentence_pair_corruption.h): the second sentence is the first
// with at most max_edits edits, or an unrelated sentence at the configured share, deterministically.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>

#include "experiments/sentence_pair_corruption.h"
#include "experiments/text_corpus.h"
#include "experiments/text_tasks.h"

using namespace linfuse;

namespace {

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> sentences = data::text_corpus(data::TextOptions{});
  return sentences;
}

const std::vector<std::string>& word_list() {
  static const std::vector<std::string> words = data::read_word_list(data::TextOptions{}.words_file);
  return words;
}

}  // namespace

TEST_CASE("a copy-across pair's second sentence is an edited copy, or an unrelated sentence at the configured share",
          "[text][pretrain]") {
  data::SentencePairOptions options;
  options.unrelated_fraction = 0.25;
  options.max_edits = 3;
  Generator gen(11);
  int64_t unrelated = 0, unchanged = 0;
  const int64_t draws = 2000;
  for (int64_t i = 0; i < draws; ++i) {
    const std::string& first = corpus()[size_t(i)];
    const std::string& other = corpus()[size_t(i + draws)];
    std::string second = data::sentence_pair_second(first, other, word_list(), options, gen);
    INFO(first << " -> " << second);
    if (second == other) {
      ++unrelated;
      continue;
    }
    unchanged += second == first;
    // every edit adds, removes or changes at most one word ("is" -> "is not", a dropped or duplicated word)
    data::Words a = data::split_words(first), b = data::split_words(second);
    CHECK(std::abs(int64_t(a.size()) - int64_t(b.size())) <= options.max_edits);
    std::multiset<std::string> kept(a.begin(), a.end());
    int64_t shared = 0;
    for (const std::string& word : b)
      if (auto it = kept.find(word); it != kept.end()) kept.erase(it), ++shared;
    CHECK(shared >= int64_t(a.size()) - 2 * options.max_edits);
  }
  CHECK(std::abs(double(unrelated) / double(draws) - 0.25) < 0.03);
  // 0..3 edits uniformly: about a quarter of the copies stay unchanged
  CHECK(std::abs(double(unchanged) / double(draws - unrelated) - 0.25) < 0.05);
}

TEST_CASE("copy-across pairs are a function of the generator, and without edits the copy is exact", "[text][pretrain]") {
  data::SentencePairOptions options;
  Generator a(5), b(5);
  for (int64_t i = 0; i < 200; ++i)
    CHECK(data::sentence_pair_second(corpus()[size_t(i)], corpus()[size_t(i + 1)], word_list(), options, a) ==
          data::sentence_pair_second(corpus()[size_t(i)], corpus()[size_t(i + 1)], word_list(), options, b));
  options.unrelated_fraction = 0;
  options.max_edits = 0;
  Generator gen(6);
  for (int64_t i = 0; i < 200; ++i)
    CHECK(data::sentence_pair_second(corpus()[size_t(i)], corpus()[size_t(i + 1)], word_list(), options, gen) == corpus()[size_t(i)]);
}
