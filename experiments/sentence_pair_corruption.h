#pragma once
// A second pretraining objective for the text suite: span corruption over a sentence followed by an edited
// copy of it, so that most dropped spans can be recovered by copying from the other sentence. Plain span
// corruption on packed corpus text (span_corruption.h) never asks the model to line two sentences up; the
// pair tasks (mrpc, qqp, stsb, mnli, rte) ask little else: is the second sentence the first one, reworded
// or changed? Copying across teaches the encoder to align the two and to notice where they differ (an
// edit there makes the copy wrong). A share of the pairs holds an unrelated second sentence, where copying
// fails, so the model must judge whether the two sentences are related before it copies.
//
//   sentence   The cat is not on the mat.
//   copy       The cat is on teh mat.          (a negation flipped, a typo)
//   input      The cat is not <X0> mat. The cat is on teh <X1> </s>
//   target     <X0> on the <X1> mat. </s>
//
// The pairs are unlabelled text built from the corpus alone, never from a task's examples or labels.
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/text_edits.h"
#include "tensor/random.h"

namespace linfuse::data {

struct SentencePairOptions {
  double unrelated_fraction = 0.25;   // pairs whose second sentence is another corpus sentence
  int64_t max_edits = 3;              // the copy gets 0..max_edits edits, uniformly
};

// The second sentence of a pair for `sentence`: an edited copy of it (edits drawn among those that apply:
// a content word replaced by a word of `word_list`, a negation flipped, a contraction toggled, an
// intensifier dropped, a typo, a word swapped, duplicated, dropped or moved), or with probability
// unrelated_fraction the `other` sentence unchanged.
std::string sentence_pair_second(const std::string& sentence, const std::string& other, const std::vector<std::string>& word_list,
                                 const SentencePairOptions& options, Generator& gen);

}  // namespace linfuse::data
