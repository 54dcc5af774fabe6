// The second sentence of a copy-across pretraining pair (sentence_pair_corruption.h).
#include "experiments/sentence_pair_corruption.h"

#include "experiments/text_corpus.h"

namespace linfuse::data {

std::string sentence_pair_second(const std::string& sentence, const std::string& other, const std::vector<std::string>& word_list,
                                 const SentencePairOptions& options, Generator& gen) {
  if (gen.next_uniform() < options.unrelated_fraction) return other;
  Words words = split_words(sentence);
  const int64_t edits = int64_t(gen.next_u64() % uint64_t(options.max_edits + 1));
  for (int64_t e = 0; e < edits; ++e) {
    std::vector<Words> applicable;
    const std::string& replacement = word_list[size_t(gen.next_u64() % word_list.size())];
    for (auto& option : {replace_content_word(words, replacement, gen), toggle_negation(words), toggle_contraction(words, gen),
                         drop_intensifier(words, gen), add_typo(words, gen), corrupt_sentence(words, gen)})
      if (option) applicable.push_back(*option);
    if (applicable.empty()) break;
    words = applicable[size_t(gen.next_u64() % applicable.size())];
  }
  return join_words(words);
}

}  // namespace linfuse::data
