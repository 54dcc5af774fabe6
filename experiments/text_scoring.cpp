#include "experiments/text_scoring.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <set>
#include <stdexcept>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernels.h"

namespace linfuse::experiments {

T5Logits t5_logits(nn::T5ForConditionalGeneration& model) {
  return [&model](const Tensor& input_ids, const Tensor& attention_mask, const Tensor& decoder_input_ids,
                  const Tensor& example_of_row) {
    Tensor encoder_hidden = model.encode(input_ids, attention_mask);   // (B, S, D)
    Tensor encoder_mask = attention_mask;
    if (example_of_row.defined()) {
      encoder_hidden = index_select(encoder_hidden, 0, example_of_row);   // (R, S, D)
      if (encoder_mask.defined()) encoder_mask = kernels::index_select(encoder_mask, 0, example_of_row);
    }
    return model.decode(decoder_input_ids, encoder_hidden, encoder_mask);   // (R, T, V)
  };
}

TokenBatch pad_batch(const std::vector<const std::vector<int64_t>*>& sequences, int64_t pad_id, int64_t max_length) {
  if (sequences.empty()) throw std::invalid_argument("[pad_batch] no sequences");
  int64_t longest = 0;
  for (const auto* s : sequences) {
    if (s->empty()) throw std::invalid_argument("[pad_batch] an empty token sequence");
    longest = std::max<int64_t>(longest, int64_t(s->size()));
  }
  if (max_length > 0) longest = std::min(longest, max_length);
  const int64_t batch = int64_t(sequences.size());
  std::vector<int64_t> ids(size_t(batch * longest), pad_id), mask(size_t(batch * longest), 0);
  for (int64_t b = 0; b < batch; ++b) {
    const auto& s = *sequences[size_t(b)];
    int64_t length = std::min<int64_t>(longest, int64_t(s.size()));
    for (int64_t t = 0; t < length; ++t) {
      // a truncated sequence ends with its own last token (eos)
      ids[size_t(b * longest + t)] = t == length - 1 ? s.back() : s[size_t(t)];
      mask[size_t(b * longest + t)] = 1;
    }
  }
  return {Tensor::from_vector(ids, {batch, longest}), Tensor::from_vector(mask, {batch, longest})};
}

Candidates Candidates::from(std::vector<std::vector<int64_t>> sequences, int64_t decoder_start_id, int64_t eos_id) {
  if (sequences.empty()) throw std::invalid_argument("[Candidates] no candidates");
  std::set<int64_t> first;
  for (size_t c = 0; c < sequences.size(); ++c) {
    if (sequences[c].empty() || sequences[c].back() != eos_id)
      throw std::invalid_argument("[Candidates] candidate " + std::to_string(c) + " must be a non-empty token sequence ending with eos (" +
                                  std::to_string(eos_id) + "); encode it with add_eos = true");
    first.insert(sequences[c].front());
  }
  Candidates out;
  out.first_tokens_distinct = first.size() == sequences.size();
  out.decoder_start_id = decoder_start_id;
  out.sequences = std::move(sequences);
  return out;
}

namespace {

// The teacher-forced decoder rows of every (example, candidate) pair: pair (b, c) is row b * C + c, reading
// [start, y_0, ..., y_{L-2}] and predicting [y_0, ..., y_{L-1}] (L the longest candidate; steps past a
// candidate's end are padding, valid 0).
struct CandidateRows {
  int64_t rows = 0, longest = 0;
  Tensor decoder_ids, example_of_row, targets;   // (R, L), (R), (R, L, 1) int64
  Tensor valid;                                  // (R, L) float64: 1 inside the candidate, 0 past its end
};

CandidateRows candidate_rows(const Candidates& candidates, int64_t batch) {
  int64_t longest = 0;
  for (const auto& s : candidates.sequences) longest = std::max<int64_t>(longest, int64_t(s.size()));
  std::vector<int64_t> example_of_row, decoder_ids, targets;
  std::vector<double> valid;
  for (int64_t b = 0; b < batch; ++b)
    for (const auto& s : candidates.sequences) {
      example_of_row.push_back(b);
      for (int64_t t = 0; t < longest; ++t) {
        bool inside = t < int64_t(s.size());
        decoder_ids.push_back(t == 0 ? candidates.decoder_start_id : (t - 1 < int64_t(s.size()) ? s[size_t(t - 1)] : 0));
        targets.push_back(inside ? s[size_t(t)] : 0);
        valid.push_back(inside ? 1.0 : 0.0);
      }
    }
  CandidateRows out;
  out.rows = batch * int64_t(candidates.sequences.size());
  out.longest = longest;
  out.decoder_ids = Tensor::from_vector(decoder_ids, {out.rows, longest});
  out.example_of_row = Tensor::from_vector(example_of_row, {out.rows});
  out.targets = Tensor::from_vector(targets, {out.rows, longest, 1});
  out.valid = Tensor::from_vector(valid, {out.rows, longest});
  return out;
}

// The decoder logits the scoring reads, from one call of `logits`: with distinct first tokens (and not
// full_sequence) the first decoder step's, (B, V); otherwise every teacher-forced step of every (example,
// candidate) row, (R, L, V), with the rows' layout. candidate_scores and scored_logits each read one of their
// two views of it, scored_readout both.
struct DecoderLogits {
  int64_t batch = 0;
  bool first_step = false;
  CandidateRows rows;   // unset for the first step
  Tensor all;           // (B, V) or (R, L, V)
};

DecoderLogits decoder_logits(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates, bool full_sequence) {
  DecoderLogits out;
  out.batch = inputs.ids.size(0);
  out.first_step = candidates.first_tokens_distinct && !full_sequence;
  if (out.first_step) {
    Tensor start = Tensor::full({out.batch, 1}, double(candidates.decoder_start_id), DType::I64);
    out.all = reshape(logits(inputs.ids, inputs.mask, start, Tensor()), {out.batch, -1});   // (B, V)
    return out;
  }
  out.rows = candidate_rows(candidates, out.batch);
  out.all = logits(inputs.ids, inputs.mask, out.rows.decoder_ids, out.rows.example_of_row);   // (R, L, V)
  return out;
}

// The candidates' scores: log p(first token) at the first step, or the sum of log p(y_t | y_<t, x) over the
// candidate's steps. (B, C)
Tensor scores_of(const DecoderLogits& d, const Candidates& candidates) {
  const int64_t count = int64_t(candidates.sequences.size());
  if (d.first_step) {
    std::vector<int64_t> first_tokens;
    for (const auto& s : candidates.sequences) first_tokens.push_back(s.front());
    return index_select(log_softmax(d.all, -1), 1, Tensor::from_vector(first_tokens, {count}));   // (B, C)
  }
  const CandidateRows& r = d.rows;
  Tensor token_log_probs = gather(log_softmax(d.all, -1), 2, r.targets);
  Tensor kept = mul(reshape(token_log_probs, {r.rows, r.longest}), cast(r.valid, d.all.dtype()));
  return reshape(sum(kept, {1}), {d.batch, count});
}

// The logits the scores read, one row per example: the first step's as they are, or the candidates' steps
// without the padding past each one's end. (B, K)
Tensor scored_logits_of(const DecoderLogits& d, const Candidates& candidates) {
  if (d.first_step) return d.all;
  // An example's C rows are consecutive: as (B, C * L, V), step t of candidate c is position c * L + t.
  std::vector<int64_t> read;
  for (size_t c = 0; c < candidates.sequences.size(); ++c)
    for (int64_t t = 0; t < int64_t(candidates.sequences[c].size()); ++t) read.push_back(int64_t(c) * d.rows.longest + t);
  Tensor steps = reshape(d.all, {d.batch, -1, d.all.size(-1)});                                    // (B, C * L, V)
  Tensor kept = index_select(steps, 1, Tensor::from_vector(read, {int64_t(read.size())}));        // (B, S, V)
  return reshape(kept, {d.batch, -1});   // (B, S * V)
}

}  // namespace

Tensor candidate_scores(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates, bool full_sequence) {
  return scores_of(decoder_logits(logits, inputs, candidates, full_sequence), candidates);
}

Tensor scored_logits(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates, bool full_sequence) {
  return scored_logits_of(decoder_logits(logits, inputs, candidates, full_sequence), candidates);
}

ScoredReadout scored_readout(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates, bool full_sequence) {
  DecoderLogits d = decoder_logits(logits, inputs, candidates, full_sequence);
  return {scored_logits_of(d, candidates), scores_of(d, candidates)};
}

Tensor answers_loss(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates,
                    const std::vector<int64_t>& labels) {
  Tensor scores = candidate_scores(logits, inputs, candidates);   // (B, C)
  return cross_entropy(scores, Tensor::from_vector(labels, {int64_t(labels.size())}));
}

std::vector<int64_t> classify(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates) {
  NoGradGuard no_grad;
  std::vector<double> scores = candidate_scores(logits, inputs, candidates).to_vector<double>();
  const int64_t count = int64_t(candidates.sequences.size()), batch = int64_t(scores.size()) / count;
  std::vector<int64_t> predicted(size_t(batch), 0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 1; c < count; ++c)
      if (scores[size_t(b * count + c)] > scores[size_t(b * count + predicted[size_t(b)])]) predicted[size_t(b)] = c;
  return predicted;
}

std::vector<std::vector<int64_t>> greedy_decode(const T5Logits& logits, const TokenBatch& inputs, int64_t steps,
                                                int64_t start_id, int64_t eos_id) {
  NoGradGuard no_grad;
  const int64_t batch = inputs.ids.size(0);
  std::vector<std::vector<int64_t>> prefixes(size_t(batch), {start_id});
  std::vector<bool> finished(size_t(batch), false);
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int64_t> flat;
    for (const auto& p : prefixes) flat.insert(flat.end(), p.begin(), p.end());
    const int64_t length = step + 1;
    Tensor last = select(logits(inputs.ids, inputs.mask, Tensor::from_vector(flat, {batch, length}), Tensor()), 1, length - 1);
    std::vector<float> values = cast(last, DType::F32).to_vector<float>();   // (B, V)
    const int64_t vocab = last.size(-1);
    bool all_finished = true;
    for (int64_t b = 0; b < batch; ++b) {
      int64_t token = eos_id;   // finished rows keep writing eos (dropped below)
      if (!finished[size_t(b)]) {
        const float* row = values.data() + b * vocab;
        token = std::max_element(row, row + vocab) - row;
        finished[size_t(b)] = token == eos_id;
      }
      prefixes[size_t(b)].push_back(token);
      all_finished = all_finished && finished[size_t(b)];
    }
    if (all_finished) break;
  }
  std::vector<std::vector<int64_t>> out;
  for (const auto& p : prefixes) {
    std::vector<int64_t> tokens;
    for (size_t t = 1; t < p.size() && p[t] != eos_id; ++t) tokens.push_back(p[t]);
    out.push_back(std::move(tokens));
  }
  return out;
}

Tensor teacher_forced_loss(const T5Logits& logits, const TokenBatch& inputs, const TokenBatch& targets, int64_t decoder_start_id) {
  const int64_t batch = targets.ids.size(0), length = targets.ids.size(1);
  std::vector<int64_t> ids = targets.ids.to_vector<int64_t>(), mask = targets.mask.to_vector<int64_t>();
  std::vector<int64_t> decoder_ids(ids.size()), labels(ids.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < length; ++t) {
      size_t i = size_t(b * length + t);
      decoder_ids[i] = t == 0 ? decoder_start_id : ids[i - 1];
      labels[i] = mask[i] ? ids[i] : -100;
    }
  Tensor out = logits(inputs.ids, inputs.mask, Tensor::from_vector(decoder_ids, {batch, length}), Tensor());   // (B, L, V)
  return cross_entropy(out, Tensor::from_vector(labels, {batch, length}), -100);
}

double parse_score(const std::string& text, double low, double high) {
  const double middle = (low + high) / 2;
  size_t begin = text.find_first_not_of(' ');
  if (begin == std::string::npos) return middle;
  const char* start = text.c_str() + begin;
  char* end = nullptr;
  double value = std::strtod(start, &end);
  if (end == start || !std::isfinite(value)) return middle;
  for (const char* p = end; *p; ++p)
    if (*p != ' ') return middle;   // "3.4 <extra_id_0>" is not a clean answer
  return std::clamp(value, low, high);
}

std::vector<double> average_ranks(const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && values[order[j + 1]] == values[order[i]]) ++j;
    double rank = (double(i) + double(j)) / 2 + 1;   // the mean of ranks i+1 .. j+1
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw std::invalid_argument("[spearman] " + std::to_string(x.size()) + " predictions for " + std::to_string(y.size()) + " gold scores");
  const size_t n = x.size();
  if (n < 2) return 0;
  std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  double mean = (double(n) + 1) / 2;   // the mean rank, ties or not
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx <= 0 || syy <= 0) return 0;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace linfuse::experiments
