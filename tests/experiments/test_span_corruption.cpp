// T5's span corruption (experiments/span_corruption.h): valid (input, target) pairs, sentinels in order, the
// configured noise fraction and mean span length.
#include <catch2/catch.hpp>

#include <map>

#include "experiments/span_corruption.h"

using namespace linfuse;
using namespace linfuse::experiments;

namespace {

constexpr int64_t kEos = 1, kVocab = 2000;
int64_t sentinel(int i) { return kVocab - 1 - i; }   // T5's layout: <extra_id_0> is the last id
bool is_sentinel(int64_t id) { return id > kVocab - 1 - 100; }

std::vector<int64_t> random_tokens(Generator& gen, int64_t length) {
  std::vector<int64_t> tokens;
  for (int64_t i = 0; i < length; ++i) tokens.push_back(3 + int64_t(gen.next_u64() % 1000));   // no special ids
  return tokens;
}

// The original sequence, rebuilt by putting each target span back in place of its sentinel in the input.
std::vector<int64_t> reassemble(const SpanCorruptionPair& pair) {
  std::map<int64_t, std::vector<int64_t>> spans;
  int64_t current = -1;
  for (size_t i = 0; i + 1 < pair.target.size(); ++i) {
    if (is_sentinel(pair.target[i])) current = pair.target[i];
    else spans[current].push_back(pair.target[i]);
  }
  std::vector<int64_t> out;
  for (size_t i = 0; i + 1 < pair.input.size(); ++i) {
    if (is_sentinel(pair.input[i])) out.insert(out.end(), spans[pair.input[i]].begin(), spans[pair.input[i]].end());
    else out.push_back(pair.input[i]);
  }
  return out;
}

}  // namespace

TEST_CASE("span corruption gives input and target whose sentinels are in order and put the sequence back together",
          "[span_corruption]") {
  Generator gen(3);
  for (int64_t length : {2, 5, 13, 48, 200}) {
    for (int repeat = 0; repeat < 20; ++repeat) {
      std::vector<int64_t> tokens = random_tokens(gen, length);
      SpanCorruptionPair pair = span_corrupt(tokens, {}, sentinel, kEos, gen);
      REQUIRE(pair.input.back() == kEos);
      REQUIRE(pair.target.back() == kEos);
      REQUIRE(is_sentinel(pair.target.front()));   // the target starts with <extra_id_0>
      std::vector<int64_t> input_sentinels, target_sentinels;
      for (int64_t id : pair.input)
        if (is_sentinel(id)) input_sentinels.push_back(id);
      for (int64_t id : pair.target)
        if (is_sentinel(id)) target_sentinels.push_back(id);
      REQUIRE(!input_sentinels.empty());
      CHECK(input_sentinels == target_sentinels);
      for (size_t i = 0; i < input_sentinels.size(); ++i) CHECK(input_sentinels[i] == sentinel(int(i)));
      // no two sentinels in a row: each stands for a whole span
      for (size_t i = 0; i + 1 < pair.target.size(); ++i) CHECK(!(is_sentinel(pair.target[i]) && is_sentinel(pair.target[i + 1])));
      CHECK(reassemble(pair) == tokens);
      CHECK(!is_sentinel(pair.input.front()));   // the sequence starts with a kept token, as in T5
    }
  }
}

TEST_CASE("span corruption drops the configured fraction in spans of the configured mean length", "[span_corruption]") {
  Generator gen(11);
  for (auto [density, span_length] : {std::pair{0.15, 3.0}, std::pair{0.3, 2.0}}) {
    SpanCorruptionOptions options;
    options.noise_density = density;
    options.mean_span_length = span_length;
    const int64_t length = 100, sequences = 200;
    int64_t noise = 0, spans = 0;
    for (int64_t s = 0; s < sequences; ++s) {
      std::vector<bool> mask = random_spans_noise_mask(length, options, gen);
      REQUIRE(int64_t(mask.size()) == length);
      int64_t here = 0;
      for (int64_t i = 0; i < length; ++i) {
        here += mask[size_t(i)];
        spans += mask[size_t(i)] && (i == 0 || !mask[size_t(i - 1)]);
      }
      CHECK(here == std::llround(density * length));   // exactly round(length * density) per sequence
      noise += here;
    }
    double fraction = double(noise) / double(length * sequences);
    double mean_span = double(noise) / double(spans);
    CHECK(fraction == Approx(density).margin(1e-12));
    CHECK(mean_span == Approx(span_length).margin(0.35));
  }
}

TEST_CASE("span corruption draws different spans each time and rejects sequences it cannot corrupt", "[span_corruption]") {
  Generator gen(5);
  std::vector<int64_t> tokens = random_tokens(gen, 48);
  SpanCorruptionPair a = span_corrupt(tokens, {}, sentinel, kEos, gen), b = span_corrupt(tokens, {}, sentinel, kEos, gen);
  CHECK(a.input != b.input);
  CHECK_THROWS_WITH(span_corrupt({7}, {}, sentinel, kEos, gen), Catch::Contains("at least 2 tokens"));
  SpanCorruptionOptions bad;
  bad.noise_density = 1.5;
  CHECK_THROWS_WITH(span_corrupt(tokens, bad, sentinel, kEos, gen), Catch::Contains("noise_density"));
  CHECK_THROWS_WITH(span_corrupt(random_tokens(gen, 400), {}, sentinel, kEos, gen, 3), Catch::Contains("sentinels"));
}
