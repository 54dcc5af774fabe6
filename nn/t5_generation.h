#pragma once
// Inference with the tiny T5: greedy decoding, and classification by the likelihood of label strings (how
// the paper evaluates Flan-T5 on GLUE: the label words "positive" / "negative" etc. are token sequences, and
// the predicted class is the label the model finds most likely).
//
// Both run without recording gradients and with the model switched to eval mode (dropout off) for the
// call; each module's previous train/eval mode is restored afterwards.
#include <cstdint>
#include <vector>

#include "nn/t5.h"

namespace linfuse::nn {

// Greedy decoding from decoder_start_token_id, at most max_new_tokens tokens per sequence; a sequence stops
// at eos_token_id (kept in the output) and is padded with pad_token_id afterwards. The decoder is recomputed
// over the whole prefix at each step (no key/value cache; the encoder runs once).
// input_ids (B, S) int64, attention_mask (B, S) or undefined -> (B, L) int64 without the start token,
// L <= max_new_tokens the number of steps taken (it stops early once every sequence has ended).
Tensor greedy_generate(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                       int64_t max_new_tokens);

// Log-likelihood of each candidate target given each input: for example b and candidate c,
// sum_t log p(y_t | y_<t, x_b) over the candidate's tokens followed by eos (not appended twice when the
// candidate already ends with eos). One encoder pass; the decoder runs on all B*C pairs in one batch.
// input_ids (B, S), attention_mask (B, S) or undefined, C non-empty candidates -> (B, C) in the model dtype.
Tensor score_candidates(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                        const std::vector<std::vector<int64_t>>& candidates);

// The index of the most likely candidate for each example (the first one on ties): (B) int64.
Tensor classify_by_likelihood(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                              const std::vector<std::vector<int64_t>>& candidates);

}  // namespace linfuse::nn
