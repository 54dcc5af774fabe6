#pragma once
// The rules that turn fortune sentences into the examples of each text task (internal to experiments/).
// text_tasks.cpp assigns each task's sentences to disjoint train/validation/test parts; a rule then builds
// one example of a requested label from the next sentence of its split's part, using only sentences of the
// same part as partners.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/text_corpus.h"
#include "experiments/text_tasks.h"
#include "tensor/random.h"

namespace linfuse::data {

// The sentences one split of one task may use.
struct SplitSentences {
  std::vector<std::vector<const FortuneSentence*>> pools;   // a task's sentences by pool (see TextRule)
  const std::vector<std::string>* word_list = nullptr;      // wamerican words, for substitutions

  // A sentence of pool 0 of this split other than `not_this`, drawn by `gen`.
  const FortuneSentence& partner(Generator& gen, const FortuneSentence* not_this) const;
  const std::string& random_word(Generator& gen) const;
};

struct TextRule {
  std::string name, metric;
  std::vector<std::string> label_words;   // empty for regression
  // Which pool a sentence belongs to, or -1 when the task does not use it. Tasks with pool_per_label draw
  // the sentence of an example of label k from pool k (sst2: the topic); the others have one pool.
  int64_t (*pool_of)(const FortuneSentence& sentence);
  bool pool_per_label;
  // The example of `label` (ignored for regression) built on `sentence`, or nullopt when the rule does not
  // apply to this sentence (the caller moves on to the next one).
  std::optional<TextExample> (*build)(int64_t label, const FortuneSentence& sentence, const SplitSentences& split,
                                      Generator& gen);
};

// The rules of every task, in the order of text_task_names().
const std::vector<TextRule>& text_rules();

}  // namespace linfuse::data
