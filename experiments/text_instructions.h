#pragma once
// The instruct split's surface form (internal to experiments/): an example of a text task rewritten as a
// natural-language instruction, as Flan's templates rewrite GLUE ("Is the following sentence grammatical?
// ..." -> "yes"), instead of the task-prefix form ("cola sentence: ..." -> "acceptable") that fine-tuning and
// evaluation use. A model instruction-tuned on this form has learned the tasks, not their prefix format: its
// zero-shot score on the prefix form measures what transfers, and fine-tuning still has the format to learn.
//
// Each task has three templates answered "yes" / "no" (mnli: "yes" / "maybe" / "no") and two that offer the
// task's own label words as the answers ("... acceptable or unacceptable?"; stsb: a score from 0.0 to 5.0,
// rounded to 0.5 as the suite's targets). The words "cola", "sentence1:", "question2:", ... of the prefix
// form never occur in an instruction.
#include <string>
#include <vector>

#include "experiments/text_tasks.h"
#include "tensor/random.h"

namespace linfuse::data {

// `example` (built by the task's rule, in the prefix form) as an instruction: a template drawn by `gen`, one
// offering the label words with probability `label_word_share`, else a yes/no one. The label, score and
// fields stay; input and target change. Throws std::invalid_argument for a task without templates.
TextExample instruction_form(const std::string& task, const TextExample& example,
                             const std::vector<std::string>& label_words, double label_word_share, Generator& gen);

// The yes/no answers of a task, by label (mnli: "yes", "maybe", "no"); stsb answers "yes" when its score
// is at least 2.5.
std::vector<std::string> yes_no_answers(const std::string& task);

}  // namespace linfuse::data
