#pragma once
// Word-level edits of sentences that the text task rules are made of (internal to experiments/). A
// sentence is a vector of words split on spaces, punctuation attached ("Don't", "said,", "end."). Each edit
// returns std::nullopt when it does not apply to the sentence.
#include <optional>
#include <string>
#include <vector>

#include "tensor/random.h"

namespace linfuse::data {

using Words = std::vector<std::string>;

// Flips the negation at the first negatable auxiliary at index >= 1 (or the first one at all when
// `allow_first`): "is" -> "is not", "is not" -> "is", "can't" -> "can", "cannot" -> "can", "don't" -> "do",
// "will" -> "will not". Keeps the word's capitalization and trailing punctuation.
std::optional<Words> toggle_negation(const Words& words, bool allow_first = false);

// The index of the word toggle_negation would change, or -1.
int64_t negatable_index(const Words& words, bool allow_first = false);

// A word that negates ("not", "no", "never", "nothing", "nobody", "none", "without", "cannot" or an "n't"
// form), whatever its capitalization and punctuation.
bool is_negation(const std::string& word);

// Expands or contracts one contraction, picked by `gen` among those present: "don't" <-> "do not",
// "it's" <-> "it is", "I'm" <-> "I am", ... (meaning-preserving).
std::optional<Words> toggle_contraction(const Words& words, Generator& gen);

// Removes one intensifier (very, really, just, quite, actually, simply, certainly, truly, totally,
// completely, rather).
std::optional<Words> drop_intensifier(const Words& words, Generator& gen);

// "cats and dogs" -> "dogs and cats", for two plain words around an inner "and".
std::optional<Words> swap_conjuncts(const Words& words, Generator& gen);

// Prepends "In fact,", "Indeed,", "Of course," or "Honestly," (and lowercases the old first word).
Words add_discourse_prefix(const Words& words, Generator& gen);

// Replaces one content word (not the first) by `replacement`, keeping capitalization and punctuation.
std::optional<Words> replace_content_word(const Words& words, const std::string& replacement, Generator& gen);

// Swaps two content words with different spellings.
std::optional<Words> swap_content_words(const Words& words, Generator& gen);

// One of four word-order or word-count corruptions of the inner words (never the first or the last, and
// only words without punctuation): swap two adjacent words, duplicate a word, drop a function word, move a
// word by two or more places. Picked by `gen` among those that apply; sentences need >= 5 words.
std::optional<Words> corrupt_sentence(const Words& words, Generator& gen);

// Swaps two adjacent letters inside one content word of >= 5 letters ("receive" -> "recieve").
std::optional<Words> add_typo(const Words& words, Generator& gen);

// Capitalization and punctuation helpers.
Words capitalize_first(Words words);
Words lowercase_first(Words words);      // unless the word is "I", "I'm", ... or starts with two capitals
Words strip_final_punctuation(Words words);
// Drops leading and trailing tokens without a letter or digit ("--"), strips trailing punctuation and
// quotes of the last word and adds "."; drops every double quote or bracket
// when they no longer pair up (a span cut out of a sentence).
Words end_with_period(Words words);

}  // namespace linfuse::data
