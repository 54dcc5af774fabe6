#pragma once
// How the text suite reads a T5's answers, written over a function that returns logits so that every
// fine-tuning mode scores through its own forward (a linearized model must be evaluated as f0 + J dphi, not
// as the plain network): label likelihoods, greedy decoding, teacher-forced loss, token batches, and
// Spearman's rank correlation for the regression task.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/t5.h"
#include "tensor/tensor.h"

namespace linfuse::experiments {

// A model's decoder logits: input_ids and attention_mask (B, S) feed the encoder; decoder_input_ids (R, T)
// start with the decoder start token; decoder row r reads the encoder output of example example_of_row[r]
// ((R) int64; undefined means R = B and row r reads example r). -> logits (R, T, V).
// The encoder runs once per call whatever R is.
using T5Logits = std::function<Tensor(const Tensor& input_ids, const Tensor& attention_mask,
                                      const Tensor& decoder_input_ids, const Tensor& example_of_row)>;

// The plain model's logits (what the linearized modes wrap in PreparedModel::forward).
T5Logits t5_logits(nn::T5ForConditionalGeneration& model);

// Right-padded token batches.
struct TokenBatch {
  Tensor ids;    // (B, L) int64, pad 0 after the end
  Tensor mask;   // (B, L) int64, 1 on tokens, 0 on padding
};
// Sequences truncated to max_length (0: no limit; a truncated sequence keeps its first max_length - 1 tokens
// and its last one, so that eos survives), padded to the longest.
TokenBatch pad_batch(const std::vector<const std::vector<int64_t>*>& sequences, int64_t pad_id, int64_t max_length = 0);

// The answers a classification task chooses between, as token sequences each ending with eos.
struct Candidates {
  std::vector<std::vector<int64_t>> sequences;
  // true when the candidates' first tokens are all different: log p(first token) then ranks them, and one
  // decoder step (decoder length 1, a single lm_head row per example) replaces C full decoder passes.
  bool first_tokens_distinct = false;
  int64_t decoder_start_id = 0;
  // Throws std::invalid_argument if a sequence is empty or does not end with eos_id.
  static Candidates from(std::vector<std::vector<int64_t>> sequences, int64_t decoder_start_id, int64_t eos_id);
};

// Scores of each candidate for each example, differentiable through `logits`: (B, C).
//   first_tokens_distinct: log p(first token of c | x) at the first decoder step, a cheaper ranking
//     that, once the model is fine-tuned, orders labels as the full likelihood does (the rest of a label
//     word is then near-certain given its first token);
//   otherwise: sum_t log p(y_t | y_<t, x) over the whole candidate with its eos (B*C decoder rows).
// `full_sequence` forces the second form.
Tensor candidate_scores(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates,
                        bool full_sequence = false);
// The decoder logits candidate_scores reads, one row per example (B, K), for diagnostics that need the
// model's outputs rather than its scores (leakage.h): with distinct first tokens (and not full_sequence) the
// first decoder step's logits (K = V); otherwise the logits of every teacher-forced step of every candidate,
// candidate after candidate (K = S V, S the candidates' total length with their eos; padding steps past a
// candidate's end are left out). Differentiable through `logits`.
Tensor scored_logits(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates,
                     bool full_sequence = false);
// Both of the above from one call of `logits` (one model pass): what the first-order leakage reads, the
// logits and the candidates' scores of the same inputs, whose forward-mode derivatives one JVP then gives
// together (TextMergeTarget::output_and_score_jvp). The same bits as the two calls apart.
struct ScoredReadout {
  Tensor logits;   // (B, K), scored_logits
  Tensor scores;   // (B, C), candidate_scores
};
ScoredReadout scored_readout(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates,
                             bool full_sequence = false);
// The rank-classification loss ("answers" fine-tuning objective, text_suite.h): the mean over examples of
// -log softmax_c(candidate_scores)[label], labels (B) indices into the candidates. With distinct first tokens the
// scores are log p(first token), whose common log-normaliser cancels in the softmax over the candidates: only
// the candidates' logits are trained, every other word's logit gets no gradient.
Tensor answers_loss(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates,
                    const std::vector<int64_t>& labels);
// argmax over the candidates of candidate_scores (the first on ties): (B) class indices.
std::vector<int64_t> classify(const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates);

// Greedy decoding through `logits` (recomputing the whole prefix each step, no cache): at most `steps` tokens
// per example, stopping at eos (not included in the result).
std::vector<std::vector<int64_t>> greedy_decode(const T5Logits& logits, const TokenBatch& inputs, int64_t steps,
                                                int64_t start_id, int64_t eos_id);

// Teacher-forced mean token cross-entropy of `targets` (each ending with eos) given `inputs`.
// The decoder reads [start, y_0, ..., y_{L-2}]; padding is ignored by the loss.
Tensor teacher_forced_loss(const T5Logits& logits, const TokenBatch& inputs, const TokenBatch& targets,
                           int64_t decoder_start_id);

// The number a decoded STS-B answer holds ("3.4"), clamped to [low, high]; text that is not a number
// (e.g. the sentinels an untrained model writes) reads as the middle of the range, a neutral guess.
double parse_score(const std::string& text, double low, double high);

// Spearman's rank correlation: Pearson's correlation of the ranks, ties sharing their average rank (as
// scipy.stats.spearmanr). When either side is constant the correlation is undefined; it is reported as 0
// (no measurable association), so that a model that always answers the same number scores 0, never NaN.
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);
std::vector<double> average_ranks(const std::vector<double>& values);   // 1-based, ties averaged

}  // namespace linfuse::experiments
