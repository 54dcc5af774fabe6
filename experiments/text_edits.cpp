#include "experiments/text_edits.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "experiments/text_corpus.h"

namespace linfuse::data {
namespace {

// A word as leading punctuation, core (first to last alphanumeric character) and trailing punctuation.
struct Affixed {
  std::string prefix, core, suffix;
};

Affixed split_affixes(const std::string& word) {
  size_t begin = 0, end = word.size();
  while (begin < end && !std::isalnum((unsigned char)word[begin])) ++begin;
  while (end > begin && !std::isalnum((unsigned char)word[end - 1])) --end;
  return {word.substr(0, begin), word.substr(begin, end - begin), word.substr(end)};
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

// `replacement` with the first letter capitalized if `original`'s is.
std::string match_case(const std::string& original, std::string replacement) {
  if (!original.empty() && !replacement.empty() && std::isupper((unsigned char)original[0]))
    replacement[0] = char(std::toupper((unsigned char)replacement[0]));
  return replacement;
}

bool is_plain(const std::string& word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char c) { return std::isalpha((unsigned char)c); });
}

size_t pick(Generator& gen, size_t count) { return size_t(gen.next_u64() % count); }

const std::set<std::string> kPositiveAuxiliaries = {"is", "are", "was", "were", "can", "will", "would", "could",
                                                    "should", "does", "do", "did", "must", "may", "might"};
const std::map<std::string, std::string> kNegativeAuxiliaries = {
    {"isn't", "is"},         {"aren't", "are"},     {"wasn't", "was"},       {"weren't", "were"},
    {"can't", "can"},        {"cannot", "can"},     {"won't", "will"},       {"wouldn't", "would"},
    {"couldn't", "could"},   {"shouldn't", "should"}, {"doesn't", "does"},   {"don't", "do"},
    {"didn't", "did"},       {"mustn't", "must"}};

// Pairs of (contracted, expanded: always two words); both directions are used.
const std::vector<std::pair<std::string, std::string>> kContractions = {
    {"don't", "do not"},    {"doesn't", "does not"}, {"didn't", "did not"}, {"isn't", "is not"},
    {"aren't", "are not"},  {"wasn't", "was not"},   {"won't", "will not"},
    {"it's", "it is"},      {"i'm", "i am"},         {"you're", "you are"}, {"that's", "that is"},
    {"there's", "there is"}, {"they're", "they are"}, {"we're", "we are"},  {"i've", "i have"},
    {"you've", "you have"}, {"i'll", "i will"},      {"you'll", "you will"}, {"let's", "let us"},
    {"he's", "he is"},      {"she's", "she is"},     {"what's", "what is"}};

const std::set<std::string> kIntensifiers = {"very", "really", "just", "quite", "actually", "simply",
                                             "certainly", "truly", "totally", "completely", "rather"};
const std::set<std::string> kDroppableFunctionWords = {"the", "a", "an", "to", "of", "is", "are", "was", "were",
                                                       "and", "in", "on", "for", "with", "that", "it", "be", "have"};

}  // namespace

bool is_negation(const std::string& word) {
  static const std::set<std::string> negations = {"not", "no", "never", "nothing", "nobody", "none", "without", "cannot"};
  std::string bare = bare_word(word);
  return negations.count(bare) || (bare.size() > 3 && bare.compare(bare.size() - 3, 3, "n't") == 0);
}

int64_t negatable_index(const Words& words, bool allow_first) {
  for (size_t i = allow_first ? 0 : 1; i < words.size(); ++i) {
    std::string core = lower(split_affixes(words[i]).core);
    if (kNegativeAuxiliaries.count(core)) return int64_t(i);
    if (kPositiveAuxiliaries.count(core)) return int64_t(i);
  }
  return -1;
}

std::optional<Words> toggle_negation(const Words& words, bool allow_first) {
  int64_t index = negatable_index(words, allow_first);
  if (index < 0) return std::nullopt;
  Affixed word = split_affixes(words[size_t(index)]);
  std::string core = lower(word.core);
  Words out(words.begin(), words.begin() + index);
  if (auto negative = kNegativeAuxiliaries.find(core); negative != kNegativeAuxiliaries.end()) {
    out.push_back(word.prefix + match_case(word.core, negative->second) + word.suffix);
    out.insert(out.end(), words.begin() + index + 1, words.end());
  } else if (size_t(index + 1) < words.size() && word.suffix.empty() &&
             lower(split_affixes(words[size_t(index + 1)]).core) == "not") {
    // "is not" -> "is": the "not" goes, its punctuation stays on the auxiliary.
    out.push_back(words[size_t(index)] + split_affixes(words[size_t(index + 1)]).suffix);
    out.insert(out.end(), words.begin() + index + 2, words.end());
  } else if (core == "can") {
    out.push_back(word.prefix + match_case(word.core, "cannot") + word.suffix);
    out.insert(out.end(), words.begin() + index + 1, words.end());
  } else {
    out.push_back(word.prefix + word.core);
    out.push_back("not" + word.suffix);
    out.insert(out.end(), words.begin() + index + 1, words.end());
  }
  return out;
}

std::optional<Words> toggle_contraction(const Words& words, Generator& gen) {
  struct Site { size_t index; size_t pair; bool expand; };
  std::vector<Site> sites;
  std::vector<Affixed> parts;
  for (const std::string& word : words) parts.push_back(split_affixes(word));
  for (size_t i = 0; i < words.size(); ++i) {
    std::string core = lower(parts[i].core);
    std::string next = i + 1 < words.size() ? lower(parts[i + 1].core) : "";
    for (size_t p = 0; p < kContractions.size(); ++p) {
      if (core == kContractions[p].first) sites.push_back({i, p, true});
      const std::string& expanded = kContractions[p].second;   // "do not"
      size_t space = expanded.find(' ');
      if (!next.empty() && expanded.compare(0, space, core) == 0 && space == core.size() &&
          expanded.compare(space + 1, std::string::npos, next) == 0 && parts[i].suffix.empty() &&
          parts[i + 1].prefix.empty())
        sites.push_back({i, p, false});
    }
  }
  if (sites.empty()) return std::nullopt;
  Site site = sites[pick(gen, sites.size())];
  Affixed word = split_affixes(words[site.index]);
  Words out(words.begin(), words.begin() + long(site.index));
  if (site.expand) {
    Words expanded = split_words(kContractions[site.pair].second);
    out.push_back(word.prefix + match_case(word.core, expanded[0] == "i" ? "I" : expanded[0]));
    out.push_back(expanded[1] + word.suffix);
    out.insert(out.end(), words.begin() + long(site.index) + 1, words.end());
  } else {
    std::string contracted = kContractions[site.pair].first;
    if (contracted.rfind("i'", 0) == 0) contracted[0] = 'I';
    out.push_back(word.prefix + match_case(word.core, contracted) + split_affixes(words[site.index + 1]).suffix);
    out.insert(out.end(), words.begin() + long(site.index) + 2, words.end());
  }
  return out;
}

std::optional<Words> drop_intensifier(const Words& words, Generator& gen) {
  std::vector<size_t> sites;
  for (size_t i = 1; i + 1 < words.size(); ++i)
    if (kIntensifiers.count(lower(words[i]))) sites.push_back(i);   // plain words only: no punctuation
  if (sites.empty()) return std::nullopt;
  Words out = words;
  out.erase(out.begin() + long(sites[pick(gen, sites.size())]));
  return out;
}

std::optional<Words> swap_conjuncts(const Words& words, Generator& gen) {
  std::vector<size_t> sites;
  for (size_t i = 1; i + 1 < words.size(); ++i)
    if (words[i] == "and" && i >= 1 && is_plain(words[i - 1]) && is_plain(words[i + 1]) &&
        lower(words[i - 1]) != lower(words[i + 1]) && i - 1 > 0)
      sites.push_back(i);
  // The right conjunct may carry punctuation ("dogs."): it moves with the position, not the word.
  for (size_t i = 1; i + 1 < words.size(); ++i)
    if (words[i] == "and" && i - 1 > 0 && is_plain(words[i - 1]) && !is_plain(words[i + 1]) &&
        is_plain(split_affixes(words[i + 1]).core) && split_affixes(words[i + 1]).prefix.empty() &&
        lower(words[i - 1]) != lower(split_affixes(words[i + 1]).core))
      sites.push_back(i);
  if (sites.empty()) return std::nullopt;
  size_t i = sites[pick(gen, sites.size())];
  Words out = words;
  Affixed right = split_affixes(words[i + 1]);
  out[i - 1] = right.core;
  out[i + 1] = words[i - 1] + right.suffix;
  return out;
}

Words add_discourse_prefix(const Words& words, Generator& gen) {
  static const std::vector<Words> prefixes = {{"In", "fact,"}, {"Indeed,"}, {"Of", "course,"}, {"Honestly,"}};
  Words out = prefixes[pick(gen, prefixes.size())];
  Words rest = lowercase_first(words);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

std::optional<Words> replace_content_word(const Words& words, const std::string& replacement, Generator& gen) {
  std::vector<size_t> sites;
  for (size_t i = 1; i < words.size(); ++i)
    if (is_content_word(words[i]) && lower(split_affixes(words[i]).core) != replacement) sites.push_back(i);
  if (sites.empty()) return std::nullopt;
  size_t i = sites[pick(gen, sites.size())];
  Affixed word = split_affixes(words[i]);
  Words out = words;
  out[i] = word.prefix + match_case(word.core, replacement) + word.suffix;
  return out;
}

std::optional<Words> swap_content_words(const Words& words, Generator& gen) {
  std::vector<size_t> sites;
  for (size_t i = 0; i < words.size(); ++i)
    if (is_content_word(words[i])) sites.push_back(i);
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t a = 0; a < sites.size(); ++a)
    for (size_t b = a + 1; b < sites.size(); ++b)
      if (lower(split_affixes(words[sites[a]]).core) != lower(split_affixes(words[sites[b]]).core))
        pairs.push_back({sites[a], sites[b]});
  if (pairs.empty()) return std::nullopt;
  auto [i, j] = pairs[pick(gen, pairs.size())];
  Affixed first = split_affixes(words[i]), second = split_affixes(words[j]);
  Words out = words;
  // Each position keeps its punctuation and capitalization; only the word cores trade places.
  out[i] = first.prefix + match_case(first.core, lower(second.core)) + first.suffix;
  out[j] = second.prefix + match_case(second.core, lower(first.core)) + second.suffix;
  return out;
}

std::optional<Words> corrupt_sentence(const Words& words, Generator& gen) {
  if (words.size() < 5) return std::nullopt;
  const size_t n = words.size();
  std::vector<size_t> plain;   // inner words without punctuation
  for (size_t i = 1; i + 1 < n; ++i)
    if (is_plain(words[i])) plain.push_back(i);
  std::vector<std::pair<size_t, size_t>> adjacent;
  for (size_t k = 0; k + 1 < plain.size(); ++k)
    if (plain[k + 1] == plain[k] + 1 && lower(words[plain[k]]) != lower(words[plain[k + 1]]))
      adjacent.push_back({plain[k], plain[k + 1]});
  std::vector<size_t> droppable;
  for (size_t i : plain)
    if (kDroppableFunctionWords.count(lower(words[i]))) droppable.push_back(i);

  std::vector<int> kinds;   // 0 swap adjacent, 1 duplicate, 2 drop function word, 3 move
  if (!adjacent.empty()) kinds.push_back(0);
  if (!plain.empty()) kinds.push_back(1);
  if (!droppable.empty()) kinds.push_back(2);
  if (plain.size() >= 1 && n >= 6) kinds.push_back(3);
  if (kinds.empty()) return std::nullopt;
  Words out = words;
  switch (kinds[pick(gen, kinds.size())]) {
    case 0: {
      auto [i, j] = adjacent[pick(gen, adjacent.size())];
      std::swap(out[i], out[j]);
      break;
    }
    case 1: {
      size_t i = plain[pick(gen, plain.size())];
      out.insert(out.begin() + long(i) + 1, words[i]);
      break;
    }
    case 2:
      out.erase(out.begin() + long(droppable[pick(gen, droppable.size())]));
      break;
    default: {
      // Move an inner word to another inner slot at least two places away.
      size_t from = plain[pick(gen, plain.size())];
      std::string word = out[from];
      out.erase(out.begin() + long(from));
      // Inserting before out[slot] for slot in 1..out.size()-1 keeps the first and the last word in place;
      // the word lands at index slot, which must be two or more places from where it was.
      std::vector<size_t> slots;
      for (size_t slot = 1; slot < out.size(); ++slot)
        if ((slot > from ? slot - from : from - slot) >= 2) slots.push_back(slot);
      if (slots.empty()) return std::nullopt;
      out.insert(out.begin() + long(slots[pick(gen, slots.size())]), word);
    }
  }
  if (out == words) return std::nullopt;
  return out;
}

std::optional<Words> add_typo(const Words& words, Generator& gen) {
  std::vector<size_t> sites;
  for (size_t i = 0; i < words.size(); ++i) {
    Affixed word = split_affixes(words[i]);
    if (is_plain(word.core) && word.core.size() >= 5) sites.push_back(i);
  }
  if (sites.empty()) return std::nullopt;
  size_t i = sites[pick(gen, sites.size())];
  Affixed word = split_affixes(words[i]);
  std::vector<size_t> positions;   // swap letters k and k+1, inner letters only, and only if they differ
  for (size_t k = 1; k + 2 < word.core.size(); ++k)
    if (word.core[k] != word.core[k + 1]) positions.push_back(k);
  if (positions.empty()) return std::nullopt;
  size_t k = positions[pick(gen, positions.size())];
  std::swap(word.core[k], word.core[k + 1]);
  Words out = words;
  out[i] = word.prefix + word.core + word.suffix;
  return out;
}

Words capitalize_first(Words words) {
  if (words.empty()) return words;
  for (char& c : words[0])
    if (std::isalpha((unsigned char)c)) {
      c = char(std::toupper((unsigned char)c));
      break;
    }
  return words;
}

Words lowercase_first(Words words) {
  if (words.empty()) return words;
  std::string core = split_affixes(words[0]).core;
  bool pronoun_i = core == "I" || core.rfind("I'", 0) == 0;
  bool acronym = core.size() >= 2 && std::isupper((unsigned char)core[0]) && std::isupper((unsigned char)core[1]);
  if (pronoun_i || acronym) return words;
  for (char& c : words[0])
    if (std::isalpha((unsigned char)c)) {
      c = char(std::tolower((unsigned char)c));
      break;
    }
  return words;
}

Words strip_final_punctuation(Words words) {
  while (!words.empty()) {
    std::string& last = words.back();
    while (!last.empty() && std::string(".!?,;:").find(last.back()) != std::string::npos) last.pop_back();
    if (!last.empty()) break;
    words.pop_back();
  }
  return words;
}

Words end_with_period(Words words) {
  // Tokens without a letter or digit ("--", "-") cannot start or end a sentence.
  auto has_alnum = [](const std::string& word) {
    return std::any_of(word.begin(), word.end(), [](char c) { return std::isalnum((unsigned char)c); });
  };
  while (!words.empty() && !has_alnum(words.front())) words.erase(words.begin());
  while (!words.empty() && !has_alnum(words.back())) words.pop_back();
  while (!words.empty()) {
    std::string& last = words.back();
    while (!last.empty() && std::string(".!?,;:\"')").find(last.back()) != std::string::npos) last.pop_back();
    if (!last.empty()) break;
    words.pop_back();
  }
  if (words.empty()) return words;
  words.back() += ".";
  // A span cut out of a sentence may hold half of a quotation or a bracket: drop those characters then.
  auto count = [&](char c) {
    size_t total = 0;
    for (const std::string& word : words) total += size_t(std::count(word.begin(), word.end(), c));
    return total;
  };
  bool unbalanced_quotes = count('"') % 2 != 0, unbalanced_brackets = count('(') != count(')');
  for (std::string& word : words)
    word.erase(std::remove_if(word.begin(), word.end(),
                              [&](char c) {
                                return (unbalanced_quotes && c == '"') ||
                                       (unbalanced_brackets && (c == '(' || c == ')'));
                              }),
               word.end());
  words.erase(std::remove(words.begin(), words.end(), std::string()), words.end());
  return words;
}

}  // namespace linfuse::data
