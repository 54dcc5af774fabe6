#pragma once
// A word-feature baseline for each text task, in the spirit of GLUE's CBOW baseline: a linear model on simple
// features of the words, trained on the same training split the T5 fine-tunes on and scored on the same test
// examples. It tells how learnable a task is without any grasp of language, which is what a reader needs to
// interpret the tiny T5's scores (a task the baseline solves but the T5 does not is a model limit, not a
// broken task).
//
// Features. Single-sentence tasks (cola, sst2): a bag of words, the lowercased words seen in at least two
// training examples, present or absent. Sentence-pair tasks (the input holds two fields, e.g. "sentence1: ...
// sentence2: ..."): 7 word-overlap features of the two word sets A (first field) and B (second field):
// |A & B| / |B|, |A & B| / |A|, |B - A|, |A - B|, whether exactly one side holds a negation, the length ratio,
// and the share of the second field's word bigrams that also occur in the first.
// Models. Classification: multinomial logistic regression (full-batch gradient descent, fixed step count,
// L2 1e-3; pair features standardized on the training split). Regression (stsb): least squares by gradient
// descent, scored by Spearman's rho. No randomness: the same data gives the same bits.
#include <cstdint>
#include <string>

#include "experiments/text_tasks.h"

namespace linfuse::experiments {

struct TextBaselineResult {
  std::string features;   // "bag of words" or "word overlap"
  double test = 0;        // accuracy, or Spearman's rho for a regression task
};

// Trains on task.train and scores the first `test_examples` (all if <= 0 or more than there are) of task.test.
// Throws std::invalid_argument for an empty training or test split.
TextBaselineResult text_feature_baseline(const data::TextTask& task, int64_t test_examples);

}  // namespace linfuse::experiments
