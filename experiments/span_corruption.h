#pragma once
// T5's pretraining objective, span corruption (Raffel et al. 2020, section 3.1.4; the `span_corruption`
// preprocessor of google-research/text-to-text-transfer-transformer): a fraction of a token sequence
// (noise_density, 15%) is dropped in spans whose mean length is mean_span_length (3). In the input each
// dropped span is replaced by one sentinel (<extra_id_0>, <extra_id_1>, ... in order); the target lists the
// sentinels each followed by the span it stands for, then eos:
//
//   tokens  Thank you for inviting me to your party last week
//   input   Thank you <X0> me to your party <X1> week </s>
//   target  <X0> for inviting <X1> last </s>
#include <cstdint>
#include <functional>
#include <vector>

#include "tensor/random.h"

namespace linfuse::experiments {

struct SpanCorruptionOptions {
  double noise_density = 0.15;     // fraction of the tokens that are dropped
  double mean_span_length = 3.0;   // mean number of tokens per dropped span
};

struct SpanCorruptionPair {
  std::vector<int64_t> input;    // kept tokens, one sentinel per dropped span, eos
  std::vector<int64_t> target;   // sentinel, span, sentinel, span, ..., eos
};

// The noise mask of T5's random_spans_noise_mask for a sequence of `length` tokens: true = dropped.
// num_noise = round(length * density) clamped to [1, length - 1], num_spans = max(1, round(num_noise /
// mean_span_length)); the noise tokens and the kept tokens are each cut into num_spans non-empty runs at
// uniformly random points, and the runs alternate starting with a kept one (so a sequence never starts with
// noise). Needs length >= 2.
std::vector<bool> random_spans_noise_mask(int64_t length, const SpanCorruptionOptions& options, Generator& gen);

// One (input, target) pair from `tokens` (ids without eos, at least 2 of them). `sentinel(i)` is the id of
// <extra_id_i> (Tokenizer::sentinel_id); throws if a sequence would need more than `max_sentinels` spans.
SpanCorruptionPair span_corrupt(const std::vector<int64_t>& tokens, const SpanCorruptionOptions& options,
                                const std::function<int64_t(int)>& sentinel, int64_t eos_id, Generator& gen,
                                int max_sentinels = 100);

}  // namespace linfuse::experiments
