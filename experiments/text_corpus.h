#pragma once
// Reading Debian's English text for the text suite (internal to experiments/): the sentences of the
// `fortunes` package and the word list of `wamerican`, plus word-level helpers the task rules share.
#include <string>
#include <vector>

namespace linfuse::data {

struct FortuneSentence {
  std::string text;     // one cleaned sentence: printable ASCII, single spaces, 4..40 words
  std::string source;   // the fortune file it came from ("computers", "love", ...)
};

// All usable sentences of every fortune file of `fortunes_dir` (files in name order, sentences in file
// order), cleaned and de-duplicated (see text_corpus.cpp for the rules). Throws std::runtime_error naming
// the package `fortunes` when the directory or its files are missing.
std::vector<FortuneSentence> read_fortune_sentences(const std::string& fortunes_dir);

// The lowercase, purely alphabetic words of 3..10 letters of a word list (one word a line). Throws
// std::runtime_error naming the package `wamerican` when the file is missing.
std::vector<std::string> read_word_list(const std::string& words_file);

std::vector<std::string> split_words(const std::string& sentence);   // on single spaces
std::string join_words(const std::vector<std::string>& words);

// The word without leading/trailing punctuation, lowercased: "Don't," -> "don't".
std::string bare_word(const std::string& word);
bool is_content_word(const std::string& word);   // >= 4 letters, all alphabetic, not a function word or intensifier

}  // namespace linfuse::data
