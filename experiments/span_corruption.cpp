#include "experiments/span_corruption.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace linfuse::experiments {

namespace {

// Cuts `items` items into `segments` non-empty runs at uniformly random points (T5's _random_segmentation):
// the run lengths, summing to `items`.
std::vector<int64_t> random_segmentation(int64_t items, int64_t segments, Generator& gen) {
  // segments - 1 distinct cut points among the items - 1 gaps
  std::vector<int64_t> gaps = gen.permutation(items - 1);
  std::vector<int64_t> cuts(gaps.begin(), gaps.begin() + (segments - 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<int64_t> lengths;
  int64_t previous = 0;
  for (int64_t cut : cuts) {
    lengths.push_back(cut + 1 - previous);
    previous = cut + 1;
  }
  lengths.push_back(items - previous);
  return lengths;
}

}  // namespace

std::vector<bool> random_spans_noise_mask(int64_t length, const SpanCorruptionOptions& options, Generator& gen) {
  if (length < 2)
    throw std::invalid_argument("[span corruption] a sequence needs at least 2 tokens to corrupt, got " + std::to_string(length));
  if (!(options.noise_density > 0 && options.noise_density < 1) || !(options.mean_span_length >= 1))
    throw std::invalid_argument("[span corruption] noise_density must be in (0, 1) and mean_span_length >= 1, got " +
                                std::to_string(options.noise_density) + " and " + std::to_string(options.mean_span_length));
  int64_t noise = std::clamp<int64_t>(std::llround(double(length) * options.noise_density), 1, length - 1);
  int64_t spans = std::max<int64_t>(1, std::llround(double(noise) / options.mean_span_length));
  // T5 relies on long sequences to keep spans <= both counts; short ones need the clamp.
  spans = std::min({spans, noise, length - noise});
  std::vector<int64_t> noise_lengths = random_segmentation(noise, spans, gen);
  std::vector<int64_t> kept_lengths = random_segmentation(length - noise, spans, gen);
  std::vector<bool> mask;
  mask.reserve(size_t(length));
  for (int64_t s = 0; s < spans; ++s) {
    mask.insert(mask.end(), size_t(kept_lengths[size_t(s)]), false);
    mask.insert(mask.end(), size_t(noise_lengths[size_t(s)]), true);
  }
  return mask;
}

SpanCorruptionPair span_corrupt(const std::vector<int64_t>& tokens, const SpanCorruptionOptions& options,
                                const std::function<int64_t(int)>& sentinel, int64_t eos_id, Generator& gen,
                                int max_sentinels) {
  std::vector<bool> noise = random_spans_noise_mask(int64_t(tokens.size()), options, gen);
  SpanCorruptionPair pair;
  int next_sentinel = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!noise[i]) {
      pair.input.push_back(tokens[i]);
      continue;
    }
    if (i == 0 || !noise[i - 1]) {   // a span starts: one sentinel in both sequences
      if (next_sentinel >= max_sentinels)
        throw std::invalid_argument("[span corruption] a sequence of " + std::to_string(tokens.size()) +
                                    " tokens needs more than " + std::to_string(max_sentinels) +
                                    " sentinels; use shorter pretraining sequences");
      int64_t id = sentinel(next_sentinel++);
      pair.input.push_back(id);
      pair.target.push_back(id);
    }
    pair.target.push_back(tokens[i]);
  }
  pair.input.push_back(eos_id);
  pair.target.push_back(eos_id);
  return pair;
}

}  // namespace linfuse::experiments
