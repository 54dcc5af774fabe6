// The instruction templates of the instruct split (text_instructions.h). A template names the example's
// fields in braces ("{sentence1}"); the instruction comes first, so that truncating a long input cuts the
// end of its second sentence, as it does in the prefix form, never the question.
#include "experiments/text_instructions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

namespace linfuse::data {
namespace {

struct Templates {
  std::vector<std::string> yes_no;        // answered yes_no_answers(task)[label]
  std::vector<std::string> label_words;   // answered with the task's label word (stsb: the score)
};

const std::map<std::string, Templates>& templates() {
  static const std::map<std::string, Templates> all = {
      {"cola",
       {{"Is the following sentence grammatical? {sentence}", "Would a careful writer write this sentence? {sentence}",
         "Is the word order of this sentence correct, yes or no? {sentence}"},
        {"Is this sentence acceptable or unacceptable? {sentence}", "Judge the sentence, acceptable or unacceptable: {sentence}"}}},
      {"sst2",
       {{"Is this sentence about computers or science? {sentence}", "Does the following sentence come from a technical text? {sentence}",
         "Would you find this sentence in a manual or a science book? {sentence}"},
        {"Is the topic of this sentence technical or everyday? {sentence}", "Technical or everyday? {sentence}"}}},
      {"mrpc",
       {{"Do these two sentences mean the same thing? First: {sentence1} Second: {sentence2}",
         "Is the second sentence a paraphrase of the first? {sentence1} {sentence2}",
         "Does the sentence B say the same as the sentence A? A: {sentence1} B: {sentence2}"},
        {"Are these sentences equivalent or not_equivalent? {sentence1} {sentence2}",
         "Answer equivalent or not_equivalent. A: {sentence1} B: {sentence2}"}}},
      {"qqp",
       {{"Are these two questions asking the same thing? {question1} {question2}",
         "Would one answer serve both questions? Question A: {question1} Question B: {question2}",
         "Can the first question be merged with the second? {question1} {question2}"},
        {"Are these questions duplicate or not_duplicate? {question1} {question2}", "Duplicate or not_duplicate? {question1} {question2}"}}},
      {"stsb",
       {{"Do these two sentences mean nearly the same? {sentence1} {sentence2}",
         "Is most of the first sentence kept in the second? {sentence1} {sentence2}",
         "Are these sentences similar? A: {sentence1} B: {sentence2}"},
        {"How similar are these two sentences, from 0.0 to 5.0? {sentence1} {sentence2}",
         "Rate the similarity of the sentences on a scale of 0 to 5. A: {sentence1} B: {sentence2}"}}},
      {"mnli",
       {{"Does the first sentence support the second, yes, no or maybe? {premise} {hypothesis}",
         "Suppose this is true: {premise} Can we say that {hypothesis} Answer yes, no or maybe.",
         "Given the text, is the claim true? Answer yes, no or maybe. Text: {premise} Claim: {hypothesis}"},
        {"Entailment, neutral or contradiction? {premise} {hypothesis}",
         "What is the relation of the second sentence to the first: entailment, neutral or contradiction? {premise} {hypothesis}"}}},
      {"rte",
       {{"Does the first sentence imply the second? {sentence1} {sentence2}",
         "Can we conclude the second sentence from the first? {sentence1} {sentence2}",
         "Given the text, does the claim follow? Text: {sentence1} Claim: {sentence2}"},
        {"Entailment or not_entailment? {sentence1} {sentence2}",
         "Does the first sentence entail the second: entailment or not_entailment? {sentence1} {sentence2}"}}},
  };
  return all;
}

std::string filled(std::string text, const TextFields& fields) {
  for (const auto& [name, value] : fields) {
    const std::string slot = "{" + name + "}";
    const size_t at = text.find(slot);
    if (at == std::string::npos) throw std::logic_error("[instruction_form] template without " + slot + ": " + text);
    text.replace(at, slot.size(), value);
  }
  return text;
}

// The stsb score as the suite's targets write it: rounded to the nearest 0.5, one decimal ("3.4" -> "3.5").
std::string half_point_score(double score) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f", 0.5 * double(std::llround(2 * std::clamp(score, 0.0, 5.0))));
  return text;
}

}  // namespace

std::vector<std::string> yes_no_answers(const std::string& task) {
  if (task == "mnli") return {"yes", "maybe", "no"};   // entailment, neutral, contradiction
  if (task == "rte") return {"yes", "no"};             // entailment, not_entailment
  return {"no", "yes"};                                // the negative label first (stsb: score < 2.5)
}

TextExample instruction_form(const std::string& task, const TextExample& example,
                             const std::vector<std::string>& label_words, double label_word_share, Generator& gen) {
  auto found = templates().find(task);
  if (found == templates().end())
    throw std::invalid_argument("[instruction_form] no instruction templates for task '" + task + "'");
  const bool offer_label_words = gen.next_uniform() < label_word_share;
  const std::vector<std::string>& choices = offer_label_words ? found->second.label_words : found->second.yes_no;
  TextExample out = example;
  out.input = filled(choices[size_t(gen.next_u64() % choices.size())], example.fields);
  const bool regression = example.label < 0;
  if (offer_label_words) {
    out.target = regression ? half_point_score(example.score) : label_words.at(size_t(example.label));
  } else {
    out.target = yes_no_answers(task).at(regression ? size_t(example.score >= 2.5) : size_t(example.label));
  }
  return out;
}

}  // namespace linfuse::data
