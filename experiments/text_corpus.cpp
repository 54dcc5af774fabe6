// Sentences from Debian's fortunes, and the wamerican word list.
//
// How a fortune file becomes sentences:
//  1. Files: every regular file of the directory without an extension (fortune's .dat index files and
//     .u8 links are skipped), in name order; "art" and "ascii-art" are skipped (drawings, not prose).
//  2. Fortunes are separated by lines holding a single "%". Backspace overstrikes ("_\bX", old-style
//     underlining) are removed. Attribution lines (starting with "--" after indentation) are dropped.
//     A line that starts with whitespace, or an empty line, starts a new paragraph; the lines of a
//     paragraph are joined with single spaces.
//  3. Paragraphs are split after ".", "!" or "?" (with any closing quotes or brackets) when a space and
//     an uppercase letter, digit, quote or bracket follow, except after common abbreviations ("Mr.",
//     "e.g.") and single-letter initials.
//  4. A sentence is kept when it is printable ASCII, starts with an uppercase letter, digit or quote, ends
//     with ".", "!" or "?" (optionally followed by a quote or bracket), has balanced double quotes and
//     brackets, none of the characters | _ < > { } [ ] = # * ~ ^ \ @ ` and no URL, at least 75% letters
//     among its non-space characters, at most 25% all-capital words (zippy's shouting), fewer than half of
//     its words printed with every letter doubled ("CChheecckk", a terminal's bold), and 4..40 words.
//     A sentence longer than 40 words is cut at its last ",", ";" or ":" within the first 40 words (if
//     that leaves at least 8 words), which becomes a ".". A leading "Q:" or "A:" is dropped.
//  5. Sentences are de-duplicated on their lowercase letters and digits (the first occurrence wins).
#include "experiments/text_corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

namespace linfuse::data {
namespace {

const char* kFortunesFix = "install Debian's fortunes package ('make setup' or 'apt-get install fortunes')";
const char* kWordsFix = "install Debian's wamerican package ('make setup' or 'apt-get install wamerican')";

std::string read_text_file(const std::string& path, const char* fix) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path + ": " + fix);
  std::string text(size_t(in.tellg()), '\0');
  in.seekg(0);
  in.read(text.data(), std::streamsize(text.size()));
  return text;
}

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alpha(char c) { return std::isalpha((unsigned char)c) != 0; }

std::string trim(const std::string& s) {
  size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

// Removes "X\b" overstrike pairs and turns tabs into spaces.
std::string remove_overstrike(const std::string& line) {
  std::string out;
  for (char c : line) {
    if (c == '\b') {
      if (!out.empty()) out.pop_back();
    } else {
      out.push_back(c == '\t' ? ' ' : c);
    }
  }
  return out;
}

std::string collapse_spaces(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// The paragraphs of one fortune (rule 2).
std::vector<std::string> paragraphs_of(const std::string& fortune) {
  std::vector<std::string> paragraphs;
  std::string current;
  auto flush = [&] {
    std::string text = collapse_spaces(current);
    if (!text.empty()) paragraphs.push_back(text);
    current.clear();
  };
  size_t start = 0;
  while (start <= fortune.size()) {
    size_t end = fortune.find('\n', start);
    if (end == std::string::npos) end = fortune.size();
    std::string line = remove_overstrike(fortune.substr(start, end - start));
    std::string stripped = trim(line);
    bool indented = !line.empty() && line[0] == ' ';
    if (stripped.empty() || stripped.rfind("--", 0) == 0) {
      flush();
    } else {
      if (indented) flush();
      current += " " + stripped;
    }
    start = end + 1;
  }
  flush();
  return paragraphs;
}

bool is_abbreviation(const std::string& word_before_period) {
  static const std::set<std::string> abbreviations = {
      "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "vs", "etc", "e.g", "i.e", "Prof", "Inc", "Ltd", "Co",
      "No", "Mt", "U.S", "Gen", "Col", "Sgt", "Rev", "Lt", "Capt", "Ph.D", "Vol", "Fig", "cf", "Rep", "Sen"};
  if (word_before_period.size() == 1 && is_alpha(word_before_period[0])) return true;   // an initial
  return abbreviations.count(word_before_period) > 0;
}

// Rule 3.
std::vector<std::string> split_sentences(const std::string& paragraph) {
  std::vector<std::string> sentences;
  size_t begin = 0, i = 0;
  while (i < paragraph.size()) {
    char c = paragraph[i];
    if (c != '.' && c != '!' && c != '?') { ++i; continue; }
    size_t end = i + 1;   // one past the terminator run and closing quotes/brackets
    while (end < paragraph.size() && std::string(".!?\"')").find(paragraph[end]) != std::string::npos) ++end;
    bool boundary = end + 1 < paragraph.size() && paragraph[end] == ' ' &&
                    (is_upper(paragraph[end + 1]) || std::isdigit((unsigned char)paragraph[end + 1]) ||
                     paragraph[end + 1] == '"' || paragraph[end + 1] == '(');
    if (boundary && c == '.' && end == i + 1) {
      size_t word_start = paragraph.rfind(' ', i);
      word_start = word_start == std::string::npos ? begin : word_start + 1;
      if (is_abbreviation(paragraph.substr(word_start, i - word_start))) boundary = false;
    }
    if (end >= paragraph.size() || boundary) {
      sentences.push_back(paragraph.substr(begin, end - begin));
      begin = end + 1;
    }
    i = end;
  }
  if (begin < paragraph.size()) sentences.push_back(paragraph.substr(begin));   // no terminator: rule 4 drops it
  return sentences;
}

bool ends_sentence(const std::string& sentence) {
  size_t last = sentence.find_last_not_of("\")");
  return last != std::string::npos && std::string(".!?").find(sentence[last]) != std::string::npos;
}

// Rule 4: the cleaned sentence, or "" when it is not usable.
std::string clean_sentence(std::string sentence) {
  sentence = trim(sentence);
  if (sentence.rfind("Q: ", 0) == 0 || sentence.rfind("A: ", 0) == 0) sentence = sentence.substr(3);
  for (char c : sentence)
    if ((unsigned char)c < 32 || (unsigned char)c > 126) return "";
  if (sentence.find_first_of("|_<>{}[]=#*~^\\@`") != std::string::npos) return "";
  if (sentence.find("http") != std::string::npos || sentence.find("www.") != std::string::npos) return "";
  std::vector<std::string> words = split_words(sentence);
  if (words.size() > 40) {
    size_t cut = 0;
    for (size_t w = 8; w < 40; ++w)
      if (std::string(",;:").find(words[w - 1].back()) != std::string::npos) cut = w;
    if (cut == 0) return "";
    words.resize(cut);
    words.back().back() = '.';
    sentence = join_words(words);
  }
  if (words.size() < 4) return "";
  if (!(is_upper(sentence[0]) || std::isdigit((unsigned char)sentence[0]) || sentence[0] == '"')) return "";
  if (!ends_sentence(sentence)) return "";
  if (std::count(sentence.begin(), sentence.end(), '"') % 2 != 0) return "";
  if (std::count(sentence.begin(), sentence.end(), '(') != std::count(sentence.begin(), sentence.end(), ')')) return "";
  size_t letters = 0, visible = 0;
  for (char c : sentence) letters += is_alpha(c), visible += c != ' ';
  if (letters * 4 < visible * 3) return "";
  size_t shouting = 0;
  for (const std::string& word : words) {
    size_t upper = 0, alpha = 0;
    for (char c : word) upper += is_upper(c), alpha += is_alpha(c);
    shouting += alpha >= 2 && upper == alpha;
  }
  if (shouting * 4 > words.size()) return "";
  size_t doubled = 0;   // "CChheecckk": a terminal's bold printing, every letter twice
  for (const std::string& word : words) {
    bool pairs = word.size() >= 4 && word.size() % 2 == 0;
    for (size_t k = 0; pairs && k < word.size(); k += 2) pairs = word[k] == word[k + 1];
    doubled += pairs;
  }
  if (doubled * 2 >= words.size()) return "";
  return sentence;
}

std::string dedup_key(const std::string& sentence) {
  std::string key;
  for (char c : sentence)
    if (std::isalnum((unsigned char)c)) key.push_back(char(std::tolower((unsigned char)c)));
  return key;
}

}  // namespace

std::vector<std::string> split_words(const std::string& sentence) {
  std::vector<std::string> words;
  size_t start = 0;
  while (start < sentence.size()) {
    size_t end = sentence.find(' ', start);
    if (end == std::string::npos) end = sentence.size();
    if (end > start) words.push_back(sentence.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) text += (text.empty() ? "" : " ") + word;
  return text;
}

std::string bare_word(const std::string& word) {
  size_t begin = 0, end = word.size();
  while (begin < end && !std::isalnum((unsigned char)word[begin])) ++begin;
  while (end > begin && !std::isalnum((unsigned char)word[end - 1])) --end;
  std::string bare = word.substr(begin, end - begin);
  for (char& c : bare) c = char(std::tolower((unsigned char)c));
  return bare;
}

bool is_content_word(const std::string& word) {
  static const std::set<std::string> function_words = {
      "that", "this", "with", "from", "have", "they", "them", "their", "there", "what", "when", "where",
      "which", "while", "will", "would", "could", "should", "about", "your", "been", "were", "into", "than",
      "then", "only", "some", "just", "also", "very", "more", "most", "such", "each", "other", "does", "here",
      "these", "those", "because", "before", "after", "many", "much", "over", "under", "upon", "every",
      "never", "always", "nothing", "something", "anything", "everything", "cannot", "might", "must",
      "shall", "being", "whom", "whose", "why", "how", "ever", "even", "still", "well", "once", "both",
      // intensifiers: a paraphrase may drop them (text_edits.h), so they are not content
      "really", "quite", "actually", "simply", "certainly", "truly", "totally", "completely", "rather"};
  std::string bare = bare_word(word);
  if (bare.size() < 4) return false;
  for (char c : bare)
    if (!is_alpha(c)) return false;
  return function_words.count(bare) == 0;
}

std::vector<FortuneSentence> read_fortune_sentences(const std::string& fortunes_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(fortunes_dir)) throw std::runtime_error("cannot find " + fortunes_dir + ": " + kFortunesFix);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(fortunes_dir)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || entry.is_symlink() || entry.path().has_extension()) continue;
    if (name == "art" || name == "ascii-art") continue;
    files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::runtime_error("cannot find any fortune file in " + fortunes_dir + ": " + kFortunesFix);

  std::vector<FortuneSentence> sentences;
  std::set<std::string> seen;
  for (const std::string& name : files) {
    std::string text = read_text_file(fortunes_dir + "/" + name, kFortunesFix);
    size_t start = 0;
    while (start < text.size()) {
      size_t separator = text.find("\n%\n", start);
      size_t end = separator == std::string::npos ? text.size() : separator;
      std::string fortune = text.substr(start, end - start);
      if (fortune.rfind("%\n", 0) == 0) fortune = fortune.substr(2);
      for (const std::string& paragraph : paragraphs_of(fortune))
        for (const std::string& raw : split_sentences(paragraph)) {
          std::string sentence = clean_sentence(raw);
          if (!sentence.empty() && seen.insert(dedup_key(sentence)).second) sentences.push_back({sentence, name});
        }
      start = separator == std::string::npos ? text.size() : separator + 1;   // keep the "%\n" for the check above
    }
  }
  return sentences;
}

std::vector<std::string> read_word_list(const std::string& words_file) {
  if (!std::filesystem::exists(words_file)) throw std::runtime_error("cannot find " + words_file + ": " + kWordsFix);
  std::string text = read_text_file(words_file, kWordsFix);
  std::vector<std::string> words;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(start, end - start);
    bool lowercase_alpha = word.size() >= 3 && word.size() <= 10 &&
                           std::all_of(word.begin(), word.end(), [](char c) { return c >= 'a' && c <= 'z'; });
    if (lowercase_alpha) words.push_back(word);
    start = end + 1;
  }
  if (words.size() < 1000)
    throw std::runtime_error(words_file + " holds only " + std::to_string(words.size()) +
                             " usable words (expected tens of thousands): " + kWordsFix);
  return words;
}

}  // namespace linfuse::data
